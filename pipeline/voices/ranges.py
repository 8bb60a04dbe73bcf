"""The range check: every note of a part against its instrument's professional and practical
range (``data/ranges.toml``), once the assign stage knows the instrument. It changes nothing
that is played; the summary and the report say where a part goes beyond what its players can
play, naming the notes as their part shows them (transposed) and the bars they are in."""
from __future__ import annotations

import numpy as np

from pipeline.model import OutOfRange, Performance, Track, Voice
from pipeline.settings.ranges import Range, note_name, ranges

MAX_BARS = 20  # bars kept per finding (the summary names the first few)


def check_ranges(performance: Performance,
                 voices: tuple[Voice, ...]) -> tuple[tuple[OutOfRange, ...], ...]:
    """Per track, its notes beyond its instrument's range (none for an instrument the table
    does not know, or unpitched percussion): at most one finding per side and kind, those
    beyond the professional range first."""
    table = ranges()
    return tuple(_check(performance, track, table[voice.instrument])
                 if voice.instrument in table and not track.is_percussion and track.notes
                 else () for track, voice in zip(performance.tracks, voices))


def _check(performance: Performance, track: Track, span: Range) -> tuple[OutOfRange, ...]:
    pitch = np.fromiter((n.pitch for n in track.notes), dtype=np.int64, count=len(track.notes))
    (p_lo, p_hi), (q_lo, q_hi) = span.professional, span.practical
    found = []
    for beyond, lo, hi in (("professional", p_lo, p_hi), ("practical", q_lo, q_hi)):
        for side, out in (("below", pitch < lo), ("above", pitch > hi)):
            if beyond == "practical":  # those beyond the professional range are told already
                out &= (pitch >= p_lo) & (pitch <= p_hi)
            if out.any():
                found.append(finding(performance, track, out, pitch, side, beyond,
                                     span.transposition))
    return tuple(found)


def finding(performance: Performance, track: Track, out: np.ndarray, pitch: np.ndarray,
            side: str, beyond: str, transposition: int) -> OutOfRange:
    """The finding for the notes where ``out`` is set."""
    at = np.flatnonzero(out)
    ticks = np.fromiter((track.notes[i].on for i in at.tolist()), dtype=np.int64, count=at.size)
    keys = sorted(set(pitch[at].tolist()), reverse=side == "above")
    bars = list(dict.fromkeys(performance.bar_numbers(np.sort(ticks))))[:MAX_BARS]
    return OutOfRange(side=side, beyond=beyond, notes=int(at.size),
                      written=tuple(note_name(k + transposition) for k in keys),
                      bars=tuple(bars))
