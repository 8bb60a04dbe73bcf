"""Articulations, grace notes, ornaments and octave lines, each checked as a musician would
hear it, on two small fixtures and on music21's copy of the LilyPond MusicXML test suite."""
from __future__ import annotations

from pathlib import Path

import music21
import pytest

from pipeline.errors import ScoreError
from pipeline.score.load import LoadedScore, load
from pipeline.model import TICKS_PER_QUARTER as Q
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"
LILYPOND = Path(music21.__file__).parent / "musicxml" / "lilypondTestSuite"
BAR = 4 * Q


def notes_of(path: Path):
    (track,) = perform(load(path)).tracks
    return track.notes


@pytest.fixture(scope="module")
def art():
    return notes_of(DATA / "articulations.musicxml")


@pytest.fixture(scope="module")
def orn():
    return notes_of(DATA / "ornaments.musicxml")


def beat(notes, bar: int, start: float, end: float | None = None):
    """Notes starting in [start, end) quarter notes into bar ``bar`` (1-based)."""
    end = start + 1 if end is None else end
    lo, hi = (bar - 1) * BAR + start * Q, (bar - 1) * BAR + end * Q
    return [n for n in notes if lo <= n.on < hi]


def length(n) -> float:
    return (n.off - n.on) / Q


# --- articulations ------------------------------------------------------------------------

def test_staccato_is_half_and_staccatissimo_a_quarter(art):
    (stacc,), (stacciss,), (ten,), (plain,) = (beat(art, 1, b) for b in range(4))
    assert length(stacc) == pytest.approx(0.5, abs=0.02)
    assert length(stacciss) == pytest.approx(0.25, abs=0.02)
    assert length(ten) == pytest.approx(1.0)
    assert 0.85 < length(plain) < 1.0  # a small natural gap


def test_portato_three_quarters_spiccato_shorter_than_staccato(art):
    (portato,), (spicc,) = beat(art, 4, 2), beat(art, 4, 3)
    assert length(portato) == pytest.approx(0.75, abs=0.02)
    assert 0.25 < length(spicc) < 0.5


def test_accent_and_marcato_are_louder_than_neighbours(art):
    plain1, accent, plain2, marcato = (beat(art, 2, b)[0].velocity for b in range(4))
    assert accent > plain1 == plain2 and marcato > accent
    assert (beat(art, 4, 2)[0].velocity > beat(art, 4, 3)[0].velocity)  # portato weighted


def test_slurred_notes_connect_and_the_slur_end_does_not(art):
    e, f, g, a = (beat(art, 3, b)[0] for b in range(4))
    assert e.off == f.on and f.off == g.on and g.off == a.on
    assert a.off < a.on + Q


def test_breath_mark_shortens_the_note_before_it(art):
    (held,) = beat(art, 4, 0, 2)
    assert 1.6 <= length(held) <= 1.8  # half note minus a 16th: the breath


# --- ornaments ----------------------------------------------------------------------------

def test_trill_alternates_with_the_upper_neighbour_and_its_accidental(orn):
    plain, sharp = beat(orn, 1, 0), beat(orn, 1, 1)
    assert [n.pitch for n in plain[:4]] == [76, 77, 76, 77]  # E5 F5: diatonic in C major
    assert {n.pitch for n in sharp} == {76, 78}  # accidental-mark sharp: F#5
    assert plain[0].pitch == plain[-1].pitch == 76 and len(plain) % 2 == 1
    assert all(a.off <= b.on for a, b in zip(plain, plain[1:]))


def test_trill_follows_the_key_signature(orn):
    notes = beat(orn, 4, 0)  # A4 in F major: the upper note is B flat
    assert {n.pitch for n in notes} == {69, 70}


def test_mordents(orn):
    assert [n.pitch for n in beat(orn, 1, 2)] == [72, 71, 72]  # mordent: main-lower-main
    assert [n.pitch for n in beat(orn, 1, 3)] == [72, 74, 72]  # inverted: main-upper-main


def test_turn_plays_upper_main_lower_main(orn):
    assert [n.pitch for n in beat(orn, 2, 0)] == [74, 72, 71, 72]


