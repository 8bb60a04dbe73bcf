"""The instrument map (``data/instruments.toml``): what a part name means."""
from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from pipeline.errors import PipelineError

FAMILIES = ("strings", "woodwinds", "saxes", "brass", "keyboards", "plucked", "percussion", "voices")
#: GM program ranges → family, for programs the map does not name.
GM_FAMILIES = ((0, 8, "keyboards"), (8, 16, "percussion"), (16, 24, "keyboards"),
               (24, 40, "plucked"), (40, 48, "strings"), (48, 52, "strings"), (52, 56, "voices"),
               (56, 64, "brass"), (64, 68, "saxes"), (68, 80, "woodwinds"), (80, 104, "keyboards"),
               (104, 112, "plucked"), (112, 128, "percussion"))
#: Names that mean a singer when the other parts are singers (SATB), an instrument otherwise.
VOICE_RANGES = {"soprano": "Soprano", "alto": "Alto", "contralto": "Alto", "tenor": "Tenor",
                "bass": "Bass Voice", "baritone": "Baritone", "mezzo": "Mezzo-soprano"}


@dataclass(frozen=True)
class InstrumentInfo:
    name: str
    program: int
    family: str
    lowest: int
    percussion: bool = False


@functools.lru_cache(maxsize=1)
def instrument_map() -> tuple[tuple[str, InstrumentInfo], ...]:
    """``(phrase, info)`` pairs, longest phrase first."""
    source = resources.files("pipeline").joinpath("data/instruments.toml")
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    pairs = []
    for i, entry in enumerate(data.get("instrument", [])):
        where = f"data/instruments.toml: instrument #{i + 1}"
        try:
            info = InstrumentInfo(str(entry["name"]), int(entry["program"]), str(entry["family"]),
                                  int(entry.get("lowest", 0)), bool(entry.get("percussion", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineError(f"{where}: missing or invalid key ({exc})") from exc
        if info.family not in FAMILIES:
            raise PipelineError(f"{where}: family '{info.family}' is not one of {', '.join(FAMILIES)}")
        if not 0 <= info.program <= 127:
            raise PipelineError(f"{where}: program must be 0–127")
        pairs.extend((str(phrase).lower(), info) for phrase in entry["match"])
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def _normalise(name: str) -> str:
    name = name.lower().replace("♭", "b").replace("♯", "#")
    return " " + re.sub(r"\s+", " ", re.sub(r"[_/(),:;]+", " ", name)).strip() + " "


def lookup(name: str) -> InstrumentInfo | None:
    """The instrument a part or instrument name stands for, or ``None``."""
    found = _match(_normalise(name))
    return found[1] if found else None


def lookup_first(*names: str | None) -> InstrumentInfo | None:
    """The instrument the first of ``names`` that the map knows stands for (a part's name, then
    its instrument's name), or ``None``."""
    return next((info for name in names if name and (info := lookup(name)) is not None), None)


def _match(text: str) -> tuple[str, InstrumentInfo] | None:
    """The longest phrase of the map in a normalised name, with its instrument."""
    for phrase, info in instrument_map():
        if re.search(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])", text):
            return phrase, info
    return None


def by_name(canonical: str) -> InstrumentInfo | None:
    return next((info for _, info in instrument_map() if info.name == canonical), None)


def voice_for(name: str) -> InstrumentInfo | None:
    """The singer a choir part name (Soprano, Alto, Tenor, Bass…) stands for."""
    text = _normalise(name)
    found = _match(text)
    for word, canonical in VOICE_RANGES.items():
        if re.search(r"(?<![a-z])" + word, text):
            # "Alto Sax", "Bass Clarinet", "Tenor Horn": an instrument named longer than the word
            if found and found[1].family != "voices" and len(found[0]) > len(word):
                return None
            return by_name(canonical)
    return None


def family_of_program(program: int) -> str:
    return next(f for lo, hi, f in GM_FAMILIES if lo <= program < hi)
