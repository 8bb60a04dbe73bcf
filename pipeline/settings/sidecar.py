"""A piece's own settings: a sidecar TOML file beside the score.

``<score-name>.toml`` is looked for first (several scores in one folder each have their own),
then ``piece.toml`` (one piece per folder). It may set the ensemble, layout, preset, soundfont,
swing, the copyright notice (over the score's, for the tags) and a programme note (``notes``,
for the portfolio's page: it changes no sound), and per part
(``[parts."Violin II"]`` by name, case-insensitive, or ``[parts.2]`` by
1-based position in the score) its instrument, soundfont, bank, program, level and pan::

    ensemble = "orchestra"
    layout = "antiphonal"

    [parts."Violin II"]
    pan = 0.7

    [parts.3]
    instrument = "Viola"
    program = 41
    level = -2.0

Command-line options override the sidecar; the sidecar overrides what is detected. Every key is
checked when the file is read, and a bad one is a one-line error naming the file and the key.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.settings import instruments
from pipeline.settings.config import preset_names, template_names
from pipeline.errors import SidecarError, SoundfontError
from pipeline.settings.soundfonts import check_soundfont

SIDECAR_NAME = "piece.toml"
TOP_KEYS = ("ensemble", "layout", "preset", "soundfont", "swing", "copyright", "notes",
            "rehearsal", "parts")
#: The keys that change no sound (a render is the same whatever they say).
PAGE_ONLY_KEYS = ("notes",)
PORTFOLIO_NAME = "portfolio.toml"
PORTFOLIO_KEYS = ("title", "composer", "bio", "contact", "ensemble_order", "rehearsal")
PART_KEYS = ("instrument", "soundfont", "bank", "program", "level", "pan")
LEVEL_RANGE_DB = (-24.0, 12.0)


@dataclass(frozen=True)
class PartSettings:
    """What a sidecar says about one part; ``None`` where it says nothing."""

    instrument: instruments.InstrumentInfo | None = None
    soundfont: Path | None = None
    bank: int | None = None
    program: int | None = None
    level_db: float | None = None
    pan: float | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys the sidecar set, in the file's vocabulary (for the report)."""
        values = (self.instrument, self.soundfont, self.bank, self.program, self.level_db, self.pan)
        return tuple(k for k, v in zip(PART_KEYS, values) if v is not None)


@dataclass(frozen=True)
class Sidecar:
    """A validated sidecar file."""

    path: Path
    ensemble: str | None = None
    layout: str | None = None
    presets: tuple[str, ...] = ()
    soundfont: Path | None = None
    swing: float | None = None
    parts: tuple[tuple[str | int, PartSettings], ...] = ()  # key: a part name or a 1-based index
    copyright: str | None = None  # over the score's rights notice
    notes: str | None = None  # the programme note, for the portfolio's page
    rehearsal: bool = False  # the portfolio offers rehearsal tracks of its parts

    def for_tracks(self, names: list[str]) -> tuple[PartSettings | None, ...]:
        """Each track's settings, in score order (``None`` for a part the file does not name).

        Raises :class:`SidecarError` for a part the score does not have.
        """
        wanted = [" ".join(n.lower().split()) for n in names]
        out: list[PartSettings | None] = [None] * len(names)
        for key, part in self.parts:
            if isinstance(key, int):
                if not 1 <= key <= len(names):
                    raise SidecarError(f"{self.path}: [parts.{key}]: the score has {len(names)} "
                                       f"part{'s' if len(names) != 1 else ''}")
                i = key - 1
            else:
                matches = [i for i, n in enumerate(wanted) if n == " ".join(key.lower().split())]
                if not matches:
                    raise SidecarError(f"{self.path}: [parts.\"{key}\"] is not a part of the score "
                                       f"(its parts: {', '.join(names)})")
                i = matches[0]
            if out[i] is not None:
                raise SidecarError(f"{self.path}: [parts.{key!r}] names part {i + 1} "
                                   f"('{names[i]}') a second time")
            out[i] = part
        return tuple(out)


def find_sidecar(score_path: Path) -> Path | None:
    """``<score-name>.toml`` beside the score, else ``piece.toml`` there, else ``None``."""
    for candidate in (score_path.with_suffix(".toml"), score_path.parent / SIDECAR_NAME):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(score_path: Path) -> Sidecar | None:
    """The score's sidecar, validated, or ``None`` when it has none."""
    path = find_sidecar(Path(score_path))
    return load_sidecar(path) if path is not None else None


