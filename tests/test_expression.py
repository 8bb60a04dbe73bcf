"""Expression (CC11) on sustaining instruments, velocity ramps on struck ones, and the pedals."""
from __future__ import annotations

from pathlib import Path

import mido
import music21
import numpy as np
import pytest

from conftest import DATA, MUSESCORE, read
from pipeline.score import expression
from pipeline.voices.assign import assign
from pipeline.render.calibration import calibration_db
from pipeline.score.expression import EXPRESSION_BASELINE, LevelCurve, shape, sustains
from pipeline.score.load import LoadedScore, load
from pipeline.dsp.loudness import integrated_lufs
from pipeline.model import TICKS_PER_QUARTER as Q
from pipeline.model import Note, Performance, Track
from pipeline.model import DYNAMIC_VELOCITY
from pipeline.score.perform import perform, write_midi
from pipeline.render.stems import render
from pipeline.dsp.fluidsynth import Synth

LILYPOND = Path(music21.__file__).parent / "musicxml" / "lilypondTestSuite"
BAR = 4 * Q
BAR_S = 2.0  # 4/4 at 120 quarter notes a minute
CC11, CC64 = 11, 64


@pytest.fixture(scope="module")
def hairpins():
    return perform(load(DATA / "expression-hairpins.musicxml"))


@pytest.fixture(scope="module")
def hairpin_stems(hairpins, tmp_path_factory):
    """The fixture rendered dry by the pipeline's own render stage (MuseScore General)."""
    voices = assign(hairpins, soundfont=MUSESCORE)
    stems = render(hairpins, voices, stems_dir=tmp_path_factory.mktemp("stems"), workers=1)
    return [read(s.path) for s in stems.stems], voices


def _track(performance, name):
    return next(t for t in performance.tracks if t.name == name)


def _cc(track, number):
    return [(c.tick, c.value) for c in track.controls
            if c.kind == "control_change" and c.number == number]


def _rms_db(audio, sr, start_s, stop_s):
    part = audio[:, int(start_s * sr): int(stop_s * sr)]
    return 10 * np.log10(np.mean(part.astype(np.float64) ** 2))


# --- which instruments sustain ----------------------------------------------------------------

@pytest.mark.parametrize("name, program, expected", [
    ("Violin", 40, True), ("Violin", 45, False),  # pizzicato strings are plucked
    ("Harp", 46, False), ("Timpani", 47, False), ("Church Organ", 19, True),
    ("Piano", 0, False), ("Flute", None, True), ("Trumpet", None, True),
    ("Acoustic Guitar", None, False), ("Choir Aahs", 52, True),
])
def test_sustaining_instruments(name, program, expected):
    assert sustains(name, None, program) is expected


# --- expression in the performance ------------------------------------------------------------

def test_a_held_note_under_a_crescendo_gets_rising_expression(hairpins):
    violin = _track(hairpins, "Violin")
    held = violin.notes[2]  # bar 5: p, a crescendo over the whole note
    assert held.on == 4 * BAR
    curve = [v for t, v in _cc(violin, CC11) if held.on <= t < held.off]
    assert all(b >= a for a, b in zip(curve, curve[1:]))  # monotone
    assert curve[-1] - curve[0] >= 40
    assert violin.expression == EXPRESSION_BASELINE


def test_steady_dynamics_keep_velocity_and_the_baseline(hairpins):
    violin = _track(hairpins, "Violin")
    p_note, f_note, _, f_after = violin.notes
    assert (p_note.velocity, f_note.velocity, f_after.velocity) == (
        DYNAMIC_VELOCITY["p"], DYNAMIC_VELOCITY["f"], DYNAMIC_VELOCITY["f"])
    values = dict(_cc(violin, CC11))
    for note in (p_note, f_note, f_after):  # the value in force at the note's onset
        in_force = [v for t, v in sorted(values.items()) if t <= note.on][-1]
        assert in_force == EXPRESSION_BASELINE


