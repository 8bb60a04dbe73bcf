"""Articulations, grace notes and ornaments: how a written note becomes the notes that sound.

All times are ticks (:data:`~pipeline.model.TICKS_PER_QUARTER` = 960 per quarter note), so
the figures follow the tempo map: a trill at a slow tempo is slower, as a player's would be
when counting in 32nds. ``perform.py`` calls :func:`articulation` for every note,
:func:`grace_timing` for grace notes and :func:`figure` for ornamented notes; everything here
is a small pure function of the note and its onset and length.

Articulations (the shortest sounding length applies; weights add up, capped at 127):

============================  ==============================  =================
mark                          sounding share of written note  velocity
============================  ==============================  =================
staccatissimo                 0.25                            —
spiccato                      0.35                            —
staccato                      0.5                             —
portato (tenuto + staccato)   0.75                            +4 ("weighted")
tenuto                        1.0                             —
accent (>)                    —                               +12
marcato (^)                   —                               +20
stress / unstress             —                               +8 / −10
slurred (not the slur's end)  1.0 (connects to the next)      —
unslurred, unmarked           0.93 (a small natural gap)      —
breath mark                   a 16th early (at most a third)  —
caesura                       a pause in all parts (timing)   —
============================  ==============================  =================

Grace notes sound **on the beat** and steal time from the main note (the classical rule;
MuseScore 3 also starts them on the beat):

- acciaccatura (slashed) or a group of several: each a 32nd (120 ticks), together at most
  half of the main note, at 90 % of its velocity;
- a single appoggiatura (unslashed): half of the main note, two thirds of a dotted one,
  at the main note's velocity (it carries the stress);
- grace notes marked ``steal-time-previous`` (and after-graces) sound before the beat instead.
- a single grace on the upper neighbour of a trilled note is the trill's first note (the
  classical upper-note start): a 32nd, like an acciaccatura, then the trill.

Ornaments (upper and lower neighbours are diatonic in the key signature, unless the ornament
carries its own accidental; music21's ``getSize`` works them out):

- trill (and shake, and notes under a trill's wavy line): starts on the main note (the
  19th-century and MuseScore style) and alternates with the upper neighbour in 32nds, an odd
  number of notes so it ends on the main note; at least three notes;
- mordent: main–lower–main, inverted mordent: main–upper–main, the first two notes a 32nd
  each (at most a quarter of the note), the last one holds;
- turn: upper–main–lower–main, inverted turn: lower–main–upper–main, four 32nds (at most the
  whole note) then the main note holds; a delayed turn holds the main note first and plays
  the four notes at the end;
- single-note tremolo: repeated notes, one stroke eighths, two 16ths, three or more 32nds;
  two-note tremolo: the two notes alternate at that rate over both written lengths;
- arpeggiated chord: rolled from the bottom up (``down`` arpeggios from the top down), the
  first note on the beat and each next one 60 ticks (a 64th, 31 ms at ♩ = 120) later, all held
  to the end;
- glissando / slide: the first note holds for half its length, then a run (chromatic; on
  white keys for keyboards and harp) fills the second half, reaching the next note on its beat.
"""
from __future__ import annotations

from pipeline.model import TICKS_PER_QUARTER

Q = TICKS_PER_QUARTER
#: articulation class (music21) → sounding share of the written length
GATE = {
    "Staccatissimo": 0.25, "Spiccato": 0.35, "Staccato": 0.5, "DetachedLegato": 0.75,
    "Tenuto": 1.0,
}
#: articulation class → velocity added
WEIGHT = {"StrongAccent": 20, "Accent": 12, "Stress": 8, "Unstress": -10, "DetachedLegato": 4}
NORMAL_GATE = 0.93
SLURRED_GATE = 1.0

