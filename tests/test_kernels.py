"""The compiled kernels against the scipy routines they replace (float32 audio: agreement to
float32 rounding of the result, about 1e-7 of full scale)."""
import numpy as np
import pytest
from scipy.signal import butter, sosfilt, upfirdn

from pipeline.dsp import kernels
from pipeline.dsp.loudness import (LoudnessMeter, _interpolator, k_weighted_power, k_weighting,
                               measure, true_peak_dbtp, true_peak_envelope)

RNG = np.random.default_rng(7)


def _noise(channels: int, frames: int, level: float = 0.3) -> np.ndarray:
    return (RNG.standard_normal((channels, frames)) * level).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_sos_filter_matches_scipy_across_blocks(channels):
    sos = np.vstack([butter(2, 80, "highpass", fs=48000, output="sos"),
                     butter(1, 9000, "lowpass", fs=48000, output="sos"), k_weighting(48000)])
    x = _noise(channels, 50_000)
    want, _ = sosfilt(sos, x.astype(np.float64), axis=1, zi=np.zeros((len(sos), channels, 2)))
    zi = np.zeros((len(sos), channels, 2))
    got = np.concatenate([kernels.sos_filter(sos, x[:, a:a + 7001], zi)
                          for a in range(0, x.shape[1], 7001)], axis=1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=3e-7)


def test_sos_filter_many_sections_in_passes_matches_scipy():
    """More sections than one pass runs: the rest through a double-precision row, the state
    of every section carried across blocks."""
    sos = np.vstack([butter(10, 60, "highpass", fs=48000, output="sos"),
                     butter(12, 12000, "lowpass", fs=48000, output="sos"),
                     butter(4, [300, 3000], "bandpass", fs=48000, output="sos")])
    assert len(sos) > kernels.PASS_SECTIONS
    x = _noise(2, 30_000)
    want, _ = sosfilt(sos, x.astype(np.float64), axis=1, zi=np.zeros((len(sos), 2, 2)))
    zi = np.zeros((len(sos), 2, 2))
    got = np.concatenate([kernels.sos_filter(sos, x[:, a:a + 7001], zi)
                          for a in range(0, x.shape[1], 7001)], axis=1)
    np.testing.assert_allclose(got, want, atol=3e-7)


def test_sos_filter_in_place():
    sos = butter(2, 500, fs=48000, output="sos")
    x = _noise(2, 1000)
    want = kernels.sos_filter(sos, x, np.zeros((1, 2, 2)))
    kernels.sos_filter(sos, x, np.zeros((1, 2, 2)), out=x)
    np.testing.assert_array_equal(x, want)


def test_filtered_power_and_step_sums_match_scipy():
    sos, step = k_weighting(44100), 4410
    x = _noise(2, 100_003)
    y = sosfilt(sos, x.astype(np.float64), axis=1)
    power = (y * y).sum(axis=0)
    got = kernels.filtered_power(sos, x, np.zeros((2, 2, 2)))
    np.testing.assert_allclose(got, power, rtol=1e-6, atol=1e-9)
    zi, carry = np.zeros((2, 2, 2)), np.zeros(2)
    sums = np.concatenate([kernels.filtered_step_sums(sos, x[:, a:a + 3333], zi, step, carry)
                           for a in range(0, x.shape[1], 3333)])
    whole = power.size // step
    np.testing.assert_allclose(sums, power[:whole * step].reshape(whole, step).sum(axis=1),
                               rtol=1e-10)
    assert carry[1] == power.size - whole * step  # the open step is carried
    assert carry[0] == pytest.approx(power[whole * step:].sum(), rel=1e-10)


def test_meter_silence_and_blocks_agree_with_whole_measure():
    """A meter fed blocks with stretches of digital silence reads what one pass over the
    whole reads (the steps straddling block edges and silences included)."""
    x = _noise(2, 300_000)
    x[:, 40_000:170_000] = 0.0
    meter = LoudnessMeter(48000)
    for a in range(0, x.shape[1], 9_999):
        meter.feed(x[:, a:a + 9_999])
    whole = measure(x, 48000)
    np.testing.assert_allclose(meter.result().steps, whole.steps, rtol=1e-9, atol=1e-20)
    assert meter.result().integrated_lufs() == pytest.approx(whole.integrated_lufs(), abs=1e-9)
    assert k_weighted_power(x, 48000).shape == (x.shape[1],)


