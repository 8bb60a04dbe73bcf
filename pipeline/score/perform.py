"""Perform stage: a parsed score becomes a :class:`Performance` (notes in ticks on a tempo map).

For music21 scores: repeats, endings and D.C./D.S. jumps are played in order
(:mod:`pipeline.score.form`), transposing instruments and octave lines sound at concert pitch, tied
notes are joined, a piano's staves form one track, metronome marks make the tempo map, dynamics
and hairpins set velocities (and, for sustaining instruments, expression: CC11), pedal marks
press the pedals (:mod:`pipeline.score.expression`), and articulations and slurs set note lengths.
Chord symbols that no one plays as written (slash parts of a rhythm section, lead sheets) are
comped (:mod:`pipeline.score.comping`).
MIDI files keep their tracks, channels, programs, controllers and tempo map.
"""
from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from pipeline.score import comping

from pipeline.score import expression

from pipeline.score import closed_score, form

from pipeline.score import musicxml

from pipeline.score import ornaments

from pipeline.score.phrasing import load_phrasing as phrasing_table, slur_rises, swell_db

from pipeline.score import techniques

from pipeline.score import timing
from pipeline.errors import ScoreError
from pipeline.score.load import LoadedScore
from pipeline.model import (DEFAULT_VELOCITY, DYNAMIC_VELOCITY, OWN_PROGRAM, TICKS_PER_QUARTER,
                            Control, Note, Performance, PlayedBar, TempoMap, Track)

log = logging.getLogger(__name__)
T = TypeVar("T")

ACCENT_DYNAMICS = {"sf", "sfz", "sffz", "fz", "rf", "rfz"}
LOUD_THEN_SOFT = {"fp": "p", "sfp": "p", "sfpp": "pp"}

#: Unpitched percussion by part name (the first phrase found in the lower-cased name wins, so
#: the longer phrases come first), then by staff position on a drum-set staff (GM keys; 83–87
#: are the GS additions every GM soundfont here plays: jingle bell, bell tree, castanets, surdo).
DRUM_BY_NAME = (
    ("bass drum", 36), ("kick", 36), ("snare", 38), ("side drum", 38), ("side stick", 37),
    ("rim shot", 37), ("hand clap", 39), ("open hi-hat", 46), ("pedal hi-hat", 44),
    ("hi-hat", 42), ("hihat", 42), ("hi hat", 42), ("ride bell", 53), ("ride", 51),
    ("china", 52), ("splash", 55), ("crash", 49), ("suspended cymbal", 49), ("cymbal", 49),
    ("triangle", 81), ("tambourine", 54), ("temple block", 76), ("woodblock", 76),
    ("wood block", 76), ("claves", 75), ("castanets", 85), ("cowbell", 56), ("tam-tam", 52),
    ("gong", 52), ("floor tom", 41), ("timbale", 65), ("tom", 45), ("conga", 63),
    ("bongo", 60), ("surdo", 87), ("cuica", 78), ("cuíca", 78), ("agogo", 67), ("cabasa", 69),
    ("guiro", 74), ("güiro", 74), ("vibraslap", 58), ("whistle", 71), ("sleigh bell", 83),
    ("jingle bell", 83), ("bell tree", 84), ("mark tree", 84), ("shaker", 70), ("maracas", 70),
)
DRUMSET_BY_POSITION = {  # (display step, octave) on a percussion-clef 5-line staff
    ("F", 4): 36, ("E", 4): 35, ("C", 5): 38, ("G", 5): 42, ("A", 5): 49, ("F", 5): 51,
    ("E", 5): 48, ("D", 5): 47, ("A", 4): 43, ("B", 4): 45, ("D", 4): 44, ("G", 4): 41,
    ("B", 5): 57,
}
DEFAULT_DRUM = 38

def perform(score: LoadedScore, *, swing: float | None = None,
            fermata_hold: float = timing.FERMATA_FACTOR, phrasing: bool = True) -> Performance:
    """Turn a loaded score into a performance. A music21 score is brought to sounding pitch
    in place (performing it again gives the same performance).

    Parameters
    ----------
    swing
        Swing ratio for eighth notes where the score does not say (2.0: the off-beat eighth at
        2/3 of the beat, as a jazz band plays); None or 0: straight. The score's own
        ``<swing>`` and "Swing"/"Straight" words take precedence (:mod:`pipeline.score.timing`).
    fermata_hold
        How many times its written length a note or rest under a fermata lasts, every part
        waiting (default 2.0). 1.0 plays fermatas unheld, as MuseScore 3 does with MusicXML
        fermatas: compare against its playback with 1.0 to see every other difference.
    phrasing
        Shape phrases as a player does (:mod:`pipeline.score.phrasing`: a slur's rise, a held
        note's swell, an accent's fall, the last note's dying away); False: as written only.

    Raises
    ------
    ScoreError
        When the score has nothing to play.
    """
    if score.kind == "midi":
        performance = _perform_midi(score.data, score.path)
    else:
        performance = _perform_music21(score.data, score.path, swing=swing,
                                       fermata_hold=fermata_hold, phrasing=phrasing)
    if not performance.tracks or performance.note_count == 0:
        raise ScoreError(f"{score.path}: the score has no notes to play")
    return performance


# ---------------------------------------------------------------------------------------------
# music21 scores

