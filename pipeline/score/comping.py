"""Chord symbols played where the score leaves the comping to the player.

Two cases, as a rhythm section reads a chart:

- **Slash parts**: a piano, guitar or bass part (or an unnamed keyboard part) whose notes are
  slashes (``<notehead>slash</notehead>`` or bars under ``<measure-style><slash>``), or that has
  chord symbols over nothing but rests. Its chord symbols are realized in that part: beat
  slashes (one slash per beat) mean "comp", played with the instrument's pattern; slashes with
  another rhythm are played in that rhythm. Bars of the part with written notes are played as
  written, and a part with only written notes is never comped.
- **Lead sheet**: a single melodic part carrying chord symbols and nothing else to play it
  with. A :data:`LEAD_SHEET_TRACK` (acoustic piano) is added under the melody, mezzo-piano,
  a sustained chord with the bass note on every change and on the strong beats.

Voicings (pitches are sounding MIDI keys):

- piano: four chord tones in close position between :data:`PIANO_VOICING_RANGE` (thirds and
  sevenths first, then altered fifths, sixths/13ths, ninths, 11ths, fifths, the root), each
  chord voiced nearest the previous one (smallest total movement of the four voices); the
  root, or the bass note of a slash chord (C/E → E), in the left hand in
  :data:`PIANO_BASS_RANGE`. In a lead sheet the right hand also keeps under the melody;
- guitar: the same four tones as a drop-2 voicing in :data:`GUITAR_RANGE`, four to the bar
  in swing, on each change and each bar otherwise;
- bass: the root (or slash bass) on beat 1 and the fifth on the middle strong beat (beat 3 of
  4/4), in :data:`BASS_RANGE`; a change on that beat brings its own root.

A chord symbol lasts until the next one; N.C. (no chord) is silence. Every position goes
through the form timeline, so repeats and jumps replay the comping, and perform applies swing
and fermatas to these notes like any others.
"""
from __future__ import annotations

import bisect
import itertools
import logging
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from pipeline.score import form

from pipeline.settings import instruments

from pipeline.score import musicxml
from pipeline.model import TICKS_PER_QUARTER

log = logging.getLogger(__name__)

PIANO_VOICING_RANGE = (52, 74)   # E3–D5: the right hand's close voicings
PIANO_BASS_RANGE = (36, 47)      # C2–B2: the left hand's root
GUITAR_CLOSE_RANGE = (52, 67)    # E3–G4 before the second voice from the top drops an octave
GUITAR_RANGE = (40, 67)          # E2–G4 sounding, where a guitarist comps
BASS_RANGE = (28, 43)            # E1–G2 sounding
CLOSE_SPAN = 14                  # a close voicing spans at most an octave and a whole tone
VOICES = 4
#: how much softer than the part's dynamic each role plays (a lead sheet: mf → mp)
SOFTER = {"piano": 8, "guitar": 10, "bass": 4, "lead sheet": 16}
#: how much of the time to the next chord each role holds a chord
GATE = {"piano": 0.9, "guitar": 0.95, "bass": 0.9, "lead sheet": 0.97}
SWING_GUITAR_GATE = 0.6          # four to the bar: short, even quarters
LEAD_SHEET_TRACK = "Piano (comping)"
LEAD_SHEET_PROGRAM = 0           # acoustic grand
MAX_MELODY_CHORDS = 0.1          # a melody part has at most this share of chords
CEILING_PENALTY = 50.0           # per semitone over the melody: only when nothing fits under it
DOUBLING_COST = 0.75             # per step a doubled tone is up the list from the root

#: chord-tone priority by the generic step above the root (3rds and 7ths carry the harmony)
_STEP_RANK = {3: 0, 7: 1, 6: 3, 2: 4, 4: 5, 5: 6, 1: 7}
_ALTERED_FIFTH_RANK = 2
_STEPS = "CDEFGAB"


@dataclass(frozen=True)
class ChordSpan:
    """A chord symbol in force from written offset ``start`` to ``end`` (quarter notes)."""

    start: float
    end: float
    root: int                # pitch class
    bass: int                # pitch class of the lowest note (a slash chord's bass)
    fifth: int               # pitch class of the fifth (the root's when the chord has none)
    tones: tuple[int, ...]   # distinct pitch classes, most characteristic first
    figure: str


