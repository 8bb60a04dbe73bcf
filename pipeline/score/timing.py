"""Time as a player reads it: the shared tempo map, holds and pauses, breaths and swing.

Everything that stretches or squeezes time for the whole ensemble lives in the one
:class:`~pipeline.model.TempoMap`, so every part stretches together and a repeat plays it again:

- **Tempo marks**: metronome marks and ``<sound tempo>`` (music21 reads both) take effect at
  their offset, also in the middle of a bar. Tempo words without a number (Largo … Presto) use
  :data:`TEMPO_WORDS`; a score with no mark at all plays at 120 quarter notes a minute, and so
  do the bars before a first mark that stands after the first bar.
- **Gradual changes**: rit./rall. slow down to :data:`RIT_FACTOR` of the tempo, accel. speeds up to
  :data:`ACCEL_FACTOR` (``poco``/``molto`` make it less/more, :data:`DEGREE`), in steps of
  :data:`RAMP_STEP_QUARTERS`. The change runs over its dashed line, else up to the next tempo
  mark but at most to the end of the bar after the mark; the tempo reached holds until
  "a tempo" (back to the last marked tempo), "Tempo I" (the first one) or a new mark.
- **Fermata**: the tempo drops by :data:`FERMATA_FACTOR` over the held note or rest, so every part
  waits; where fermatas of several parts overlap, the time they share is held. ``timing(...,
  fermata_hold=)`` sets the factor (1.0: not held, as MuseScore 3 plays a MusicXML fermata).
- **Caesura**: :data:`CAESURA_QUARTERS` of silence at the end of its note in every part (the last
  :data:`PAUSE_WINDOW_QUARTERS` of the note are slowed down, and notes ending there are cut).

Per part, outside the tempo map:

- **Breath mark**: the note carrying it ends :data:`BREATH_QUARTERS` early (at most a third of it);
  ``perform`` cuts it where it plays the note, so only the staff with the mark breathes.
- **Swing**: off-beat eighths move to ``ratio / (ratio + 1)`` of the beat (2:1 → 2/3) and the
  notes around them stretch with them; a beat with a tuplet or a shorter value is played
  straight. Swing comes from MusicXML ``<sound><swing>`` (``<straight/>`` ends it), from the words
  "Swing"/"Straight", or from ``perform(swing=...)`` where the score says nothing.
"""
from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.score import form

from pipeline.score import musicxml
from pipeline.model import DEFAULT_TEMPO_BPM, TICKS_PER_QUARTER, Note, TempoMap, Track

log = logging.getLogger(__name__)

#: Tempo words without a number → quarter notes per minute (the longest matching phrase wins).
TEMPO_WORDS = {
    "larghissimo": 24, "grave": 40, "largo": 50, "lento": 52, "larghetto": 60, "adagio": 66,
    "adagietto": 72, "andante": 80, "andantino": 88, "maestoso": 88, "moderato": 108,
    "allegretto": 112, "allegro moderato": 120, "allegro": 132, "allegro assai": 144,
    "molto allegro": 144, "allegro vivace": 144, "vivace": 152, "vivacissimo": 168,
    "presto": 176, "prestissimo": 200,
    "slow": 60, "moderately": 108, "moderate": 108, "medium": 120, "fast": 144,
    "langsam": 56, "mässig": 100, "mäßig": 100, "schnell": 144,
    "lent": 52, "modéré": 108, "vif": 152, "très vite": 176,
}
RIT_FACTOR = 0.75       # a ritardando ends at 3/4 of the tempo it started from
ACCEL_FACTOR = 1.25
DEGREE = {"poco": 0.5, "molto": 1.6}  # scales the change: poco rit. → 0.875, molto rit. → 0.6
RAMP_STEP_QUARTERS = 0.25  # a gradual change moves in 16th-note steps
FERMATA_FACTOR = 2.0    # a note or rest under a fermata lasts twice as long
CAESURA_QUARTERS = 1.0  # a caesura is one beat (quarter note) of silence in all parts
PAUSE_WINDOW_QUARTERS = 0.125
BREATH_QUARTERS = 0.25
SWING_RATIO = 2.0       # "Swing" without a ratio: 2:1, the off-beat eighth at 2/3 of the beat
#: Quarter-note tempos outside this range (0, negative, absurd) are ignored with a warning and
#: the tempo before them continues: one broken mark should not stop or garble the piece.
MIN_BPM, MAX_BPM = 10.0, 1000.0