GRACE_TICKS = Q // 8           # acciaccatura: a 32nd
GRACE_VELOCITY = 0.9
ORNAMENT_TICKS = Q // 8        # trill, mordent and turn notes: 32nds
AUX_VELOCITY = 0.9             # the neighbour notes of an ornament, a little lighter
ROLL_TICKS = Q // 16           # arpeggio: a 64th between notes
GLISS_MAX_STEPS = 48
FIGURE_SPANNERS = {"TrillExtension", "TremoloSpanner", "Glissando", "ArpeggioMarkSpanner"}
TRILLS = ("Trill", "Shake", "HalfStepTrill", "WholeStepTrill")  # expression classes
KEYBOARD_WORDS = ("piano", "harp", "organ", "harpsichord", "celesta", "keyboard", "clavi")
WHITE_KEYS = {0, 2, 4, 5, 7, 9, 11}


# ---------------------------------------------------------------------------------------------
# articulations

def articulation(el, slurred: bool) -> tuple[float, int, bool]:
    """``(gate, velocity_delta, breath)`` of a note: the share of its written length that
    sounds, the weight its accents add, and whether it carries a breath mark (the note then
    ends a breath early: ``perform`` cuts it, by :data:`pipeline.score.timing.BREATH_QUARTERS`)."""
    names = [a.classes[0] for a in getattr(el, "articulations", ())]
    gates = [GATE[n] for n in names if n in GATE]
    gate = min(gates) if gates else (SLURRED_GATE if slurred else NORMAL_GATE)
    # a caesura is a pause in all parts: timing's (the tempo map and ``timing.cut_at_pauses``)
    return gate, sum(WEIGHT.get(n, 0) for n in names), "BreathMark" in names


# ---------------------------------------------------------------------------------------------
# grace notes