def _perform_music21(score, path: Path, *, swing: float | None = None,
                     fermata_hold: float = timing.FERMATA_FACTOR,
                     phrasing: bool = True) -> Performance:
    score = _to_sounding_pitch(score, path)
    comping.realize_numeral_chords(score, path)  # music21 keeps no Roman numeral's degree
    form.align_measures(score)
    _drum_kit_keys(score, path)
    tl = form.timeline(score, source=path)
    timed = timing.timing(score, tl, source=path, swing=swing, fermata_hold=fermata_hold)
    tempo_map = timed.tempo_map
    # a choir in closed score: each voice of a sung staff is its own part (the marks read
    # from the file stay under the staff it came from)
    groups, taken_from = closed_score.split_sung_voices(list(_instrument_groups(score)))
    slash_bars = comping.measure_style_slash_bars(score, path)
    pedals = _pedal_marks(score, path)
    sound_dynamics = _sound_dynamics(score, path)
    hairpins = _hairpins(score, path)
    tracks, played, comped = [], [], False  # played: each track's staves and dynamics
    for name, staves in groups:
        key = id(taken_from.get(id(staves[0]), staves[0]))
        plan = comping.slash_plan(name, staves, tl, slash_bars.get(key, set()))
        track, dyn = _perform_instrument(name, staves, tl, phrasing=phrasing,
                                         skip=plan.skipped if plan else frozenset(),
                                         sound_dynamics=sound_dynamics.get(key, ()),
                                         hairpins=hairpins.get(key))
        if plan is not None:  # slashes or chord symbols over rests: the player comps
            comp = comping.realize(plan, staves, tl, dyn.velocity, timed.swing)
            track = replace(track, notes=_finish_notes(
                [(n.on, n.off, n.pitch, n.velocity) for n in track.notes] + comp))
            comped = True
        track = timing.adjust(track, staves, tl, timed)
        if track.notes:
            tracks.append(_expression_and_pedals(track, dyn, staves, tl, pedals,
                                                 phrasing=phrasing))
            played.append((staves, dyn))
    pitched = [i for i, t in enumerate(tracks) if not t.is_percussion]
    if not comped and len(pitched) == 1:  # a lead sheet: nobody plays its chord symbols
        i = pitched[0]
        tracks[i + 1:i + 1] = _lead_sheet_comping(*played[i], tl, timed)
    md = score.metadata
    composer = (md.composer or "") if md else ""
    return Performance(
        title=_title(md, path), composer=str(composer).strip(),
        tracks=tuple(tracks), tempo_map=tempo_map, source=path,
        time_signature=_first_time_signature(score),
        copyright=str((md.copyright if md else None) or "").strip(),
        bars=played_bars(tl))


def played_bars(tl: form.Timeline) -> tuple[PlayedBar, ...]:
    """The bars in the order ``tl`` plays them, each with its number and pass."""
    times: dict[int, int] = {}
    bars = []
    for i, (_, start, length) in zip(tl.order, tl.segments):
        times[i] = times.get(i, 0) + 1
        bars.append(PlayedBar(i, tl.numbers[i], round(start * TICKS_PER_QUARTER),
                              round((start + length) * TICKS_PER_QUARTER), times[i]))
    return tuple(bars)