def _read_toml(path: Path, allowed: tuple[str, ...]) -> dict:
    """The TOML file's table, its keys checked against ``allowed``."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SidecarError(f"{path}: cannot be read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SidecarError(f"{path}: not valid TOML ({exc})") from exc
    _known(data, allowed, path, "")
    return data


def load_sidecar(path: Path) -> Sidecar:
    data = _read_toml(path, TOP_KEYS)
    parts = data.get("parts", {})
    if not isinstance(parts, dict):
        raise SidecarError(f"{path}: 'parts' must be tables [parts.\"<part name>\"] or [parts.N]")
    return Sidecar(
        path=path,
        ensemble=_name(data, "ensemble", path, template_names()),
        layout=_text(data, "layout", path),
        presets=_presets(data, path),
        soundfont=_soundfont(data, "soundfont", path, "soundfont"),
        swing=_number(data, "swing", path, "swing", 0.0, 4.0),
        parts=tuple((_part_key(k), _part(v, path, k)) for k, v in parts.items()),
        copyright=_notice(data, path),
        notes=_words(data, "notes", path, "the programme note in quotes, \"\"\"…\"\"\" for several "
                     "paragraphs"),
        rehearsal=_switch(data, "rehearsal", path))


def sound_settings(path: Path) -> bytes:
    """What a sidecar file says that can change the sound: its TOML without the keys of
    :data:`PAGE_ONLY_KEYS`, canonically (a changed programme note leaves it the same). The
    file's bytes when it is not valid TOML (reading it then fails with its own message)."""
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return raw
    for key in PAGE_ONLY_KEYS:
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, default=str).encode()


