"""Expression (CC11) for sustaining instruments, and the pedals (CC64, CC66).

**Loudness scale.** A written dynamic is a level on the documented velocity scale
(:data:`pipeline.model.DYNAMIC_VELOCITY`; mf = 80). Struck and plucked instruments (piano,
harp, guitar, percussion) play it as note velocity, a hairpin as a velocity ramp from note to
note: once struck, their notes only decay. Sustaining instruments (strings, winds, brass,
voices, organ: :func:`sustains`) can swell on a held note, so for them the level is also a
continuous curve in time, played with expression (CC11).

**How velocity and CC11 share the level.** FluidSynth's default modulators (SoundFont 2.01
§8.4.1 and §8.4.7: concave, negative, 960 cB) attenuate a note by 40·log10(x/127) dB for
both its velocity and the channel's CC11, and the two add. Measured with MuseScore General
(the default soundfont), CC11 follows that exactly, while its presets answer velocity a little
more gently: 0.83 × 40·log10(v/127) dB (violin, cello, flute, choir, organ; horn 0.76).
So a level ratio r played by velocity sounds as r**0.83 played by CC11
(:data:`VELOCITY_CURVE_EXPONENT`; with FluidR3 GM, whose velocity curve is the full one, a
held note's swell is up to ~2 dB larger than the same change between struck notes).

The design, for one sustaining track:

- the notes are grouped into *phrases* of overlapping notes (a chord, a held note under moving
  ones; notes that merely touch, as in a slurred line, start a new phrase);
- each note keeps the velocity it would have without expression (the level at its onset plus
  its accent), so a pp note still sounds like pp, not like a loud note turned down;
- CC11 is ``EXPRESSION_BASELINE × (L(t) / L(onset))**0.83`` over a phrase, L the level curve
  (dynamics, hairpins) and L(onset) the level where the phrase starts: at a steady dynamic it
  sits at the baseline (100, leaving ~4 dB of headroom), and a note held under a crescendo
  rises with it. Where the curve would take CC11 over 127 within a phrase, the phrase's
  velocities are raised by the missing amount and CC11 starts lower, so the level stays right;
  every note of a phrase follows one curve, so a held note never jumps when another starts;
- a dynamic accent (sf, sfz, fp, sfp, rf…) on the note that starts a phrase is an attack: the
  level falls back to the dynamic in force over :data:`ACCENT_FALL_QUARTERS` (an fp on a held
  note is loud, then soft). Elsewhere an accent is the note's velocity, as for struck notes;
- CC11 is sampled every 32nd note (:data:`EXPRESSION_STEP_TICKS`) and written only where its
  value changes, so a piece at steady dynamics gets one message per phrase at most.

Calibration renders a sustaining voice's reference note at the baseline too
(:mod:`pipeline.render.calibration`), so mf still sits at the reference loudness after the mix's gain.

**Pedals.** MusicXML ``<pedal>`` marks (read from the file: music21 keeps only the notes a
pedal spans) become CC64 (sustain; ``sostenuto`` starts CC66): ``start`` presses, ``stop``
lifts, ``change`` lifts and presses again :data:`PEDAL_CHANGE_TICKS` later, so the old harmony
is cleared while the new one, struck on the lift, is caught. A press that meets a lift (or a
second ``start`` while down, the "Ped. Ped." style) is a change too. ``resume`` (a line drawn
without its opening hook: MuseScore 4 writes every "Ped. ____" line so) presses a pedal that is
up, and ``discontinue`` (a line ended without its closing hook) lifts it, as MuseScore reads
them; ``continue`` is the line's look only. A pedal still down at the end is lifted at the
part's end. Marks are placed per played bar, so repeats press again.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.score import form

from pipeline.settings import instruments

from pipeline.score import musicxml
from pipeline.model import TICKS_PER_QUARTER, Control, Note, Track


#: CC11 at a steady dynamic: below 127, so a crescendo on a held note can rise (≈ +4 dB).
EXPRESSION_BASELINE = 100
#: A level ratio r played by velocity sounds as r ** this played by CC11 (MuseScore General).
VELOCITY_CURVE_EXPONENT = 0.83
#: CC11 is sampled on this grid (a 32nd note) and written only where its value changes.
EXPRESSION_STEP_TICKS = TICKS_PER_QUARTER // 8
#: A dynamic accent at the start of a phrase falls back to the dynamic in force over this long.
ACCENT_FALL_QUARTERS = 0.25
#: After a change of pedal, the pedal goes down again this much later (a 64th note).
PEDAL_CHANGE_TICKS = TICKS_PER_QUARTER // 16

SUSTAIN_PEDAL, SOSTENUTO_PEDAL, EXPRESSION = 64, 66, 11
PEDAL_DOWN, PEDAL_UP = 127, 0

#: General MIDI programs whose notes sustain: organs, accordion and harmonica (16–23), bowed
#: strings (40–44; 45 pizzicato, 46 harp and 47 timpani do not), string ensembles and choirs
#: (48–54), brass, reeds and pipes (56–79), synth leads and pads (80–95), bagpipe, fiddle and
#: shanai (109–111).
SUSTAINING_PROGRAMS = (range(16, 24), range(40, 45), range(48, 55), range(56, 80),
                       range(80, 96), range(109, 112))
SUSTAINING_FAMILIES = {"strings", "woodwinds", "saxes", "brass", "voices"}


def sustains(name: str, instrument_name: str | None, program: int | None) -> bool:
    """Whether a part sustains its notes (bowed, blown, sung, organ): decided by the score's
    General MIDI program when it gives one, else by the instrument map's program and family."""
    info = instruments.lookup_first(name, instrument_name)
    if program is None and info is not None:
        program = info.program
    if program is not None:
        return any(program in r for r in SUSTAINING_PROGRAMS)
    return info is not None and info.family in SUSTAINING_FAMILIES


