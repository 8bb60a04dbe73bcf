"""Time as a player reads it: tempo marks and words, rit./accel., mid-bar changes, fermatas,
caesuras, breath marks, tuplets and swing — each checked as onsets in seconds."""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.score import timing
from pipeline.errors import ScoreError
from pipeline.score.load import load
from pipeline.model import TICKS_PER_QUARTER
from pipeline.score.ornaments import NORMAL_GATE
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"
Q = TICKS_PER_QUARTER


def played(name: str, **options):
    p = perform(load(DATA / name), **options)
    return p, p.tempo_map


def onsets_s(performance, track: int = 0) -> np.ndarray:
    tm = performance.tempo_map
    return tm.seconds(np.array([n.on for n in performance.tracks[track].notes]))


def test_no_mark_plays_at_a_plain_120():
    p, tm = played("eighths-plain.musicxml")
    assert tm.changes == ((0, 500_000),)
    np.testing.assert_allclose(np.diff(onsets_s(p)), 0.25, atol=1e-6)


def test_sound_tempo_without_a_printed_mark_and_a_mid_bar_change():
    p, tm = played("tempo-sound-and-mid-bar.musicxml")
    beats = np.diff(onsets_s(p))
    # <sound tempo="90"/> alone sets 90; the mark at beat 3 of bar 2 (offset 6) takes over there
    np.testing.assert_allclose(beats[:6], 60 / 90, atol=1e-3)
    assert tm.bpm_at(6 * Q) == pytest.approx(60) and tm.bpm_at(6 * Q - 1) == pytest.approx(90)
    assert beats[6] == pytest.approx(1.0, abs=1e-3)


def test_the_playback_tempo_wins_from_the_first_note_over_a_printed_mark_beside_it():
    """A 6/8 song marked "Allegretto vivace", ♩. = 63 printed, <sound tempo="189"/> in the same
    direction: the file's playback tempo (quarter notes a minute) is what is heard, from the
    first note (music21 keeps only the printed mark: it was played at 94.5)."""
    p, tm = played("tempo-sound-beside-metronome.musicxml")
    assert tm.bpm_at(0) == pytest.approx(189, rel=1e-4)  # (whole microseconds a quarter)
    np.testing.assert_allclose(np.diff(onsets_s(p))[:4], 1.5 * 60 / 189, atol=1e-3)


def test_a_tempo_mark_printed_to_the_right_is_heard_where_it_stands():
    p, _ = played("tempo-printed-offset.musicxml")
    # bar 1 at ♩ = 60 from its first beat (the <offset> only moves the print); bar 2's ♩ = 120
    # says <offset sound="yes">: heard from beat 3
    np.testing.assert_allclose(onsets_s(p), [0, 1, 2, 3, 4, 5, 6, 6.5], atol=1e-3)


def test_a_first_tempo_word_after_the_first_bar_leaves_the_bars_before_it_at_120():
    p, _ = played("tempo-late-word.musicxml")
    andante = 60 / timing.TEMPO_WORDS["andante"]
    np.testing.assert_allclose(onsets_s(p), [0, 0.5, 1.0, 1.5, 2.0, 2 + andante, 2 + 2 * andante],
                               atol=1e-3)


def test_tempo_words_without_a_number_use_the_table():
    _, tm = played("tempo-words.musicxml")
    assert tm.bpm_at(0) == pytest.approx(timing.TEMPO_WORDS["adagio"], abs=0.1)
    assert tm.bpm_at(4 * Q) == pytest.approx(timing.TEMPO_WORDS["presto"], abs=0.1)
    # the longest phrase wins: "Allegro moderato" is not plain Allegro (nor Moderato)
    assert tm.bpm_at(8 * Q) == pytest.approx(timing.TEMPO_WORDS["allegro moderato"], abs=0.1)


