"""Transposing instruments sound at concert pitch, also when the transposition changes in the
middle of a part; clefs never move a pitch."""
from __future__ import annotations

from pathlib import Path

import music21
import pytest

from pipeline.score.load import load
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"
LILYPOND = Path(music21.__file__).parent / "musicxml" / "lilypondTestSuite"
C4, D4, E4, F4, G4, A4, B4, C5 = 60, 62, 64, 65, 67, 69, 71, 72


def sounding(path: Path) -> dict[str, list[int]]:
    return {t.name: [n.pitch for n in t.notes] for t in perform(load(path)).tracks}


@pytest.fixture(scope="module")
def changes():
    return sounding(DATA / "transposition-changes.musicxml")


def test_clarinet_changing_from_b_flat_to_a(changes):
    # written D5 throughout: a B flat clarinet sounds C5, an A clarinet B4
    assert changes["Clarinet in Bb"] == [C5, B4, B4]


def test_guitar_written_an_octave_up_then_at_pitch_then_up_again(changes):
    assert changes["Guitar"] == [E4 - 12, E4, E4 - 12]


def test_a_clef_change_never_moves_the_pitch(changes):
    # treble, treble with an 8 below (the octave is in the written pitch), bass
    assert changes["Tenor"] == [C4, C4, C4]


def test_lilypond_transposing_instruments_all_play_the_c_major_scale():
    # 72a: trumpet in B flat and horn in E flat show C major with two and three sharps
    scale = [C4, D4, E4, F4, G4, A4, B4, C5]
    assert sounding(LILYPOND / "72a-TransposingInstruments.xml") == {
        "Trumpet in Bb": scale, "Horn in Eb": scale, "Piano": scale}


def test_lilypond_every_transposition_sounds_the_same_c():
    # 72b: eleven parts, each displaying c'' in its own transposition, all sounding c''
    parts = sounding(LILYPOND / "72b-TransposingInstruments-Full.xml")
    assert len(parts) == 11 and all(p == [C5] for p in parts.values())


def test_lilypond_e_flat_clarinet_changing_to_b_flat():
    # 72c: written C4 each bar; bar 1 in E flat sounds E flat 4, bars 2-3 in B flat sound B flat 3
    assert sounding(LILYPOND / "72c-TransposingInstruments-Change.xml") == {
        "Clarinet in Eb": [63, 58, 58]}


@pytest.mark.parametrize("path", [DATA / "transposition-changes.musicxml", DATA / "ornaments.musicxml",
                                  LILYPOND / "72b-TransposingInstruments-Full.xml"],
                         ids=["changes", "ottava", "lilypond-72b"])
def test_performing_a_score_again_plays_the_same(path):
    # the score is brought to sounding pitch in place (no copy of a large score): a second
    # performance of the same loaded score, as a detected jazz band's swung one is, must not
    # transpose it again
    loaded = load(path)
    first, second = perform(loaded), perform(loaded)
    assert first.tracks == second.tracks
