"""The instrument ranges (``data/ranges.toml``): each instrument's professional and practical
range in sounding pitch, and how its part is written (its transposition), validated on load."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.settings import instruments
from pipeline.settings.validation import number, package_toml

WHERE = "data/ranges.toml"
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Range:
    """One instrument's ranges, sounding MIDI notes (both ends included)."""

    instrument: str
    professional: tuple[int, int]
    practical: tuple[int, int]
    transposition: int = 0  # written = sounding + this


def note_number(value: object, where: str) -> int:
    """A MIDI note number from a number or a note name ("C4" = 60, "Bb3", "F#5", "Cb1")."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 127:
        return value
    found = re.fullmatch(r"([A-Ga-g])([#b♯♭]?)(-?\d)", str(value).strip()) \
        if isinstance(value, str) else None
    if found is None:
        raise PipelineError(f"{where}: {value!r} is not a note (a name such as 'Bb3' or a MIDI "
                            f"number 0–127)")
    letter, accidental, octave = found.groups()
    number = _STEPS[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0) \
        + (int(octave) + 1) * 12
    if not 0 <= number <= 127:
        raise PipelineError(f"{where}: {value!r} is outside the MIDI notes 0–127")
    return number


def note_name(number: int) -> str:
    """The name of a MIDI note (60 → "C4"), flats for the black keys but F# and C#."""
    return f"{_NAMES[number % 12]}{number // 12 - 1}"


@functools.lru_cache(maxsize=1)
def ranges() -> dict[str, Range]:
    """Every instrument's ranges, by its name in ``data/instruments.toml`` (unpitched
    percussion has none). Raises :class:`PipelineError` naming the file and key."""
    data = package_toml(WHERE)
    table = data.get("instrument")
    if not isinstance(table, dict):
        raise PipelineError(f'{WHERE}: missing the [instrument."<name>"] tables')
    known = {info.name: info for _, info in instruments.instrument_map()}
    out: dict[str, Range] = {}
    for name, entry in table.items():
        where = f'{WHERE}: instrument."{name}"'
        if name not in known:
            raise PipelineError(f"{where}: not an instrument of data/instruments.toml")
        if not isinstance(entry, dict):
            raise PipelineError(f"{where}: must be a table")
        unknown = set(entry) - {"professional", "practical", "transposition", "unpitched"}
        if unknown:
            raise PipelineError(f"{where}: unknown key '{sorted(unknown)[0]}' (allowed: "
                                f"professional, practical, transposition, unpitched)")
        if entry.get("unpitched") is True:
            continue
        spans = []
        for key in ("professional", "practical"):
            span = entry.get(key)
            if not isinstance(span, list) or len(span) != 2:
                raise PipelineError(f"{where}: '{key}' must be [lowest, highest]")
            lo, hi = (note_number(v, f"{where}.{key}") for v in span)
            if lo > hi:
                raise PipelineError(f"{where}: '{key}' goes down ({span[0]} above {span[1]})")
            spans.append((lo, hi))
        (p_lo, p_hi), (q_lo, q_hi) = spans
        if q_lo < p_lo or q_hi > p_hi:
            raise PipelineError(f"{where}: 'practical' must lie inside 'professional'")
        shift = entry.get("transposition", 0)
        if isinstance(shift, bool) or not isinstance(shift, int) or not -36 <= shift <= 36:
            raise PipelineError(f"{where}: 'transposition' = {shift!r} is not allowed (whole "
                                f"semitones from −36 to 36)")
        out[name] = Range(name, spans[0], spans[1], shift)
    missing = [n for n, info in known.items() if n not in table]
    if missing:
        raise PipelineError(f'{WHERE}: no entry for instrument "{missing[0]}" (every instrument '
                            f"of data/instruments.toml needs its ranges, or unpitched = true)")
    return out


@functools.lru_cache(maxsize=1)
def fallback_programs() -> dict[str, int]:
    """Each family's fallback preset (a GM program), for notes its own preset cannot play."""
    table = package_toml(WHERE).get("fallback")
    if not isinstance(table, dict):
        raise PipelineError(f"{WHERE}: missing the [fallback] table (a GM program per family)")
    out = {}
    for family in instruments.FAMILIES:
        out[family] = int(number(table, family, f"{WHERE}: [fallback]", PipelineError, 0, 127))
    unknown = set(table) - set(instruments.FAMILIES)
    if unknown:
        raise PipelineError(f"{WHERE}: [fallback]: unknown family '{sorted(unknown)[0]}' "
                            f"(allowed: {', '.join(instruments.FAMILIES)})")
    return out