def test_expression_is_written_to_performance_mid(hairpins, tmp_path):
    path = tmp_path / "performance.mid"
    write_midi(hairpins, path)
    midi = mido.MidiFile(str(path))
    for i, track in enumerate(hairpins.tracks):
        tick, written = 0, []
        for msg in midi.tracks[i + 1]:
            tick += msg.time
            if msg.type == "control_change" and msg.control == CC11:
                written.append((tick, msg.value))
        assert written == _cc(track, CC11)
    assert _cc(_track(hairpins, "Violin"), CC11)


def test_a_piano_gets_no_expression_but_its_hairpin_ramps_velocity(hairpins):
    piano = _track(hairpins, "Piano")
    assert piano.expression is None and not _cc(piano, CC11)
    ramp = [n.velocity for n in piano.notes if 4 * BAR <= n.on < 5 * BAR]
    assert len(ramp) == 4
    assert ramp[0] == DYNAMIC_VELOCITY["p"]
    assert all(b > a for a, b in zip(ramp, ramp[1:])) and ramp[-1] < DYNAMIC_VELOCITY["f"]


def test_overlapping_notes_share_one_curve():
    """A note starting under a held one does not pull the held note's level down: one phrase,
    CC11 rising straight through the second onset, the second note's velocity on its scale."""
    curve = LevelCurve(np.array([0.0, 4.0 * Q]), np.array([48.0, 96.0]))  # p < f over a bar
    track = Track("Flute", "Flute", (Note(0, 4 * Q, 72, 48), Note(2 * Q, 4 * Q, 76, 72)),
                  program=73)
    shaped = shape(track, curve)
    values = [v for _, v in _cc(shaped, CC11)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    first, second = shaped.notes
    assert second.velocity == first.velocity  # struck on the phrase's scale …
    k = expression.VELOCITY_CURVE_EXPONENT
    in_force = [v for t, v in _cc(shaped, CC11) if t <= second.on][-1]
    # … it sounds at its written level (velocity 72 at the baseline) through CC11:
    # velocity**k × CC11 is what FluidSynth's attenuation multiplies out to
    assert second.velocity ** k * in_force == pytest.approx(72 ** k * EXPRESSION_BASELINE,
                                                            rel=0.03)


def test_fp_on_a_held_note_falls_to_piano():
    curve = LevelCurve(np.array([0.0]), np.array([float(DYNAMIC_VELOCITY["p"])]),
                       accents=((0, float(DYNAMIC_VELOCITY["fp"])),))
    track = Track("Horn", "Horn", (Note(0, 4 * Q, 60, DYNAMIC_VELOCITY["fp"]),), program=60)
    shaped = shape(track, curve)
    cc = _cc(shaped, CC11)
    assert shaped.notes[0].velocity == DYNAMIC_VELOCITY["fp"]  # struck forte …
    assert cc[0] == (0, EXPRESSION_BASELINE)
    fallen = round(EXPRESSION_BASELINE * (49 / 96) ** expression.VELOCITY_CURVE_EXPONENT)
    assert cc[-1] == (round(expression.ACCENT_FALL_QUARTERS * Q), fallen)  # … then piano


def test_a_hairpin_without_a_closing_mark_keeps_the_level_it_reached():
    from music21 import dynamics, meter, note, stream

    part = stream.Part()
    part.append(meter.TimeSignature("4/4"))
    notes = [note.Note("C4", quarterLength=1) for _ in range(8)]
    part.insert(0, dynamics.Dynamic("p"))
    for n in notes:
        part.append(n)
    part.insert(0, dynamics.Crescendo(notes[0], notes[3]))
    (track,) = perform(LoadedScore(Path("hairpin.musicxml"), "music21",
                                   stream.Score([part]))).tracks
    velocities = [n.velocity for n in track.notes]
    assert velocities[4:] == [velocities[4]] * 4 and velocities[4] > velocities[3]


def _piano_line(marks, hairpin=None, count=8):
    """Velocities of ``count`` crotchet Cs on a piano (struck: the level is the velocity),
    with dynamics ``marks`` ({note index: mark}) and a ``hairpin`` (class, first, last note)."""
    from music21 import dynamics, instrument, meter, note, stream

    part = stream.Part()
    part.append(instrument.Piano())
    part.append(meter.TimeSignature("4/4"))
    notes = [note.Note("C4", quarterLength=1) for _ in range(count)]
    for n in notes:
        part.append(n)
    for index, mark in marks.items():
        part.insert(float(index), dynamics.Dynamic(mark))
    if hairpin is not None:
        kind, first, last = hairpin
        part.insert(float(first), kind(notes[first], notes[last]))
    (track,) = perform(LoadedScore(Path("line.musicxml"), "music21", stream.Score([part]))).tracks
    return [n.velocity for n in track.notes]


def test_a_crescendo_with_no_dynamic_at_its_end_rises_one_level():
    from music21 import dynamics

    velocities = _piano_line({0: "p"}, (dynamics.Crescendo, 0, 3))
    assert velocities[0] == DYNAMIC_VELOCITY["p"]
    assert velocities[4:] == [DYNAMIC_VELOCITY["mp"]] * 4  # p < … = mp, and it stays there
    assert velocities[0] < velocities[1] < velocities[2] < velocities[3] < velocities[4]
    down = _piano_line({0: "ff"}, (dynamics.Diminuendo, 0, 3))
    assert down[4:] == [DYNAMIC_VELOCITY["f"]] * 4  # ff > … = f


def test_a_target_the_other_way_is_played_after_the_hairpin():
    from music21 import dynamics

    # a diminuendo from mf "to" f: it falls one level over the hairpin, then f is played
    velocities = _piano_line({0: "mf", 4: "f"}, (dynamics.Diminuendo, 0, 3))
    assert velocities[0] == DYNAMIC_VELOCITY["mf"]
    assert velocities[1] > velocities[2] > velocities[3] >= DYNAMIC_VELOCITY["mp"]
    assert velocities[4:] == [DYNAMIC_VELOCITY["f"]] * 4


def test_sf_accents_its_note_and_the_level_returns():
    velocities = _piano_line({0: "p", 2: "sf"})
    assert velocities[2] == DYNAMIC_VELOCITY["sf"]
    assert velocities[:2] == velocities[3:5] == [DYNAMIC_VELOCITY["p"]] * 2


# --- phrase shaping (pipeline/data/phrasing.toml) -------------------------------------------------

def _line(pitches, lengths, *, part_instrument=None, marks=None, slur=None, articulation=None):
    """The track of a one-staff line (``pitches`` as note names, ``lengths`` in quarters),
    with dynamics ``marks`` ({note index: mark}, p at the start by default) and a slur over
    the notes ``slur`` = (first, last)."""
    from music21 import dynamics, instrument, meter, note, spanner, stream

    part = stream.Part()
    part.append(part_instrument or instrument.Piano())
    part.append(meter.TimeSignature("4/4"))
    notes = [note.Note(p, quarterLength=q) for p, q in zip(pitches, lengths)]
    if articulation is not None:  # (note index, music21 articulation class)
        notes[articulation[0]].articulations.append(articulation[1]())
    for n in notes:
        part.append(n)
    for index, mark in (marks or {0: "p"}).items():
        part.insert(float(sum(lengths[:index])), dynamics.Dynamic(mark))
    if slur is not None:
        part.insert(0, spanner.Slur(notes[slur[0]], notes[slur[1]]))
    (track,) = perform(LoadedScore(Path("line.musicxml"), "music21", stream.Score([part]))).tracks
    return track


def test_a_slurred_phrase_rises_to_its_highest_note_and_relaxes():
    from pipeline.score.phrasing import load_phrasing

    rise = load_phrasing().rise_velocity
    p = DYNAMIC_VELOCITY["p"]
    shaped = _line(["C4", "E4", "G4", "E4", "C4", "C4"], [1] * 6, slur=(0, 4))
    assert [n.velocity for n in shaped.notes] == [p, round(p + rise / 2), round(p + rise),
                                                 round(p + rise / 2), p, p]
    plain = _line(["C4", "E4", "G4", "E4", "C4", "C4"], [1] * 6)
    assert [n.velocity for n in plain.notes] == [p] * 6


def test_a_long_last_note_dies_away_unless_marked():
    from music21 import instrument
    from pipeline.score.phrasing import load_phrasing

    table = load_phrasing()
    flute = _line(["C5", "D5", "E5"], [1, 1, 4], part_instrument=instrument.Flute(),
                  marks={0: "mf"})
    last = flute.notes[-1]
    cc = [(t, v) for t, v in _cc(flute, CC11) if t >= last.on]
    # held at the baseline, then falling over its second half to one level down (mp)
    begin = last.on + table.final_from_fraction * (last.off - last.on)
    assert all(v == EXPRESSION_BASELINE for t, v in cc if t <= begin)
    falling = [v for t, v in cc if t > begin]
    assert falling == sorted(falling, reverse=True) and len(falling) > 3
    mp_over_mf = (DYNAMIC_VELOCITY["mp"] / DYNAMIC_VELOCITY["mf"]) ** \
        expression.VELOCITY_CURVE_EXPONENT
    assert falling[-1] == pytest.approx(EXPRESSION_BASELINE * mp_over_mf, abs=2)
    assert last.velocity == DYNAMIC_VELOCITY["mf"]  # struck as written
    # a dynamic on it: played as marked, no fade (only a held note's swell, back at its end);
    # a short last note: none either
    marked = _line(["C5", "D5", "E5"], [1, 1, 4], part_instrument=instrument.Flute(),
                   marks={0: "mf", 2: "f"})
    assert min(v for t, v in _cc(marked, CC11) if t > marked.notes[-1].on) >= EXPRESSION_BASELINE
    short = _line(["C5", "D5", "E5"], [1, 1, 1], part_instrument=instrument.Flute(),
                  marks={0: "mf"})
    assert all(v == EXPRESSION_BASELINE for _, v in _cc(short, CC11))


def test_a_long_held_note_swells_gently_and_comes_back():
    from music21 import dynamics, instrument
    from pipeline.score.phrasing import load_phrasing

    swell = load_phrasing().swell_db["woodwinds"]
    # a whole note in the middle of a flute line (the line goes on after it)
    flute = _line(["C5", "D5", "E5", "F5"], [1, 1, 4, 1], part_instrument=instrument.Flute(),
                  marks={0: "mf"})
    held = flute.notes[2]
    cc = [(t, v) for t, v in _cc(flute, CC11) if held.on <= t < held.off]
    top = max(v for _, v in cc)
    assert top == round(EXPRESSION_BASELINE * 10 ** (swell / 40))  # +swell dB at its middle
    middle = held.on + (held.off - held.on) / 2
    assert abs(next(t for t, v in cc if v == top) - middle) <= (held.off - held.on) / 8
    assert cc[-1][1] == EXPRESSION_BASELINE  # back by its end, for the next note
    # none under a hairpin (it does as marked), none on a piano
    from music21 import meter, note, stream
    part = stream.Part([instrument.Flute(), meter.TimeSignature("4/4")])
    notes = [note.Note(p, quarterLength=q) for p, q in (("C5", 1), ("E5", 4), ("F5", 1))]
    for n in notes:
        part.append(n)
    part.insert(0, dynamics.Dynamic("mf"))
    part.insert(1.0, dynamics.Crescendo(notes[1], notes[1]))
    (under,) = perform(LoadedScore(Path("cresc.musicxml"), "music21",
                                   stream.Score([part]))).tracks
    rising = [v for t, v in _cc(under, CC11) if under.notes[1].on <= t < under.notes[1].off]
    assert rising == sorted(rising)  # the crescendo alone: no swell back down
    piano = _line(["C4", "D4", "E4", "F4"], [1, 1, 4, 1], marks={0: "mf"})
    assert _cc(piano, CC11) == []


def test_an_accent_on_a_held_note_peaks_at_the_attack_and_falls_back():
    from music21 import articulations, instrument

    def flute(accented: bool):
        track = _line(["C5", "D5", "E5", "F5"], [1, 1, 1, 1], part_instrument=instrument.Flute(),
                      marks={0: "mf"}, articulation=(2, articulations.Accent) if accented else None)
        return track, _cc(track, CC11)

    plain, plain_cc = flute(False)
    accented, cc = flute(True)
    mf, note = DYNAMIC_VELOCITY["mf"], accented.notes[2]
    assert note.velocity == mf + 12  # struck accented …
    at_attack = [v for t, v in cc if t <= note.on][-1]
    within = [v for t, v in cc if note.on <= t < note.off]
    fallen = round(EXPRESSION_BASELINE * (mf / (mf + 12)) ** expression.VELOCITY_CURVE_EXPONENT)
    assert at_attack == EXPRESSION_BASELINE and within[-1] == fallen  # … then back to mf
    assert within == sorted(within, reverse=True)
    assert next(t for t, v in cc if v == fallen) - note.on <= expression.ACCENT_FALL_QUARTERS * Q
    assert [n.velocity for n in plain.notes] == [mf] * 4
    assert all(v == EXPRESSION_BASELINE for _, v in plain_cc)
    piano = _line(["C4", "D4", "E4", "F4"], [1, 1, 1, 1], marks={0: "mf"},
                  articulation=(2, articulations.Accent))
    assert piano.notes[2].velocity == mf + 12 and _cc(piano, CC11) == []  # struck: velocity


# --- expression as heard ------------------------------------------------------------------------

def test_the_rendered_held_note_swells(hairpin_stems):
    violin, sr = hairpin_stems[0][0]
    start = 4 * BAR_S  # bar 5
    levels = [_rms_db(violin, sr, t, t + 0.2) for t in np.arange(start + 0.2, start + 1.7, 0.2)]
    # 0.5 dB: a bowed sample's own loudness wavers a little from window to window
    assert all(b > a - 0.5 for a, b in zip(levels, levels[1:]))
    assert levels[-1] - levels[0] >= 5.0  # CC11 ~81 → ~123 over these windows: ~7 dB


def test_p_and_f_held_notes_differ_as_their_velocities_do(hairpin_stems):
    (violin, sr), voices = hairpin_stems[0][0], hairpin_stems[1]
    measured = _rms_db(violin, sr, 2 * BAR_S + 0.3, 2 * BAR_S + 1.5) - \
        _rms_db(violin, sr, 0.3, 1.5)
    # the reference: the same voice struck at p and at f with no expression at all
    v = voices[0]
    reference = []
    for velocity in (DYNAMIC_VELOCITY["p"], DYNAMIC_VELOCITY["f"]):
        with Synth(sample_rate=sr, channels=1) as synth:
            synth.select(0, v.soundfont, v.bank, v.program, drum=False)
            out = np.zeros((2, int(1.5 * sr)), dtype=np.float32)
            synth.noteon(0, 69, velocity)
            synth.process_into(out, 0, out.shape[1])
        reference.append(_rms_db(out, sr, 0.3, 1.5))
    assert measured == pytest.approx(reference[1] - reference[0], abs=1.0)


def test_calibration_of_a_sustaining_voice_is_unchanged_by_expression(tmp_path):
    """mf after calibration sounds as loud with expression as with velocity alone: the
    reference note is rendered at the expression baseline too."""
    mf = DYNAMIC_VELOCITY["mf"]
    plain = Track("Violin", "Violin", (Note(0, 4 * Q, 69, mf),), program=40)
    shaped = shape(plain, LevelCurve(np.array([0.0]), np.array([float(mf)])))
    assert _cc(shaped, CC11) == [(0, EXPRESSION_BASELINE)]
    calibrated = []
    for k, track in enumerate((plain, shaped)):
        performance = Performance("mf", "", (track,))
        voices = assign(performance, soundfont=MUSESCORE)
        gain_db, = calibration_db(performance, voices)
        stems = render(performance, voices, stems_dir=tmp_path / str(k), workers=1)
        audio, sr = read(stems.stems[0].path)
        calibrated.append(integrated_lufs(audio, sr) + gain_db)
    assert calibrated[1] == pytest.approx(calibrated[0], abs=0.5)


# --- pedals -------------------------------------------------------------------------------------

def test_pedal_start_change_stop_and_a_repeat_presses_again(tmp_path):
    performance = perform(load(DATA / "pedal.musicxml"))
    piano = performance.tracks[0]
    gap = expression.PEDAL_CHANGE_TICKS
    assert _cc(piano, CC64) == [
        (0, 127), (2 * Q, 0), (2 * Q + gap, 127),          # Ped. on bar 1, change on beat 3
        (BAR * 2, 0), (BAR * 2 + gap, 127),                 # stop at bar 2's end; the repeat
        (BAR * 2 + 2 * Q, 0), (BAR * 2 + 2 * Q + gap, 127),  # presses and changes again
        (BAR * 4, 0), (BAR * 4 + gap, 127),                  # stop; bar 3 presses again …
        (BAR * 5, 0),                                       # … never lifted: at the part's end
    ]
    path = tmp_path / "performance.mid"
    write_midi(performance, path)
    tick, written = 0, []
    for msg in mido.MidiFile(str(path)).tracks[1]:
        tick += msg.time
        if msg.type == "control_change" and msg.control == CC64:
            written.append((tick, msg.value))
    assert written == _cc(piano, CC64)


def test_lilypond_pedal_marks():
    """31a-Directions, bar 11: Ped. on beat 1, change on beat 2, * on beat 4 (divisions 1)."""
    track = perform(load(LILYPOND / "31a-Directions.xml")).tracks[0]
    bar = 10 * BAR
    gap = expression.PEDAL_CHANGE_TICKS
    assert _cc(track, CC64) == [(bar, 127), (bar + Q, 0), (bar + Q + gap, 127), (bar + 3 * Q, 0)]


def test_no_phrasing_plays_only_what_is_written(tmp_path):
    from music21 import dynamics, instrument, meter, note, spanner, stream
    from pipeline.run import perform_to_midi

    # a slurred line ending on a long note, performed (and written to MIDI) both ways
    part = stream.Part([instrument.Flute(), meter.TimeSignature("4/4")])
    notes = [note.Note(p, quarterLength=q) for p, q in zip(["C5", "E5", "G5", "E5", "C5"],
                                                            [1, 1, 1, 1, 4])]
    for n in notes:
        part.append(n)
    part.insert(0, dynamics.Dynamic("mf"))
    part.insert(0, spanner.Slur(notes[0], notes[3]))
    path = tmp_path / "line.musicxml"
    stream.Score([part]).write("musicxml", fp=str(path))
    plain = perform_to_midi(path, tmp_path / "plain.mid", phrasing=False).tracks[0]
    full = perform_to_midi(path, tmp_path / "full.mid").tracks[0]
    mf = DYNAMIC_VELOCITY["mf"]
    assert [n.velocity for n in plain.notes] == [mf] * 5  # no rise to the peak
    assert all(v == EXPRESSION_BASELINE for _, v in _cc(plain, CC11))  # no swell, no fade
    assert [n.velocity for n in full.notes] != [mf] * 5
    assert any(v != EXPRESSION_BASELINE for _, v in _cc(full, CC11))