@pytest.mark.parametrize("text, expected", [
    ("rit.", ("ramp", timing.RIT_FACTOR)),
    ("poco rit.", ("ramp", 1 + (timing.RIT_FACTOR - 1) * timing.DEGREE["poco"])),
    ("molto rall.", ("ramp", 1 + (timing.RIT_FACTOR - 1) * timing.DEGREE["molto"])),
    ("accel.", ("ramp", timing.ACCEL_FACTOR)),
    ("a tempo", ("a tempo", None)),
    ("Tempo I", ("tempo i", None)),
    ("Allegro con brio", ("set", 132.0)),
    ("con violento", None),  # "lento" only as a word of its own
    ("dolce", None),
])
def test_classify_tempo_words(text, expected):
    assert timing.classify(text) == expected


def test_ritardando_slows_beat_by_beat_over_its_dashed_line_and_a_tempo_restores():
    p, tm = played("tempo-rit-dashes.musicxml")
    beats = np.diff(onsets_s(p))
    np.testing.assert_allclose(beats[:4], 0.5, atol=1e-6)  # bar 1 at 120
    rit = beats[4:12]  # the dashed line covers bars 2–3
    assert np.all(np.diff(rit) > 0), rit
    # it ends at 3/4 of the tempo: the last beat lasts about 0.5 / 0.75 s
    assert rit[-1] == pytest.approx(0.5 / timing.RIT_FACTOR, rel=0.03)
    np.testing.assert_allclose(beats[12:], 0.5, atol=1e-6)  # "a tempo"


def test_accelerando_in_words_shortens_beats():
    p, tm = played("tempo-accel-words.musicxml")
    beats = np.diff(onsets_s(p))
    np.testing.assert_allclose(beats[:4], 0.75, atol=1e-6)  # 80 BPM
    accel = beats[4:12]  # to the end of the bar after the mark
    assert np.all(np.diff(accel) < 0), accel
    assert 60 / beats[-1] == pytest.approx(80 * timing.ACCEL_FACTOR, rel=0.02)


def test_fermata_doubles_its_note_and_the_other_part_waits_on_every_pass():
    p, tm = played("fermata-two-parts.musicxml")
    flute, cello = (p.tracks[k].notes for k in (0, 1))
    sec = tm.seconds
    for bar in (0, 4):  # the repeated bar holds the fermata again
        held = next(n for n in flute if n.on == (bar + 1) * Q)
        plain = next(n for n in flute if n.on == bar * Q)
        ratio = (sec(held.off) - sec(held.on)) / (sec(plain.off) - sec(plain.on))
        assert ratio == pytest.approx(timing.FERMATA_FACTOR, rel=0.01)
        # the cello's next note comes after the flute's held note, with the flute's next one
        nxt = next(n for n in cello if n.on >= (bar + 2) * Q)
        assert sec(nxt.on) >= sec(held.off)
        assert sec(nxt.on) == pytest.approx(sec((bar + 2) * Q), abs=1e-9)
        assert sec((bar + 2) * Q) - sec(bar * Q) == pytest.approx(1 + timing.FERMATA_FACTOR)


@pytest.mark.parametrize("hold", [1.0, 3.0])
def test_fermata_hold_factor_is_an_option_and_1_plays_the_fermata_unheld(hold):
    p, tm = played("fermata-two-parts.musicxml", fermata_hold=hold)
    sec = tm.seconds
    assert sec(2 * Q) - sec(0) == pytest.approx(1 + hold)  # a plain beat, then the held one
    if hold == 1.0:  # as MuseScore 3 plays: the tempo map is the written one
        assert len(tm.changes) == 1


def test_fermata_hold_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        played("fermata-two-parts.musicxml", fermata_hold=0.0)


def test_cli_perform_fermata_hold(tmp_path):
    import mido

    from conftest import run_cli

    ends = {}
    for hold in ("1.0", "2"):
        out = tmp_path / f"hold-{hold}.mid"
        proc = run_cli("perform", str(DATA / "fermata-two-parts.musicxml"), "-o", str(out),
                       "--fermata-hold", hold, "-q")
        assert proc.returncode == 0, proc.stderr
        ends[hold] = mido.MidiFile(out).length
    assert ends["2"] > ends["1.0"] + 1.5  # two fermatas of a beat at 60 BPM (one repeated)
    proc = run_cli("perform", str(DATA / "fermata-two-parts.musicxml"), "-o",
                   str(tmp_path / "x.mid"), "--fermata-hold", "0")
    assert proc.returncode != 0 and "positive" in proc.stderr


