"""Mastering a mix brought as a file (``score2audio master``) and metering files
(``score2audio meter``), checked the way a mastering engineer would: EBU Tech 3341/3342-style
tones read the levels they were made at, the meter agrees with ffmpeg's ``ebur128=peak=true``
within 0.1 LU / 0.1 dB, and every preset's master of another program's WAV meets its loudness
target (or its guard says why not) and its true-peak ceiling by ffmpeg's meter.

The tones are made here; no audio is stored. ffmpeg's figures are read from its per-frame
metadata (three decimals) rather than its summary (one), so the 0.1 tolerances are not eaten
by its rounding.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FLUIDR3, read, run_cli
from pipeline.run import master_file, meter_file
from pipeline.settings.config import load_preset, preset_names

SR = 48000
METER_TOLERANCE = 0.1  # LU and dB: what the brief and EBU Tech 3341 ask of a meter beside ffmpeg
#: Our gain search stops within 0.05 LU of the target on our own meter; with the meters'
#: 0.1 between them, a master lands within 0.15 LU of its target by ffmpeg's.
TARGET_TOLERANCE_LU = 0.15

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg is not installed (make test installs it)")


def ffmpeg_meter(path: Path) -> dict:
    """ffmpeg's ``ebur128=peak=true`` reading of a whole file: integrated (LUFS) and LRA (LU)
    from its last frame's metadata (three decimals); true peak (dBTP) from the metadata too
    when it is over −6 dBTP (linear, three decimals: within 0.01 dB there), else from its
    summary (one decimal), with how far it may be off (``peak_rounding_db``)."""
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af",
         "ebur128=peak=true:metadata=1,ametadata=mode=print:file=-", "-f", "null", "-"],
        capture_output=True, text=True, check=True)
    last = dict(re.findall(r"lavfi\.r128\.(I|LRA|true_peak)=(\S+)", proc.stdout))
    summary = proc.stderr[proc.stderr.rfind("Summary:"):]
    peak, rounding = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1)), 0.05
    if float(last["true_peak"]) >= 0.5:
        peak, rounding = 20 * np.log10(float(last["true_peak"])), 0.01
    return {"integrated_lufs": float(last["I"]), "loudness_range_lu": float(last["LRA"]),
            "true_peak_dbtp": peak, "peak_rounding_db": rounding}


def sine(freq_hz: float, level_dbfs: float, seconds: float, *, sample_rate: int = SR,
         channels: int = 2, phase: float = 0.0, fade_ms: float = 20.0) -> np.ndarray:
    """A sine of peak ``level_dbfs``, (channels, frames) float32, faded in and out (a step
    at either end would ring over the peak between samples)."""
    n = int(seconds * sample_rate)
    x = 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq_hz * np.arange(n) / sample_rate + phase)
    k = int(fade_ms / 1000 * sample_rate)
    ramp = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    x[:k] *= ramp
    x[-k:] *= ramp[::-1]
    return np.tile(x, (channels, 1)).astype(np.float32)


def write(path: Path, audio: np.ndarray, sample_rate: int = SR, subtype: str = "PCM_24") -> Path:
    sf.write(str(path), audio.T, sample_rate, subtype=subtype)
    return path


# ---- the meter: EBU-style tones read what they were made at, and what ffmpeg reads ----

TONES = {
    # Tech 3341 case 1: 1 kHz stereo sine at −23 dBFS reads −23.0 LUFS
    "1k-23-stereo": (lambda: sine(1000, -23, 6), SR, {"integrated_lufs": -23.0}),
    "1k-33-stereo": (lambda: sine(1000, -33, 6), SR, {"integrated_lufs": -33.0}),
    # one channel is measured as one (BS.1770): 3 dB under the same sine on both
    "1k-23-mono": (lambda: sine(1000, -23, 6, channels=1), SR, {"integrated_lufs": -26.0}),
    "1k-23-44k1": (lambda: sine(1000, -23, 6, sample_rate=44100), 44100, {"integrated_lufs": -23.0}),
    "1k-23-96k": (lambda: sine(1000, -23, 6, sample_rate=96000), 96000, {"integrated_lufs": -23.0}),
    # Tech 3342-style: −33 and −23 dBFS alternating (6 s each) spread 10 LU
    "lra-33-23": (lambda: np.concatenate([sine(1000, -33, 6), sine(1000, -23, 6)] * 2, axis=1),
                  SR, {"loudness_range_lu": 10.0}),
    # a quarter-rate sine sampled at ±45°: samples at −6 dBFS, the wave's peak at −3 dBTP
    "tp-quarter-rate": (lambda: sine(SR / 4, -3, 4, phase=np.pi / 4), SR,
                        {"true_peak_dbtp": -3.0}),
    "tp-quarter-rate-44k1": (lambda: sine(44100 / 4, -3, 4, sample_rate=44100, phase=np.pi / 4),
                             44100, {"true_peak_dbtp": -3.0}),
}


@needs_ffmpeg
@pytest.mark.parametrize("name", list(TONES))
def test_meter_reads_ebu_tones_as_made_and_as_ffmpeg(name, tmp_path):
    make, rate, expected = TONES[name]
    path = write(tmp_path / f"{name}.wav", make(), rate)
    ours = vars(meter_file(path))
    ffmpeg = ffmpeg_meter(path)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=METER_TOLERANCE), (key, ours)
    for key in ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp"):
        tolerance = METER_TOLERANCE + (ffmpeg["peak_rounding_db"] if key == "true_peak_dbtp" else 0)
        assert ours[key] == pytest.approx(ffmpeg[key], abs=tolerance), (key, ours, ffmpeg)


def test_true_peak_tone_is_over_its_samples(tmp_path):
    """The quarter-rate tone's samples stay 3 dB under its true peak: a sample-peak meter
    would pass a master that clips a converter."""
    audio = sine(SR / 4, -3, 2, phase=np.pi / 4)
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-6.0, abs=0.05)
    assert meter_file(write(tmp_path / "tp.wav", audio)).true_peak_dbtp == pytest.approx(-3.0, abs=0.05)


@needs_ffmpeg
def test_meter_command_prints_a_line_per_file_and_json(tmp_path):
    a = write(tmp_path / "a.wav", sine(1000, -23, 4))
    b = write(tmp_path / "b.flac", sine(1000, -33, 4, channels=1), subtype="PCM_16")
    proc = run_cli("meter", str(a), str(b))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "a.wav" in lines[0] and "b.flac" in lines[1]
    assert re.search(r"-23\.0 LUFS .* LRA +0\.0 LU .* TP +-23\.0 dBTP .* PLR +0\.0 dB", lines[0])
    rows = json.loads(run_cli("meter", "--json", str(a), str(b)).stdout)
    assert [r["file"] for r in rows] == [str(a), str(b)]
    assert rows[1]["integrated_lufs"] == pytest.approx(-36.0, abs=METER_TOLERANCE)
    assert rows[1]["plr_db"] == pytest.approx(rows[1]["true_peak_dbtp"] - rows[1]["integrated_lufs"],
                                              abs=0.01)


# ---- master: a WAV made by another program, every preset ----

def fluidsynth_wav(folder: Path) -> Path:
    """Eight seconds of piano chords, soft then loud, rendered by the bare ``fluidsynth``
    program (not by us): 16-bit 44.1 kHz stereo, as a user might bring."""
    import mido

    if shutil.which("fluidsynth") is None or not FLUIDR3.exists():
        pytest.skip("the fluidsynth program or FluidR3_GM is not installed")
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.Message("program_change", program=0, time=0))
    for i, (chord, velocity) in enumerate([((48, 55, 64), 40), ((50, 57, 65), 55),
                                           ((52, 59, 67), 75), ((53, 60, 69), 100),
                                           ((55, 62, 71), 127), ((43, 55, 62, 71), 90)]):
        for note in chord:
            track.append(mido.Message("note_on", note=note, velocity=velocity, time=0))
        track.append(mido.Message("note_off", note=chord[0], velocity=0, time=600))
        for note in chord[1:]:
            track.append(mido.Message("note_off", note=note, velocity=0, time=0))
    midi = folder / "chords.mid"
    song.save(str(midi))
    wav = folder / "other-program.wav"
    subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", "44100", "-O", "s16",
                    str(FLUIDR3), str(midi)], check=True, capture_output=True)
    return wav


@pytest.fixture(scope="module")
def mastered(tmp_path_factory):
    """Every preset's master of the other program's WAV, in one run."""
    folder = tmp_path_factory.mktemp("master-file")
    wav = fluidsynth_wav(folder)
    return wav, master_file(wav, tuple(preset_names()), out_root=folder / "out")


@needs_ffmpeg
def test_every_preset_meets_its_target_and_ceiling_by_ffmpeg(mastered):
    wav, result = mastered
    assert result.folder.name == "other-program"
    for m in result.report.masters:
        preset = load_preset(m.preset)
        for f in m.files:
            path = result.folder / f.file
            measured = ffmpeg_meter(path)
            if preset.target_lufs is None:  # hand-off: gain only, sample peaks under the ceiling
                audio, _ = read(path)
                assert 20 * np.log10(np.abs(audio).max()) <= preset.ceiling_dbtp + 1e-6
                continue
            assert measured["true_peak_dbtp"] <= preset.ceiling_dbtp, (f.file, measured)
            if f.file.endswith((".mp3", ".ogg")):
                continue  # the codec moves the level a little; its ceiling is what it must keep
            if m.guard.engaged:  # stopped short: the report says where and why
                assert m.guard.why and m.guard.reached_lufs < preset.target_lufs
                expected = m.guard.reached_lufs
            else:
                expected = preset.target_lufs
            assert measured["integrated_lufs"] == pytest.approx(expected, abs=TARGET_TOLERANCE_LU), \
                (f.file, measured, m.guard)
            # the report's own figures are the meter's, which ffmpeg confirms
            assert m.integrated_lufs == pytest.approx(measured["integrated_lufs"], abs=METER_TOLERANCE)
            # limited masters peak near their ceiling, where ffmpeg's figure is exact to 0.01 dB;
            # at 44.1 kHz (CD) the true peak is read at 5 points a frame, as ffmpeg's 192 kHz
            assert m.true_peak_dbtp == pytest.approx(measured["true_peak_dbtp"],
                                                     abs=METER_TOLERANCE + measured["peak_rounding_db"])


def test_masters_have_the_presets_formats_and_a_report(mastered):
    wav, result = mastered
    names = sorted(p.name for p in result.folder.iterdir())
    assert "report.json" in names and "report.html" in names
    assert not [n for n in names if n.startswith(".")]  # nothing half-written left behind
    report = json.loads((result.folder / "report.json").read_text())
    assert report["source"]["file"] == wav.name and report["source"]["sample_rate"] == 44100
    for m in report["masters"]:
        preset = load_preset(m["preset"])
        assert sorted(f["file"].rsplit(".", 1)[1] for f in m["files"]) == sorted(preset.formats)
        for f in m["files"]:
            info = sf.info(str(result.folder / f["file"]))
            assert info.samplerate == (preset.sample_rate or 44100)
            assert info.channels == 2
    page = (result.folder / "report.html").read_text()
    assert "Masters" in page and "Waveform: mix and master" in page and "data:image/png" in page


# ---- what a mix may be: mono or stereo, any rate the chain takes, any word length ----

@pytest.mark.parametrize("channels, rate, subtype", [(1, 96000, "FLOAT"), (2, 48000, "PCM_24"),
                                                     (2, 88200, "PCM_32"), (2, 44100, "PCM_16")])
def test_mixes_of_any_word_length_and_rate_master_to_the_preset(channels, rate, subtype, tmp_path):
    # steady (a chord over a little noise), 10 s: the master's 0.5 s fade-out, made after the
    # gain search, takes about 0.1 LU off it (0.2 off 4 s; nothing worth noting off a piece)
    rng = np.random.default_rng(7)
    t = np.arange(10 * rate) / rate
    music = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) \
        + 0.02 * rng.standard_normal(t.size)
    wav = write(tmp_path / "mix.wav", np.tile(music, (channels, 1)).astype(np.float32), rate, subtype)
    result = master_file(wav, ("broadcast",), out_root=tmp_path / "out")
    m = result.report.masters[0]
    assert m.integrated_lufs == pytest.approx(-23.0, abs=0.15) and m.true_peak_dbtp <= -1.0
    audio, sr = read(result.folder / "master.wav")
    assert sr == 48000 and audio.shape[0] == 2
    if channels == 1:  # mono is played on both channels
        np.testing.assert_array_equal(audio[0], audio[1])
    assert result.report.source.channels == channels and result.report.source.sample_rate == rate


# ---- bad input: one line naming the file and the problem, no output ----

def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    good = write(tmp / "good.wav", sine(440, -12, 4))
    (tmp / "notes.wav").write_text("not audio at all\n")
    return {
        "missing": ([str(tmp / "missing.wav")], "no such file"),
        "not audio": ([str(tmp / "notes.wav")], "not audio"),
        "silent": ([str(write(tmp / "silent.wav", np.zeros((2, SR * 2), np.float32)))], "silent"),
        "unknown preset": ([str(good), "--preset", "cd,loudest"], "unknown preset 'loudest'"),
        "surround": ([str(write(tmp / "six.wav", np.tile(sine(440, -12, 2)[:1], (6, 1))))],
                     "6 channels"),
        "low rate": ([str(write(tmp / "low.wav", sine(440, -12, 2, sample_rate=22050), 22050))],
                     "22050 Hz"),
    }


@pytest.mark.parametrize("case", ["missing", "not audio", "silent", "unknown preset", "surround",
                                  "low rate"])
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path):
    args, problem = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    proc = run_cli("master", *args, "--out", str(out))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert problem in lines[0]
    if case != "unknown preset":
        assert Path(args[0]).name in lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_meter_names_a_bad_file_and_measures_the_others(tmp_path):
    good = write(tmp_path / "good.wav", sine(1000, -23, 4))
    proc = run_cli("meter", str(tmp_path / "missing.wav"), str(good))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"score2audio: error: {tmp_path / 'missing.wav'}: no such file"
    assert "good.wav" in proc.stdout and "-23.0 LUFS" in proc.stdout
