"""Mastering: every preset meets its loudness and ceiling by an independent meter (ffmpeg), the
guard, the limiter's behaviour, dither, hand-off, lossy formats, references and albums."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from conftest import SCORES, ffmpeg_ebur128, ffmpeg_loudness_range, read, run_cli
from pipeline.settings.config import load_preset, load_template, preset_names
from pipeline.master.limiter import limiter_gain
from pipeline.output.export import write_master
from pipeline.dsp.loudness import integrated_lufs, measure, true_peak_dbtp, true_peak_envelope
from pipeline.master.mastering import (_word_length, album_targets, finish, load_reference, prepare)
from pipeline.model import Mix
from pipeline.master.tone import band_levels

SR = 48000
PRESETS = preset_names()
DEMOS = {"piano-nocturne.musicxml": "solo", "string-quartet.musicxml": "quartet",
         "clarinet-and-bass.mid": "duet"}


def as_mix(audio: np.ndarray, sr: int = SR) -> Mix:
    loud = measure(audio, sr)
    return Mix(audio, sr, (), {}, loud.integrated_lufs(), loud.short_term_lufs())


def loud_synthetic(seconds: float = 30.0, seed: int = 1) -> np.ndarray:
    """Pink-ish noise with a pulsing tone and hard accents, far louder than any target."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    noise = lfilter([0.1], [1, -0.97], rng.standard_normal((2, n)), axis=1)
    t = np.arange(n) / SR
    tone = 0.5 * np.sin(2 * np.pi * 110 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    x = noise / np.abs(noise).max() * 0.7 + tone
    for start in rng.integers(0, n - 4800, 40):
        x[:, start:start + 4800] *= 1.6
    return (x / np.abs(x).max() * 0.999).astype(np.float32)


@pytest.fixture(scope="module")
def demo_mixes(render_once):
    out = {}
    for score, ensemble in DEMOS.items():
        folder = render_once(SCORES / score).folder
        audio, sr = read(folder / "mix.wav")
        out[score] = (as_mix(audio, sr), ensemble)
    out["loud-synthetic"] = (as_mix(loud_synthetic()), "jazz-band")
    return out


def ffmpeg_peak_ok(measured: float, ceiling: float) -> bool:
    return measured <= ceiling  # ffmpeg prints one decimal; our limiter keeps a 0.15 dB margin


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_meets_loudness_and_ceiling_by_ffmpeg(preset, demo_mixes, tmp_path):
    p = load_preset(preset)
    for name, (the_mix, ensemble) in demo_mixes.items():
        m = finish(prepare(the_mix, p, load_template(ensemble).mastering))
        files = write_master(tmp_path, m.audio, m.sample_rate, p, several=True, tags={"title": name})
        for f in files:
            lufs, tp = ffmpeg_ebur128(tmp_path / f["file"])
            if p.target_lufs is None:  # hand-off: sample peaks at or under the ceiling
                audio, _ = read(tmp_path / f["file"])
                assert 20 * np.log10(np.abs(audio).max()) <= p.ceiling_dbtp + 1e-6, name
                continue
            guard = m.measurements["guard"]
            expected = guard["reached_lufs"] if guard["engaged"] else p.target_lufs
            if guard["engaged"]:
                assert guard["reached_lufs"] < p.target_lufs and guard["why"], name
            assert lufs == pytest.approx(expected, abs=0.5), (name, f["file"], guard)
            assert ffmpeg_peak_ok(tp, p.ceiling_dbtp), (name, f["file"], tp)
            if f["file"].endswith((".mp3", ".ogg")):
                assert f["decoded_true_peak_dbtp"] <= p.ceiling_dbtp, (name, f)


def test_presets_have_the_formats_a_destination_needs(demo_mixes, tmp_path):
    cd = load_preset("cd")
    assert (cd.sample_rate, cd.bit_depth, cd.dither) == (44100, 16, True)
    assert load_preset("vinyl").max_limiting_db == 0.0 and load_preset("vinyl").mono_bass_hz > 0
    web = load_preset("web-demo")
    the_mix, ensemble = demo_mixes["string-quartet.musicxml"]
    m = finish(prepare(the_mix, web, load_template(ensemble).mastering))
    tags = {"title": "Andante", "artist": "A. Composer", "comment": "quartet (strings)"}
    write_master(tmp_path, m.audio, m.sample_rate, web, tags=tags)
    for ext in ("mp3", "ogg"):
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "quiet", "-print_format", "json", "-show_format", "-show_streams",
             str(tmp_path / f"master.{ext}")], capture_output=True, text=True, check=True).stdout)
        found = {k.lower(): v for k, v in {**probe["format"].get("tags", {}),
                                           **probe["streams"][0].get("tags", {})}.items()}
        assert found["title"] == "Andante" and found["artist"] == "A. Composer"
        assert "quartet" in found["comment"]
        if ext == "mp3":
            assert int(probe["streams"][0]["bit_rate"]) >= 192_000