_RIT = re.compile(r"\b(rit|ritard|ritardando|riten|ritenuto|rall|rallentando|allargando|"
                  r"slentando)\b")
_ACCEL = re.compile(r"\b(accel|accelerando|string|stringendo|stretto|affrettando)\b")
_A_TEMPO = re.compile(r"\b(a ?tempo|in tempo)\b")
_TEMPO_I = re.compile(r"\btempo (i|1|primo)\b")
_WORDS = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(TEMPO_WORDS, key=len,
                                                                    reverse=True)) + r")\b")


@dataclass(frozen=True)
class Timing:
    """What the score says about time: the tempo map and pauses in played ticks, swing by
    written offset (quarter notes from the start)."""

    tempo_map: TempoMap
    #: tick windows ``(start, end)`` of caesura pauses, in played time
    pauses: tuple[tuple[int, int], ...] = ()
    #: ``(written offset, ratio or None)`` swing in force from that offset on
    swing: tuple[tuple[float, float | None], ...] = ()


def classify(text: str) -> tuple[str, float | None] | None:
    """What tempo words mean: ``("set", bpm)``, ``("ramp", factor)``, ``("a tempo", None)``,
    ``("tempo i", None)``, or None when they say nothing about tempo."""
    words = " ".join(re.sub(r"[.,;:!()\s]+", " ", text.lower()).split())
    if not words:
        return None
    if _TEMPO_I.search(words):
        return "tempo i", None
    if _A_TEMPO.search(words):
        return "a tempo", None
    for pattern, factor in ((_RIT, RIT_FACTOR), (_ACCEL, ACCEL_FACTOR)):
        if pattern.search(words):
            degree = next((d for w, d in DEGREE.items() if re.search(rf"\b{w}\b", words)), 1.0)
            return "ramp", 1.0 + (factor - 1.0) * degree
    m = _WORDS.search(words)
    if m:
        return "set", float(TEMPO_WORDS[m.group(1)])
    return None


def _mark_bpm(mark, source=None) -> float | None:
    """A metronome mark's quarter-note BPM; a mark with only words uses :data:`TEMPO_WORDS`;
    None for a number outside :data:`MIN_BPM`–:data:`MAX_BPM` (with a warning)."""
    text = str(getattr(mark, "text", None) or "")
    # music21 invents a number for a word-only mark from its own table; ours is documented.
    # ``numberSounding`` is a ``<sound tempo>`` without a printed number
    written = getattr(mark, "number", None) is not None and not getattr(mark, "numberImplicit", False)
    if not written and getattr(mark, "numberSounding", None) is None:
        found = classify(text) if text else None
        return found[1] if found and found[0] == "set" else None
    try:
        bpm = float(mark.getQuarterBPM())
    except Exception:  # music21 fails on some impossible marks (a zero referent)
        bpm = float("nan")
    if MIN_BPM <= bpm <= MAX_BPM:
        return bpm
    shown = bpm if np.isfinite(bpm) else mark.number if written else mark.numberSounding
    log.warning("%s: a tempo of %s BPM in bar %s is ignored (allowed: %g to %g); the tempo "
                "before it continues", source or "score", f"{float(shown):g}",
                getattr(mark, "measureNumber", "?"), MIN_BPM, MAX_BPM)
    return None


# ---------------------------------------------------------------------------------------------
# reading the score

