"""Ensemble templates (``templates/*.toml``) and delivery presets (``presets/*.toml``): data
files loaded into dataclasses and validated on load, with errors that name the file and the key."""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from pipeline.errors import PresetError, TemplateError
from pipeline.settings.instruments import FAMILIES, by_name
from pipeline.dsp.rooms import Room
from pipeline.settings.seating import BUSES, DEFAULT_DEPTH, Depth, Rule, Seat
from pipeline.settings.validation import number

AUDIO_FORMATS = ("wav", "flac", "mp3", "ogg")
LOSSY_FORMATS = ("mp3", "ogg")
BIT_DEPTHS = (16, 24, 32)
SAMPLE_RATES = (44100, 48000, 88200, 96000)
CHAMBER_DEPTH = 0.25  # players seated in score order, where a template does not say


@dataclass(frozen=True)
class Mastering:
    """What an ensemble asks of mastering: the tonal target, how much glue, how much limiting
    its dynamics can take, and where it sits in loudness beside other ensembles on an album."""

    tilt_db_per_octave: float    # target long-term spectrum: band energy slope around 1 kHz
    glue_amount: float           # 0 = no glue compression, 1 = the preset's full glue
    max_limiting_db: float       # the dynamic-range guard for this ensemble
    relative_loudness_lu: float  # intended loudness on an album, against the loudest ensembles


@dataclass(frozen=True)
class Template:
    """How an ensemble is mixed: stage width, each player's own width, and the room."""

    name: str
    description: str
    stage_width: float      # 0 = everyone centre, 1 = players spread from hard left to hard right
    player_width: float     # stereo spread kept within each player's stem, 0–1
    room: Room
    reverb_send_db: float   # level of each player into the room
    mastering: Mastering
    seats: tuple[Seat, ...] = ()          # the default layout ([[seat]])
    layouts: dict = field(default_factory=dict)  # other layouts: name → seats that move
    rules: tuple[Rule, ...] = ()          # chamber instrumentations with their own seating
    depth: Depth = DEFAULT_DEPTH
    chamber_depth: float = CHAMBER_DEPTH  # depth of players seated in score order
    section_db: dict = field(default_factory=dict)  # bus → level (dB)
    swing: float | None = None            # the ensemble's default swing ratio (jazz band: 2:1)
    compress: tuple[str, ...] = ()        # instruments held steady by a light compressor

    @property
    def layout_names(self) -> tuple[str, ...]:
        return ("standard", *self.layouts)

    def seating(self, layout: str | None = None) -> tuple[Seat, ...]:
        """The seats of ``layout`` (None: the default): its seats replace same-named ones."""
        if not layout or layout == "standard":
            return self.seats
        if layout not in self.layouts:
            raise TemplateError(f"templates/{self.name}.toml: no layout '{layout}' (choose one of: "
                                f"{', '.join(self.layout_names)})")
        moved = {s.name: s for s in self.layouts[layout]}
        kept = tuple(moved.pop(s.name, s) for s in self.seats)
        return kept + tuple(moved.values())


@dataclass(frozen=True)
class Preset:
    """Where the master is going: loudness, ceiling, the mastering chain's settings and format.

    ``target_lufs`` is None for a hand-off (gain only, peaks under ``ceiling_dbtp`` as dBFS).
    """

    name: str
    description: str
    target_lufs: float | None
    ceiling_dbtp: float
    sample_rate: int | None          # None: keep the mix's rate
    bit_depth: int
    formats: tuple[str, ...]
    max_limiting_db: float           # the guard: the most gain reduction the limiter may apply
    eq_amount: float                 # share of the way toward the target curve, 0–1
    eq_max_db: float
    glue_ratio: float
    glue_threshold_lu: float         # above the programme's loudness
    glue_attack_ms: float
    glue_release_ms: float
    width: float                     # side level, 1 = unchanged
    mono_bass_hz: float              # 0 = off
    high_shelf_hz: float
    high_shelf_db: float
    dither: bool
    trim_silence: bool
    lead_in_ms: float
    fade_in_ms: float
    fade_out_ms: float
    mp3_kbps: int
    ogg_quality: float
    follow_reference_loudness: bool

    @property
    def processing(self) -> bool:
        return self.target_lufs is not None

    @property
    def lossy(self) -> bool:
        return any(f in LOSSY_FORMATS for f in self.formats)