def grace_timing(graces, on: int, dur: int, main, spanner_index: dict | None = None,
                 ) -> tuple[list[tuple[int, int, float]], int, int]:
    """Where grace notes sound: ``([(on, off, velocity_factor)] per grace, main_on, main_dur)``.

    Graces that steal time from the previous note, or that end a bar while their main note
    opens the next one (after-graces), sound before the beat; the others on it.
    ``spanner_index`` (:func:`spanner_index`) tells whether the main note is under a trill's
    wavy line."""
    main_bar = _bar(main)
    bars = [_bar(g) for g in graces]  # a context search: once per grace
    before = [g for g, bar in zip(graces, bars) if getattr(g.duration, "stealTimePrevious", None)
              or (bar is not None and bar != main_bar)]
    after_start = on - len(before) * GRACE_TICKS
    times = {id(g): (after_start + k * GRACE_TICKS, after_start + (k + 1) * GRACE_TICKS,
                     GRACE_VELOCITY) for k, g in enumerate(before)}
    rest = [g for g in graces if id(g) not in times]
    n = len(rest)
    if n and dur > 1:
        slashed = any(getattr(g.duration, "slash", True) for g in rest)
        if n == 1 and not slashed and not _starts_trill(rest[0], main, spanner_index):
            each = max(1, round(dur * (2 / 3 if main.duration.dots else 0.5)))
            times[id(rest[0])] = (on, on + each, 1.0)
            on, dur = on + each, dur - each
        else:
            each = min(GRACE_TICKS, dur // (2 * n))
            if each > 0:
                times.update((id(g), (on + k * each, on + (k + 1) * each, GRACE_VELOCITY))
                             for k, g in enumerate(rest))
                on, dur = on + n * each, dur - n * each
    return [times.get(id(g)) for g in graces], on, dur


def _starts_trill(grace, main, spanner_index: dict | None = None) -> bool:
    """A single grace on the upper neighbour of a trilled note shows where the trill starts
    (the classical upper-note start, Mozart K. 80/i bar 2): a short first note of the trill,
    not an appoggiatura taking half the note."""
    if grace.isChord or main.isChord or not hasattr(grace, "pitch") or not hasattr(main, "pitch"):
        return False
    trill = _trill(_expressions(main), (spanner_index or {}).get(id(main), {}))
    if trill is None:
        return False
    upper = int(round(main.pitch.ps)) + _size(trill, main, 2)
    return int(round(grace.pitch.ps)) == upper


def _bar(el):
    try:
        return el.measureNumber
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# ornaments

def spanner_index(staff) -> dict[int, dict[str, object]]:
    """For one staff: note id → {spanner class: spanner} for the spanners that make figures
    (built once, as asking each note for its spanners is slow). music21 keeps some on the
    score rather than the staff (an ``<arpeggiate number="1">`` roll): those are looked at too."""
    index: dict[int, dict[str, object]] = {}
    scores = [site for site in staff.sites.get() if "Score" in getattr(site, "classes", ())]
    # (the score's own spanners only: its spannerBundle would gather every staff's again)
    for sp in [*staff.spannerBundle,
               *(sp for score in scores[:1] for sp in score.getElementsByClass("Spanner"))]:
        name = sp.classes[0]
        if name in FIGURE_SPANNERS:
            for e in sp.getSpannedElements():
                index.setdefault(id(e), {}).setdefault(name, sp)
    return index


def is_tremolo(el, spanner_index: dict | None = None) -> bool:
    """Whether ``el`` is written as a tremolo: on a drum or cymbal, a roll."""
    return "Tremolo" in _expressions(el) or \
        "TremoloSpanner" in (spanner_index or {}).get(id(el), {})


def figure(el, on: int, dur: int, pitches: list[int], velocity: int, gate: float,
           instrument: str = "", spanner_index: dict | None = None,
           ) -> list[tuple[int, int, int, int]] | None:
    """The notes ``(on, off, pitch, velocity)`` an ornamented note or chord plays, or ``None``
    when it has no ornament (it is then played as written). An empty list: the note is the
    second half of a two-note tremolo and was played with the first."""
    if not pitches or dur <= 1:
        return None
    kinds = _expressions(el)
    spanners = (spanner_index or {}).get(id(el), {})
    if not kinds and not spanners:
        return None
    sounding = max(1, round(dur * gate))
    main = pitches[-1]  # an ornament on a chord decorates its top note
    held = [(on, on + sounding, p, velocity) for p in pitches[:-1]]

    trem2 = spanners.get("TremoloSpanner")
    if trem2 is not None:
        els = trem2.getSpannedElements()
        if len(els) >= 2:
            if el is not els[0]:
                return []
            other = els[1]
            total = dur + round(float(other.quarterLength) * Q)
            step = _tremolo_ticks(getattr(trem2, "numberOfMarks", 3))
            second = [int(round(p.ps)) for p in other.pitches]
            return _alternate(on, total, [pitches, second], step, velocity, 1.0)

    trill = _trill(kinds, spanners)
    if trill is not None:
        upper = main + _size(trill, el, 2)
        notes = _alternate(on, sounding, [[main], [upper]], ORNAMENT_TICKS, velocity,
                           AUX_VELOCITY, odd=True)
        return held + notes

    for name, direction in (("Mordent", -1), ("InvertedMordent", 1), ("HalfStepMordent", -1),
                            ("WholeStepMordent", -1), ("HalfStepInvertedMordent", 1),
                            ("WholeStepInvertedMordent", 1)):
        if name in kinds:
            aux = main + _size(kinds[name], el, direction)
            each = min(ORNAMENT_TICKS, sounding // 4)
            if each <= 0:
                return None
            return held + _sequence(on, [main, aux, main], [each, each, sounding - 2 * each],
                                    velocity)

    turn = kinds.get("Turn") or kinds.get("InvertedTurn")
    if turn is not None:
        up = main + _size(turn, el, 2, "upper")
        down = main + _size(turn, el, -2, "lower")
        order = [down, main, up, main] if "InvertedTurn" in kinds else [up, main, down, main]
        each = min(ORNAMENT_TICKS, sounding // 4)
        if each <= 0:
            return None
        if getattr(turn, "isDelayed", False):
            hold = sounding - 4 * each
            return held + _sequence(on, [main] + order, [hold] + [each] * 4, velocity)
        return held + _sequence(on, order, [each] * 3 + [sounding - 3 * each], velocity)

    if "Tremolo" in kinds:
        step = _tremolo_ticks(getattr(kinds["Tremolo"], "numberOfMarks", 3))
        return _alternate(on, dur, [pitches], step, velocity, 1.0)

    gliss = spanners.get("Glissando")
    if gliss is not None:
        els = gliss.getSpannedElements()
        if len(els) >= 2 and el is els[0] and els[-1].pitches:
            target = int(round(els[-1].pitches[0].ps))
            return held + _glissando(on, dur, main, target, velocity, instrument)

    arp = kinds.get("ArpeggioMark")
    if arp is None and "ArpeggioMarkSpanner" in spanners:
        arp = spanners["ArpeggioMarkSpanner"]
    if arp is not None and len(pitches) > 1 and getattr(arp, "type", "normal") != "non-arpeggio":
        order = sorted(pitches, reverse=getattr(arp, "type", "normal") == "down")
        step = min(ROLL_TICKS, sounding // (2 * len(order)))
        return [(on + k * step, on + sounding, p, velocity) for k, p in enumerate(order)]
    return None


def _expressions(el) -> dict[str, object]:
    """A note's expressions by class name."""
    return {e.classes[0]: e for e in getattr(el, "expressions", ())}


def _trill(kinds: dict, spanners: dict):
    """The trill on a note (its expressions by class name and its figure spanners), or None:
    a "tr" sign, or a plain :class:`~music21.expressions.Trill` for a note that is only under a
    trill's wavy line."""
    trill = next((kinds[k] for k in TRILLS if k in kinds), None)
    if trill is None and "TrillExtension" in spanners:
        from music21 import expressions

        trill = expressions.Trill()
    return trill


def _size(orn, el, default: int, *which: str) -> int:
    """Semitones from the note to the ornament's neighbour (key signature and accidental);
    ``which`` is a turn's ``"upper"`` or ``"lower"``."""
    try:
        return int(round(orn.getSize(el, *which).semitones))
    except Exception:  # an odd note (no pitch context): a plain whole step
        return default


def _tremolo_ticks(marks) -> int:
    try:
        marks = int(marks)
    except (TypeError, ValueError):
        marks = 3
    return Q // 2 >> (min(max(marks, 1), 3) - 1)


def _sequence(on: int, pitches: list[int], lengths: list[int], velocity: int):
    """``pitches[k]`` for ``lengths[k]`` ticks each, one after the other; the main note (the
    last) and the first note at full velocity, the others a little lighter."""
    out, t = [], on
    for k, (p, length) in enumerate(zip(pitches, lengths)):
        if length <= 0:
            continue
        vel = velocity if p == pitches[-1] or k == 0 else round(velocity * AUX_VELOCITY)
        out.append((t, t + length, p, vel))
        t += length
    return out


def _alternate(on: int, total: int, groups: list[list[int]], step: int, velocity: int,
               aux_factor: float, odd: bool = False):
    """Cycle through ``groups`` (lists of pitches) in notes of about ``step`` ticks that exactly
    fill ``total``; ``odd``: an odd count of at least three, so a trill ends where it began."""
    n = max(1, round(total / step))
    if odd:
        n = max(3, n if n % 2 else n - 1 if n > 3 else n + 1)
    edges = [on + (total * k) // n for k in range(n + 1)]
    out = []
    for k in range(n):
        vel = velocity if k % len(groups) == 0 else round(velocity * aux_factor)
        out.extend((edges[k], max(edges[k + 1], edges[k] + 1), p, vel)
                   for p in groups[k % len(groups)])
    return out


def _glissando(on: int, dur: int, start: int, target: int, velocity: int, instrument: str):
    if target == start:
        return [(on, on + dur, start, velocity)]
    direction = 1 if target > start else -1
    steps = list(range(start + direction, target, direction))
    if any(w in instrument.lower() for w in KEYBOARD_WORDS):
        steps = [p for p in steps if p % 12 in WHITE_KEYS]
    if len(steps) > GLISS_MAX_STEPS:  # keep the run playable: evenly thinned
        steps = [steps[round(k * (len(steps) - 1) / (GLISS_MAX_STEPS - 1))]
                 for k in range(GLISS_MAX_STEPS)]
    hold = dur // 2 if steps else dur
    out = [(on, on + hold, start, velocity)]
    if steps:
        edges = [on + hold + ((dur - hold) * k) // len(steps) for k in range(len(steps) + 1)]
        out.extend((edges[k], max(edges[k + 1], edges[k] + 1), p, round(velocity * AUX_VELOCITY))
                   for k, p in enumerate(steps))
    return out
