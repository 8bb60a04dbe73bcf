"""Phrase shaping read ahead from the score (``data/phrasing.toml``), as NotePerformer and
players do: a slurred phrase rises towards its peak note and relaxes after it, a long note held
alone swells slightly towards its middle (its family's amount; :func:`pipeline.score.expression
.shape` draws it), and a piece's long last note dies away gently unless a dynamic or hairpin on
it says otherwise. (A slur's last note
is already played shorter than the notes it joins: see :mod:`pipeline.score.ornaments`.)"""
from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.settings.validation import number, package_toml

WHERE = "data/phrasing.toml"


@dataclass(frozen=True)
class Phrasing:
    rise_velocity: float
    min_slur_notes: int
    final_min_quarters: float
    final_fall_levels: int
    final_from_fraction: float
    swell_min_quarters: float
    swell_db: dict  # family → the most a long held note swells (dB)


@functools.lru_cache(maxsize=1)
def load_phrasing() -> Phrasing:
    """Read and check ``data/phrasing.toml``."""
    data = package_toml(WHERE)
    slur, final, swell = data.get("slur", {}), data.get("final_note", {}), data.get("swell", {})
    return Phrasing(
        rise_velocity=number(slur, "rise_velocity", f"{WHERE} [slur]", PipelineError, 0.0, 20.0),
        min_slur_notes=int(number(slur, "min_notes", f"{WHERE} [slur]", PipelineError, 2, 50)),
        final_min_quarters=number(final, "min_quarters", f"{WHERE} [final_note]",
                                  PipelineError, 0.0, 64.0),
        final_fall_levels=int(number(final, "fall_levels", f"{WHERE} [final_note]",
                                     PipelineError, 0, 4)),
        final_from_fraction=number(final, "from_fraction", f"{WHERE} [final_note]",
                                   PipelineError, 0.0, 0.95),
        swell_min_quarters=number(swell, "min_quarters", f"{WHERE} [swell]", PipelineError,
                                  0.5, 64.0),
        swell_db={family: number(swell, family, f"{WHERE} [swell]", PipelineError, 0.0, 3.0)
                  for family in swell if family != "min_quarters" and _family(family)})


def _family(name: str) -> bool:
    from pipeline.settings.instruments import FAMILIES

    if name not in FAMILIES:
        raise PipelineError(f"{WHERE} [swell]: '{name}' is not a family (one of: "
                            f"{', '.join(FAMILIES)})")
    return True


def swell_db(name: str, instrument: str | None, program: int | None) -> float:
    """How much a long held note of this part swells (dB), by its family."""
    from pipeline.settings import instruments

    info = instruments.lookup_first(name, instrument)
    family = info.family if info is not None else \
        instruments.family_of_program(program) if program is not None else None
    return float(load_phrasing().swell_db.get(family, 0.0))


def slur_rises(staff, flat, table: Phrasing | None = None) -> dict[int, float]:
    """Velocity to add to each note (by id) of the staff's slurs: ``rise_velocity`` on a slur's
    peak note (its highest pitch; the longest of equally high ones; the first of equals), in
    proportion to the distance from the slur's ends before and after it, none at the ends
    (unless the peak is one). A note under several slurs takes the most."""
    from music21 import spanner

    table = table or load_phrasing()
    slurs = list(staff.spannerBundle.getByClass(spanner.Slur))
    if not slurs or table.rise_velocity <= 0:
        return {}
    notes = list(flat.notes)
    offsets = [float(n.offset) for n in notes]
    offset_of = {id(n): off for n, off in zip(notes, offsets)}
    rises: dict[int, float] = {}
    for slur in slurs:
        els = slur.getSpannedElements()
        if not els:
            continue
        start, end = offset_of.get(id(els[0])), offset_of.get(id(els[-1]))
        if start is None or end is None:
            continue
        lo, hi = bisect.bisect_left(offsets, start), bisect.bisect_right(offsets, end)
        phrase = [n for n in notes[lo:hi] if not n.duration.isGrace]
        if len(phrase) < table.min_slur_notes:
            continue
        peak = max(range(len(phrase)), key=lambda i: (_highest(phrase[i]),
                                                      float(phrase[i].quarterLength), -i))
        for i, n in enumerate(phrase):
            if i <= peak:
                share = i / peak if peak else 1.0
            else:
                share = (len(phrase) - 1 - i) / (len(phrase) - 1 - peak)
            rises[id(n)] = max(rises.get(id(n), 0.0), table.rise_velocity * share)
    return rises


def _highest(el) -> float:
    pitches = getattr(el, "pitches", ())
    return max((p.ps for p in pitches), default=0.0)