def test_caesura_is_a_silent_pause_in_all_parts():
    p, tm = played("caesura-breath.musicxml")
    sec = tm.seconds
    pause = timing.CAESURA_QUARTERS * 1.0  # seconds at 60 BPM
    for k in (0, 1):
        on = onsets_s(p, k)
        assert on[2] - on[1] == pytest.approx(1.0 + pause, abs=1e-3)
        # nothing sounds during the pause
        end_2nd = sec(p.tracks[k].notes[1].off)
        assert on[2] - end_2nd >= pause


def test_breath_mark_shortens_only_its_note():
    p, _ = played("caesura-breath.musicxml")
    oboe = p.tracks[1].notes
    lengths = [n.off - n.on for n in oboe]
    # the note with the mark ends a breath before its written end (the others keep their gate)
    assert oboe[1].off == 2 * Q - round(timing.BREATH_QUARTERS * Q)
    assert lengths[1] < lengths[0] == lengths[2] == lengths[3]


def test_tuplets_play_at_their_offsets():
    p, _ = played("tuplets.musicxml")
    on = np.array([n.on for n in p.tracks[0].notes]) / Q
    np.testing.assert_allclose(on, [0, 2 / 3, 4 / 3, 2, 3, 3.2, 3.4, 3.6, 3.8], atol=1 / Q)


def test_swung_eighths_land_at_two_thirds_of_the_beat_but_not_in_triplets():
    p, _ = played("swing-eighths.musicxml")
    on = np.array([n.on for n in p.tracks[0].notes]) / Q
    np.testing.assert_allclose(on[:8], np.repeat(np.arange(4), 2) + [0, 2 / 3] * 4, atol=1 / Q)
    # bar 2: a triplet beat stays straight, the eighths after it swing
    np.testing.assert_allclose(on[8:11], [4, 4 + 1 / 3, 4 + 2 / 3], atol=1 / Q)
    np.testing.assert_allclose(on[11:17], np.repeat([5, 6, 7], 2) + [0, 2 / 3] * 3, atol=1 / Q)
    # bar 3: <swing><straight/> ends it
    np.testing.assert_allclose(on[17:], np.arange(8, 12, 0.5), atol=1 / Q)
    # the long-short pair keeps its articulation: the on-beat note is now the longer one
    first, second = p.tracks[0].notes[:2]
    assert (first.off - first.on) == pytest.approx(2 * (second.off - second.on), rel=0.01)


def test_swing_option_applies_where_the_score_says_nothing():
    straight, _ = played("eighths-plain.musicxml")
    swung, _ = played("eighths-plain.musicxml", swing=3.0)
    on0 = np.array([n.on for n in straight.tracks[0].notes]) / Q
    on1 = np.array([n.on for n in swung.tracks[0].notes]) / Q
    np.testing.assert_allclose(on0[1::2] % 1, 0.5, atol=1 / Q)
    np.testing.assert_allclose(on1[1::2] % 1, 0.75, atol=1 / Q)  # 3:1
    # the score's own <straight/> wins over the option
    p, _ = played("swing-eighths.musicxml", swing=3.0)
    on = np.array([n.on for n in p.tracks[0].notes]) / Q
    np.testing.assert_allclose(on[17:], np.arange(8, 12, 0.5), atol=1 / Q)


def _lilypond_suite() -> list[str]:
    import music21

    return sorted(glob.glob(os.path.join(os.path.dirname(music21.__file__), "musicxml",
                                         "lilypondTestSuite", "*.xml")))


