"""An excerpt: some bars of a performance, as they are played in the whole.

``--bars 12-24`` takes the played bars from bar 12 (its first pass, or the pass asked for) to the
next bar 24, repeats and jumps between them included as played. The notes are the whole
performance's notes that start in those bars, at the same times relative to the excerpt's start;
a note held into the excerpt from before (a tie, a held chord) sounds from its start, and a note
held past its end stops there. Every controller keeps the value it has at the excerpt's start
(the instrument, the expression, a pedal held down, the pitch wheel), as a DAW chases them, and
the tempo is the one in force.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pipeline.errors import ScoreError
from pipeline.model import Control, Note, Performance, TempoMap, Track


@dataclass(frozen=True)
class Bars:
    """Which bars to play: from bar ``first`` to bar ``last`` (as printed), starting on the
    ``pass_number``-th time bar ``first`` is played; ``loop``: made to repeat seamlessly."""

    first: str
    last: str
    pass_number: int = 1
    loop: bool = False

    @property
    def label(self) -> str:
        """'bars 12-24', 'bars 12-24, pass 2'."""
        span = f"bar {self.first}" if self.first == self.last else f"bars {self.first}-{self.last}"
        return span + (f", pass {self.pass_number}" if self.pass_number > 1 else "")


def parse_bars(text: str, *, pass_number: int = 1, loop: bool = False) -> Bars:
    """``'12-24'`` or ``'12'`` as :class:`Bars` (a one-line error otherwise)."""
    m = re.fullmatch(r"\s*([0-9]+[a-zA-Z]?)\s*(?:[-–]\s*([0-9]+[a-zA-Z]?)\s*)?", text)
    if not m:
        raise ScoreError(f"--bars {text!r}: give the first and last bar as printed, e.g. 12-24")
    if pass_number < 1:
        raise ScoreError(f"--pass {pass_number}: passes are counted from 1")
    return Bars(m.group(1), m.group(2) or m.group(1), pass_number, loop)


def _played_span(performance: Performance, bars: Bars) -> tuple[int, int]:
    """The first and last index in ``performance.bars`` of the excerpt ``bars``."""
    played = performance.bars
    where = _where(performance)
    starts = [i for i, b in enumerate(played) if b.number == bars.first]
    if not starts:
        numbers = [b.number for b in played]
        raise ScoreError(f"{where}: there is no bar {bars.first} (its bars are numbered "
                         f"{numbers[0]} to {numbers[-1]})" if numbers else
                         f"{where}: the score has no bars")
    if bars.pass_number > len(starts):
        times = "once" if len(starts) == 1 else f"{len(starts)} times"
        raise ScoreError(f"{where}: bar {bars.first} is played {times}, so it has no pass "
                         f"{bars.pass_number}")
    first = starts[bars.pass_number - 1]
    last = next((i for i in range(first, len(played)) if played[i].number == bars.last), None)
    if last is None:
        raise ScoreError(f"{where}: bar {bars.last} is not played after bar {bars.first}"
                         + (f" (pass {bars.pass_number})" if bars.pass_number > 1 else ""))
    return first, last


def excerpt(performance: Performance, bars: Bars) -> tuple[Performance, int]:
    """The bars ``bars`` of ``performance``, starting at tick 0, and the tick of the whole
    performance they start at."""
    first, last = _played_span(performance, bars)
    start, end = performance.bars[first].start_tick, performance.bars[last].end_tick
    # every player stays, resting or not: the ensemble and its seating are the whole piece's
    tracks = tuple(_track(t, start, end) for t in performance.tracks)
    if not any(t.notes for t in tracks):
        raise ScoreError(f"{_where(performance)}: nothing is played in {bars.label}")
    part = replace(performance, title=f"{performance.title} ({bars.label})", tracks=tracks,
                   tempo_map=_tempo(performance.tempo_map, start, end),
                   bars=tuple(replace(b, start_tick=b.start_tick - start,
                                      end_tick=b.end_tick - start)
                              for b in performance.bars[first:last + 1]))
    return part, start


def _where(performance: Performance) -> str:
    return performance.source.name if performance.source else "the score"


def _track(track: Track, start: int, end: int) -> Track:
    notes = tuple(Note(max(n.on, start) - start, min(n.off, end) - start, n.pitch, n.velocity)
                  for n in track.notes if n.on < end and n.off > start)
    chased: dict[tuple, Control] = {}  # the value each controller has at the start
    inside = []
    for c in track.controls:
        if c.tick <= start:
            chased[(c.kind, c.number if c.kind == "control_change" else 0)] = c
        elif c.tick < end:
            inside.append(replace(c, tick=c.tick - start))
    return replace(track, notes=notes, controls=tuple(
        [replace(c, tick=0) for c in chased.values()] + inside))


def _tempo(tempo: TempoMap, start: int, end: int) -> TempoMap:
    at_start = [us for t, us in tempo.changes if t <= start][-1]
    return replace(tempo, changes=((0, at_start), *((t - start, us) for t, us in tempo.changes
                                                      if start < t < end)))