def test_cd_master_is_16_bit_44k1_with_tpdf_dither(demo_mixes, tmp_path):
    cd = load_preset("cd")
    the_mix, ensemble = demo_mixes["piano-nocturne.musicxml"]
    m = finish(prepare(the_mix, cd, load_template(ensemble).mastering))
    write_master(tmp_path, m.audio, m.sample_rate, cd)
    info = sf.info(str(tmp_path / "master.wav"))
    assert (info.samplerate, info.subtype) == (44100, "PCM_16")
    assert "TPDF" in m.measurements["chain"]["word_length"]
    # the dither itself: a tone of a few LSB, requantised, leaves an error of ±1 LSB TPDF plus
    # rounding (standard deviation 0.5 LSB), uncorrelated with the signal
    lsb = 1 / 32768
    t = np.arange(SR) / SR
    x = np.stack([3.3 * lsb * np.sin(2 * np.pi * 997 * t)] * 2).astype(np.float32)
    y, _ = _word_length(x, cd)
    err = (y - x) / lsb
    assert np.all(np.abs(np.rint(y / lsb) - y / lsb) < 1e-3)  # on the 16-bit grid
    assert err.std() == pytest.approx(0.5, abs=0.03)
    assert abs(err.mean()) < 0.02
    assert abs(np.corrcoef(err[0], x[0])[0, 1]) < 0.05
    undithered, _ = _word_length(x, load_preset("streaming"))
    assert np.abs(undithered - x).max() <= 0.5 / (1 << 23) + 1e-9  # 24-bit: rounding only


def test_handoff_is_the_mix_untouched_apart_from_gain(demo_mixes, tmp_path):
    handoff = load_preset("handoff")
    the_mix, ensemble = demo_mixes["string-quartet.musicxml"]
    louder = as_mix(the_mix.audio * np.float32(2.0))  # peaks above −3 dBFS: gain must come down
    for source in (the_mix, louder):
        m = finish(prepare(source, handoff, load_template(ensemble).mastering))
        peak = 20 * np.log10(np.abs(source.audio).max())
        gain = 10 ** (min(0.0, -3.0 - peak) / 20)
        assert m.audio.shape == source.audio.shape and m.sample_rate == source.sample_rate
        assert np.abs(m.audio - source.audio * gain).max() <= 1.01 / (1 << 23)
        assert m.measurements["limiter_max_reduction_db"] == 0.0


def test_guard_stops_a_quiet_quartet_short_of_a_loud_target_and_says_why(demo_mixes, tmp_path):
    cd = load_preset("cd")
    the_mix, _ = demo_mixes["string-quartet.musicxml"]
    m = finish(prepare(the_mix, cd, load_template("quartet").mastering))
    guard = m.measurements["guard"]
    assert guard["engaged"] and guard["max_limiting_db"] == 3.0
    assert m.measurements["limiter_max_reduction_db"] <= 3.0 + 0.1
    assert m.measurements["integrated_lufs"] < cd.target_lufs - 0.5
    assert "3 dB of limiting" in guard["why"]
    # a jazz band may be limited harder, so it gets closer to the same target
    jazz = finish(prepare(the_mix, cd, load_template("jazz-band").mastering))
    assert jazz.measurements["integrated_lufs"] > m.measurements["integrated_lufs"] + 1.0