def counted_bars(end_tick: int, time_signature: tuple[int, int],
                 ticks_per_quarter: int) -> tuple[PlayedBar, ...]:
    """Bars of ``time_signature`` from the start to ``end_tick`` (a MIDI file's: it has no
    bar lines), numbered from 1."""
    beats, unit = time_signature
    length = max(1, round(beats * 4 / unit * ticks_per_quarter))
    return tuple(PlayedBar(k, str(k + 1), k * length, (k + 1) * length)
                 for k in range(max(1, -(-end_tick // length))))


def _lead_sheet_comping(staves, dyn: "_Dynamics", tl: form.Timeline, timed) -> list[Track]:
    """The piano comping under a lead sheet's melody (none if the part is not a lead sheet),
    at the melody's dynamics ``dyn``."""
    plan = comping.lead_sheet_plan(staves, tl)
    if plan is None:
        return []
    notes = _finish_notes(comping.realize(plan, staves, tl, dyn.velocity, timed.swing))
    track = Track(name=comping.LEAD_SHEET_TRACK, instrument="Piano", notes=notes,
                  program=comping.LEAD_SHEET_PROGRAM)
    track = timing.adjust(track, staves, tl, timed)
    return [track] if track.notes else []


#: MusicXML's ``<sound dynamics>`` is a percentage of this velocity (its default forte).
SOUND_DYNAMICS_FORTE = 90.0


def _sound_dynamics(score, path: Path) -> dict[int, list[tuple[float, int]]]:
    """Each music21 part's (by ``id``) playback dynamics from the MusicXML file: ``(written
    offset, velocity)`` of every ``<sound dynamics>``, a percentage of
    :data:`SOUND_DYNAMICS_FORTE` (music21 does not read them)."""
    # a playback dynamic matters only where none is printed: most stand in a <direction> with
    # a printed <dynamics>, and then the file is not parsed for them
    sound = rb"<sound\b[^>]*\bdynamics\s*="
    sounds = len(musicxml.matches(path, sound))
    beside = sum(len(re.findall(sound, d)) for d, in musicxml.matches(
        path, rb"(?s)(<direction\b(?:(?!</direction>).)*?<dynamics\b.*?</direction>)"))
    if sounds == beside:
        return {}
    parts = musicxml.sound_values(path, "dynamics")
    if not parts:
        return {}
    per_part = [[(k, quarters, int(min(127, max(1, round(percent / 100 * SOUND_DYNAMICS_FORTE)))))
                 for k, quarters, percent in part if 0 <= percent <= 1000] for part in parts]
    return _written_offsets(score, path, per_part, "<sound dynamics>")


def _written_offsets(score, path: Path, per_raw_part: list[list[tuple[int, float, T]]],
                     what: str) -> dict[int, list[tuple[float, T]]]:
    """Each music21 part's (by ``id``) items of ``per_raw_part`` (per ``<part>`` of the file:
    ``(measure index, quarter notes into the measure, item)``) as ``(written offset, item)``;
    a part the file's parts do not match is left out (:func:`musicxml.by_part` warns)."""
    by_part = musicxml.by_part(score.parts, per_raw_part, path, what)
    out = {}
    for part in score.parts:
        if id(part) in by_part:
            starts = [float(m.offset) for m in part.getElementsByClass("Measure")]
            out[id(part)] = [(starts[k] + quarters, item)
                             for k, quarters, item in by_part[id(part)] if k < len(starts)]
    return out


def _hairpins(score, path: Path) -> dict[int, list[tuple[float, float, bool]]]:
    """Each music21 part's (by ``id``) hairpins from the MusicXML file: ``(written start,
    written end, crescendo)``, each ``<wedge>`` where its direction stands (an ``<offset>``
    moves it only with ``sound="yes"``), a stop closing the hairpin of its number open at its
    time. music21 pairs them in the file's order and hangs them on notes: a stop written after
    a whole-bar note, before a ``<backup>`` to a later hairpin's start, closed the wrong one
    (MuseScore's hairpins in a second voice); a stop before a bar's first note ended its
    hairpin with the hairpin's first note (Finale); one on a piano's second staff was often
    lost. A part the file's parts do not match is left out: music21's reading is played there.
    """
    marks = musicxml.direction_marks(path, "wedge")
    if not marks:
        return {}
    per_part = [[(k, quarters, (wedge.get("type", ""), wedge.get("number", "1")))
                 for k, quarters, wedge in part] for part in marks]
    out: dict[int, list[tuple[float, float, bool]]] = {}
    unended = False
    for key, placed in _written_offsets(score, path, per_part, "hairpins").items():
        opened: dict[str, tuple[float, bool]] = {}  # number → (start, crescendo)
        out[key] = []
        # in time, at one time in the file's order (Finale writes a hairpin drawn over a
        # barline as a start at the bar's end and a stop at the next downbeat: they pair)
        for offset, (kind, number) in sorted(placed, key=lambda m: round(m[0], 6)):
            if kind == "stop" and number in opened:
                start, rising = opened.pop(number)
                out[key].append((start, offset, rising))
            elif kind in ("crescendo", "diminuendo"):  # a second while open: dropped, as MuseScore
                opened.setdefault(number, (offset, kind == "crescendo"))
        unended = unended or bool(opened)
    if unended:  # (a piano's staves share their part's hairpins: said once)
        log.warning("%s: a hairpin without an end is not played", path)
    return out


def _pedal_marks(score, path: Path) -> dict[int, list[expression.PedalMark]]:
    """The pedal marks of each music21 part (by ``id``), from the MusicXML file."""
    marks = expression.pedal_marks(path)
    return musicxml.by_part(score.parts, marks, path, "pedal marks") if marks else {}


def _expression_and_pedals(track: Track, dyn: "_Dynamics", staves, tl: form.Timeline,
                           pedals: dict[int, list[expression.PedalMark]], *,
                           phrasing: bool = True) -> Track:
    """A sustaining instrument's expression (CC11) and any instrument's pedals (CC64, CC66),
    on the notes' played ticks."""
    if not track.is_percussion and expression.sustains(track.name, track.instrument,
                                                       track.program):
        swell = swell_db(track.name, track.instrument, track.program) if phrasing else 0.0
        track = expression.shape(track, dyn.curve(), swell_db=swell, swell_ticks=round(
            phrasing_table().swell_min_quarters * TICKS_PER_QUARTER))
    # a piano's staves share one <part>: its marks once
    marks = list({id(m): m for s in staves for m in pedals.get(id(s), ())}.values())
    if marks:
        end = max(track.end_tick, round(tl.total * TICKS_PER_QUARTER))
        controls = track.controls + tuple(expression.pedal_controls(marks, tl, end))
        track = replace(track, controls=tuple(sorted(controls, key=lambda c: c.tick)))
    return track


def _title(md, path: Path) -> str:
    """The work title, else the movement name, else the file's name without its extension
    (music21 puts the file name itself in ``movementName`` when a score has no title)."""
    for value in ((md.title, md.movementName) if md else ()):
        text = str(value or "").strip()
        if text and text != path.name:
            return text
    return path.stem


def _to_sounding_pitch(score, path: Path):
    from music21 import spanner

    needs = any(p.atSoundingPitch is not True for p in score.parts) or any(
        True for _ in score.recurse().getElementsByClass(spanner.Ottava))
    if not needs:
        return score
    try:
        # in place: a copy of a large score costs seconds; the conversion is idempotent (parts
        # are marked at sounding pitch, ottavas as applied), so performing again is the same
        score.toSoundingPitch(inPlace=True)
    except Exception as exc:
        log.warning("%s: could not transpose to sounding pitch (%s)", path, exc)
    return score


def _drum_kit_keys(score, path: Path) -> None:
    """Each unpitched note that names its instrument plays that instrument's drum key
    (:func:`pipeline.score.musicxml.drum_keys`), kept as the note's ``storedInstrument`` as music21
    does for MIDI: music21 gives a drum kit's every note the part's first drum."""
    keys = musicxml.drum_keys(path)
    if not keys:
        return
    from music21 import instrument, stream

    drums: dict[int, object] = {}
    for part in score.parts:
        inst = part.getInstrument(returnDefault=False)
        placed = keys.get(getattr(inst, "partId", None))
        if not placed:
            continue
        match = re.match(r"^.*-Staff(\d+)$", str(part.id))
        staff = int(match.group(1)) if match and isinstance(part, stream.PartStaff) else 1
        for k, measure in enumerate(part.getElementsByClass(stream.Measure)):
            for el in measure.recurse().notes:
                if not _is_unpitched(el):
                    continue
                at = round(float(el.getOffsetInHierarchy(measure)), 4)
                for n in _members(el):
                    key = placed.get((k, at, staff, n.displayStep, n.displayOctave))
                    if key is None:
                        continue
                    if key not in drums:
                        drums[key] = instrument.UnpitchedPercussion()
                        drums[key].percMapPitch = key
                    n.storedInstrument = drums[key]


def _first_time_signature(score) -> tuple[int, int]:
    from music21 import meter

    ts = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
    return (ts.numerator, ts.denominator) if ts is not None else (4, 4)


def _instrument_groups(score):
    """Yield ``(name, [staves])``: a piano's PartStaffs are one instrument."""
    from music21 import layout, stream

    groups: dict[int, list] = {}
    order: list[int] = []
    staff_of: dict[int, int] = {}
    for sg in score.getElementsByClass(layout.StaffGroup):
        members = [p for p in sg.getSpannedElements() if isinstance(p, stream.PartStaff)]
        if len(members) > 1 and sg.symbol == "brace":
            for m in members:
                staff_of[id(m)] = id(members[0])
    prefix_first: dict[str, int] = {}
    for part in score.parts:
        key = staff_of.get(id(part))
        match = re.match(r"^(.*)-Staff\d+$", str(part.id)) if isinstance(part, stream.PartStaff) else None
        if key is None and match:
            key = prefix_first.setdefault(match.group(1), id(part))
        if key is None:
            key = id(part)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(part)
    for n, key in enumerate(order, start=1):
        staves = groups[key]
        first = staves[0]
        inst = first.getInstrument(returnDefault=False)
        name = (first.partName or (inst.partName if inst else None)
                or (inst.instrumentName if inst else None) or f"Part {n}")
        yield str(name).strip(), staves


@dataclass
class _Ramp:
    start: float
    end: float
    v0: float
    v1: float


class _Dynamics:
    """Velocity at any quarter-note offset from dynamics and hairpins of one instrument; the
    level reached at a hairpin's end holds until the next mark. ``hairpins``: the instrument's
    ``(written start, written end, crescendo)`` as the file places them (:func:`_hairpins`);
    None: music21's hairpin spanners, from the first note they span to the end of the last."""

    def __init__(self, staves, tl: form.Timeline, sound_dynamics=(), hairpins=None):
        from music21 import dynamics

        marks: list[tuple[float, str | int]] = []
        written = list(hairpins or ())
        printed: set[float] = set()
        for staff in staves:
            flat = staff.flatten()
            for d in flat.getElementsByClass(dynamics.Dynamic):
                printed.add(round(float(d.offset), 4))
                marks.extend((played, str(d.value)) for played in tl.map(float(d.offset)))
            wedges = staff.spannerBundle.getByClass(dynamics.DynamicWedge) if hairpins is None \
                else ()
            for hp in wedges:
                els = hp.getSpannedElements()
                if not els:
                    continue
                try:
                    start = float(els[0].getOffsetInHierarchy(staff))
                    last = els[-1]
                    end = float(last.getOffsetInHierarchy(staff)) + float(last.quarterLength)
                except Exception:
                    continue
                written.append((start, end, isinstance(hp, dynamics.Crescendo)))
        ramps_raw = [(p, p + end - start, rising) for start, end, rising in written
                     for p in tl.map(start)]
        # a playback dynamic (<sound dynamics>, a velocity) where no dynamic is printed: a
        # printed one is played from the table, whatever level its program wrote beside it
        for offset, velocity in sound_dynamics:
            if round(offset, 4) not in printed:
                marks.extend((played, velocity) for played in tl.map(offset))
        marks.sort(key=lambda m: (m[0], isinstance(m[1], int), str(m[1])))  # (as before)
        # the level in force after each mark (accents leave it; fp falls to p)
        self.offsets: list[float] = []
        self.levels: list[float] = []
        self.accents: dict[float, int] = {}
        #: articulation accents (>, ^, portato): the level a note starts at, falling back
        self.stressed: dict[float, float] = {}
        level = DEFAULT_VELOCITY
        for off, value in marks:
            if isinstance(value, int):  # a playback velocity
                level = value
                self.offsets.append(off)
                self.levels.append(level)
                continue
            value = value.lower()
            if value in ACCENT_DYNAMICS:
                self.accents[off] = DYNAMIC_VELOCITY[value]
                continue
            if value in LOUD_THEN_SOFT:
                self.accents[off] = DYNAMIC_VELOCITY[value]
                value = LOUD_THEN_SOFT[value]
            if value in DYNAMIC_VELOCITY:
                level = DYNAMIC_VELOCITY[value]
                self.offsets.append(off)
                self.levels.append(level)
        self.ramps = []
        for start, end, rising in sorted(ramps_raw):
            v0 = self.level(start)
            i = bisect.bisect_left(self.offsets, end - 1e-6)
            if i < len(self.offsets) and self.offsets[i] <= end + 4.0:
                v1 = self.levels[i]
            else:  # no dynamic at its end: one level on (MuseScore 4 reads them so)
                v1 = _next_level(v0, rising)
            if (v1 > v0) != rising:  # a target the other way is played after the hairpin
                v1 = _next_level(v0, rising)
            self.ramps.append(_Ramp(start, end, v0, v1))
            if not (i < len(self.offsets) and self.offsets[i] <= end + 1e-6):
                # the level reached holds (a hairpin without a closing mark does not snap back)
                self.offsets.insert(i, end)
                self.levels.insert(i, v1)

    def fade_out(self, start: float, end: float) -> None:
        """The piece's last note, from ``start`` to ``end`` (played quarters): if it is long and
        no dynamic or hairpin is on it, it falls ``fall_levels`` levels over its last part
        (:mod:`pipeline.score.phrasing`)."""
        table = phrasing_table()
        if end - start < table.final_min_quarters or table.final_fall_levels <= 0:
            return
        marked = any(start - 1e-6 <= off <= end + 1e-6 for off in (*self.offsets,
                                                                   *self.accents)) or \
            any(r.start < end + 1e-6 and r.end > start - 1e-6 for r in self.ramps)
        if marked:
            return
        begin = start + table.final_from_fraction * (end - start)
        v0 = v1 = self.level(begin)
        for _ in range(table.final_fall_levels):
            v1 = _next_level(v1, False)
        self.ramps.append(_Ramp(begin, end, v0, v1))
        i = bisect.bisect_left(self.offsets, end)
        self.offsets.insert(i, end)
        self.levels.insert(i, v1)

    def stress(self, offset: float, level: float) -> None:
        """A note at ``offset`` (played quarters) accented by its articulation starts at
        ``level``: on a held note the accent peaks at the attack and falls back to the dynamic
        (as an sfz does), rather than the whole note being louder."""
        self.stressed[offset] = max(self.stressed.get(offset, 0.0), level)

    def level(self, offset: float) -> float:
        i = bisect.bisect_right(self.offsets, offset + 1e-6) - 1
        return self.levels[i] if i >= 0 else DEFAULT_VELOCITY

    def velocity(self, offset: float) -> float:
        if offset in self.accents:
            return self.accents[offset]
        return self._written(offset)

    def _written(self, offset: float) -> float:
        """The level at ``offset`` from dynamics and hairpins, accents left out."""
        for r in self.ramps:
            if r.start <= offset < r.end:
                return r.v0 + (r.v1 - r.v0) * (offset - r.start) / (r.end - r.start)
        return self.level(offset)

    def curve(self) -> expression.LevelCurve:
        """The level as a continuous curve in played ticks (for expression). Between two
        consecutive marks or hairpin ends the level is constant or one ramp, so it is exact
        as straight lines through the values just before and at each of them."""
        points = sorted({*self.offsets, *(r.start for r in self.ramps),
                         *(r.end for r in self.ramps)})
        eps = 1e-4  # over level()'s tolerance of 1e-6, under a tick
        xs = [x for p in points for x in (p - eps, p)] or [0.0]
        levels = [self._written(x) for x in xs]
        marked = {**self.stressed, **{off: float(v) for off, v in self.accents.items()}}
        accents = tuple(sorted((round(off * TICKS_PER_QUARTER), float(v))
                               for off, v in marked.items()))
        return expression.LevelCurve(np.array(xs) * TICKS_PER_QUARTER, np.array(levels),
                                     accents)


#: The dynamic levels a hairpin moves between, softest first (pppp … ffff).
LEVELS = sorted(DYNAMIC_VELOCITY[d] for d in ("pppp", "ppp", "pp", "p", "mp", "mf", "f", "ff",
                                              "fff", "ffff"))


def _next_level(velocity: float, rising: bool) -> float:
    """The next dynamic level above (``rising``) or below ``velocity``; the loudest or softest
    beyond the scale's ends."""
    if rising:
        return float(next((v for v in LEVELS if v > velocity + 1e-6), LEVELS[-1]))
    return float(next((v for v in reversed(LEVELS) if v < velocity - 1e-6), LEVELS[0]))


def _unfilled_bar_ends(staff) -> dict[int, int]:
    """Where this staff leaves a bar's end unfilled (it holds less than the bar the other parts
    make, :func:`~pipeline.score.form.align_measures`): written tick of the gap's start → its
    length in ticks. A tie into the next bar goes on across such a gap: nothing is written
    there, not even a rest (Monteverdi, madrigal 4.1: the canto's whole notes in breve bars)."""
    from music21 import stream

    measures = list(staff.getElementsByClass(stream.Measure))
    gaps: dict[int, int] = {}
    for m, after in zip(measures, measures[1:]):
        end = round((float(m.offset) + float(m.highestTime)) * TICKS_PER_QUARTER)
        gap = round(float(after.offset) * TICKS_PER_QUARTER) - end
        if gap > 0:
            gaps[end] = gap
    return gaps


def _slurred_ids(staff, flat) -> set[int]:
    """Ids of notes inside a slur that are not its last note (they connect to the next).
    music21 puts only a slur's first and last notes into the spanner, so the notes between
    them (by offset on this staff) are found here."""
    from music21 import spanner

    ids: set[int] = set()
    slurs = list(staff.spannerBundle.getByClass(spanner.Slur))
    if not slurs:
        return ids
    notes = list(flat.notes)
    offsets = [float(n.offset) for n in notes]
    offset_of = {id(n): off for n, off in zip(notes, offsets)}  # not getOffsetInHierarchy: slow
    for slur in slurs:
        els = slur.getSpannedElements()
        if not els:
            continue
        ids.update(id(e) for e in els[:-1])
        start, end = offset_of.get(id(els[0])), offset_of.get(id(els[-1]))
        if start is None or end is None:
            continue
        lo, hi = bisect.bisect_left(offsets, start), bisect.bisect_left(offsets, end)
        ids.update(id(n) for n in notes[lo:hi])
    return ids


def _perform_instrument(name: str, staves, tl: form.Timeline, *, phrasing: bool = True,
                        skip: frozenset[int] = frozenset(),
                        sound_dynamics=(), hairpins=None) -> tuple[Track, "_Dynamics"]:
    """One instrument's notes as written, and its dynamics; ``skip`` holds ids of notes not
    to play (slashes that :mod:`pipeline.score.comping` realizes); ``sound_dynamics``: the
    part's ``(written offset, velocity)`` playback dynamics, ``hairpins`` its hairpins read
    from the file (see :class:`_Dynamics`)."""
    first = staves[0]
    inst = first.getInstrument(returnDefault=False)
    program = inst.midiProgram if inst is not None else None
    dyn = _Dynamics(staves, tl, sound_dynamics, hairpins)
    all_unpitched = True
    # on, off, pitch, velocity, where a tie from it goes on (played ticks: its written end, or
    # past the unfilled end of its bar)
    events: list[tuple[int, int, int, int, int]] = []
    controls: list[Control] = []
    percussion_key = _percussion_key(name, inst)
    for staff in staves:
        flat = staff.flatten()
        slurred = _slurred_ids(staff, flat)
        rises = slur_rises(staff, flat) if phrasing else {}
        figures = ornaments.spanner_index(staff)
        unfilled = _unfilled_bar_ends(staff)
        # pitch → index into events of a tie still open
        open_ties: dict[int, int] = {}
        pending_grace: list = []
        played = sorted(((p, k, el) for k, el in enumerate(flat.notes) for p in tl.map(float(el.offset))),
                        key=lambda x: (x[0], x[1]))
        for offset, _, el in played:
            if id(el) in skip:
                continue
            if el.duration.isGrace:
                pending_grace.append(el)
                continue
            on = round(offset * TICKS_PER_QUARTER)
            dur = round(float(el.quarterLength) * TICKS_PER_QUARTER)
            if dur <= 0:
                continue
            if pending_grace:
                on, dur = _play_graces(pending_grace, el, on, dur, offset, dyn, events,
                                        percussion_key, figures)
                pending_grace = []
            gate, weight, breath = ornaments.articulation(el, id(el) in slurred)
            if breath:  # the note ends a breath early (a figure too: its notes fit before)
                gate = min(gate, (_breath_end(on, on + dur) - on) / dur)
            if weight > 0 and phrasing:
                dyn.stress(offset, dyn.velocity(offset) + weight)
            velocity = dyn.velocity(offset) + weight + rises.get(id(el), 0.0)
            pitches = _pitches(el, percussion_key)
            # where a tie from this note goes on: its end, or past the unfilled end of its bar
            tie_on = on + dur + unfilled.get(round((float(el.offset) + float(el.quarterLength))
                                                   * TICKS_PER_QUARTER), 0)
            if _is_unpitched(el):
                ties = [None] * len(pitches)
                if ornaments.is_tremolo(el, figures):  # a roll: the strokes, not one hit
                    events.extend((a, b, p, v, b) for a, b, p, v in ornaments.figure(
                        el, on, dur, pitches, int(round(velocity)), 1.0, name, figures) or ()
                        if 0 <= p <= 127)
                    continue
            else:
                all_unpitched = False
                ties = [n.tie.type if n.tie is not None else None for n in _members(el)]
                fig = ornaments.figure(el, on, dur, pitches, int(round(velocity)), gate, name,
                                       figures)
                if fig is not None:  # trill, mordent, turn, tremolo, glissando, arpeggio
                    events.extend((a, b, p, v, b) for a, b, p, v in fig if 0 <= p <= 127)
                    for p in pitches:
                        open_ties.pop(p, None)
                    if fig and ties[-1] in ("start", "continue") and events[-1][2] == pitches[-1]:
                        # a tie goes on from the last note, at the figure's written end
                        events[-1] = events[-1][:4] + (tie_on,)
                        open_ties[pitches[-1]] = len(events) - 1
                    continue
            for pitch, tie in zip(pitches, ties):
                if not 0 <= pitch <= 127:
                    continue
                idx = open_ties.get(pitch)
                # a tie goes on into the next note of its pitch, also one written without the
                # tie's stop (Monteverdi, madrigal 4.1, canto bars 1–2, or with a start alone:
                # basso bars 31–33) and one in a 2nd ending the play order jumped to (Maple
                # Leaf Rag bars 65–67)
                if idx is not None and abs(events[idx][4] - on) <= 1:
                    e = events[idx]
                    off = e[0] + round((on + dur - e[0]) * gate)
                    if breath:  # the breath is taken from the whole tied note
                        off = max(e[0] + 1, min(off, _breath_end(e[0], on + dur)))
                    events[idx] = (e[0], off, pitch, e[3], tie_on)
                    if tie in ("start", "continue"):
                        open_ties[pitch] = idx
                    else:
                        open_ties.pop(pitch, None)
                    continue
                events.append((on, on + max(1, round(dur * gate)), pitch,
                               int(round(velocity)), tie_on))
                if tie in ("start", "continue"):
                    open_ties[pitch] = len(events) - 1
                else:
                    open_ties.pop(pitch, None)
    notes = _finish_notes(events)
    last = max(notes, key=lambda n: (n.off, n.on), default=None)
    if phrasing and last is not None and \
            last.off >= round((tl.total - 1.0) * TICKS_PER_QUARTER):
        # the piece's last note (in this part): it may die away
        dyn.fade_out(last.on / TICKS_PER_QUARTER, last.off / TICKS_PER_QUARTER)
    is_percussion = bool(notes) and all_unpitched and not _is_pitched_percussion(inst)
    if not is_percussion:  # a drum channel's program chooses the kit
        controls.extend(techniques.program_changes(staves, name=name, inst=inst,
                                                   program=program, tl=tl))
    return Track(name=name, instrument=(inst.instrumentName if inst and inst.instrumentName else name),
                 notes=notes, controls=tuple(controls),
                 program=None if is_percussion else program,  # music21 gives drums melodic numbers
                 is_percussion=is_percussion), dyn


def _breath_end(on: int, end: int) -> int:
    """Where a note from ``on`` to its written ``end`` that carries a breath mark stops
    sounding: :data:`~pipeline.score.timing.BREATH_QUARTERS` early, at most a third of the note."""
    return end - min(round(timing.BREATH_QUARTERS * TICKS_PER_QUARTER), (end - on) // 3)


def _play_graces(graces, main, on: int, dur: int, offset: float, dyn: _Dynamics, events,
                 percussion_key, figures):
    """Grace notes before ``main`` (timing rules in :mod:`pipeline.score.ornaments`); returns the
    main note's new onset and length."""
    times, on, dur = ornaments.grace_timing(graces, on, dur, main, figures)
    for g, slot in zip(graces, times):
        if slot is None:  # no room left in a very short main note
            continue
        a, b, factor = slot
        vel = int(round(dyn.velocity(offset) * factor))
        events.extend((a, b, p, vel, b) for p in _pitches(g, percussion_key) if 0 <= p <= 127)
    return on, dur


def _is_unpitched(el) -> bool:
    """An unpitched (percussion) note or a chord of them."""
    return "Unpitched" in el.classes or el.classes[0] == "PercussionChord"


def _members(el) -> list:
    """The notes of a chord or percussion chord (``isChord`` is False for the latter), or the
    single note."""
    return list(el.notes) if el.isChord or el.classes[0] == "PercussionChord" else [el]


def _pitches(el, percussion_key: int | None) -> list[int]:
    """The MIDI keys a note, chord, unpitched note or percussion chord strikes (a drum's key
    for an unpitched one: :func:`_drum_pitch`)."""
    return [_drum_pitch(n, percussion_key) if "Unpitched" in n.classes else int(round(n.pitch.ps))
            for n in _members(el)]


def _percussion_key(name: str, inst) -> int | None:
    if inst is not None and getattr(inst, "percMapPitch", None) is not None:
        return int(inst.percMapPitch)
    lowered = name.lower()
    for word, key in DRUM_BY_NAME:
        if word in lowered:
            return key
    return None


def _drum_pitch(unpitched, percussion_key: int | None) -> int:
    stored = getattr(unpitched, "storedInstrument", None)
    if stored is not None and getattr(stored, "percMapPitch", None) is not None:
        return int(stored.percMapPitch)
    if percussion_key is not None:
        return percussion_key
    position = (getattr(unpitched, "displayStep", None), getattr(unpitched, "displayOctave", None))
    return DRUMSET_BY_POSITION.get(position, DEFAULT_DRUM)


def _is_pitched_percussion(inst) -> bool:
    return inst is not None and inst.classes[0] in ("Timpani", "Xylophone", "Marimba",
                                                    "Vibraphone", "Glockenspiel", "TubularBells")


def _finish_notes(events) -> tuple[Note, ...]:
    """Sort, clamp, and cut a note where the same pitch is struck again before it ends."""
    events = sorted((e[0], e[1], e[2], e[3]) for e in events)
    last_by_pitch: dict[int, int] = {}
    out: list[list[int]] = []
    for on, off, pitch, vel in events:
        vel = min(127, max(1, vel))
        prev = last_by_pitch.get(pitch)
        if prev is not None and out[prev][1] > on:
            if out[prev][0] == on:  # the same note twice (unison voices): keep the louder, longer
                out[prev][1] = max(out[prev][1], off)
                out[prev][3] = max(out[prev][3], vel)
                continue
            out[prev][1] = on
        last_by_pitch[pitch] = len(out)
        out.append([on, max(off, on + 1), pitch, vel])
    return tuple(Note(*e) for e in out)


# ---------------------------------------------------------------------------------------------
# MIDI files

def _perform_midi(midi, path: Path) -> Performance:
    tempo_changes: dict[int, int] = {}
    title = ""
    notice = ""
    time_sig = (4, 4)
    tracks: list[Track] = []
    for track_no, mtrack in enumerate(midi.tracks):
        tick = 0
        name = ""
        per_channel: dict[int, dict] = {}
        for msg in mtrack:
            tick += msg.time
            if msg.is_meta:
                if msg.type == "set_tempo":
                    tempo_changes[tick] = msg.tempo
                elif msg.type == "track_name" and not name:
                    name = msg.name.strip()
                elif msg.type == "time_signature" and tick == 0:
                    time_sig = (msg.numerator, msg.denominator)
                elif msg.type == "copyright" and not notice:
                    notice = msg.text.strip()
                continue
            if not hasattr(msg, "channel"):
                continue
            ch = per_channel.setdefault(msg.channel, {"open": {}, "notes": [], "controls": [],
                                                      "program": None, "bank": 0})
            if msg.type == "note_on" and msg.velocity > 0:
                ch["open"].setdefault(msg.note, []).append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on"):
                stack = ch["open"].get(msg.note)
                if stack:
                    on, vel = stack.pop(0)
                    ch["notes"].append((on, max(tick, on + 1), msg.note, vel))
            elif msg.type == "program_change":
                if ch["program"] is None and not ch["notes"] and not any(ch["open"].values()):
                    ch["program"] = msg.program
                else:
                    ch["controls"].append(Control(tick, "program_change", msg.program, ch["bank"]))
            elif msg.type == "control_change":
                if msg.control == 0:
                    ch["bank"] = msg.value
                ch["controls"].append(Control(tick, "control_change", msg.control, msg.value))
            elif msg.type == "pitchwheel":
                ch["controls"].append(Control(tick, "pitchwheel", 0, msg.pitch))
        if track_no == 0 and name and not any(c["notes"] for c in per_channel.values()):
            title = name
        for channel, ch in sorted(per_channel.items()):
            for pitch, stack in ch["open"].items():  # notes never released end at the track end
                ch["notes"].extend((on, max(tick, on + 1), pitch, vel) for on, vel in stack)
            if not ch["notes"]:
                continue
            percussion = channel == 9
            label = name or ("Drums" if percussion else f"Channel {channel + 1}")
            if len(per_channel) > 1 and sum(bool(c["notes"]) for c in per_channel.values()) > 1:
                label = f"{label} (ch {channel + 1})"
            tracks.append(Track(
                name=label, instrument=label, notes=_finish_notes(ch["notes"]),
                controls=tuple(sorted(ch["controls"], key=lambda c: c.tick)),
                program=ch["program"] if ch["program"] is not None else (None if percussion else 0),
                bank=ch["bank"] or None, is_percussion=percussion))
    changes = sorted(tempo_changes.items())
    sane = [(t, us) for t, us in changes if 60e6 / timing.MAX_BPM <= us <= 60e6 / timing.MIN_BPM]
    if len(sane) < len(changes):  # as timing does for MusicXML: the tempo before continues
        tick, us = next(c for c in changes if c not in sane)
        log.warning("%s: %d tempo change(s) outside %g to %g BPM ignored (the first: %s BPM at "
                    "tick %d); the tempo before each continues", path, len(changes) - len(sane),
                    timing.MIN_BPM, timing.MAX_BPM, f"{60e6 / us:g}" if us else "infinite", tick)
        changes = sane
    if not changes or changes[0][0] != 0:
        changes.insert(0, (0, 500_000))
    performance = Performance(title=title or path.stem, composer="", tracks=tuple(tracks),
                              tempo_map=TempoMap(midi.ticks_per_beat, tuple(changes)),
                              source=path, time_signature=time_sig, copyright=notice)
    return replace(performance, bars=counted_bars(performance.end_tick, time_sig,
                                                  midi.ticks_per_beat))


# ---------------------------------------------------------------------------------------------
# performance.mid

def write_midi(performance: Performance, path: Path, programs: list[tuple[int, int]] | None = None) -> None:
    """Write the performance as a type-1 MIDI file, one named track per instrument.

    ``programs`` gives each track's ``(bank, program)`` as rendered (from the assign stage);
    without it the score's own programs are written.

    The file's bytes are made here (the same bytes as mido's ``MidiFile.save`` of the same
    messages, running status included: tests/test_units.py), at a tenth of the time of
    building a mido message per event.
    """
    from pipeline.files import atomic_path

    conductor = [(0, 0, _meta(0x03, _midi_text(performance.title).encode("latin-1")))]
    num, den = performance.time_signature
    if den in (1, 2, 4, 8, 16, 32, 64):
        conductor.append((0, 0, _meta(0x58, bytes((num, den.bit_length() - 1, 24, 8)))))
    conductor += [(t, 0, _meta(0x51, us.to_bytes(3, "big")))
                  for t, us in performance.tempo_map.changes]
    tracks = [conductor]
    melodic = [c for c in range(16) if c != 9]
    n_melodic = 0
    for i, track in enumerate(performance.tracks):
        if track.is_percussion:
            channel = 9
        else:
            channel = melodic[n_melodic % len(melodic)]
            n_melodic += 1
        bank, program = programs[i] if programs else (track.bank or 0, track.program or 0)
        cc, pc, bend = 0xB0 | channel, 0xC0 | channel, 0xE0 | channel
        timed: list[tuple[int, int, bytes]] = []
        if not track.is_percussion:
            timed.append((0, 0, _channel_bytes(cc, 0, min(127, bank))))
        timed.append((0, 1, _channel_bytes(pc, program)))
        for c in track.controls:
            if c.kind == "control_change":
                msg = _channel_bytes(cc, c.number, c.value)
            elif c.kind == "program_change":
                msg = _channel_bytes(pc, program if c.number == OWN_PROGRAM else c.number)
            else:
                if not -8192 <= c.value <= 8191:
                    raise ValueError(f"pitch bend {c.value} out of range")
                value = c.value + 8192
                msg = bytes((bend, value & 0x7F, value >> 7))
            timed.append((c.tick, 2, msg))
        on, off = 0x90 | channel, 0x80 | channel
        for n in track.notes:
            timed.append((n.off, 1, _channel_bytes(off, n.pitch, 0)))
            timed.append((n.on, 3, _channel_bytes(on, n.pitch, n.velocity)))
        timed.sort(key=lambda x: (x[0], x[1]))
        tracks.append([(0, 0, _meta(0x03, _midi_text(track.name).encode("latin-1"))), *timed])
    data = bytearray(b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
                     + len(tracks).to_bytes(2, "big")
                     + performance.tempo_map.ticks_per_quarter.to_bytes(2, "big"))
    for events in tracks:
        chunk = _track_bytes(events)
        data += b"MTrk" + len(chunk).to_bytes(4, "big") + chunk
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(data))


def _channel_bytes(status: int, *data: int) -> bytes:
    """A channel message's bytes (data bytes checked: 0–127)."""
    for value in data:
        if not 0 <= value <= 127:
            raise ValueError(f"MIDI data byte {value} out of range (status {status:#x})")
    return bytes((status, *data))


def _meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + _variable_length(len(data)) + data


def _variable_length(value: int) -> bytes:
    """A MIDI variable-length quantity: seven bits a byte, most significant first."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _track_bytes(events: list[tuple[int, int, bytes]]) -> bytes:
    """A track's events (absolute tick, order, message bytes; in play order) as a chunk's
    data: delta times, running status for channel messages, an end-of-track at the end."""
    data, last, running = bytearray(), 0, None
    for tick, _, msg in events:
        if tick < last:
            raise ValueError("MIDI events out of order")
        data += _variable_length(tick - last)
        last = tick
        status = msg[0]
        if status == 0xFF:
            running = None
            data += msg
        else:
            data += msg[1:] if status == running else msg
            running = status
    return bytes(data + b"\x00\xff\x2f\x00")


def _midi_text(text: str) -> str:
    """``text`` as a MIDI meta event can hold it (mido writes Latin-1): 'Clarinet in B♭' is
    written 'Clarinet in Bb', other characters outside Latin-1 as '?'."""
    text = text.replace("♭", "b").replace("♯", "#")
    return text.encode("latin-1", "replace").decode("latin-1")