def _known(table: dict, allowed: tuple[str, ...], path: Path, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise SidecarError(f"{path}: unknown key '{prefix}{key}' (allowed: "
                               f"{', '.join(allowed)})")


def _notice(data: dict, path: Path) -> str | None:
    value = data.get("copyright")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SidecarError(f"{path}: 'copyright' = {value!r} is not allowed (the notice in quotes, "
                           f"e.g. \"© 2025 A. Composer\")")
    return value.strip() if value is not None else None


def _switch(data: dict, key: str, path: Path) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise SidecarError(f"{path}: '{key}' = {value!r} is not allowed (true or false)")
    return value


def _words(data: dict, key: str, path: Path, what: str) -> str | None:
    """Free text (a note, a biography): a string, kept as written but for the blank lines and
    spaces around it; None when absent."""
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SidecarError(f"{path}: '{key}' = {value!r} is not allowed ({what})")
    return value.strip() if value is not None else None


def _text(data: dict, key: str, path: Path, where: str | None = None) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SidecarError(f"{path}: '{where or key}' = {value!r} is not allowed (a name in quotes)")
    return value.strip() if value is not None else None


def _name(data: dict, key: str, path: Path, allowed: list[str]) -> str | None:
    value = _text(data, key, path)
    if value is not None and value not in allowed:
        raise SidecarError(f"{path}: '{key}' = {value!r} is not allowed (one of: "
                           f"{', '.join(allowed)})")
    return value


def _presets(data: dict, path: Path) -> tuple[str, ...]:
    value = data.get("preset")
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise SidecarError(f"{path}: 'preset' = {value!r} is not allowed (a preset name, or a "
                           f"list of them)")
    names, allowed = [v.strip() for v in items if v.strip()], preset_names()
    for name in names or [""]:
        if name not in allowed:
            raise SidecarError(f"{path}: 'preset' = {name!r} is not allowed (one of: "
                               f"{', '.join(allowed)})")
    return tuple(names)


def _number(data: dict, key: str, path: Path, where: str, lo: float, hi: float, *,
            whole: bool = False) -> float | int | None:
    """``data[key]`` if it is a number (a whole one if ``whole``) from ``lo`` to ``hi``."""
    value = data.get(key)
    if value is None:
        return None
    kinds = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not lo <= value <= hi:
        what = f"a whole number from {lo} to {hi}" if whole else f"a number from {lo:g} to {hi:g}"
        raise SidecarError(f"{path}: '{where}' = {value!r} is not allowed ({what})")
    return value if whole else float(value)


def _soundfont(data: dict, key: str, path: Path, where: str) -> Path | None:
    value = _text(data, key, path, where)
    if value is None:
        return None
    # a relative path is relative to the sidecar, so a piece's folder can travel
    try:
        return check_soundfont(path.parent / Path(value).expanduser(), "the sidecar")
    except SoundfontError as exc:
        raise SidecarError(f"{path}: '{where}' = {value!r}: {exc}") from exc


def _part_key(key: str) -> str | int:
    return int(key) if key.strip().isdigit() else key


def _part(table, path: Path, key: str) -> PartSettings:
    where = f"parts.{key}" if key.strip().isdigit() else f'parts."{key}"'
    if not isinstance(table, dict):
        raise SidecarError(f"{path}: '{where}' must be a table [{where}] of: "
                           f"{', '.join(PART_KEYS)}")
    _known(table, PART_KEYS, path, f"{where}.")
    return PartSettings(
        instrument=_instrument(table, path, f"{where}.instrument"),
        soundfont=_soundfont(table, "soundfont", path, f"{where}.soundfont"),
        bank=_number(table, "bank", path, f"{where}.bank", 0, 128, whole=True),
        program=_number(table, "program", path, f"{where}.program", 0, 127, whole=True),
        level_db=_number(table, "level", path, f"{where}.level", *LEVEL_RANGE_DB),
        pan=_number(table, "pan", path, f"{where}.pan", -1.0, 1.0))


def _instrument(table: dict, path: Path, where: str) -> instruments.InstrumentInfo | None:
    value = _text(table, "instrument", path, where)
    if value is None:
        return None
    info = next((i for _, i in instruments.instrument_map() if i.name.lower() == value.lower()),
                None) or instruments.lookup(value)
    if info is None:
        raise SidecarError(f"{path}: '{where}' = {value!r} is not in the instrument map "
                           f"(pipeline/data/instruments.toml; e.g. Violin, Piano, Alto Sax)")
    return info


@dataclass(frozen=True)
class PieceSettings:
    """The settings one piece is rendered with, and where each came from (``option``: the
    command line; ``sidecar``; ``default``: left to detection or the built-in default)."""

    ensemble: str | None
    layout: str | None
    presets: tuple[str, ...]
    soundfont: Path | str | None
    swing: float | None
    sidecar: Sidecar | None = None
    origin: dict = field(default_factory=dict)


def choose(sidecar: Sidecar | None, *, ensemble: str | None = None, layout: str | None = None,
           presets: tuple[str, ...] | None = None, soundfont: str | Path | None = None,
           swing: float | None = None, default_presets: tuple[str, ...] = ("streaming",)
           ) -> PieceSettings:
    """Command-line options over the sidecar over the defaults, remembering which won."""
    side = sidecar or Sidecar(Path(SIDECAR_NAME))
    chosen, origin = {}, {}
    for key, option, from_file, default in (
            ("ensemble", ensemble, side.ensemble, None), ("layout", layout, side.layout, None),
            ("presets", tuple(presets or ()), side.presets, default_presets),
            ("soundfont", soundfont, side.soundfont, None), ("swing", swing, side.swing, None)):
        if option is not None and option != ():
            chosen[key], origin[key] = option, "option"
        elif from_file is not None and from_file != ():
            chosen[key], origin[key] = from_file, "sidecar"
        else:
            chosen[key], origin[key] = default, "default"
    return PieceSettings(sidecar=sidecar, origin=origin, **chosen)


def swing_feel(template, swing: float | None) -> float | None:
    """The swing ratio to play: the option's (1 or less: straight), else the ``template``'s
    (a :class:`~pipeline.settings.config.Template`, or None)."""
    if swing is not None:
        return swing if swing > 1.0 else None
    return template.swing if template is not None else None


@dataclass(frozen=True)
class PortfolioSettings:
    """The composer's own words for a portfolio's site: ``portfolio.toml`` in the scores folder
    (every key optional)."""

    path: Path | None = None
    title: str | None = None            # the site's title
    composer: str | None = None
    bio: str | None = None
    contact: str | None = None          # a URL or an (e-mail) address
    ensemble_order: tuple[str, ...] = ()  # the categories first on the page, in this order
    rehearsal: bool = False             # every piece's page offers rehearsal tracks


def read_portfolio_settings(scores_dir: Path) -> PortfolioSettings:
    """``scores_dir/portfolio.toml``, validated (empty settings when there is none).

    Raises :class:`SidecarError` with one line naming the file and the key."""
    path = Path(scores_dir) / PORTFOLIO_NAME
    if not path.is_file():
        return PortfolioSettings()
    data = _read_toml(path, PORTFOLIO_KEYS)
    order = data.get("ensemble_order", [])
    allowed = template_names()
    if not isinstance(order, list) or not all(isinstance(v, str) for v in order):
        raise SidecarError(f"{path}: 'ensemble_order' = {order!r} is not allowed (a list of "
                           f"ensemble names, e.g. [\"orchestra\", \"quartet\"])")
    for name in order:
        if name not in allowed:
            raise SidecarError(f"{path}: 'ensemble_order' names {name!r} (allowed: "
                               f"{', '.join(allowed)})")
    return PortfolioSettings(
        path=path, title=_words(data, "title", path, "the site's title in quotes"),
        composer=_words(data, "composer", path, "the composer's name in quotes"),
        bio=_words(data, "bio", path, "a few sentences in quotes"),
        contact=_words(data, "contact", path, "a web address or an e-mail address in quotes"),
        ensemble_order=tuple(dict.fromkeys(order)), rehearsal=_switch(data, "rehearsal", path))