def test_the_chain_adds_no_delay(demo_mixes):
    the_mix, ensemble = demo_mixes["string-quartet.musicxml"]
    m = finish(prepare(the_mix, load_preset("streaming"), load_template(ensemble).mastering))
    assert m.measurements["chain"]["edges"]["head_trim_s"] == 0.0
    a, b = the_mix.audio[0, : SR * 10], m.audio[0, : SR * 10]
    xc = np.fft.irfft(np.fft.rfft(a, 2 * a.size) * np.conj(np.fft.rfft(b, 2 * a.size)))
    lag = int(np.argmax(np.abs(np.r_[xc[-50:], xc[:51]]))) - 50
    assert lag == 0


@pytest.mark.parametrize("freq", [50.0, 440.0, 5000.0])
def test_limiter_holds_still_on_a_steady_tone(freq):
    t = np.arange(3 * SR) / SR
    x = np.stack([0.99 * np.sin(2 * np.pi * freq * t)] * 2).astype(np.float32)
    gain = limiter_gain(true_peak_envelope(x), SR, -6.0)
    steady = 20 * np.log10(gain[SR:])
    assert steady.max() - steady.min() < 0.05  # no pumping, no ripple at the tone's rate
    assert true_peak_dbtp(x * gain) <= -6.0 + 0.05