@pytest.mark.parametrize("frames", [1, 7, 4095, 4096, 4097, 70_001])
def test_true_peak_matches_upfirdn(frames):
    x = _noise(2, frames, 0.2)
    x[1, frames // 2] = 0.9  # one loud sample: its neighbours ring over it between samples
    h = _interpolator()
    delay = (len(h) - 1) // 2
    up = upfirdn(h, x, up=4, axis=1)[:, delay:delay + 4 * frames]
    want = np.maximum(np.abs(up).max(axis=0).reshape(frames, 4).max(axis=1), np.abs(x).max(axis=0))
    np.testing.assert_allclose(true_peak_envelope(x), want, atol=3e-7)
    assert true_peak_dbtp(x) == pytest.approx(20 * np.log10(want.max()), abs=1e-5)
    # with a floor, exact wherever the envelope can reach it
    floor = float(want.max()) * 0.8
    env = true_peak_envelope(x, floor)
    np.testing.assert_allclose(env[want >= floor], want[want >= floor], atol=3e-7)


def test_true_peak_between_samples():
    """A full-scale sine at a quarter of the rate, sampled at ±45°: every sample is 0.707, the
    true peak 1.0 (+3 dB over the samples)."""
    n = np.arange(48000)
    x = np.sin(np.pi / 2 * n + np.pi / 4).astype(np.float32)[None].repeat(2, axis=0)
    assert np.abs(x).max() == pytest.approx(0.7071, abs=1e-4)
    fade = np.sin(np.linspace(0, np.pi / 2, 480, dtype=np.float32)) ** 2
    x[:, :480] *= fade  # no step at either end: a step rings over the sine's peak
    x[:, -480:] *= fade[::-1]
    # the interpolated points fall on the quarters of a frame, where this sine peaks (as
    # ffmpeg's 192 kHz resampling reads it); the filter's passband is 0.01 dB down there
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("pan", [True, False])
def test_player_is_meter_filter_pan_meter(pan):
    """The fused mixer channel gives what the separate steps give: the stem's meter, the
    filter cascade, the pan matrix and the meter of the result, block after block."""
    sr, step = 48000, 4800
    k_sos = k_weighting(sr)
    sos = np.vstack([butter(1, 7000, "lowpass", fs=sr, output="sos"),
                     butter(2, 60, "highpass", fs=sr, output="sos")])
    matrix = np.array([[0.9, 0.2], [0.1, 0.5]], dtype=np.float32)
    x = _noise(2, 40_000)
    filtered = sosfilt(sos, x.astype(np.float64), axis=1).astype(np.float32)
    sos = kernels.channel_sections(sos)
    panned = matrix @ filtered
    stem_ref = LoudnessMeter(sr)
    stem_ref.feed(x)
    post_ref = LoudnessMeter(sr)
    post_ref.feed(panned)
    stem, post = LoudnessMeter(sr), LoudnessMeter(sr)
    zi, out = np.zeros((kernels.CHANNEL_SECTIONS, 2, 2)), []
    for a in range(0, x.shape[1], 6_500):
        y, stem_sums, post_sums, peak = kernels.player(
            x[:, a:a + 6_500], k_sos, step, stem.k_state, sos, zi,
            matrix if pan else None, post.k_state if pan else None)
        stem.add_step_sums(stem_sums, peak)
        post.add_step_sums(post_sums)
        out.append(y)
    np.testing.assert_allclose(np.concatenate(out, axis=1), panned if pan else filtered, atol=3e-7)
    np.testing.assert_allclose(stem.result().steps, stem_ref.result().steps, rtol=1e-6)
    assert stem.peak == pytest.approx(np.abs(x).max())
    if pan:
        np.testing.assert_allclose(post.result().steps, post_ref.result().steps, rtol=1e-5)
    else:
        assert post.result().steps.size == 0


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_player_skips_the_padding(count):
    """Told how many sections are real, the channel skips the pass-throughs and gives the
    same bits as running them."""
    sr = 48000
    real = np.vstack([butter(2, f, "highpass", fs=sr, output="sos") for f in (40, 80, 120)])
    sos = kernels.channel_sections(real[:count])
    x = _noise(2, 20_000)
    runs = []
    for sections in (kernels.CHANNEL_SECTIONS, count):
        stem, post = LoudnessMeter(sr), LoudnessMeter(sr)
        runs.append(kernels.player(x, k_weighting(sr), 4800, stem.k_state, sos,
                                   np.zeros((kernels.CHANNEL_SECTIONS, 2, 2)),
                                   np.eye(2, dtype=np.float32), post.k_state, sections))
    (y4, stem4, post4, peak4), (y, stem_sums, post_sums, peak) = runs
    assert np.array_equal(y, y4) and np.array_equal(post_sums, post4)
    assert np.array_equal(stem_sums, stem4) and peak == peak4


def test_channel_sections_pads_and_refuses_too_many():
    sos = butter(2, 100, "highpass", fs=48000, output="sos")
    padded = kernels.channel_sections(sos)
    assert padded.shape == (kernels.CHANNEL_SECTIONS, 6)
    x = _noise(2, 5000)
    np.testing.assert_allclose(kernels.sos_filter(padded, x, np.zeros((4, 2, 2))),
                               kernels.sos_filter(sos, x, np.zeros((1, 2, 2))), atol=1e-7)
    with pytest.raises(ValueError):
        kernels.channel_sections(np.tile(sos, (5, 1)))


@pytest.mark.parametrize("bits", [16, 24])
def test_to_pcm_is_requantize_without_dither(bits):
    from pipeline.dsp.audio import requantize
    x = _noise(2, 10_000, 0.5)
    x[0, :4] = [1.5, -1.5, 1.0, -1.0]  # clipped at the format's ends
    scale = np.float32(1 << (bits - 1))
    x[1, :3] = np.array([0.5, 1.5, -2.5], dtype=np.float32) / scale  # halves round to even
    want = (requantize(x, bits, dither=False) * scale).T
    got = kernels.to_pcm(x, bits)
    if bits == 24:
        np.testing.assert_array_equal(got >> 8, want.astype(np.int32))
    else:
        assert got.dtype == np.int16
        np.testing.assert_array_equal(got, want.astype(np.int16))


def test_last_above_finds_the_last_loud_frame():
    x = np.zeros((4, 1000), dtype=np.float32)
    assert kernels.last_above(x, 1e-4) == -1
    x[2, 17], x[0, 600], x[3, 601] = 0.5, -2e-4, 1e-4  # the last is not above: equal
    assert kernels.last_above(x, 1e-4) == 600
    assert kernels.last_above(x[:, :0], 1e-4) == -1
    want = np.flatnonzero(np.abs(x).max(axis=0) > 3.2e-5)[-1]
    assert kernels.last_above(x, 3.2e-5) == want == 601


def test_interleave():
    x = _noise(2, 1001)
    np.testing.assert_array_equal(kernels.interleave(x), x.T)
    assert kernels.interleave(x).flags.c_contiguous


def test_float_frames_read_and_written_raw(tmp_path):
    """Stems written as raw bytes read back, raw or through libsndfile, as written."""
    import soundfile as sf
    from pipeline.files import read_float_frames, write_raw
    x = _noise(2, 10_000)
    path = tmp_path / "stem.wav"
    with sf.SoundFile(str(path), "w", 48000, 2, subtype="FLOAT", format="WAV") as f:
        write_raw(f, kernels.interleave(x[:, :4000]))
        write_raw(f, kernels.interleave(x[:, 4000:]))
    back, _ = sf.read(str(path), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(back.T, x)
    with sf.SoundFile(str(path)) as f:
        parts = [read_float_frames(f, 3000) for _ in range(4)]
    assert [p.shape[1] for p in parts] == [3000, 3000, 3000, 1000]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), x)