def _events(score, source=None):
    """``(offset, kind, value, end)`` tempo events of all parts, deduplicated, in written order,
    plus the fermata intervals and the caesura offsets."""
    from music21 import articulations, expressions, note, spanner, tempo

    events: dict[tuple[float, str], tuple] = {}
    holds: list[tuple[float, float]] = []
    caesuras: set[float] = set()
    for part in score.parts:
        flat = part.flatten()
        lines = []
        for line in part.spannerBundle.getByClass(spanner.Line):
            els = line.getSpannedElements()
            if els:
                try:
                    lines.append((float(els[0].getOffsetInHierarchy(part)),
                                  float(els[-1].getOffsetInHierarchy(part))
                                  + float(els[-1].quarterLength)))
                except Exception:
                    continue
        for el in flat.getElementsByClass((tempo.TempoIndication, expressions.TextExpression)):
            off = round(float(el.offset), 6)
            if isinstance(el, tempo.MetronomeMark):
                bpm = _mark_bpm(el, source)
                found = ("set", bpm) if bpm else classify(str(el.text or ""))
            elif isinstance(el, tempo.TempoIndication):
                found = classify(str(getattr(el, "text", "") or ""))
            else:
                found = classify(str(el.content or ""))
            if not found:
                continue
            kind, value = found
            end = None
            if kind == "ramp":
                # a dashed line that starts with the words: the change lasts as long as it
                end = next((e for s, e in lines if abs(s - off) <= 1.0 and e > off), None)
            key = (off, "ramp" if kind == "ramp" else "tempo")
            if key not in events or (kind == "set" and isinstance(el, tempo.MetronomeMark)):
                events[key] = (off, kind, value, end)
        # the plain tuple: music21's filtered iterators are slow here; but it sets no
        # activeSite, so ``el.offset`` would be wherever the note was last looked at (a
        # measure, after the perform stage read it): the offset in ``flat`` is asked for
        for el in flat.elements:
            if not isinstance(el, note.GeneralNote):
                continue
            if el.expressions and any(isinstance(x, expressions.Fermata) for x in el.expressions):
                ql = float(el.quarterLength)
                if ql > 0:
                    start = float(flat.elementOffset(el))
                    holds.append((start, start + ql))
            if getattr(el, "articulations", None) and any(
                    isinstance(a, articulations.Caesura) for a in el.articulations):
                caesuras.add(round(float(flat.elementOffset(el)) + float(el.quarterLength), 6))
    # the playback tempo a file states (<sound tempo>, quarter notes a minute) wins over a
    # printed mark or words at the same place: music21 drops it beside a <metronome>
    for off, bpm in _sound_tempos(score, source, read={e[2] for e in events.values()
                                                       if e[1] == "set" and e[2]}):
        events[(off, "tempo")] = (off, "set", bpm, None)
    return sorted(events.values(), key=lambda e: (e[0], e[1] != "set")), holds, sorted(caesuras)


def _sound_tempos(score, source, read: set[float] = frozenset()) -> list[tuple[float, float]]:
    """``(written offset, quarter-note BPM)`` of every ``<sound tempo>`` in the MusicXML file
    ``source`` (all parts: the tempo is the ensemble's), in range (:data:`MIN_BPM` to
    :data:`MAX_BPM`; others are left to the marks, which warn). None are looked for when music21
    has read every one already (``read``: the tempos it has): the file is then not parsed."""
    written = musicxml.matches(source, rb"<sound\b[^>]*\btempo\s*=\s*[\"']([^\"']*)[\"']")
    try:
        if all(any(abs(float(value) - bpm) < 1e-6 for bpm in read) for value, in written):
            return []
    except ValueError:
        pass  # an unreadable value: the walk below skips it
    starts = [float(m.offset) for m in score.parts[0].getElementsByClass("Measure")]
    parts = musicxml.sound_values(source, "tempo", bars=len(starts))
    if not parts:
        return []
    found: dict[float, float] = {}  # the first part's, where parts disagree
    for part in parts:
        own: dict[float, float] = {}  # the last of a part's at one moment: it follows the rest
        for k, quarters, bpm in part:
            if MIN_BPM <= bpm <= MAX_BPM:
                own[round(starts[k] + quarters, 6)] = bpm
        for off, bpm in own.items():
            found.setdefault(off, bpm)
    return sorted(found.items())