def _folder(kind: str):
    return resources.files("pipeline").joinpath(kind)


def _names(kind: str) -> list[str]:
    return sorted(p.name[:-5] for p in _folder(kind).iterdir() if p.name.endswith(".toml"))


def template_names() -> list[str]:
    return _names("templates")


def preset_names() -> list[str]:
    return _names("presets")


def _read(kind: str, name: str, error) -> tuple[dict, str]:
    names = _names(kind)
    if name not in names:
        raise error(f"unknown {kind[:-1]} '{name}' (choose one of: {', '.join(names)})")
    where = f"{kind}/{name}.toml"
    try:
        return tomllib.loads(_folder(kind).joinpath(f"{name}.toml").read_text("utf-8")), where
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: not valid TOML ({exc})") from exc


def _choice(data: dict, key: str, where: str, error, allowed) -> object:
    value = data.get(key)
    if value not in allowed:
        raise error(f"{where}: '{key}' = {value!r} is not allowed (one of: "
                    f"{', '.join(str(a) for a in allowed)})")
    return value


def _optional(data: dict, key: str, where: str, error, lo: float, hi: float, default: float) -> float:
    return default if key not in data else number(data, key, where, error, lo, hi)


def _table(data: dict, key: str, where: str, error, required: bool = False) -> tuple[dict, str]:
    table = data.get(key, None if required else {})
    if not isinstance(table, dict):
        raise error(f"{where}: missing table [{key}]" if table is None else
                    f"{where}: '{key}' must be a table [{key}]")
    return table, f"{where} [{key}]"


