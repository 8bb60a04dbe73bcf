"""The order in which a player reads the measures: repeats, their ``times``, and endings.

The order is worked out once, on the first part's measures (all parts share the bar structure),
and becomes a :class:`Timeline` that maps any written offset (quarter notes from the start of
the part) to the offsets at which it is played. Nothing in the score is copied.

Rules, as a player reads them: a backward repeat goes back to the last forward repeat, or, when
there is none since the previous backward repeat, to the bar after it (or the start); it is taken
``times − 1`` times (2 by default). A bar under an ending bracket is played only on the passes
the bracket names; after the last ending the next section begins.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

MAX_PLAYED_MEASURES = 100_000  # guards against a repeat structure that never ends


@dataclass(frozen=True)
class _Bar:
    start: float
    length: float
    forward: bool
    backward_times: int  # 0 = no backward repeat
    endings: frozenset[int] | None


@dataclass(frozen=True)
class Timeline:
    """Written measure starts and where each measure is played (``played[i]``: new starts)."""

    starts: tuple[float, ...]
    played: tuple[tuple[float, ...], ...]
    total: float
    #: in play order: (written start, played start, length) of each measure played
    segments: tuple[tuple[float, float, float], ...] = ()

    def map(self, offset: float) -> tuple[float, ...]:
        """Every played offset of the written ``offset`` (none if its bar is never played)."""
        if not self.starts:
            return (offset,)
        i = max(0, bisect.bisect_right(self.starts, offset + 1e-9) - 1)
        return tuple(p + (offset - self.starts[i]) for p in self.played[i])

    @property
    def is_identity(self) -> bool:
        return all(len(p) == 1 and p[0] == s for p, s in zip(self.played, self.starts))


def timeline(score) -> Timeline:
    """The play order of ``score`` (a music21 Score) as a :class:`Timeline`."""
    bars = _bars(score)
    if not bars:
        return Timeline((), (), 0.0)
    order = play_order(bars)
    played: list[list[float]] = [[] for _ in bars]
    segments = []
    t = 0.0
    for i in order:
        played[i].append(t)
        segments.append((bars[i].start, t, bars[i].length))
        t += bars[i].length
    return Timeline(tuple(b.start for b in bars), tuple(tuple(p) for p in played), t,
                    tuple(segments))


def play_order(bars: list[_Bar]) -> list[int]:
    """Indexes of ``bars`` in the order they are played."""
    order: list[int] = []
    taken: dict[int, int] = {}  # backward repeat → jumps made so far
    section_start, passage = 0, 1
    i, arrived_by_jump = 0, False
    while i < len(bars) and len(order) < MAX_PLAYED_MEASURES:
        bar = bars[i]
        if bar.forward and not arrived_by_jump:
            section_start, passage = i, 1
        arrived_by_jump = False
        if bar.endings is not None and _skip_ending(bars, i, passage):
            i += 1
            continue
        order.append(i)
        if bar.backward_times:
            if taken.get(i, 0) < bar.backward_times - 1:
                taken[i] = taken.get(i, 0) + 1
                passage += 1
                i, arrived_by_jump = section_start, True
                continue
            taken[i] = 0
            section_start, passage = i + 1, 1
        elif bar.endings is not None and (i + 1 >= len(bars) or bars[i + 1].endings is None):
            section_start, passage = i + 1, 1  # the last ending is over: a new section begins
        i += 1
    return order


def _skip_ending(bars: list[_Bar], i: int, passage: int) -> bool:
    """Whether the bar ``i`` under an ending is left out on this pass: yes when another ending
    of the same run names the pass; when none does, only the highest-numbered ending plays."""
    mine = bars[i].endings or frozenset()
    if passage in mine:
        return False
    lo = i
    while lo > 0 and bars[lo - 1].endings is not None:
        lo -= 1
    hi = i
    while hi + 1 < len(bars) and bars[hi + 1].endings is not None:
        hi += 1
    run = [bars[k].endings or frozenset() for k in range(lo, hi + 1)]
    if any(passage in e for e in run):
        return True
    return max(mine, default=0) < max(max(e, default=0) for e in run)


def _bars(score) -> list[_Bar]:
    from music21 import bar as m21bar
    from music21 import spanner, stream

    if not score.parts:
        return []
    part = score.parts[0]
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        return []
    endings: dict[int, frozenset[int]] = {}
    brackets = sorted(part.spannerBundle.getByClass(spanner.RepeatBracket),
                      key=lambda b: b.getFirst().offset if b.getFirst() is not None else 0.0)
    numbers = [frozenset(int(n) for n in (b.numberRange or []) if n) for b in brackets]
    for k, bracket in enumerate(brackets):
        if not numbers[k]:  # an unnumbered bracket before "2." is the first ending
            following = numbers[k + 1] if k + 1 < len(brackets) else frozenset()
            numbers[k] = frozenset({max(1, min(following) - 1)}) if following else frozenset({1})
        for m in bracket.getSpannedElements():
            endings[id(m)] = numbers[k]
    starts = [float(m.offset) for m in measures]
    bars = []
    for k, m in enumerate(measures):
        length = (starts[k + 1] - starts[k]) if k + 1 < len(measures) else float(m.duration.quarterLength)
        left, right = m.leftBarline, m.rightBarline
        forward = isinstance(left, m21bar.Repeat) and left.direction == "start"
        times = 0
        if isinstance(right, m21bar.Repeat) and right.direction == "end":
            times = int(right.times) if right.times else 2
        bars.append(_Bar(starts[k], length, forward, max(0, times), endings.get(id(m))))
    return bars