def test_every_lilypond_suite_file_performs():
    files = _lilypond_suite()
    if not files:
        pytest.skip("music21's LilyPond test suite is not installed")
    empty = []
    for path in files:
        try:
            perform(load(Path(path)))
        except ScoreError as exc:
            assert "no notes to play" in str(exc), (path, exc)
            empty.append(Path(path).name)
    assert len(empty) <= 20, empty  # the suite's files without notes (17 in music21 9–10)


def test_a_jazz_band_swings_by_default_and_the_option_straightens_it(tmp_path):
    import mido

    from pipeline.run.recipe import render_score

    def off_beats(result) -> np.ndarray:
        mid = mido.MidiFile(str(result.folder / "performance.mid"))
        ticks, ons = 0, []
        for track in mid.tracks:
            ticks = 0
            for msg in track:
                ticks += msg.time
                if msg.type == "note_on" and msg.velocity > 0:
                    ons.append(ticks / mid.ticks_per_beat)
        return np.sort(ons)[1::2] % 1

    swung = render_score(DATA / "eighths-plain.musicxml", out_root=tmp_path / "a",
                         ensemble="jazz-band", presets=("handoff",))
    np.testing.assert_allclose(off_beats(swung), 2 / 3, atol=0.01)
    straight = render_score(DATA / "eighths-plain.musicxml", out_root=tmp_path / "b",
                            ensemble="jazz-band", presets=("handoff",), swing=1.0)
    np.testing.assert_allclose(off_beats(straight), 0.5, atol=0.01)


def test_a_breath_in_the_right_hand_leaves_the_left_hand_alone():
    # a piano: the breath mark is on the right hand's first half note; the left hand's half
    # note ends at the same tick but carries no mark, so it keeps its ordinary length
    p, _ = played("piano-breath.musicxml")
    (piano,) = p.tracks
    rh = next(n for n in piano.notes if n.pitch == 76)
    lh = next(n for n in piano.notes if n.pitch == 48)
    assert rh.off == 2 * Q - round(timing.BREATH_QUARTERS * Q)
    assert lh.on == 0 and lh.off == round(2 * Q * NORMAL_GATE)  # no breath


def test_swing_is_read_from_a_timewise_musicxml_file_too():
    # <sound><swing> of the first part, measure by measure; the second part's <straight/> in
    # measure 2 is not the first part's
    assert timing._xml_swing(DATA / "swing-timewise.musicxml") == [(0, 3.0), (2, None)]
    assert timing._xml_swing(DATA / "swing-eighths.musicxml") == [(0, 2.0), (2, None)]


def test_part_measures_reads_partwise_and_timewise_alike(caplog):
    from pipeline.score import musicxml

    timewise = musicxml.part_measures(DATA / "swing-timewise.musicxml", rb"<swing\b", "<swing>")
    assert [len(p) for p in timewise] == [3, 3]
    assert [m.findtext("note/pitch/step") for m in timewise[1]] == ["C", "D", "E"]
    partwise = musicxml.part_measures(DATA / "swing-eighths.musicxml", rb"<swing\b", "<swing>")
    assert [len(p) for p in partwise] == [3]
    # not looked for, not MusicXML, not there: None (the last one logged, naming the file)
    assert musicxml.part_measures(DATA / "two-bars.musicxml", rb"<swing\b", "<swing>") is None
    assert musicxml.part_measures(DATA / "x.mid", rb"<swing\b", "<swing>") is None
    assert musicxml.part_measures(DATA / "missing.musicxml", rb"<swing\b", "<swing>") is None
    assert "missing.musicxml: could not read <swing>" in caplog.text


def test_performing_a_loaded_score_twice_gives_the_same_performance():
    # a jazz band is performed again, swung, from the same loaded score: reading a note's
    # measure must not move where a fermata is heard the second time (BWV 66.6 has six)
    from music21 import corpus

    path = Path(str(corpus.getWork("bach/bwv66.6")))
    loaded = load(path)
    first, second = perform(loaded), perform(loaded)
    assert first.tempo_map == second.tempo_map
    assert [t.notes for t in first.tracks] == [t.notes for t in second.tracks]
    assert perform(load(path)).tempo_map == first.tempo_map