@dataclass(frozen=True)
class Plan:
    """What to comp in one instrument: its role, the chords, and where."""

    role: str                                  # piano, guitar, bass or lead sheet
    chords: tuple[ChordSpan, ...]
    bars: tuple[int, ...]                      # indexes of the comped bars (form timeline)
    #: per comped bar: written (offset, length) of rhythmic slashes, or None: the pattern
    rhythms: dict[int, tuple[tuple[float, float], ...] | None]
    skipped: frozenset[int] = frozenset()      # ids of slash notes not played as written
    melody: tuple[tuple[float, float, int], ...] = ()  # (start, end, lowest pitch) to keep under


# ---------------------------------------------------------------------------------------------
# what to comp

def role_of(name: str, inst) -> str | None:
    """``piano``, ``guitar`` or ``bass`` for a rhythm-section instrument, else None.
    A part with no name of its own is taken as a keyboard."""
    info = instruments.lookup_first(name, inst.instrumentName if inst is not None else None)
    if info is not None:
        if info.name in ("Acoustic Bass", "Electric Bass", "Contrabass"):
            return "bass"
        if "Guitar" in info.name:
            return "guitar"
        if info.family == "keyboards":
            return "piano"
        return None
    if not name.strip() or re.fullmatch(r"(MusicXML )?Part( \d+)?|P\d+", name.strip()) or \
            re.search(r"\b(keyboards?|keys|kbd)\b", name.lower()):
        return "piano"
    return None


def slash_plan(name: str, staves, tl: form.Timeline, slash_bars: set[int]) -> Plan | None:
    """The comping of a slash part (see the module's docstring), or None when the part is
    not a rhythm-section part, has no chord symbols, or has only written notes.

    ``slash_bars`` are the bar indexes under ``<measure-style><slash>``.
    """
    role = role_of(name, staves[0].getInstrument(returnDefault=False))
    if role is None or not tl.starts:
        return None
    chords = chord_spans(staves)
    if not chords:
        return None
    notes = [el for staff in staves for el in staff.flatten().notes
             if not _is_chord_symbol(el) and not el.duration.isGrace and el.quarterLength > 0]
    slashes = [el for el in notes
               if getattr(el, "notehead", None) == "slash" or tl.bar(float(el.offset)) in slash_bars]
    if notes and not slashes:
        return None  # written out: played as written
    by_bar: dict[int, list] = {}
    for el in slashes:
        by_bar.setdefault(tl.bar(float(el.offset)), []).append(el)
    if notes:  # the bars in slashes (under a measure style, also those holding only rests)
        bars = sorted(set(by_bar) | {k for k in slash_bars if k < len(tl.starts)})
    else:  # chord symbols over rests: every bar from the first chord on
        bars = list(range(tl.bar(chords[0].start), len(tl.starts)))
    meter = _meter(staves[0])
    rhythms = {k: _rhythm(by_bar.get(k, []), tl, k, meter) for k in bars}
    return Plan(role, tuple(chords), tuple(bars), rhythms, frozenset(id(el) for el in slashes))


def lead_sheet_plan(staves, tl: form.Timeline) -> Plan | None:
    """The comping under a lead sheet's melody, or None when the part is not one: a single
    staff of mostly single notes carrying chord symbols. (Whether it is the score's only
    melodic part is for the caller to say.)"""
    if len(staves) != 1 or not tl.starts:
        return None
    chords = chord_spans(staves)
    if not chords:
        return None
    notes = [el for el in staves[0].flatten().notes
             if not _is_chord_symbol(el) and not el.duration.isGrace and el.quarterLength > 0]
    if not notes or any("Unpitched" in el.classes for el in notes):
        return None
    if sum(1 for el in notes if el.isChord) > MAX_MELODY_CHORDS * len(notes):
        return None  # a written accompaniment: played as written
    melody = tuple(sorted((float(el.offset), float(el.offset + el.quarterLength),
                           min(int(round(p.ps)) for p in el.pitches)) for el in notes))
    bars = tuple(range(tl.bar(chords[0].start), len(tl.starts)))
    return Plan("lead sheet", tuple(chords), bars, {k: None for k in bars}, melody=melody)


