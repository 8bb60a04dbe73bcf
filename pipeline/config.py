"""Ensemble templates (``templates/*.toml``) and delivery presets (``presets/*.toml``): data
files loaded into dataclasses and validated on load, with errors that name the file and the key."""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

from .errors import PresetError, TemplateError
from .rooms import Room

AUDIO_FORMATS = ("wav", "flac")
BIT_DEPTHS = (16, 24, 32)


@dataclass(frozen=True)
class Template:
    """How an ensemble is mixed: stage width, each player's own width, and the room."""

    name: str
    description: str
    stage_width: float      # 0 = everyone centre, 1 = players spread from hard left to hard right
    player_width: float     # stereo spread kept within each player's stem, 0–1
    room: Room
    reverb_send_db: float   # level of each player into the room


@dataclass(frozen=True)
class Preset:
    """Where the master is going: loudness target, true-peak ceiling and file format."""

    name: str
    description: str
    target_lufs: float
    ceiling_dbtp: float
    sample_rate: int
    bit_depth: int
    format: str


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


def _number(data: dict, key: str, where: str, error, lo: float, hi: float) -> float:
    if key not in data:
        raise error(f"{where}: missing key '{key}' (a number from {lo} to {hi})")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise error(f"{where}: '{key}' = {value!r} is not allowed (a number from {lo} to {hi})")
    return float(value)


def _choice(data: dict, key: str, where: str, error, allowed) -> object:
    value = data.get(key)
    if value not in allowed:
        raise error(f"{where}: '{key}' = {value!r} is not allowed (one of: "
                    f"{', '.join(str(a) for a in allowed)})")
    return value


@functools.lru_cache(maxsize=None)
def load_template(name: str) -> Template:
    data, where = _read("templates", name, TemplateError)
    room = data.get("room")
    if not isinstance(room, dict):
        raise TemplateError(f"{where}: missing table [room]")
    rwhere = f"{where} [room]"
    return Template(
        name=name, description=str(data.get("description", "")),
        stage_width=_number(data, "stage_width", where, TemplateError, 0.0, 1.0),
        player_width=_number(data, "player_width", where, TemplateError, 0.0, 1.0),
        reverb_send_db=_number(data, "reverb_send_db", where, TemplateError, -60.0, 0.0),
        room=Room(name=str(room.get("name", name)),
                  rt60_s=_number(room, "rt60_s", rwhere, TemplateError, 0.1, 8.0),
                  predelay_ms=_number(room, "predelay_ms", rwhere, TemplateError, 0.0, 200.0),
                  width=_number(room, "width", rwhere, TemplateError, 0.0, 1.0)))


@functools.lru_cache(maxsize=None)
def load_preset(name: str) -> Preset:
    data, where = _read("presets", name, PresetError)
    return Preset(
        name=name, description=str(data.get("description", "")),
        target_lufs=_number(data, "target_lufs", where, PresetError, -40.0, -5.0),
        ceiling_dbtp=_number(data, "ceiling_dbtp", where, PresetError, -12.0, 0.0),
        sample_rate=int(_choice(data, "sample_rate", where, PresetError, (44100, 48000, 88200, 96000))),
        bit_depth=int(_choice(data, "bit_depth", where, PresetError, BIT_DEPTHS)),
        format=str(_choice(data, "format", where, PresetError, AUDIO_FORMATS)))