def _phrases(entry: dict, key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise TemplateError(f"{where}: '{key}' = {value!r} is not allowed (a list of names)")
    return tuple(v.strip().lower() for v in value)


def _numbers(entry: dict, key: str, where: str, lo: float, hi: float) -> tuple[float, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                          or not lo <= v <= hi for v in value):
        raise TemplateError(f"{where}: '{key}' = {value!r} is not allowed (a list of numbers "
                            f"from {lo} to {hi})")
    return tuple(float(v) for v in value)


def _seats(entries, where: str) -> tuple[Seat, ...]:
    if not isinstance(entries, list):
        raise TemplateError(f"{where}: must be an array of tables [[seat]]")
    seats = []
    for i, entry in enumerate(entries):
        w = f"{where} #{i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TemplateError(f"{w}: missing key 'name' (the seat's name)")
        w = f"{where} '{entry['name']}'"
        families = _phrases(entry, "families", w)
        bad = [f for f in families if f not in FAMILIES]
        if bad:
            raise TemplateError(f"{w}: 'families' has {bad[0]!r} (allowed: {', '.join(FAMILIES)})")
        match = _phrases(entry, "match", w)
        if not match and not families:
            raise TemplateError(f"{w}: give 'match' (names) or 'families' to say who sits here")
        bus = entry.get("bus")
        if bus is not None and bus not in BUSES:
            raise TemplateError(f"{w}: 'bus' = {bus!r} is not allowed (one of: {', '.join(BUSES)})")
        pans = _numbers(entry, "pans", w, -1.0, 1.0)
        seats.append(Seat(name=entry["name"], match=match, families=families,
                          pan=(pans[0] if pans and "pan" not in entry else
                               number(entry, "pan", w, TemplateError, -1.0, 1.0)),
                          depth=number(entry, "depth", w, TemplateError, 0.0, 1.0),
                          spread=_optional(entry, "spread", w, TemplateError, 0.0, 2.0, 0.0),
                          pans=pans,
                          gain_db=_optional(entry, "gain_db", w, TemplateError, -12.0, 12.0, 0.0),
                          bus=bus, gains_db=_numbers(entry, "gains_db", w, -12.0, 12.0)))
    names = [s.name for s in seats]
    if len(set(names)) != len(names):
        raise TemplateError(f"{where}: seat names must be unique")
    return tuple(seats)


def _rules(entries, where: str) -> tuple[Rule, ...]:
    if not isinstance(entries, list):
        raise TemplateError(f"{where}: must be an array of tables [[rule]]")
    rules = []
    for i, entry in enumerate(entries):
        w = f"{where} #{i + 1}"
        if not isinstance(entry, dict):
            raise TemplateError(f"{w}: must be a table")
        names = entry.get("instruments")
        if not isinstance(names, list) or not names or any(by_name(n) is None for n in names):
            raise TemplateError(f"{w}: 'instruments' = {names!r} is not allowed (a list of "
                                f"instrument names from data/instruments.toml, left to right)")
        pans = _numbers(entry, "pans", w, -1.0, 1.0)
        depths = _numbers(entry, "depths", w, 0.0, 1.0)
        if len(pans) != len(names) or len(depths) != len(names):
            raise TemplateError(f"{w}: 'pans' and 'depths' need one number per instrument "
                                f"({len(names)})")
        rules.append(Rule(str(entry.get("name", f"rule {i + 1}")), tuple(names), pans, depths))
    return tuple(rules)


@functools.lru_cache(maxsize=None)
def load_template(name: str) -> Template:
    data, where = _read("templates", name, TemplateError)
    room, rwhere = _table(data, "room", where, TemplateError, required=True)
    mast, mwhere = _table(data, "master", where, TemplateError, required=True)
    depth, dwhere = _table(data, "depth", where, TemplateError)
    buses, bwhere = _table(data, "buses", where, TemplateError)
    for bus in buses:
        if bus not in BUSES:
            raise TemplateError(f"{bwhere}: '{bus}' is not a bus (one of: {', '.join(BUSES)})")
    layouts, lwhere = _table(data, "layouts", where, TemplateError)
    return Template(
        name=name, description=str(data.get("description", "")),
        stage_width=number(data, "stage_width", where, TemplateError, 0.0, 1.0),
        player_width=number(data, "player_width", where, TemplateError, 0.0, 1.0),
        reverb_send_db=number(data, "reverb_send_db", where, TemplateError, -60.0, 0.0),
        room=Room(name=str(room.get("name", name)),
                  rt60_s=number(room, "rt60_s", rwhere, TemplateError, 0.1, 8.0),
                  predelay_ms=number(room, "predelay_ms", rwhere, TemplateError, 0.0, 200.0),
                  width=number(room, "width", rwhere, TemplateError, 0.0, 1.0)),
        mastering=Mastering(
            tilt_db_per_octave=number(mast, "tilt_db_per_octave", mwhere, TemplateError, -9.0, 0.0),
            glue_amount=number(mast, "glue_amount", mwhere, TemplateError, 0.0, 1.0),
            max_limiting_db=number(mast, "max_limiting_db", mwhere, TemplateError, 0.0, 12.0),
            relative_loudness_lu=number(mast, "relative_loudness_lu", mwhere, TemplateError,
                                         -12.0, 0.0)),
        seats=_seats(data.get("seat", []), f"{where} [[seat]]"),
        layouts={k: _seats(v.get("seat", []) if isinstance(v, dict) else v,
                           f"{lwhere}.{k} [[seat]]") for k, v in layouts.items()},
        rules=_rules(data.get("rule", []), f"{where} [[rule]]"),
        depth=Depth(level_db=_optional(depth, "level_db", dwhere, TemplateError, -12.0, 0.0,
                                       DEFAULT_DEPTH.level_db),
                    send_db=_optional(depth, "send_db", dwhere, TemplateError, 0.0, 12.0,
                                      DEFAULT_DEPTH.send_db),
                    predelay_ms=_optional(depth, "predelay_ms", dwhere, TemplateError, 0.0, 50.0,
                                          DEFAULT_DEPTH.predelay_ms),
                    damping_hz=_optional(depth, "damping_hz", dwhere, TemplateError, 2000.0,
                                         20000.0, DEFAULT_DEPTH.damping_hz)),
        chamber_depth=_optional(data, "chamber_depth", where, TemplateError, 0.0, 1.0,
                                CHAMBER_DEPTH),
        section_db={b: number(buses, b, bwhere, TemplateError, -12.0, 12.0) for b in buses},
        swing=_optional(data, "swing", where, TemplateError, 1.0, 4.0, 0.0) or None,
        compress=_instrument_names(data, "compress", where))


def _instrument_names(data: dict, key: str, where: str) -> tuple[str, ...]:
    names = data.get(key, [])
    if not isinstance(names, list) or any(by_name(n) is None for n in names):
        raise TemplateError(f"{where}: '{key}' = {names!r} is not allowed (a list of instrument "
                            f"names from data/instruments.toml)")
    return tuple(names)


@functools.lru_cache(maxsize=None)
def load_preset(name: str) -> Preset:
    """Read ``presets/<name>.toml``. Only the loudness, ceiling and format are required; every
    stage of the chain has a documented default (off, or neutral) when its table is absent."""
    data, where = _read("presets", name, PresetError)
    err = PresetError
    handoff = data.get("target_lufs", "") == "none"
    formats = data.get("formats")
    if not isinstance(formats, list) or not formats or any(f not in AUDIO_FORMATS for f in formats):
        raise err(f"{where}: 'formats' = {formats!r} is not allowed (a list of: "
                  f"{', '.join(AUDIO_FORMATS)})")
    rate = data.get("sample_rate", "mix")
    eq, eqw = _table(data, "eq", where, err)
    glue, gw = _table(data, "glue", where, err)
    stereo, sw = _table(data, "stereo", where, err)
    edges, ew = _table(data, "edges", where, err)
    enc, cw = _table(data, "encoding", where, err)
    bit_depth = int(_choice(data, "bit_depth", where, err, BIT_DEPTHS))
    dither = data.get("dither", "tpdf" if bit_depth == 16 else "none")
    if dither not in ("tpdf", "none"):
        raise err(f"{where}: 'dither' = {dither!r} is not allowed (one of: tpdf, none)")
    return Preset(
        name=name, description=str(data.get("description", "")),
        target_lufs=None if handoff else number(data, "target_lufs", where, err, -40.0, -5.0),
        ceiling_dbtp=number(data, "ceiling_dbtp", where, err, -12.0, 0.0),
        sample_rate=None if rate == "mix" else int(_choice(data, "sample_rate", where, err,
                                                             SAMPLE_RATES + ("mix",))),
        bit_depth=bit_depth, formats=tuple(formats),
        max_limiting_db=_optional(data, "max_limiting_db", where, err, 0.0, 12.0, 6.0),
        eq_amount=_optional(eq, "amount", eqw, err, 0.0, 1.0, 0.0),
        eq_max_db=_optional(eq, "max_db", eqw, err, 0.0, 12.0, 3.0),
        glue_ratio=_optional(glue, "ratio", gw, err, 1.0, 4.0, 1.0),
        glue_threshold_lu=_optional(glue, "threshold_lu", gw, err, -20.0, 20.0, 3.0),
        glue_attack_ms=_optional(glue, "attack_ms", gw, err, 1.0, 500.0, 30.0),
        glue_release_ms=_optional(glue, "release_ms", gw, err, 20.0, 3000.0, 400.0),
        width=_optional(stereo, "width", sw, err, 0.0, 2.0, 1.0),
        mono_bass_hz=_optional(stereo, "mono_bass_hz", sw, err, 0.0, 300.0, 0.0),
        high_shelf_hz=_optional(eq, "high_shelf_hz", eqw, err, 2000.0, 20000.0, 10000.0),
        high_shelf_db=_optional(eq, "high_shelf_db", eqw, err, -12.0, 6.0, 0.0),
        dither=dither == "tpdf",
        trim_silence=bool(edges.get("trim_silence", not handoff)),
        lead_in_ms=_optional(edges, "lead_in_ms", ew, err, 0.0, 5000.0, 250.0),
        fade_in_ms=_optional(edges, "fade_in_ms", ew, err, 0.0, 5000.0, 5.0),
        fade_out_ms=_optional(edges, "fade_out_ms", ew, err, 0.0, 10000.0, 500.0),
        mp3_kbps=int(_optional(enc, "mp3_kbps", cw, err, 192, 320, 256)),
        ogg_quality=_optional(enc, "ogg_quality", cw, err, 0.3, 1.0, 0.7),
        follow_reference_loudness=bool(data.get("follow_reference_loudness", True)))