def measure_style_slash_bars(score, source) -> dict[int, set[int]]:
    """Bar indexes under ``<measure-style><slash>`` per music21 part (by ``id``; a piano's
    staves share their part's), read from the MusicXML file ``source`` (music21 does not keep
    them)."""
    parts = musicxml.part_measures(source, rb"<slash\b", "<measure-style><slash>")
    if not parts:
        return {}
    bars: list[set[int]] = []
    for measures in parts:
        on, bars_on = False, set()
        for k, m in enumerate(measures):
            for style in m.iter("measure-style"):  # a stop: this bar is written out again
                for slash in style.iter("slash"):
                    on = slash.get("type") == "start"
            if on:
                bars_on.add(k)
        bars.append(bars_on)
    return musicxml.by_part(score.parts, bars, source, "slash notation")


#: MusicXML's ``<numeral-mode>``s and the scale degrees each raises a semitone from the natural
#: minor (harmonic minor: the leading note; melodic minor: the sixth and seventh).
RAISED_DEGREES = {"harmonic minor": (7,), "melodic minor": (6, 7)}


def realize_numeral_chords(score, source) -> None:
    """Give a root to each chord symbol written as a Roman numeral (``<harmony><numeral>``):
    music21 reads its kind but not its degree, and leaves a chord symbol with no root (whose
    spelling then recursed without end). The degree, its alteration and the key it is counted
    in (``<numeral-key>``, else the key signature in force) come from the MusicXML file
    ``source``; the chord symbol is replaced, in place, by one on that root."""
    parts = musicxml.part_measures(source, rb"<numeral\b", "Roman-numeral chord symbols")
    if not parts:
        return
    found = musicxml.by_part(score.parts, [_numerals(measures, source) for measures in parts],
                             source, "Roman-numeral chord symbols")
    from music21 import harmony

    for part in score.parts:
        numerals = found.get(id(part))
        if not numerals:
            continue
        for k, measure in enumerate(part.getElementsByClass("Measure")):
            for cs in list(measure.recurse().getElementsByClass("ChordSymbol")):
                spec = numerals.get((k, round(float(cs.offset), 4)))
                if cs.pitches or spec is None:
                    continue
                root = _numeral_root(spec, cs)
                if root is None:
                    continue
                chord = harmony.ChordSymbol(root=root, kind=cs.chordKind or "major")
                cs.activeSite.replace(cs, chord)


#: A Roman numeral as written: (degree 1–7, semitones altered, key fifths or None, mode).
Numeral = tuple[int, int, int | None, str]


def _numerals(measures, source) -> dict[tuple[int, float], Numeral]:
    """Each ``<harmony><numeral>`` of one part's measures by (measure index, quarter notes into
    the measure)."""
    out = {}
    for k, el, position, divisions in musicxml.positions(measures, source):
        numeral = el.find("numeral") if el.tag == "harmony" else None
        if numeral is None:
            continue
        try:
            degree = int((numeral.findtext("numeral-root") or "").strip())
            alter = int(round(float(numeral.findtext("numeral-alter") or 0)))
            fifths_text = numeral.findtext("numeral-key/numeral-fifths")
            fifths = int(fifths_text) if fifths_text is not None else None
        except ValueError:
            log.warning("%s: bar %d: a Roman-numeral chord symbol that cannot be read is not "
                        "played", source, k + 1)
            continue
        if not 1 <= degree <= 7:
            continue
        mode = (numeral.findtext("numeral-key/numeral-mode") or "").strip()
        out[(k, round(position / divisions, 4))] = (degree, alter, fifths, mode)
    return out


def _numeral_root(spec: Numeral, cs) -> str | None:
    """The root's name (e.g. 'B-') of a Roman numeral at ``cs``'s place."""
    from music21 import key

    degree, alter, fifths, mode = spec
    if fifths is None:
        signature = cs.getContextByClass("KeySignature")
        fifths = signature.sharps if signature is not None else 0
        if not mode and isinstance(signature, key.Key):
            mode = signature.mode
    minor = "minor" in mode
    tonic = key.KeySignature(fifths).asKey("minor" if minor else "major")
    root = tonic.pitchFromDegree(degree)
    semitones = alter + (1 if degree in RAISED_DEGREES.get(mode, ()) else 0)
    if semitones:
        root = root.transpose(semitones)
    return root.name


