"""Rehearsal tracks: a part brought forward and centred, the rest set back, a bar of clicks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import MUSESCORE, score_file
from test_attack import heard_onsets
from pipeline.dsp.loudness import integrated_lufs
from pipeline.mix.rehearsal import Rehearsal, count_in, rehearsal_balance, with_count_in

SR = 48000


def _tone(hz: float, seconds: float, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_the_part_comes_forward_and_the_others_go_back_by_their_gains():
    a, b = _tone(440, 1.0), _tone(660, 1.0)
    part = np.stack([a * 0.8, a * 0.6])     # panned a little left
    others = np.stack([b * 0.5, b * 0.9])
    out = rehearsal_balance(part + others, part.copy(), Rehearsal(6.0, -6.0))
    centred = out - others * np.float32(10 ** (-6 / 20))
    # the part is the same in both ears, 6 dB up on the power it had
    np.testing.assert_allclose(centred[0], centred[1], atol=1e-6)
    gain_db = 10 * np.log10(np.sum(centred.astype(np.float64) ** 2) / np.sum(part.astype(np.float64) ** 2))
    assert gain_db == pytest.approx(6.0, abs=0.01)


def test_a_part_seated_hard_left_is_heard_in_the_middle_at_its_own_loudness():
    a = _tone(440, 1.0)
    part = np.stack([a, np.zeros_like(a)])
    out = rehearsal_balance(part.copy(), part.copy(), Rehearsal(0.0, -60.0))
    assert integrated_lufs(out, SR) == pytest.approx(integrated_lufs(part, SR), abs=0.05)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def _click_onsets(audio: np.ndarray, sr: int, count: int) -> np.ndarray:
    """The first ``count`` onsets (s): where the level (power over 2 ms, every 0.25 ms) first
    reaches 6 dB under the click's peak, each click looked for after the last one ended."""
    power = np.square(audio.astype(np.float64)).sum(axis=0)
    window, hop = int(0.002 * sr), int(0.00025 * sr)
    sums = np.concatenate(([0.0], np.cumsum(power)))
    centres = np.arange(window, power.size - window, hop)
    level = (sums[centres + window // 2] - sums[centres - window // 2]) / window
    onsets, i = [], 0
    floor = level.max() / 1000  # 30 dB down: between the clicks
    while len(onsets) < count:
        start = i + int(np.argmax(level[i:] > floor))
        peak_at = start + int(np.argmax(level[start:start + int(0.02 * sr / hop)]))
        onset = start + int(np.argmax(level[start:peak_at + 1] >= level[peak_at] / 4))
        onsets.append(centres[onset] / sr)
        i = peak_at + int(0.1 * sr / hop)  # past this click
    return np.array(onsets)


@pytest.mark.parametrize("time_signature, bpm, beats, beat_s", [
    ((4, 4), 100, 4, 0.6), ((3, 4), 90, 3, 2 / 3), ((6, 8), 120, 2, 0.75), ((2, 2), 120, 2, 1.0)])
def test_the_count_in_is_a_bar_of_clicks_at_the_opening_tempo(time_signature, bpm, beats, beat_s):
    clicks, n = count_in(time_signature, bpm, SR, music_peak=0.5)
    assert n == beats
    onsets = _click_onsets(clicks, SR, beats)
    grid = onsets[0] + beat_s * np.arange(beats)
    assert np.abs(onsets - grid).max() < 0.005
    # the bar ends where the music starts: one beat after the last click
    assert clicks.shape[1] / SR == pytest.approx(onsets[-1] + beat_s, abs=0.005)


def test_the_music_starts_where_the_count_in_bar_ends():
    clicks, _ = count_in((4, 4), 120, SR, music_peak=0.5)
    music = np.zeros((2, SR), dtype=np.float32)
    music[:, int(0.3 * SR)] = 1.0  # score time 0, after a 0.3 s lead-in
    out = with_count_in(music, clicks, 0.3, SR)
    assert int(np.argmax(out[0] == 1.0)) == clicks.shape[1]


# ---- end to end: the README's options on a score where the parts take turns ----

def _turns_xml() -> str:
    """A flute alone for four bars, then a clarinet alone for four, crotchet 100, mf."""
    def part(pid: str, name: str, program: int, first: bool, octave: int) -> str:
        bars = []
        for b in range(8):
            head = ("<attributes><divisions>1</divisions><key><fifths>0</fifths></key><time>"
                    "<beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2"
                    "</line></clef></attributes><direction><direction-type><metronome>"
                    "<beat-unit>quarter</beat-unit><per-minute>100</per-minute></metronome>"
                    '</direction-type><sound tempo="100"/></direction><direction>'
                    "<direction-type><dynamics><mf/></dynamics></direction-type></direction>"
                    ) if b == 0 else ""
            playing = (b < 4) == first
            body = "".join(
                f"<note><pitch><step>{step}</step><octave>{octave}</octave></pitch><duration>2"
                f"</duration><type>half</type></note>" for step in ("C", "E")) if playing else \
                '<note><rest measure="yes"/><duration>4</duration><type>whole</type></note>'
            bars.append(f'<measure number="{b + 1}">{head}{body}</measure>')
        return f'<part id="{pid}">{"".join(bars)}</part>', (
            f'<score-part id="{pid}"><part-name>{name}</part-name><score-instrument '
            f'id="{pid}-I1"><instrument-name>{name}</instrument-name></score-instrument>'
            f'<midi-instrument id="{pid}-I1"><midi-program>{program}</midi-program>'
            f'</midi-instrument></score-part>')
    flute, flute_entry = part("P1", "Flute", 74, True, 5)
    clarinet, clarinet_entry = part("P2", "Clarinet", 72, False, 4)
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><work>'
            '<work-title>Turns</work-title></work><part-list>'
            f"{flute_entry}{clarinet_entry}</part-list>{flute}{clarinet}</score-partwise>")


BAR_S = 2.4  # 4 crotchets at 100


def _turn_loudness(path: Path, start_s: float) -> tuple[float, float]:
    """LUFS of the flute's turn and of the clarinet's in a file whose music starts at
    ``start_s``: the middle of each, clear of the other's reverb."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.T

    def lufs(a: float, b: float) -> float:
        return integrated_lufs(audio[:, int((start_s + a) * sr):int((start_s + b) * sr)], sr)
    return lufs(0.5, 4 * BAR_S - 0.2), lufs(4 * BAR_S + 2.5, 8 * BAR_S - 0.2)


def _music_start(path: Path) -> float:
    """Where a file's music starts: its first sample within 40 dB of its peak."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    level = np.abs(audio).max(axis=1)
    return int(np.argmax(level > level.max() / 100)) / sr


@pytest.fixture(scope="module")
def turns(tmp_path_factory):
    return score_file(tmp_path_factory, "turns", _turns_xml())


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_a_rehearsal_track_brings_its_part_12_lu_forward_of_the_rest(turns, render_once):
    result = render_once(turns, soundfont=MUSESCORE, rehearsal=Rehearsal())
    report = result.report
    assert [t.file for t in report.rehearsal] == ["rehearsal/01-flute.mp3",
                                                  "rehearsal/02-clarinet.mp3"]
    mix = result.folder / "mix.wav"
    flute_mix, clarinet_mix = _turn_loudness(mix, report.stems.lead_in_s)
    for track, sign in zip(report.rehearsal, (1, -1)):
        path = result.folder / track.file
        flute, clarinet = _turn_loudness(path, _music_start(path))
        forward = sign * ((flute - clarinet) - (flute_mix - clarinet_mix))
        assert 10.0 <= forward <= 14.0, (track.part, forward)
        # mastered as the web demo is: its ceiling after decoding, near its loudness
        assert track.true_peak_dbtp <= -1.5 + 0.05
        assert track.integrated_lufs == pytest.approx(-14.0, abs=2.0)


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_the_count_in_clicks_on_the_beat_and_the_music_comes_in_on_the_next(turns, render_once):
    result = render_once(turns, soundfont=MUSESCORE, rehearsal=Rehearsal(count_in=True))
    track = result.report.rehearsal[0]
    assert track.count_in_beats == 4
    audio, sr = sf.read(str(result.folder / track.file), dtype="float32", always_2d=True)
    audio = audio.T
    onsets = _click_onsets(audio, sr, 4)
    beat_s = 0.6
    assert np.abs(onsets - (onsets[0] + beat_s * np.arange(4))).max() < 0.005
    # the flute's first note is heard (within 6 dB of its peak) on the bar's next beat
    downbeat = onsets[0] + 4 * beat_s
    heard = heard_onsets(result.folder / track.file, np.array([downbeat]),
                         np.array([downbeat + 0.5]), 0.0, look_back_s=beat_s - 0.1)
    assert abs(heard[0]) < 0.025