# ---------------------------------------------------------------------------------------------
# expression (CC11)

@dataclass(frozen=True)
class LevelCurve:
    """One instrument's level in velocity units at every played tick: piecewise linear through
    ``(ticks, levels)`` (a step is two points a hair apart), plus the dynamic accents
    ``(tick, level)`` (sf, fp…) that a note struck there starts at."""

    ticks: np.ndarray
    levels: np.ndarray
    accents: tuple[tuple[int, float], ...] = ()

    def at(self, ticks: np.ndarray) -> np.ndarray:
        return np.interp(ticks, self.ticks, self.levels)


def shape(track: Track, curve: LevelCurve, *, baseline: int = EXPRESSION_BASELINE,
          swell_db: float = 0.0, swell_ticks: int = 2 * TICKS_PER_QUARTER) -> Track:
    """The track with CC11 following ``curve`` and its velocities set to share the level with
    it (the design in the module docstring). Notes must be in their final, played ticks.
    ``swell_db``: a note held alone for ``swell_ticks`` or more at a steady level swells that
    much towards its middle and back (a half sine)."""
    if not track.notes:
        return track
    on = np.array([n.on for n in track.notes], dtype=np.int64)
    off = np.array([n.off for n in track.notes], dtype=np.int64)
    velocity = np.array([n.velocity for n in track.notes], dtype=np.float64)

    # phrases: a note opens one when it starts at or after the end of every earlier note
    order = np.argsort(on, kind="stable")
    reach = np.maximum.accumulate(off[order])
    opens = np.r_[True, on[order][1:] >= reach[:-1]]
    firsts = np.flatnonzero(opens)
    phrase = np.empty(len(on), dtype=np.int64)
    phrase[order] = np.cumsum(opens) - 1
    starts = on[order][firsts]
    ends = np.maximum.reduceat(off[order], firsts)

    # samples on the grid of each phrase, from its start to its end
    counts = np.maximum(1, -(-(ends - starts) // EXPRESSION_STEP_TICKS))
    first_sample = np.r_[0, np.cumsum(counts)[:-1]]
    of_sample = np.repeat(np.arange(len(starts)), counts)
    ticks = starts[of_sample] + EXPRESSION_STEP_TICKS * (np.arange(counts.sum()) -
                                                          first_sample[of_sample])

    accent_tick, accent_ratio = _phrase_accents(curve, starts)
    swells = _swelling(curve, starts, ends, np.bincount(phrase, minlength=len(starts)),
                       accent_ratio, swell_db, swell_ticks)
    # a level ratio r heard through CC11 changes the level by 40·0.83·log10(r) dB
    swell_ratio = 10.0 ** (swells / (40.0 * VELOCITY_CURVE_EXPONENT))

    def level(t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The level of phrase ``k`` at tick ``t``: the curve, with the phrase's opening
        accent falling back to it, and a long held note's swell."""
        plain = curve.at(t)
        fall = np.clip(1.0 - (t - accent_tick[k]) / (ACCENT_FALL_QUARTERS * TICKS_PER_QUARTER),
                       0.0, 1.0)
        x = np.clip((t - starts[k]) / np.maximum(ends[k] - starts[k], 1), 0.0, 1.0)
        return plain * (1.0 + (accent_ratio[k] - 1.0) * fall) * swell_ratio[k] ** np.sin(np.pi * x)

    sampled = level(ticks.astype(np.float64), of_sample)
    # the level CC11's baseline stands for in each phrase: its opening level, or higher where
    # the phrase later rises beyond CC11's headroom
    headroom = (127.0 / baseline) ** (1.0 / VELOCITY_CURVE_EXPONENT)
    scale = np.maximum(sampled[first_sample],
                       np.maximum.reduceat(sampled, first_sample) / headroom)
    cc = np.clip(np.rint(baseline * (sampled / scale[of_sample]) ** VELOCITY_CURVE_EXPONENT),
                 1, 127).astype(np.int64)
    # each note keeps its own accent (velocity over the level at its onset) on the phrase's scale
    at_onset = level(on.astype(np.float64), phrase)
    new_velocity = np.clip(np.rint(velocity * scale[phrase] / at_onset), 1, 127).astype(np.int64)

    changed = np.r_[cc[0] != 127, cc[1:] != cc[:-1]]  # a channel starts at CC11 = 127
    expression = [Control(int(t), "control_change", EXPRESSION, int(v))
                  for t, v in zip(ticks[changed], cc[changed])]
    notes = tuple(Note(n.on, n.off, n.pitch, int(v)) for n, v in zip(track.notes, new_velocity))
    controls = tuple(sorted(track.controls + tuple(expression), key=lambda c: c.tick))
    return replace(track, notes=notes, controls=controls, expression=baseline)


def _swelling(curve: LevelCurve, starts, ends, notes, accent_ratio, swell_db: float,
              swell_ticks: int) -> np.ndarray:
    """Per phrase, the swell (dB) of a note held alone (one note), long enough, at a level that
    the score keeps steady over it (no hairpin, dynamic or accent on it); 0 for the others."""
    out = np.zeros(len(starts))
    if swell_db <= 0:
        return out
    for k in np.flatnonzero((notes == 1) & (ends - starts >= swell_ticks) & (accent_ratio == 1.0)):
        levels = curve.at(np.linspace(starts[k], ends[k], 16))
        if levels.max() - levels.min() < 1e-6:
            out[k] = swell_db
    return out


def _phrase_accents(curve: LevelCurve, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per phrase: the tick of the dynamic accent it opens with and the accent's level over
    the curve there (1.0 and no fall where it opens without one)."""
    tick = np.zeros(len(starts), dtype=np.float64)
    ratio = np.ones(len(starts), dtype=np.float64)
    for a, accent_level in curve.accents:
        k = int(np.searchsorted(starts, a - 1))  # swing may move a note by a tick or so
        if k < len(starts) and abs(int(starts[k]) - a) <= 1:
            plain = float(curve.at(np.array([float(a)]))[0])
            tick[k], ratio[k] = a, accent_level / plain if plain > 0 else 1.0
    return tick, ratio


# ---------------------------------------------------------------------------------------------
# pedals (CC64, CC66)

@dataclass(frozen=True)
class PedalMark:
    """A ``<pedal>`` in one bar: its position in quarters from the bar's start, its type and
    its number (pairs a stop with its start)."""

    bar: int
    quarters: float
    kind: str
    number: str = "1"


def pedal_marks(source: str | Path | None) -> list[list[PedalMark]] | None:
    """Each ``<part>``'s pedal marks in the MusicXML file ``source``, or None without any."""
    marks = musicxml.direction_marks(source, "pedal", printed_offset=True)
    if marks is None:
        return None
    return [[PedalMark(k, quarters, pedal.get("type", ""), pedal.get("number", "1"))
             for k, quarters, pedal in part] for part in marks]


def pedal_controls(marks: list[PedalMark], tl: form.Timeline, end_tick: int) -> list[Control]:
    """CC64/CC66 messages for one instrument's pedal marks, in played ticks.

    Every played pass of a bar presses its pedals again; ``end_tick`` lifts a pedal still down
    at the end.
    """
    # where a bar's end meets the next bar played, its lift comes before the next press
    lifts_first = {"stop": 0, "discontinue": 0, "change": 1}
    played = sorted(((round((start + mark.quarters) * TICKS_PER_QUARTER), mark)
                     for mark in marks if mark.bar < len(tl.played)
                     for start in tl.played[mark.bar]),
                    key=lambda x: (x[0], lifts_first.get(x[1].kind, 2)))
    down: dict[str, int] = {}  # pedal number → the controller it holds down
    pressed: dict[str, int] = {}  # pedal number → the controller it last pressed
    events: list[tuple[int, int, int] | None] = []  # (tick, controller, value)
    last_up: dict[int, int] = {}
    last_press: dict[int, int] = {}  # controller → index of its last press in events

    def press(tick: int, controller: int) -> None:
        lifted = last_up.get(controller)
        if lifted is not None and tick - lifted < PEDAL_CHANGE_TICKS:
            tick = lifted + PEDAL_CHANGE_TICKS  # the dampers must reach the strings first
        last_press[controller] = len(events)
        events.append((tick, controller, PEDAL_DOWN))

    def lift(tick: int, controller: int) -> None:
        i = last_press.get(controller)
        if i is not None and events[i] is not None and events[i][0] > tick:
            events[i] = None  # a change's delayed press that this lift comes before
        events.append((tick, controller, PEDAL_UP))
        last_up[controller] = tick

    for tick, mark in played:
        held = down.get(mark.number)
        if mark.kind in ("start", "sostenuto"):
            controller = SOSTENUTO_PEDAL if mark.kind == "sostenuto" else SUSTAIN_PEDAL
            if held is not None:  # "Ped." again while down: a change
                lift(tick, held)
            press(tick, controller)
            down[mark.number] = pressed[mark.number] = controller
        elif mark.kind == "resume" and held is None:  # a line without its "Ped." hook
            controller = pressed.get(mark.number, SUSTAIN_PEDAL)
            press(tick, controller)
            down[mark.number] = controller
        elif mark.kind == "change":
            controller = held if held is not None else SUSTAIN_PEDAL
            lift(tick, controller)
            press(tick, controller)
            down[mark.number] = pressed[mark.number] = controller
        elif mark.kind in ("stop", "discontinue") and held is not None:
            lift(tick, held)
            del down[mark.number]
        # continue, and a resume while down (the line after a "Ped." sign): the line's look
    last = max((e[0] for e in events if e is not None), default=0)
    for controller in down.values():
        lift(max(end_tick, last), controller)
    kept = sorted((e for e in events if e is not None), key=lambda e: e[0])
    return [Control(t, "control_change", c, v) for t, c, v in kept]