def _is_chord_symbol(el) -> bool:
    return "Harmony" in el.classes


def _bar_length(tl: form.Timeline, k: int, staff) -> float:
    if k + 1 < len(tl.starts):
        return tl.starts[k + 1] - tl.starts[k]
    return max(float(staff.highestTime) - tl.starts[k], 0.0)


def _rhythm(slashes, tl: form.Timeline, k: int, meter) -> tuple[tuple[float, float], ...] | None:
    """The written rhythm of a bar's slashes, or None for beat slashes (and a bar with none):
    the instrument's own pattern is played then."""
    if not slashes:
        return None
    pulse = _pulse(meter(tl.starts[k]))
    start = tl.starts[k]
    if all(abs(float(el.quarterLength) - pulse) < 1e-6 and
           abs(((float(el.offset) - start) / pulse) % 1) < 1e-6 for el in slashes):
        return None
    hits: list[list[float]] = []
    for el in sorted(slashes, key=lambda e: float(e.offset)):
        off, ql = float(el.offset), float(el.quarterLength)
        tie = el.tie.type if el.tie is not None else None
        if tie in ("stop", "continue") and hits and abs(sum(hits[-1]) - off) < 1e-6:
            hits[-1][1] += ql  # a tied slash holds the chord
        else:
            hits.append([off, ql])
    return tuple((a, b) for a, b in hits)


def chord_spans(staves) -> list[ChordSpan]:
    """The chord symbols of an instrument (a piano's staves carry copies: one per offset), each
    lasting until the next; N.C. ends the one before and sounds nothing."""
    found: dict[float, object] = {}
    end = 0.0
    for staff in staves:
        end = max(end, float(staff.highestTime))
        for cs in staff.flatten().getElementsByClass("Harmony"):
            if "ChordSymbol" in cs.classes or "NoChord" in cs.classes:
                found.setdefault(float(cs.offset), cs)
    offsets = sorted(found)
    spans = []
    for i, off in enumerate(offsets):
        cs = found[off]
        stop = offsets[i + 1] if i + 1 < len(offsets) else max(end, off)
        if "NoChord" in cs.classes or stop <= off:
            continue
        span = _span(cs, off, stop)
        if span is not None:
            spans.append(span)
    return spans


def _span(cs, start: float, end: float) -> ChordSpan | None:
    pitches = list(cs.pitches)
    if not pitches:  # a kind with no root: spelling it would recurse in music21
        log.warning("a chord symbol with no root at offset %g is not played", start)
        return None
    try:
        root, bass = cs.root(), cs.bass()
    except Exception as exc:  # music21 cannot spell some exotic symbols
        log.warning("chord symbol %r at offset %g not played (%s)", getattr(cs, "figure", "?"),
                    start, exc)
        return None
    if not pitches or root is None:
        return None
    ranked: dict[int, int] = {}
    fifth = root.pitchClass
    for p in pitches:
        step = (_STEPS.index(p.step) - _STEPS.index(root.step)) % 7 + 1
        semis = (p.pitchClass - root.pitchClass) % 12
        rank = _ALTERED_FIFTH_RANK if step == 5 and semis != 7 else _STEP_RANK[step]
        if step == 5:
            fifth = p.pitchClass
        ranked[p.pitchClass] = min(rank, ranked.get(p.pitchClass, rank))
    tones = tuple(sorted(ranked, key=lambda pc: (ranked[pc], pc)))
    return ChordSpan(start, end, root.pitchClass, (bass or root).pitchClass, fifth, tones,
                     str(getattr(cs, "figure", "")))


# ---------------------------------------------------------------------------------------------
# meter: the pulse and the strong beats

def _meter(staff) -> Callable[[float], object]:
    """The time signature in force at a written offset of ``staff`` (4/4 before any)."""
    from music21 import meter

    marks = list(staff.flatten().getElementsByClass(meter.TimeSignature))
    offsets = [float(ts.offset) for ts in marks]
    plain = meter.TimeSignature("4/4")

    def at(offset: float):
        i = bisect.bisect_right(offsets, offset + 1e-9) - 1
        return marks[i] if i >= 0 else plain
    return at


