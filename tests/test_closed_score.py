"""A choir in closed score: each voice of a sung staff is sung by its own section."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FLUIDR3
from pipeline.mix.rehearsal import Rehearsal
from pipeline.score.load import load
from pipeline.score.perform import perform

STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _note(pitch: str, voice: int | None, chord: bool = False) -> str:
    step, octave = pitch[0], int(pitch[1])
    return (f"<note>{'<chord/>' if chord else ''}<pitch><step>{step}</step><octave>{octave}"
            f"</octave></pitch><duration>2</duration>"
            f"{f'<voice>{voice}</voice>' if voice else ''}<type>half</type></note>")


def _staff(pid: str, clef: tuple[str, int], bars: list) -> str:
    """Each bar: (upper voice's two notes, lower voice's two notes), or ("chords", pairs) for
    the two voices sharing stems in voice 1 alone."""
    out = []
    for b, (upper, lower) in enumerate(bars):
        head = ""
        if b == 0:
            head = (f"<attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4"
                    f"</beat-type></time><clef><sign>{clef[0]}</sign><line>{clef[1]}</line>"
                    f"</clef></attributes><direction><direction-type><dynamics><p/></dynamics>"
                    f'</direction-type><sound tempo="80"/></direction>')
        if b == 2:
            head = "<direction><direction-type><dynamics><f/></dynamics></direction-type></direction>"
        if upper == "chords":
            body = "".join(_note(hi, 1) + _note(lo, 1, chord=True) for hi, lo in lower)
        elif upper == "solo":
            body = "".join(_note(p, 1) for p in lower)
        else:
            body = ("".join(_note(p, 1) for p in upper) + "<backup><duration>4</duration></backup>"
                    + "".join(_note(p, 2) for p in lower))
        out.append(f'<measure number="{b + 1}">{head}{body}</measure>')
    return f'<part id="{pid}">{"".join(out)}</part>'


def _score(names: tuple[str, str], program: int = 53) -> str:
    upper = [(("E5", "D5"), ("C5", "B4")), (("C5", "D5"), ("A4", "B4")),
             ("chords", (("E5", "C5"), ("F5", "C5"))), (("E5", "E5"), ("C5", "C5"))]
    lower = [(("G3", "G3"), ("C3", "G2")), (("A3", "G3"), ("A2", "G2")),
             (("G3", "A3"), ("C3", "F2")), (("G3", "G3"), ("C3", "C3"))]
    parts = "".join(
        f'<score-part id="P{i}"><part-name>{n}</part-name><score-instrument id="P{i}-I1">'
        f'<instrument-name>{n}</instrument-name></score-instrument><midi-instrument '
        f'id="P{i}-I1"><midi-program>{program}</midi-program></midi-instrument></score-part>'
        for i, n in enumerate(names, 1))
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><work>'
            f'<work-title>Closed hymn</work-title></work><part-list>{parts}</part-list>'
            + _staff("P1", ("G", 2), upper) + _staff("P2", ("F", 4), lower) + "</score-partwise>")


def _midi(pitch: str) -> int:
    return 12 * (int(pitch[1]) + 1) + STEPS[pitch[0]]


@pytest.fixture
def hymn(tmp_path) -> Path:
    path = tmp_path / "closed-hymn.musicxml"
    path.write_text(_score(("Soprano Alto", "Tenor Bass")), encoding="utf-8")
    return path


def test_each_voice_of_a_closed_score_choir_is_its_own_part(hymn):
    performance = perform(load(hymn))
    tracks = {t.name: t for t in performance.tracks}
    assert list(tracks) == ["Soprano", "Alto", "Tenor", "Bass"]
    # bar 3: soprano and alto share stems (chords in voice 1): the top note is the soprano's
    expected = {"Soprano": "E5 D5 C5 D5 E5 F5 E5 E5", "Alto": "C5 B4 A4 B4 C5 C5 C5 C5",
                "Tenor": "G3 G3 A3 G3 G3 A3 G3 G3", "Bass": "C3 G2 A2 G2 C3 F2 C3 C3"}
    for name, pitches in expected.items():
        assert [n.pitch for n in tracks[name].notes] == [_midi(p) for p in pitches.split()]
        # the staff's p, then its f in bar 3, reach every voice
        velocities = [n.velocity for n in tracks[name].notes]
        assert velocities[0] < velocities[4], name


def test_a_staff_that_does_not_name_its_voices_numbers_them(tmp_path):
    path = tmp_path / "women-men.musicxml"
    path.write_text(_score(("Women", "Men")), encoding="utf-8")
    names = [t.name for t in perform(load(path)).tracks]
    assert names == ["Women, voice 1", "Women, voice 2", "Men, voice 1", "Men, voice 2"]


def test_a_solo_line_with_a_bar_of_divisi_stays_one_singer(tmp_path):
    bars = [(("E5", "D5"), ("C5", "B4"))] + [("solo", ("C5", "D5"))] * 3
    path = tmp_path / "solo.musicxml"
    path.write_text(_score(("Soprano", "Bass")).replace(
        _staff("P1", ("G", 2), [(("E5", "D5"), ("C5", "B4")), (("C5", "D5"), ("A4", "B4")),
                                ("chords", (("E5", "C5"), ("F5", "C5"))),
                                (("E5", "E5"), ("C5", "C5"))]),
        _staff("P1", ("G", 2), bars)), encoding="utf-8")
    tracks = perform(load(path)).tracks
    assert [t.name for t in tracks][0] == "Soprano" and len(tracks[0].notes) == 4 + 3 * 2


def test_an_instrument_s_two_voices_stay_one_player(tmp_path):
    path = tmp_path / "two-horns.musicxml"
    path.write_text(_score(("Horn in F", "Bassoon"), program=60), encoding="utf-8")
    assert [t.name for t in perform(load(path)).tracks] == ["Horn in F", "Bassoon"]


@pytest.mark.skipif(not FLUIDR3.exists(), reason="FluidR3 is not installed")
def test_a_closed_score_choir_gets_a_rehearsal_track_per_voice(hymn, render_once):
    result = render_once(hymn, soundfont=FLUIDR3, rehearsal=Rehearsal())
    assert result.report.ensemble == "choir"
    assert [t.file for t in result.report.rehearsal] == [
        "rehearsal/01-soprano.mp3", "rehearsal/02-alto.mp3", "rehearsal/03-tenor.mp3",
        "rehearsal/04-bass.mp3"]