def test_limiter_against_a_numpy_reference():
    """Below the threshold the signal is untouched (exactly) outside the peaks' reach; over it the
    gain is what the peak needs (ceiling/peak, within 0.1 dB), reached by the peak — not after it
    (no delay) — and the gain moves smoothly (no steeper than a ramp over the look-ahead)."""
    rng = np.random.default_rng(3)
    n = 4 * SR
    x = (0.2 * rng.standard_normal((2, n))).astype(np.float32)
    # clipped at −10.5 dBFS: between its samples full-band noise reaches about 4 dB higher
    # (clipped at −6.9 it reached −2.5 dBTP, over the ceiling, which an interpolator that
    # drooped in the top octave did not see)
    x = np.clip(x, -0.3, 0.3)
    bursts = [SR, 2 * SR, 2 * SR + 4000]
    for b in bursts:
        x[:, b:b + 48] *= 3.0
    ceiling = -3.0
    env = true_peak_envelope(x)
    gain = limiter_gain(env, SR, ceiling)
    lin = 10 ** (ceiling / 20)
    # reference: the gain each over-threshold frame needs
    need = np.minimum(1.0, lin / env)
    over = env > lin
    assert np.all(gain[over] <= need[over] + 1e-6)
    assert 20 * np.log10((env * gain)[over].max()) <= ceiling + 1e-4
    deepest = int(np.argmin(need))
    assert 20 * np.log10(gain[deepest] / need[deepest]) == pytest.approx(0.0, abs=0.1)
    # untouched well before the first burst (look-ahead 1.5 ms)
    np.testing.assert_array_equal(gain[: bursts[0] - 100], 1.0)
    # smooth, no clicks: the steepest change is that of a ramp over the 1.5 ms look-ahead
    steps = np.abs(np.diff(20 * np.log10(gain)))
    deepest_db = -20 * np.log10(need.min())
    assert steps.max() <= 1.5 * deepest_db / (0.0015 * SR)
    # released afterwards: back to unity before the next second
    assert gain[bursts[0] + SR // 2: bursts[1] - 100].min() == 1.0


def test_album_keeps_one_ensemble_within_one_lu_and_measures_as_one_programme(demo_mixes):
    p = load_preset("streaming")
    mastering = load_template("solo").mastering
    the_mix, _ = demo_mixes["piano-nocturne.musicxml"]
    quiet = as_mix(the_mix.audio * np.float32(10 ** (-9 / 20)))  # the same piece, 9 dB lower
    preps = [prepare(mx, p, mastering) for mx in (the_mix, quiet)]
    targets, note = album_targets([(f"piece {i}", pr.summary(), mastering.relative_loudness_lu)
                                   for i, pr in enumerate(preps)], p.target_lufs)
    masters = [finish(pr, target_lufs=t, album=note) for pr, t in zip(preps, targets)]
    levels = [integrated_lufs(m.audio, m.sample_rate) for m in masters]
    assert abs(levels[0] - levels[1]) <= 1.0
    programme = integrated_lufs(np.concatenate([m.audio for m in masters], axis=1), SR)
    assert programme == pytest.approx(p.target_lufs, abs=0.5) or note["limited_by"]


def test_album_keeps_ensembles_relative_loudness_end_to_end(tmp_path):
    proc = run_cli("render", str(SCORES / "piano-nocturne.musicxml"),
                   str(SCORES / "string-quartet.musicxml"), "--album", "Demos", "--quiet",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    solo, quartet = (json.loads((tmp_path / n / "report.json").read_text())
                     for n in ("piano-nocturne", "string-quartet"))
    ms = solo["masters"][0]
    assert ms["target_source"] == "album" and ms["album"]["pieces"] == 2
    # solo sits 1 LU under the quartet by the templates' relative loudness (or both came down)
    lufs_s, _ = ffmpeg_ebur128(tmp_path / "piano-nocturne" / "master.wav")
    lufs_q, _ = ffmpeg_ebur128(tmp_path / "string-quartet" / "master.wav")
    assert lufs_q - lufs_s == pytest.approx(1.0, abs=0.5)


def test_reference_track_pulls_tone_and_loudness_toward_it(demo_mixes, tmp_path):
    rng = np.random.default_rng(5)
    dark = lfilter([0.02], [1, -0.995], rng.standard_normal((2, 20 * SR)), axis=1)
    dark = (dark / np.abs(dark).max() * 0.1).astype(np.float32)  # far quieter than −14 LUFS
    ref_path = tmp_path / "reference.wav"
    sf.write(str(ref_path), dark.T, SR, subtype="PCM_24")
    ref = load_reference(ref_path)
    the_mix, ensemble = demo_mixes["string-quartet.musicxml"]
    p = load_preset("streaming")
    m = finish(prepare(the_mix, p, load_template(ensemble).mastering, ref))
    assert m.measurements["target_source"].startswith("reference")
    assert m.measurements["integrated_lufs"] == pytest.approx(ref.lufs, abs=0.5) \
        or m.measurements["guard"]["engaged"]

    def distance(audio):
        d = band_levels(audio, SR) - ref.band_db
        mid = slice(6, 24)  # 125 Hz – 8 kHz, where both have content
        return np.abs(d[mid] - d[mid].mean()).mean()

    assert distance(m.audio) < distance(the_mix.audio) - 1.0


def test_bad_reference_track_is_one_line_error(tmp_path):
    bad = tmp_path / "ref.wav"
    bad.write_bytes(b"not audio at all")
    proc = run_cli("render", str(SCORES / "piano-nocturne.musicxml"), "--reference", str(bad),
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "ref.wav" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_presets_are_listed_with_their_targets():
    proc = run_cli("presets")
    assert proc.returncode == 0
    for name in ("streaming", "apple-music", "cd", "broadcast", "vinyl", "web-demo", "handoff"):
        assert name in proc.stdout


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_lossy_files_decoded_by_ffmpeg_meet_the_lossy_ceiling(demo_mixes, tmp_path):
    web = load_preset("web-demo")
    the_mix, _ = demo_mixes["loud-synthetic"]
    m = finish(prepare(the_mix, web, load_template("jazz-band").mastering))
    for f in write_master(tmp_path, m.audio, m.sample_rate, web):
        _, tp = ffmpeg_ebur128(tmp_path / f["file"])
        assert tp <= web.ceiling_dbtp


def test_report_measurements_agree_with_ffmpeg(render_once):
    result = render_once(SCORES / "string-quartet.musicxml")
    m = result.report.masters[0]
    path = result.folder / m.files[0].file
    lufs, tp = ffmpeg_ebur128(path)
    assert m.integrated_lufs == pytest.approx(lufs, abs=0.1)
    assert m.true_peak_dbtp == pytest.approx(tp, abs=0.2)
    assert m.loudness_range_lu == pytest.approx(ffmpeg_loudness_range(path), abs=0.5)
    assert m.peak_to_loudness_db == pytest.approx(m.true_peak_dbtp - m.integrated_lufs,
                                                  abs=0.02)
    assert m.short_term_max_lufs >= m.integrated_lufs
    for key in ("limiter_max_reduction_db", "limiter_mean_reduction_db", "guard", "chain"):
        assert hasattr(m, key)


def test_the_master_s_audio_is_handed_on_final_before_it_is_measured():
    """``ready`` gets the master's audio as delivered (its files are written while it is
    measured): what it sees then is what the master is, and what was measured."""
    from pipeline.master.mastering import master

    seen = []

    def ready(audio, sample_rate):
        seen.append((audio.copy(), sample_rate))

    mix = as_mix(loud_synthetic(12.0, seed=3))
    for name in ("streaming", "cd"):  # the CD master is resampled to 44.1 kHz first
        seen.clear()
        m = master(mix, load_preset(name), load_template("jazz-band").mastering, ready=ready)
        (audio, sr), = seen
        assert sr == m.sample_rate
        assert np.array_equal(audio, m.audio)
        assert m.measurements["true_peak_dbtp"] == round(true_peak_dbtp(audio), 2)


def _steps_one_by_one(prep, target=None):
    """finish's gain, edges and word length as separate whole passes (the chain as it was
    written before they were made in one): the reference for the one-pass form."""
    from pipeline.dsp import kernels
    from pipeline.dsp.audio import crop_in_place, requantize, sample_peak
    from pipeline.master.mastering import (DITHER_SEED, SILENCE_BELOW_PEAK_DB, _cosine,
                                           _loudness_gain)
    preset, sr = prep.preset, prep.sample_rate
    gain_db, gr, _ = _loudness_gain(prep, prep.target_lufs if target is None else target)
    out = prep.audio * (gr.slice(0, prep.audio.shape[1]) * np.float32(10 ** (gain_db / 20)))
    frames = out.shape[1]
    level = float(np.float32(sample_peak(out) * 10 ** (-SILENCE_BELOW_PEAK_DB / 20)))
    first, last = kernels.first_above(out, level), kernels.last_above(out, level)
    start = max(0, first - int(preset.lead_in_ms / 1000 * sr))
    fade_out = int(preset.fade_out_ms / 1000 * sr)
    stop = min(frames, last + fade_out)
    out = crop_in_place(out, start, stop)
    fade_in = min(int(preset.fade_in_ms / 1000 * sr), first - start)
    if fade_in > 0:
        out[:, first - start - fade_in: first - start] *= _cosine(fade_in)
        out[:, : first - start - fade_in] = 0.0
    n = min(fade_out, out.shape[1])
    out[:, -n:] *= _cosine(n)[::-1]
    return requantize(out, preset.bit_depth, dither=preset.dither, seed=DITHER_SEED)


@pytest.mark.parametrize("preset", ["streaming", "cd"])
@pytest.mark.parametrize("in_place", [False, True])
def test_gain_edges_and_word_length_in_one_pass_are_the_steps_one_by_one(preset, in_place):
    x = loud_synthetic(8.0)
    x = np.concatenate([np.zeros((2, SR)), x, np.zeros((2, 2 * SR))], axis=1).astype(np.float32)
    x[:, SR // 2:SR] = 1e-6  # a faint hiss in the lead-in: faded in, then silenced before it
    prep = prepare(as_mix(x), load_preset(preset), load_template("jazz-band").mastering)
    want = _steps_one_by_one(prep)
    m = finish(prep, in_place=in_place)
    assert m.measurements["chain"]["edges"]["head_trim_s"] > 0.5
    assert m.measurements["chain"]["edges"]["tail_trim_s"] > 1.0
    np.testing.assert_array_equal(m.audio.view(np.int32), want.view(np.int32))
    assert m.measurements["sample_peak_dbfs"] == round(20 * np.log10(np.abs(want).max()), 2)