def test_single_note_tremolo_repeats_at_the_marked_rate(orn):
    notes = beat(orn, 2, 1)  # a quarter with two strokes: four 16ths
    assert [n.pitch for n in notes] == [67] * 4
    assert [n.on - notes[0].on for n in notes] == [0, Q // 4, Q // 2, 3 * Q // 4]


def test_arpeggiated_chord_rolls_upwards_and_holds(orn):
    chord = sorted(beat(orn, 2, 2, 4), key=lambda n: n.pitch)
    onsets = [n.on for n in chord]
    assert onsets == sorted(onsets) and len(set(onsets)) == 3
    assert chord[0].on == BAR + 2 * Q  # the bottom note on the beat
    assert len({n.off for n in chord}) == 1


def test_glissando_runs_up_to_the_next_note(orn):
    run = beat(orn, 4, 1)
    pitches = [n.pitch for n in run]
    assert pitches[0] == 72 and pitches == sorted(pitches) and pitches[-1] < 79
    assert run[-1].off <= beat(orn, 4, 2)[0].on


# --- grace notes --------------------------------------------------------------------------

def test_appoggiatura_takes_half_of_the_main_note(orn):
    grace, main = beat(orn, 3, 0, 2)
    assert grace.pitch == 74 and grace.on == 2 * BAR  # on the beat
    assert length(grace) == pytest.approx(1.0)  # half of a half note
    assert main.on == grace.off


def test_appoggiatura_takes_two_thirds_of_a_dotted_note(orn):
    grace, main = beat(orn, 5, 0, 1.5)
    assert length(grace) == pytest.approx(1.0) and main.on == grace.off


def test_acciaccatura_is_short_and_on_the_beat(orn):
    grace, main = beat(orn, 3, 2)
    assert grace.on == 2 * BAR + 2 * Q and length(grace) <= 0.125
    assert grace.velocity < main.velocity


# --- octave lines -------------------------------------------------------------------------

def test_8va_passage_sounds_as_marked(orn):
    # MusicXML pitches are the sounding ones: the 8va notes must not be raised a second time
    assert [n.pitch for n in beat(orn, 5, 2, 4)] == [84, 86]


def test_transposing_ottava_sounds_an_octave_up():
    from music21 import meter, note, spanner, stream

    part = stream.Part()
    m = stream.Measure(number=1)
    m.append(meter.TimeSignature("4/4"))
    written = [note.Note("C5"), note.Note("D5"), note.Note("E5"), note.Note("F5")]
    for n in written:
        m.append(n)
    part.append(m)
    part.insert(0, spanner.Ottava(written[1:3], type="8va", transposing=True))
    score = stream.Score([part])
    (track,) = perform(LoadedScore(Path("ottava.musicxml"), "music21", score)).tracks
    assert [n.pitch for n in track.notes] == [72, 74 + 12, 76 + 12, 77]


def test_lilypond_octave_shifts_sound_at_their_pitch():
    notes = notes_of(LILYPOND / "33d-Spanners-OctaveShifts.xml")
    assert [n.pitch for n in notes][2:6] == [93, 48, 47, 81]  # 15ma A6, 15mb C3 B2, 8va A5


# --- the LilyPond suite -------------------------------------------------------------------

def test_lilypond_grace_notes():
    notes = notes_of(LILYPOND / "24a-GraceNotes.xml")
    # bar 1: an unslashed 16th before a quarter takes half of it
    assert (notes[0].pitch, notes[0].on, notes[0].off) == (74, 0, Q // 2)
    assert (notes[1].pitch, notes[1].on) == (72, Q // 2)


def test_lilypond_ornaments():
    notes = notes_of(LILYPOND / "32aa-Notations2_Ornaments.xml")
    turn = [n.pitch for n in notes if Q <= n.on < 2 * Q]
    inverted = [n.pitch for n in notes if 3 * Q <= n.on < 4 * Q]
    assert turn == [74, 72, 71, 72] and inverted == [71, 72, 74, 72]


def test_lilypond_suite_performs_without_exceptions():
    files = sorted(p for p in LILYPOND.iterdir() if p.suffix in (".xml", ".mxl"))
    assert len(files) > 100
    silent = []
    for path in files:
        try:
            perform(load(path))
        except ScoreError as exc:
            assert "no notes" in str(exc), f"{path.name}: {exc}"
            silent.append(path.name)
    assert len(silent) == 17, silent


def test_a_grace_on_the_upper_neighbour_starts_the_trill():
    # Mozart K. 80/i bar 2: a 16th grace A5 before a trilled quarter G5 is the trill's upper-note
    # start (a short first note), not an appoggiatura taking half of the G
    from music21 import expressions, meter, note, stream

    m = stream.Measure(number=1)
    m.append(meter.TimeSignature("3/4"))
    grace = note.Note("A5", type="16th").getGrace(appoggiatura=True)
    trilled = note.Note("G5", quarterLength=1.0)
    trilled.expressions.append(expressions.Trill())
    for n in (grace, trilled, note.Note("F#5", quarterLength=2.0)):
        m.append(n)
    score = stream.Score([stream.Part([m])])
    (track,) = perform(LoadedScore(Path("trill.musicxml"), "music21", score)).tracks
    first_beat = [n for n in track.notes if n.on < Q]
    assert first_beat[0].pitch == 81 and length(first_beat[0]) <= 0.125
    assert [n.pitch for n in first_beat[1:4]] == [79, 81, 79]
    assert first_beat[-1].pitch == 79 and len(first_beat) >= 6  # the trill fills the beat


def _one_part_score(*bars, time="4/4"):
    """A one-part music21 score of the given bars (lists of notes), the first with ``time``."""
    from music21 import meter, stream

    part = stream.Part()
    for k, content in enumerate(bars, start=1):
        m = stream.Measure(number=k)
        if k == 1:
            m.append(meter.TimeSignature(time))
        for el in content:
            m.append(el)
        part.append(m)
    return stream.Score([part])


def test_a_tie_out_of_a_trilled_note_holds_and_does_not_strike_again():
    # a trilled whole note C5 tied over the bar line: the trill's last note (the main note)
    # holds through the tied whole note; nothing is struck at the second bar
    from music21 import expressions, note, tie

    trilled = note.Note("C5", quarterLength=4.0)
    trilled.expressions.append(expressions.Trill())
    trilled.tie = tie.Tie("start")
    held = note.Note("C5", quarterLength=4.0)
    held.tie = tie.Tie("stop")
    score = _one_part_score([trilled], [held])
    (track,) = perform(LoadedScore(Path("trill-tie.musicxml"), "music21", score)).tracks
    assert not [n for n in track.notes if n.on >= BAR]  # no new onset in bar 2
    last = max(track.notes, key=lambda n: n.on)
    assert last.pitch == 72 and last.on < BAR
    assert last.off > BAR + 3 * Q  # through the tied note (less its natural gap)
    assert len(track.notes) >= 15  # the trill itself is still played in bar 1


def test_a_grace_chord_on_drums_plays_both_drums_before_the_main_note():
    # a flam on two drums at once: a grace PercussionChord (snare and hi-hat positions on a
    # drum-set staff) before a snare quarter
    from music21 import note, percussion

    snare, hihat = note.Unpitched(displayName="C5"), note.Unpitched(displayName="G5")
    grace = percussion.PercussionChord([snare, hihat]).getGrace()
    main = note.Unpitched(displayName="C5", quarterLength=1.0)
    score = _one_part_score([grace, main, note.Rest(quarterLength=3.0)])
    (track,) = perform(LoadedScore(Path("drum-grace.musicxml"), "music21", score)).tracks
    first = sorted(track.notes, key=lambda n: (n.on, n.pitch))
    assert [(n.on, n.pitch) for n in first[:2]] == [(0, 38), (0, 42)]  # the grace chord
    assert length(first[0]) <= 0.125  # a flam: short
    assert first[2].pitch == 38 and first[2].on == first[0].off  # then the main stroke
    assert track.is_percussion


def test_a_grace_on_the_upper_neighbour_starts_a_trill_drawn_only_as_a_wavy_line():
    # the same as K. 80/i bar 2, but the trill is only a wavy line (a TrillExtension, no "tr")
    from music21 import expressions, note

    grace = note.Note("A5", type="16th").getGrace(appoggiatura=True)
    trilled = note.Note("G5", quarterLength=1.0)
    score = _one_part_score([grace, trilled, note.Note("F#5", quarterLength=2.0)], time="3/4")
    score.parts[0].insert(0, expressions.TrillExtension(trilled))
    (track,) = perform(LoadedScore(Path("wavy-trill.musicxml"), "music21", score)).tracks
    first_beat = [n for n in track.notes if n.on < Q]
    assert first_beat[0].pitch == 81 and length(first_beat[0]) <= 0.125
    assert [n.pitch for n in first_beat[1:4]] == [79, 81, 79]
    assert first_beat[-1].pitch == 79 and len(first_beat) >= 6
