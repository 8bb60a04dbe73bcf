"""Excerpts: some bars of a piece, as they are played in the whole, and loops of them."""
from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, FLUIDR3, MUSESCORE, run_cli
from pipeline.errors import ScoreError
from pipeline.model import Control, Note, Performance, PlayedBar, TempoMap, Track
from pipeline.score.excerpt import Bars, excerpt, parse_bars
from pipeline.score.load import load
from pipeline.score.perform import perform

# bars 1 2 3 |: 2 3 :| 4 5, D.C. to the end of bar 4: 1 2 3 (2 3) 4
REPEAT_AND_DC = DATA / "dc-repeat-inside.musicxml"


def _heard(midi: Path) -> list[tuple[float, int]]:
    """(seconds, pitch) of every note-on in a MIDI file."""
    t, out = 0.0, []
    for msg in mido.MidiFile(str(midi)):
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append((round(t, 4), msg.note))
    return sorted(out)


@pytest.mark.parametrize("bars, pass_number", [("2-4", 2), ("1-3", 2), ("3", 1), ("2-5", 1)])
def test_an_excerpt_plays_the_notes_the_whole_plays_in_those_bars(tmp_path, bars, pass_number):
    """The excerpt's performance.mid against the whole's, both from the command line."""
    whole = perform(load(REPEAT_AND_DC))
    first, last = bars.split("-")[0], bars.split("-")[-1]
    start = [b for b in whole.bars if b.number == first][pass_number - 1]
    i = whole.bars.index(start)
    end = next(b for b in whole.bars[i:] if b.number == last)
    t0, t1 = whole.tempo_map.seconds([start.start_tick, end.end_tick])
    assert run_cli("perform", str(REPEAT_AND_DC), "--out", str(tmp_path / "whole.mid")
                   ).returncode == 0
    expected = [(round(t - t0, 3), p) for t, p in _heard(tmp_path / "whole.mid")
                if t0 - 1e-4 <= t < t1 - 1e-4]
    proc = run_cli("render", str(REPEAT_AND_DC), "--out", str(tmp_path / "out"), "--bars", bars,
                   "--pass", str(pass_number), "--soundfont", str(FLUIDR3), "--preset", "handoff")
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "out").iterdir()
    got = [(round(t, 3), p) for t, p in _heard(folder / "performance.mid")]
    assert expected and got == expected


def _performance(notes, controls=(), bars=4) -> Performance:
    q = 960
    return Performance("t", "", (Track("Violin", "violin", tuple(notes), tuple(controls)),),
                       TempoMap(q, ((0, 500_000), (2 * 4 * q, 1_000_000))),
                       bars=tuple(PlayedBar(k, str(k + 1), k * 4 * q, (k + 1) * 4 * q)
                                  for k in range(bars)))


def test_a_note_held_into_the_excerpt_sounds_from_its_start_and_stops_at_its_end():
    q = 960
    held = Note(2 * q, 6 * q, 60, 80)     # from bar 1 into bar 2
    past = Note(7 * q, 13 * q, 64, 80)    # from bar 2 into bar 4
    part, _ = excerpt(_performance([held, past]), Bars("2", "3"))
    assert [(n.on, n.off) for n in part.tracks[0].notes] == [(0, 2 * q), (3 * q, 8 * q)]


def test_controllers_keep_the_value_they_have_at_the_start_and_the_tempo_is_the_one_in_force():
    q = 960
    controls = [Control(0, "control_change", 64, 127),           # pedal down in bar 1
                Control(q, "control_change", 11, 90), Control(2 * q, "control_change", 11, 70),
                Control(3 * q, "program_change", 45, 0),          # pizz. before the excerpt
                Control(5 * q, "control_change", 11, 100)]        # inside it
    part, _ = excerpt(_performance([Note(4 * q, 5 * q, 60, 80)], controls), Bars("2", "3"))
    at_start = {(c.kind, c.number): c.value for c in part.tracks[0].controls if c.tick == 0}
    assert at_start == {("control_change", 64): 127, ("control_change", 11): 70,
                        ("program_change", 45): 0}
    assert Control(q, "control_change", 11, 100) in part.tracks[0].controls
    # crotchet 120 until bar 3, then 60
    assert part.tempo_map.changes == ((0, 500_000), (4 * q, 1_000_000))


def test_an_excerpt_names_what_is_wrong_with_the_bars_asked_for():
    whole = perform(load(REPEAT_AND_DC))
    with pytest.raises(ScoreError, match="there is no bar 9 .*numbered 1 to 4"):
        excerpt(whole, Bars("9", "9"))
    with pytest.raises(ScoreError, match="bar 5 is played once, so it has no pass 2"):
        excerpt(whole, Bars("5", "5", 2))
    with pytest.raises(ScoreError, match="give the first and last bar"):
        parse_bars("twelve")


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path):
    proc = run_cli("render", str(REPEAT_AND_DC), "--out", str(tmp_path), "--bars", "3-9")
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "bar 9 is not played after bar 3" in proc.stderr
    assert not any(tmp_path.iterdir())
    proc = run_cli("render", str(REPEAT_AND_DC), "--out", str(tmp_path), "--loop")
    assert proc.returncode != 0 and "--loop and --pass go with --bars" in proc.stderr


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_a_loop_joins_itself_without_a_click(tmp_path):
    proc = run_cli("render", str(DATA / "two-players-together.musicxml"), "--out",
                   str(tmp_path), "--bars", "1-2", "--loop", "--soundfont", str(MUSESCORE))
    assert proc.returncode == 0, proc.stderr
    (folder,) = tmp_path.iterdir()
    assert folder.name == "two-players-together-bars-1-2-loop"
    whole = perform(load(DATA / "two-players-together.musicxml"))
    loop_s = float(whole.tempo_map.seconds(whole.bars[1].end_tick))
    for name in ("mix.wav", "master.wav"):
        audio, sr = sf.read(str(folder / name), dtype="float64", always_2d=True)
        assert audio.shape[0] == pytest.approx(loop_s * sr, abs=1)  # one turn, exactly
        twice = np.concatenate([audio, audio])
        jumps = np.abs(np.diff(twice, axis=0)).max(axis=1)
        seam, near = audio.shape[0] - 1, int(0.05 * sr)
        around = np.concatenate([jumps[seam - near:seam], jumps[seam + 1:seam + near]])
        assert jumps[seam] <= around.max(), name