def _release_numpy(gain_db, rate, initial, dtype, chunk):
    """The limiter's release as it was written with numpy: a cumulative minimum per chunk."""
    out = np.empty(gain_db.size, dtype=dtype)
    ramp = np.arange(min(chunk, gain_db.size) + 1, dtype=np.float64) * rate
    last = initial
    for start in range(0, gain_db.size, chunk):
        g = gain_db[start:start + chunk]
        r = ramp[1: g.size + 1]
        local = np.minimum.accumulate(np.minimum(g - r, last)) + r
        out[start:start + g.size] = local
        last = float(local[-1])
    return out


@pytest.mark.parametrize("frames, chunk", [(300_000, 1 << 16), (1000, 7), (5, 1 << 20), (0, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_release_is_numpy_s_cumulative_minimum_exactly(frames, chunk, dtype):
    from pipeline.dsp.envelope import release
    g = (-np.abs(np.random.default_rng(frames).standard_normal(frames)) * 6).astype(dtype)
    for out_dtype, initial in ((np.float32, np.inf), (np.float64, -3.25)):
        want = _release_numpy(g, 40 / 48000, initial, out_dtype, chunk)
        got = release(g, 40 / 48000, initial=initial, dtype=out_dtype, chunk=chunk)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_first_above_and_indices_above():
    x = np.zeros((2, 1000), dtype=np.float32)
    x[1, 17], x[0, 900] = 0.5, -0.6
    assert (kernels.first_above(x, 0.4), kernels.last_above(x, 0.4)) == (17, 900)
    assert kernels.first_above(x, 0.7) == -1 and kernels.first_above(x[:, :0], 0.1) == -1
    row = (np.random.default_rng(3).random(100_000) * 1.2).astype(np.float32)
    for values in (row, row.astype(np.float64)):  # float64: promoted as numpy promotes
        for scale in (None, np.float32(1.0173), np.float32(0.93)):
            want = np.flatnonzero((values if scale is None else values * scale) > np.float32(0.99))
            np.testing.assert_array_equal(kernels.indices_above(values, np.float32(0.99), scale),
                                          want)


@pytest.mark.parametrize("block", [8, 1024])
def test_real_fft_through_its_even_and_odd_halves(block):
    import scipy.fft

    rng = np.random.default_rng(block)
    x = rng.standard_normal((2, 2 * block)).astype(np.float32)
    whole = scipy.fft.rfft(x, axis=1)
    twiddles = kernels.half_twiddles(block)
    halves = np.empty((2, 2, block), dtype=np.float32)
    kernels.deinterleave(x, halves)
    np.testing.assert_array_equal(halves[:, 0], x[:, 0::2])
    joined = np.empty_like(whole)
    kernels.join_halves(scipy.fft.rfft(halves, axis=2), twiddles, joined)
    np.testing.assert_allclose(joined, whole, rtol=0, atol=1e-5 * np.abs(whole).max())
    # and back: the second half of the inverse, from the inverses of the two halves
    back = scipy.fft.irfft(kernels.split_halves(whole, twiddles), n=block, axis=2)
    np.testing.assert_allclose(kernels.interleave_halves(back, block // 2, block),
                               x[:, block:], rtol=0, atol=1e-5)
    np.testing.assert_allclose(kernels.interleave_halves(back, 0, block), x[:, :block],
                               rtol=0, atol=1e-5)


def test_deinterleave_pads_a_short_block_with_zeros():
    x = np.arange(1, 12, dtype=np.float32).reshape(1, 11)  # odd: its last odd sample is missing
    out = np.full((1, 2, 8), np.nan, dtype=np.float32)
    kernels.deinterleave(x, out)
    np.testing.assert_array_equal(out[0, 0], [1, 3, 5, 7, 9, 11, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [2, 4, 6, 8, 10, 0, 0, 0])


def test_reduction_sums_take_only_the_reduced_frames():
    gain = np.ones(1000, dtype=np.float32)
    gain[10:20] = np.float32(0.5)      # 6.02 dB
    gain[30] = np.float32(0.995)       # 0.04 dB: under 0.1
    gain[40] = np.float32(0.0)         # clipped at 1e-6: 120 dB
    low, total, over = kernels.reduction_sums(gain, 0.1)
    reduction = np.float32(-20) * np.log10(np.clip(gain, np.float32(1e-6), np.float32(1)))
    assert low == 0.0 and over == 11
    # (numba's float32 logarithm and numpy's may differ in their last bit)
    assert total == pytest.approx(float(reduction.sum(dtype=np.float64)), rel=1e-6)
    assert kernels.reduction_sums(np.ones(5, np.float32), 0.1) == (1.0, 0.0, 0)


def _numpy_requantize(x, bits, dither, seed=2024):
    """requantize as numpy wrote it: the reference for the one-pass kernel."""
    scale = np.float32(1 << (bits - 1))
    x = x.astype(np.float32)
    x *= scale
    if dither:
        rng = np.random.default_rng(seed)
        for row in x:
            row += rng.random(row.size, dtype=np.float32)
            row -= rng.random(row.size, dtype=np.float32)
    np.rint(x, out=x)
    np.clip(x, -scale, scale - 1, out=x)
    x *= np.float32(1.0) / scale
    return x


def _numpy_block_peaks(x, block):
    return np.array([np.abs(x[:, a:a + block]).max() for a in range(0, x.shape[1], block)],
                    dtype=np.float32)


@pytest.mark.parametrize("bits", [16, 24])
@pytest.mark.parametrize("dither", [False, True])
def test_requantize_is_numpys_rounding_with_the_peaks(bits, dither):
    from pipeline.dsp.audio import PEAK_BLOCK, peak_blocks, requantize
    x = _noise(2, 3 * PEAK_BLOCK + 1001, 0.5)
    x[0, :4] = [1.5, -1.5, 1.0, -1.0]  # clipped at the format's ends
    scale = np.float32(1 << (bits - 1))
    x[1, :4] = np.array([0.5, 1.5, -2.5, -0.25], dtype=np.float32) / scale  # halves to even, −0
    want = _numpy_requantize(x, bits, dither)
    peaks = peak_blocks(x.shape[1])
    got = requantize(x, bits, dither=dither, peaks=peaks)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))  # signs of zero too
    np.testing.assert_array_equal(peaks, _numpy_block_peaks(want, PEAK_BLOCK))


def test_block_peaks_scaled_and_left_right_keep_the_peaks_of_what_they_write():
    from pipeline.dsp.audio import PEAK_BLOCK, block_peaks, peak_blocks
    x = _noise(2, 5 * PEAK_BLOCK + 77)
    want = _numpy_block_peaks(x, PEAK_BLOCK)
    np.testing.assert_array_equal(block_peaks(x), want)
    peaks = peak_blocks(x.shape[1])
    for a in range(0, x.shape[1], 3000):  # chunks across the blocks' borders
        kernels.block_peaks(x[:, a:a + 3000], a, PEAK_BLOCK, peaks)
    np.testing.assert_array_equal(peaks, want)
    gain = (RNG.random(x.shape[1]) * 2).astype(np.float32)
    out, peaks = np.empty_like(x), peak_blocks(x.shape[1])
    for a in range(0, x.shape[1], 3000):
        kernels.scaled(x[:, a:a + 3000], gain[a:a + 3000], out[:, a:a + 3000], a, PEAK_BLOCK,
                       peaks)
    np.testing.assert_array_equal(out, x * gain)
    np.testing.assert_array_equal(peaks, _numpy_block_peaks(x * gain, PEAK_BLOCK))
    width = np.float32(0.8)
    lr, peaks = np.empty_like(x), peak_blocks(x.shape[1])
    for a in range(0, x.shape[1], 3000):
        kernels.left_right(x[0, a:a + 3000], x[1, a:a + 3000], width, lr[0, a:a + 3000],
                           lr[1, a:a + 3000], peaks, a, PEAK_BLOCK)
    np.testing.assert_array_equal(lr, np.stack([x[0] + x[1] * width, x[0] - x[1] * width]))
    np.testing.assert_array_equal(peaks, _numpy_block_peaks(lr, PEAK_BLOCK))


def test_a_block_with_a_nan_or_an_infinity_has_a_peak_that_is_not_finite():
    from pipeline.dsp.audio import PEAK_BLOCK, block_peaks, valid_audio
    from pipeline.errors import PipelineError
    for bad in (np.nan, np.inf, -np.inf):
        x = _noise(2, 3 * PEAK_BLOCK)
        x[1, PEAK_BLOCK + 5] = bad
        peaks = block_peaks(x)
        assert not np.isfinite(peaks[1]) and np.isfinite(peaks[[0, 2]]).all()
        with pytest.raises(PipelineError, match="NaN or infinite"):
            valid_audio(x, peaks=peaks)


def test_peak_map_and_true_peak_from_the_peaks_kept():
    from pipeline.dsp.audio import block_peaks
    from pipeline.dsp.loudness import peak_map, true_peak_span
    x = _noise(2, 300_000, 0.05)
    x[:, 100_000:104_000] *= 10
    floor = float(np.abs(x).max()) * 0.5
    peaks = block_peaks(x)
    kept, read = peak_map(x, floor, block_peaks=peaks), peak_map(x, floor)
    assert kept.candidates == read.candidates and kept.candidates
    np.testing.assert_array_equal(kept.block_peaks, read.block_peaks)
    assert true_peak_dbtp(x, 48000, block_peaks=peaks) == true_peak_dbtp(x, 48000)
    env = true_peak_envelope(x, floor)
    for a, b in ((0, x.shape[1]), (90_000, 120_000), (kept.candidates[0][0], 250_000)):
        np.testing.assert_array_equal(true_peak_span(x, a, b, kept), env[a:b])


@pytest.mark.parametrize("channels, frames", [(2, 10_000), (2, 10_001), (2, 1), (1, 999), (3, 1000)])
def test_pcm24_bytes_are_the_24_bit_integers_little_endian(channels, frames):
    x = _noise(channels, frames + 7, 0.5)
    x[0, :min(frames, 4)] = [1.5, -1.5, 1.0, -1.0][:min(frames, 4)]  # clipped at the ends
    x = x[:, 3:3 + frames]  # a slice of a longer signal: rows apart in memory
    ints = kernels.to_pcm(x, 24) >> 8  # (frames, channels)
    want = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].ravel()
    np.testing.assert_array_equal(kernels.to_pcm24_bytes(x), want)


def test_gained_to_grid_is_scaled_then_rounded_even_over_itself():
    from pipeline.dsp.audio import PEAK_BLOCK, peak_blocks
    x = _noise(2, 3 * PEAK_BLOCK + 5, 0.7)
    gain = (RNG.random(x.shape[1]) * 1.5).astype(np.float32)
    scale = np.float32(1 << 23)
    want = _numpy_requantize(x * gain, 24, False)
    out, peaks = np.empty_like(x), peak_blocks(x.shape[1])
    kernels.gained_to_grid(x, gain, out, scale, 0, PEAK_BLOCK, peaks)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(peaks, _numpy_block_peaks(want, PEAK_BLOCK))
    flat = x.copy().reshape(-1)  # in place, the result lying 100 frames before its source
    kernels.gained_to_grid(flat[100:].reshape(1, -1), np.ones(flat.size - 100, np.float32),
                           flat[:-100].reshape(1, -1), scale, 0, PEAK_BLOCK,
                           peak_blocks(flat.size))
    np.testing.assert_array_equal(flat[:-100], _numpy_requantize(x.reshape(1, -1)[:, 100:], 24,
                                                                 False)[0])