def _pulse(ts) -> float:
    """The counted beat in quarter notes: a quarter in simple meters (also 2/2, where a jazz
    rhythm section still plays quarters), the dotted beat in compound ones."""
    return 1.0 if ts.denominator <= 4 else float(ts.beatDuration.quarterLength)


def _strong_beats(ts) -> list[float]:
    """Offsets in a full bar (quarter notes) where a bass or a held chord moves: beat 1 and
    the bar's middle (beats 1 and 3 of 4/4, 1 and 4 of 6/8); beat 1 alone in triple time."""
    n, beat = ts.beatCount, float(ts.beatDuration.quarterLength)
    if n in (1, 3):
        return [0.0]
    if n % 2 == 0:
        return [0.0, n // 2 * beat]
    return [0.0, (n // 2 + 1) * beat]  # 5/4: 3 + 2, 7/4: 4 + 3


def _hits(plan: Plan, k: int, tl: form.Timeline, staff, meter,
          swung: bool) -> list[tuple[float, float]]:
    """Written ``(offset, length)`` of the chords a role strikes in bar ``k``."""
    start = tl.starts[k]
    length = _bar_length(tl, k, staff)
    end = start + length
    rhythm = plan.rhythms.get(k)
    if rhythm is not None:
        return list(rhythm)
    ts = meter(start)
    full = float(ts.barDuration.quarterLength)
    shift = length - full if k == 0 and length < full - 1e-6 else 0.0  # a pickup: the bar's end
    if plan.role == "guitar" and swung:
        grid = [i * _pulse(ts) for i in range(int(round(full / _pulse(ts))))]
    elif plan.role == "guitar":
        grid = [0.0]
    else:
        grid = _strong_beats(ts)
    times = {round(start + g + shift, 6) for g in grid if 0 <= g + shift < length - 1e-9}
    # every change strikes; a chord ending before an N.C. stops there
    times |= {round(t, 6) for c in plan.chords for t in (c.start, c.end)
              if start - 1e-9 <= t < end - 1e-9}
    times_sorted = sorted(times)
    return [(t, (times_sorted[i + 1] if i + 1 < len(times_sorted) else end) - t)
            for i, t in enumerate(times_sorted)]


# ---------------------------------------------------------------------------------------------
# voicings

def close_voicing(tones: Sequence[int], lo: int, hi: int, previous: Sequence[int] | None = None,
                  ceiling: int | None = None, voices: int = VOICES) -> list[int]:
    """A close voicing, ascending: ``voices`` different pitches in ``lo``–``hi`` spanning at
    most :data:`CLOSE_SPAN` that sound the first ``voices`` of ``tones`` (pitch classes, most
    characteristic first, so the root and fifth are the ones left out of a rich chord). A chord
    with fewer tones doubles one, the root rather than the fifth, the fifth rather than the
    third. Among those, the voicing nearest ``previous`` (the summed movement of the voices,
    low to high), else nearest the middle of the range; notes over ``ceiling`` cost extra."""
    pcs = list(dict.fromkeys(tones))[:voices]
    pool = [p for p in range(lo, hi + 1) if p % 12 in pcs]
    middle = (lo + hi) / 2
    for n in range(voices, 0, -1):  # fewer voices only when the range leaves no room
        best, best_cost = None, float("inf")
        for v in itertools.combinations(pool, n):
            if v[-1] - v[0] > CLOSE_SPAN or len({p % 12 for p in v}) < min(n, len(pcs)):
                continue
            if previous and len(previous) == n:
                cost = sum(abs(a - b) for a, b in zip(v, previous))
            elif previous:
                cost = abs(sum(v) / n - sum(previous) / len(previous)) * n
            else:
                cost = abs(sum(v) / n - middle) * n
            cost += sum(1.5 for a, b in zip(v, v[1:]) if b - a == 1)  # no semitone clusters
            cost += sum(DOUBLING_COST * (len(pcs) - 1 - pcs.index(p % 12))
                        for k, p in enumerate(v) if any(q % 12 == p % 12 for q in v[:k]))
            if ceiling is not None and v[-1] > ceiling:
                cost += CEILING_PENALTY * (v[-1] - ceiling)
            if cost < best_cost:
                best, best_cost = list(v), cost
        if best is not None:
            return best
    return []


def nearest(pc: int, lo: int, hi: int, previous: int | None) -> int:
    """The pitch of pitch class ``pc`` in ``lo``–``hi`` nearest ``previous`` (else the lower
    middle of the range)."""
    target = previous if previous is not None else lo + (hi - lo) / 3
    options = [p for p in range(lo, hi + 1) if p % 12 == pc]
    return min(options, key=lambda p: (abs(p - target), p))


def _chord_at(plan: Plan, starts: list[float], offset: float) -> ChordSpan | None:
    i = bisect.bisect_right(starts, offset + 1e-9) - 1
    if i < 0 or offset >= plan.chords[i].end - 1e-9:
        return None
    return plan.chords[i]


def _melody_floor(plan: Plan, offset: float, length: float) -> int | None:
    """One below the lowest melody note sounding at ``offset`` or starting in the hit's first
    beat: a lead sheet's voicing stays under it."""
    low = [p for s, e, p in plan.melody
           if (s <= offset + 1e-9 < e) or (offset < s < offset + min(1.0, length) - 1e-9)]
    return min(low) - 1 if low else None


# ---------------------------------------------------------------------------------------------
# the notes

def realize(plan: Plan, staves, tl: form.Timeline, velocity_at: Callable[[float], float],
            swing_marks: Sequence[tuple[float, float | None]] = ()) -> list[tuple[int, int, int, int]]:
    """The comping of ``plan`` as ``(on, off, pitch, velocity)`` in played ticks.

    ``velocity_at(played offset)`` is the part's dynamic (for a lead sheet, the melody's);
    ``swing_marks`` are :attr:`pipeline.score.timing.Timing.swing` (a guitar plays four to the bar
    where they swing).
    """
    staff = staves[0]
    meter = _meter(staff)
    starts = [c.start for c in plan.chords]
    swing_at = [o for o, _ in swing_marks]
    softer = SOFTER[plan.role]
    events: list[tuple[int, int, int, int]] = []
    previous: list[int] | None = None
    previous_bass: int | None = None
    for k in plan.bars:
        i = bisect.bisect_right(swing_at, tl.starts[k] + 1e-9) - 1
        swung = i >= 0 and swing_marks[i][1] is not None
        hits = _hits(plan, k, tl, staff, meter, swung)
        hold = SWING_GUITAR_GATE if plan.role == "guitar" and swung and plan.rhythms.get(k) is None \
            else GATE[plan.role]
        for n, (offset, length) in enumerate(hits):
            chord = _chord_at(plan, starts, offset)
            if chord is None or length <= 0:
                continue
            if plan.role == "bass":
                # the chord's first beat takes the root; a later strong beat in it, the fifth
                pc = chord.bass if abs(offset - chord.start) < 1e-6 or n == 0 else chord.fifth
                pitch = nearest(pc, *BASS_RANGE, previous_bass)
                previous_bass = pitch
                pitches = [pitch]
            elif plan.role == "guitar":
                close = close_voicing(chord.tones, *GUITAR_CLOSE_RANGE, previous)
                previous = close
                pitches = _drop2(close)
            else:
                ceiling = _melody_floor(plan, offset, length) if plan.melody else None
                previous = close_voicing(chord.tones, *PIANO_VOICING_RANGE, previous,
                                         ceiling)
                previous_bass = nearest(chord.bass, *PIANO_BASS_RANGE, previous_bass)
                pitches = [previous_bass] + previous
            for played in tl.map(offset):
                on = round(played * TICKS_PER_QUARTER)
                off = on + max(1, round(length * hold * TICKS_PER_QUARTER))
                vel = int(round(min(127, max(1, velocity_at(played) - softer))))
                events.extend((on, off, p, vel) for p in pitches)
    return events


def _drop2(close: list[int]) -> list[int]:
    """A guitar's drop-2 voicing: the second voice from the top of a close voicing an octave
    down (the spread a guitarist's hand makes on four strings)."""
    if len(close) < 4:
        return close
    dropped = close[:-2] + [close[-2] - 12] + close[-1:]
    low, high = GUITAR_RANGE
    return sorted(p if p >= low else p + 12 for p in dropped if p <= high)