def _shared_holds(holds: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping fermatas of several parts hold the time they share (a bass's whole note and
    the melody's last quarter under fermatas: the last quarter is held, not the whole bar)."""
    out: list[list[float]] = []
    for s, e in sorted(holds):
        if out and s < out[-1][1] - 1e-9:
            out[-1] = [max(out[-1][0], s), min(out[-1][1], e)]
        else:
            out.append([s, e])
    return [(s, e) for s, e in out if e > s + 1e-9]


def _written_curve(events, tl: form.Timeline, holds, caesuras, fermata_hold=FERMATA_FACTOR):
    """The tempo at every written offset as breakpoints ``(offsets, bpm)``, piecewise constant."""
    total = tl.total if tl.starts else float("inf")
    starts = list(tl.starts)
    points: list[tuple[float, float]] = []  # (offset, bpm) base tempo steps
    first_mark = next(((off, v) for off, k, v, _ in events if k == "set"), None)
    first = first_mark[1] if first_mark else DEFAULT_TEMPO_BPM  # what "Tempo I" returns to
    # the first mark holds from the start when it stands in the first bar (or on the next
    # downbeat); one further in leaves the bars before it at 120 (Handel's "Lascia ch'io
    # pianga": an "Andante" in bar 11 of the recitative is not the recitative's tempo)
    bar_two = starts[1] if len(starts) > 1 else total
    opening = first if first_mark is None or first_mark[0] <= bar_two + 1e-9 else DEFAULT_TEMPO_BPM
    current = reference = opening
    points.append((0.0, opening))
    for n, (off, kind, value, end) in enumerate(events):
        if kind == "set":
            current = reference = value
        elif kind == "a tempo":
            current = reference
        elif kind == "tempo i":
            current = reference = first
        elif kind == "ramp":
            nxt = next((e[0] for e in events[n + 1:] if e[1] != "ramp" and e[0] > off), total)
            if end is None:
                k = bisect.bisect_right(starts, off + 1e-9) - 1
                bar_after = starts[k + 2] if 0 <= k and k + 2 < len(starts) else total
                end = min(nxt, bar_after)
            end = min(end, nxt)
            if end <= off or end == float("inf"):
                continue
            steps = max(1, int(np.ceil((end - off) / RAMP_STEP_QUARTERS - 1e-9)))
            target = current * value
            grid = off + np.arange(steps) * (end - off) / steps
            bpms = current + (target - current) * (np.arange(steps) + 1) / steps
            points.extend(zip(grid.tolist(), bpms.tolist()))
            current = target
            continue
        points.append((off, current))
    # multipliers: fermata holds and caesura pauses
    factors: list[tuple[float, float, float]] = [(s, e, 1.0 / fermata_hold)
                                                  for s, e in _shared_holds(holds)
                                                  if fermata_hold != 1.0]
    for t in caesuras:
        w = PAUSE_WINDOW_QUARTERS
        factors.append((t - w, t, w / (w + CAESURA_QUARTERS)))
    offsets = np.array(sorted({round(p, 6) for p, _ in points}
                              | {round(x, 6) for s, e, _ in factors for x in (s, e)}))
    offsets = offsets[offsets >= 0]
    # the last base point at or before each offset (ties: the later entry wins)
    order = np.argsort([p for p, _ in points], kind="stable")
    base_off = np.array([points[i][0] for i in order])
    base_bpm = np.array([points[i][1] for i in order])
    i = np.searchsorted(base_off, offsets + 1e-9, side="right") - 1
    bpm = np.where(i >= 0, base_bpm[np.clip(i, 0, None)], opening)
    for s, e, f in factors:
        bpm[(offsets >= s - 1e-9) & (offsets < e - 1e-9)] *= f
    return offsets, bpm, [(t - PAUSE_WINDOW_QUARTERS, t) for t in caesuras]


def timing(score, tl: form.Timeline, *, source: str | Path | None = None,
           swing: float | None = None, fermata_hold: float = FERMATA_FACTOR) -> Timing:
    """The shared tempo map of ``score`` in played time, with caesura pauses and swing.

    Parameters
    ----------
    tl
        The play order (:func:`pipeline.score.form.timeline`): every written tempo event is played
        at each of its played offsets, so a fermata or rit. returns with its repeat.
    source
        The MusicXML file the score was read from, for ``<sound><swing>`` (which music21
        does not read).
    swing
        The swing ratio where the score says nothing (e.g. 2.0 for a jazz band); None: straight.
    fermata_hold
        How many times its written length a note or rest under a fermata lasts (default
        :data:`FERMATA_FACTOR`; 1.0: not held).
    """
    if not fermata_hold > 0:
        raise ValueError(f"fermata_hold must be positive, not {fermata_hold}")
    events, holds, caesuras = _events(score, source)
    offsets, bpm, windows = _written_curve(events, tl, holds, caesuras, fermata_hold)
    us = np.round(60_000_000 / bpm).astype(np.int64)
    segments = tl.segments or ((0.0, 0.0, float("inf")),)
    changes: list[tuple[int, int]] = []
    pauses: list[tuple[int, int]] = []
    for written, played, length in segments:
        lo = max(0, int(np.searchsorted(offsets, written + 1e-9, side="right")) - 1)
        hi = int(np.searchsorted(offsets, written + length - 1e-9, side="left"))
        for j in range(lo, max(hi, lo + 1)):
            tick = round((played + max(float(offsets[j]), written) - written) * TICKS_PER_QUARTER)
            u = int(us[j])
            if changes and changes[-1][0] == tick:
                changes[-1] = (tick, u)
                if len(changes) > 1 and changes[-2][1] == u:
                    changes.pop()
            elif not changes or changes[-1][1] != u:
                changes.append((tick, u))
        for s, e in windows:
            if written - 1e-9 <= s and e <= written + length + 1e-9:
                pauses.append((round((played + s - written) * TICKS_PER_QUARTER),
                               round((played + e - written) * TICKS_PER_QUARTER)))
    if not changes or changes[0][0] != 0:
        changes.insert(0, (0, changes[0][1] if changes else round(60_000_000 / DEFAULT_TEMPO_BPM)))
    return Timing(TempoMap(TICKS_PER_QUARTER, tuple(changes)), tuple(pauses),
                  _swing_marks(score, tl, source, swing))


# ---------------------------------------------------------------------------------------------
# per-part adjustments: caesura gaps, swing

def cut_at_pauses(track: Track, pauses) -> Track:
    """Notes that end inside a caesura's pause end where it begins, so the pause is silent."""
    if not pauses or not track.notes:
        return track
    starts = np.array([s for s, _ in pauses])
    ends = np.array([e for _, e in pauses])
    notes = []
    changed = False
    for n in track.notes:
        i = int(np.searchsorted(starts, n.off, side="left")) - 1
        if i >= 0 and starts[i] < n.off <= ends[i] and n.on < starts[i]:
            n = Note(n.on, int(starts[i]), n.pitch, n.velocity)
            changed = True
        notes.append(n)
    return replace(track, notes=tuple(notes)) if changed else track


def _swing_marks(score, tl: form.Timeline, source, default: float | None):
    """``(written offset, ratio or None)`` from ``<sound><swing>`` and "Swing"/"Straight" words."""
    from music21 import expressions

    marks: dict[float, float | None] = {}
    for part in score.parts[:1] if score.parts else ():
        for el in part.flatten().getElementsByClass(expressions.TextExpression):
            words = str(el.content or "").lower()
            if re.search(r"\bswing\b", words) and not re.search(r"\bno swing\b", words):
                marks[float(el.offset)] = SWING_RATIO
            elif re.search(r"\b(straight|even)( 8ths| eighths)?\b|\bno swing\b", words):
                marks[float(el.offset)] = None
    for k, ratio in _xml_swing(source):
        if k < len(tl.starts):
            marks[float(tl.starts[k])] = ratio
    out = [(0.0, default)] if default and default > 0 and 0.0 not in marks else []
    return tuple(out + sorted(marks.items()))


def _xml_swing(source) -> list[tuple[int, float | None]]:
    """``(measure index, ratio or None)`` of ``<sound><swing>`` in the first part."""
    parts = musicxml.part_measures(source, rb"<swing\b", "<swing>")
    if not parts:
        return []
    out = []
    for k, m in enumerate(parts[0]):
        for sw in m.iter("swing"):
            if sw.find("straight") is not None:
                out.append((k, None))
                continue
            kind = (sw.findtext("swing-type") or "eighth").strip()
            try:
                ratio = float(sw.findtext("first") or 2) / float(sw.findtext("second") or 1)
            except ValueError:
                ratio = SWING_RATIO
            if kind != "eighth":
                log.warning("%s: measure %d: swing of %s notes is played straight (only eighths "
                            "are swung)", source, k + 1, kind)
                ratio = None
            out.append((k, ratio if ratio and ratio > 0 else None))
    return out


def adjust(track: Track, staves, tl: form.Timeline, timed: Timing) -> Track:
    """One instrument's notes after caesura pauses and swing."""
    track = cut_at_pauses(track, timed.pauses)
    return swing(track, staves, tl, timed.swing)


def swing(track: Track, staves, tl: form.Timeline, marks) -> Track:
    """Swing the eighths of one instrument: in every beat that holds only notes on the beat and
    on its off-beat eighth (no tuplet), times in the beat are moved piecewise-linearly so the
    off-beat lands at ``ratio / (ratio + 1)``; note ends move with the same map."""
    if not marks or all(r is None for _, r in marks) or not track.notes:
        return track
    m_off = [o for o, _ in marks]
    beats: dict[int, float | None] = {}  # played beat start tick → ratio (None: straight)
    q = TICKS_PER_QUARTER
    for staff in staves:
        for el in staff.flatten().notes:
            if el.duration.isGrace:
                continue
            w = float(el.offset)
            i = bisect.bisect_right(m_off, w + 1e-9) - 1
            ratio = marks[i][1] if i >= 0 else None
            k = tl.bar(w)
            bar = tl.starts[k] if tl.starts else 0.0
            x = (w - bar) % 1.0
            ok = ratio is not None and not el.duration.tuplets and (
                abs(x) < 1e-6 or abs(x - 0.5) < 1e-6)
            for p in tl.map(w):
                beat = round((p - x) * q)
                if not ok:
                    beats[beat] = None
                elif beat not in beats:
                    beats[beat] = ratio
    swung = sorted((b, r) for b, r in beats.items() if r is not None)
    if not swung:
        return track
    starts = np.array([b for b, _ in swung], dtype=np.float64)
    split = np.array([r / (r + 1.0) for _, r in swung]) * q  # where the off-beat goes

    def warp(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(starts, t, side="right") - 1
        ok = (i >= 0)
        ii = np.clip(i, 0, None)
        x = t - starts[ii]
        ok &= x < q
        s = split[ii]
        moved = np.where(x <= q / 2, x * s / (q / 2), s + (x - q / 2) * (q - s) / (q / 2))
        return np.where(ok, starts[ii] + moved, t)

    on = np.array([n.on for n in track.notes], dtype=np.float64)
    off = np.array([n.off for n in track.notes], dtype=np.float64)
    new_on = np.round(warp(on)).astype(np.int64)
    new_off = np.maximum(np.round(warp(off)).astype(np.int64), new_on + 1)
    notes = tuple(Note(int(a), int(b), n.pitch, n.velocity)
                  for a, b, n in zip(new_on, new_off, track.notes))
    return replace(track, notes=notes)
