"""Chord symbols comped where the score leaves it to the player: lead sheets and slash parts
of a rhythm section — the right chord at the right time, in the instrument's register."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import music21
import pytest
from music21 import harmony

from pipeline.score import comping
from pipeline.score.load import load
from pipeline.model import TICKS_PER_QUARTER
from pipeline.model import DYNAMIC_VELOCITY
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"
Q = TICKS_PER_QUARTER
MUSIC21 = Path(music21.__file__).resolve().parent
C, AM7, DM7, G7 = {0, 4, 7}, {9, 0, 4, 7}, {2, 5, 9, 0}, {7, 11, 2, 5}


def performed(name: str, **options):
    return perform(load(DATA / name), **options)


def track(performance, name: str):
    return next(t for t in performance.tracks if t.name == name)


def chords(t) -> dict[float, list[int]]:
    """Onset in quarter notes → the pitches struck there, low to high."""
    out: dict[float, list[int]] = defaultdict(list)
    for n in t.notes:
        out[n.on / Q].append(n.pitch)
    return {on: sorted(p) for on, p in sorted(out.items())}


def test_a_lead_sheet_gets_a_piano_comping_the_chords_at_their_onsets_replayed_on_the_repeat():
    p = performed("lead-sheet-repeat.musicxml")
    assert [t.name for t in p.tracks] == ["Flute", comping.LEAD_SHEET_TRACK]
    comp = p.tracks[1]
    assert comp.program == 0
    # C | Am7 | Dm7 G7 | C (N.C. on beat 4) :|  — a chord on each change and each half bar
    written = {0: C, 2: C, 4: AM7, 6: AM7, 8: DM7, 10: G7, 12: C, 14: C}
    roots = {0: 0, 2: 0, 4: 9, 6: 9, 8: 2, 10: 7, 12: 0, 14: 0}
    expected = {on + 16 * k: pcs for k in (0, 1) for on, pcs in written.items()}
    struck = chords(comp)
    assert set(struck) == set(expected)
    for on, pitches in struck.items():
        assert {p % 12 for p in pitches} == expected[on], on
        assert pitches[0] % 12 == roots[on % 16], on  # the left hand plays the root
        assert len(pitches) == 5  # left-hand bass and a four-note right hand
    # mezzo-piano under a melody at mf, the right hand under the melody
    assert {n.velocity for n in comp.notes} == {DYNAMIC_VELOCITY["mp"]}
    for on, pitches in struck.items():
        sounding = [n.pitch for n in p.tracks[0].notes if n.on <= on * Q < n.off]
        assert pitches[-1] < min(sounding), on
        assert all(52 <= x <= 74 for x in pitches[1:]), on  # E3–D5
    # the chord before N.C. ends there: nothing sounds on bar 4's last beat
    assert all(n.off <= 15 * Q for n in comp.notes if n.on < 16 * Q)


def test_rhythm_section_slashes_become_chords_and_roots_in_each_instruments_range():
    p = performed("jazz-rhythm-slashes.musicxml")
    assert [t.name for t in p.tracks] == ["Guitar", "Piano", "Bass"]
    # Dm7 | G7 | C/E | A7 (the piano's bar 4 is written as a rhythm: dotted quarter, eighth, half)
    tones = {0: DM7, 4: G7, 8: C, 12: {9, 1, 4, 7}}

    def chord_at(on):
        return tones[max(k for k in tones if k <= on)]

    guitar, piano, bass = (chords(t) for t in p.tracks)
    assert list(guitar) == [0, 4, 8, 12]  # straight: a chord on each change
    for on, pitches in guitar.items():
        assert {x % 12 for x in pitches} <= chord_at(on) and len(pitches) >= 3
        assert all(comping.GUITAR_RANGE[0] <= x <= comping.GUITAR_RANGE[1] for x in pitches)
    assert list(piano) == [0, 2, 4, 6, 8, 10, 12, 13.5, 14]
    for on, pitches in piano.items():
        assert {x % 12 for x in pitches} <= chord_at(on)
        assert 36 <= pitches[0] <= 47 and all(52 <= x <= 74 for x in pitches[1:])
    # bass: root on beat 1 and fifth on beat 3; C/E has E in the bass
    assert {on: x[0] % 12 for on, x in bass.items()} == {0: 2, 2: 9, 4: 7, 6: 2, 8: 4, 10: 7,
                                                       12: 9, 14: 4}
    assert all(28 <= x[0] <= 43 for x in bass.values())  # E1–G2


def test_the_piano_moves_each_voice_by_a_step_at_most_through_a_ii_v_i():
    previous, moves = None, []
    for figure in ("Dm7", "G7", "Cmaj7"):
        span = comping._span(harmony.ChordSymbol(figure), 0.0, 4.0)
        voicing = comping.close_voicing(span.tones, *comping.PIANO_VOICING_RANGE,
                                        previous)
        assert {x % 12 for x in voicing} == set(span.tones) and len(voicing) == 4
        if previous:
            moves.extend(abs(a - b) for a, b in zip(voicing, previous))
        previous = voicing
    assert max(moves) <= 2


def test_a_swinging_guitar_plays_four_to_the_bar():
    guitar = chords(track(performed("jazz-rhythm-slashes.musicxml", swing=2.0), "Guitar"))
    assert list(guitar) == list(range(16))
    for on in (3, 4):
        assert {x % 12 for x in guitar[on]} <= (DM7 if on < 4 else G7)


def test_measure_style_slashes_are_comped_and_the_written_bar_after_them_played_as_written():
    guitar = chords(performed("guitar-measure-style-slash.musicxml").tracks[0])
    assert {x % 12 for x in guitar[0]} == {5, 9, 0, 4}   # Fmaj7
    assert {x % 12 for x in guitar[4]} == {10, 2, 5, 8}  # B♭7
    # bar 3 (after <slash type="stop">): E5 G5 B5 written for guitar, sounding an octave lower
    assert {on: x for on, x in guitar.items() if on >= 8} == {8: [64], 9: [67], 10: [71]}


def test_measure_style_slashes_are_comped_in_each_of_two_parts_of_the_same_name(tmp_path):
    # music21 names a plain part by its part name: two "Guitar" parts are told apart by order
    text = (DATA / "guitar-measure-style-slash.musicxml").read_text()
    score_part = re.search(r'<score-part id="P1">.*?</score-part>', text).group(0)
    part = re.search(r'<part id="P1">.*?</part>', text, re.S).group(0)
    text = text.replace(score_part, score_part + score_part.replace("P1", "P2"))
    text = text.replace(part, part + part.replace('id="P1"', 'id="P2"'))
    (tmp_path / "two-guitars.musicxml").write_text(text)
    p = perform(load(tmp_path / "two-guitars.musicxml"))
    assert [t.name for t in p.tracks] == ["Guitar", "Guitar"]
    for t in p.tracks:
        guitar = chords(t)
        assert {x % 12 for x in guitar[0]} == {5, 9, 0, 4}   # Fmaj7, not the written slashes
        assert {on: x for on, x in guitar.items() if on >= 8} == {8: [64], 9: [67], 10: [71]}


def test_a_written_piano_part_under_chord_symbols_plays_what_is_written():
    p = performed("piano-notes-with-chord-symbols.musicxml")
    assert [t.name for t in p.tracks] == ["Flute", "Piano"]
    assert chords(track(p, "Piano")) == {0: [60, 64], 4: [59], 6: [62]}


@pytest.mark.parametrize("path", [
    "corpus/leadSheet/berlinAlexandersRagtime.mxl",
    "corpus/leadSheet/fosterBrownHair.mxl",
    "musicxml/lilypondTestSuite/71a-Chordnames.xml",
    "musicxml/lilypondTestSuite/71f-AllChordTypes.xml",
    "musicxml/lilypondTestSuite/71g-MultipleChordnames.xml",
])
def test_real_lead_sheets_are_comped(path):
    p = perform(load(MUSIC21 / path))
    assert [t.name for t in p.tracks][1:] == [comping.LEAD_SHEET_TRACK]
    comp = p.tracks[1]
    assert len(comp.notes) > 0
    assert all(comping.PIANO_BASS_RANGE[0] <= n.pitch <= comping.PIANO_VOICING_RANGE[1]
               for n in comp.notes)


def test_the_first_chord_of_a_real_lead_sheet_sounds_at_its_symbol():
    score = load(MUSIC21 / "corpus/leadSheet/berlinAlexandersRagtime.mxl")
    first = next(iter(score.data.recurse().getElementsByClass(harmony.ChordSymbol)))
    comp = perform(score).tracks[1]
    start = min(n.on for n in comp.notes)
    assert start == round(float(first.getOffsetInHierarchy(score.data.parts[0])) * Q)
    assert {n.pitch % 12 for n in comp.notes if n.on == start} == \
        {p.pitchClass for p in first.pitches}


def test_a_two_staff_part_with_written_chords_is_not_a_lead_sheet():
    p = perform(load(MUSIC21 / "musicxml/lilypondTestSuite/71d-ChordsFrets-Multistaff.xml"))
    assert comping.LEAD_SHEET_TRACK not in [t.name for t in p.tracks]


@pytest.mark.parametrize("name, role", [
    ("Bass", "bass"), ("Bass Guitar", "bass"), ("Double Bass", "bass"), ("Bass Clarinet", None),
    ("Bass Trombone", None), ("Bassoon", None), ("Jazz Guitar", "guitar"), ("Piano", "piano"),
    ("Keyboard", "piano"), ("", "piano"), ("Part 2", "piano"), ("Trumpet", None),
])
def test_rhythm_section_roles_by_part_name(name, role):
    assert comping.role_of(name, None) == role


def test_chord_symbols_written_as_roman_numerals_are_played_on_their_degrees():
    """<harmony><numeral>: I and V7 in C major (the key signature's), then i and vii° counted
    in C harmonic minor (the numeral's own key: the leading note raised), then ♭VI of C major:
    the comping's bass plays C, G, C, B, A♭ (music21 reads no degree: it recursed without end)."""
    comp = track(performed("roman-numeral-chords.musicxml"), comping.LEAD_SHEET_TRACK)
    lows = [pitches[0] % 12 for on, pitches in chords(comp).items() if on in (0, 2, 4, 6, 8)]
    assert lows == [0, 7, 0, 11, 8]
    at = chords(comp)
    assert {p % 12 for p in at[2]} <= {7, 11, 2, 5} and {p % 12 for p in at[6]} <= {11, 2, 5}
