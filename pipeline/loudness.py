"""Loudness (ITU-R BS.1770-4, EBU R128 loudness range) and true peak (4× oversampled).

Whole arrays are measured with the channels filtered on separate threads (scipy's filters
release the GIL); stems are measured block by block with :class:`LoudnessMeter`.
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyloudnorm
from scipy.signal import firwin, sosfilt, tf2sos, upfirdn

from .audio import gain_to_db

TRUE_PEAK_OVERSAMPLING = 4
_CHUNK = 1 << 18
_OVERLAP = 64  # frames of context either side of a chunk for the polyphase filter
THREADS = 2

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
STEP_S = 0.1          # 100 ms steps: 400 ms blocks overlap by 75 %
BLOCK_STEPS = 4
SHORT_TERM_STEPS = 30  # 3 s
#: A filter whose state is below this (−240 dBFS) has rung out: on silence it gives silence.
RUNG_OUT = 1e-12


@functools.lru_cache(maxsize=8)
def k_weighting(sample_rate: int) -> np.ndarray:
    """The K-weighting pre-filter and RLB high-pass (pyloudnorm's design) as second-order sections."""
    return np.vstack([tf2sos(f.b, f.a) for f in pyloudnorm.Meter(sample_rate)._filters.values()])


def _loudness(power: np.ndarray) -> np.ndarray:
    return -0.691 + 10 * np.log10(np.maximum(power, 1e-30))


def _windows(steps: np.ndarray, size: int) -> np.ndarray:
    """Mean of every run of ``size`` consecutive step powers (hop = one step)."""
    if steps.size < size:
        return np.zeros(0)
    c = np.concatenate(([0.0], np.cumsum(steps, dtype=np.float64)))
    return (c[size:] - c[:-size]) / size


def gated_mean(power: np.ndarray) -> float:
    """Mean of the block powers that pass BS.1770's absolute (−70) and relative (−10 LU)
    gates; 0 when none does."""
    loud = _loudness(power)
    gated = power[loud > ABSOLUTE_GATE_LUFS]
    if gated.size == 0:
        return 0.0
    relative = _loudness(gated.mean()) + RELATIVE_GATE_LU
    return float(power[(loud > ABSOLUTE_GATE_LUFS) & (loud > relative)].mean())


def gated_lufs(steps: np.ndarray) -> float:
    """Integrated loudness from channel-summed 100 ms step powers; ``-inf`` for silence."""
    power = gated_mean(_windows(steps, BLOCK_STEPS))
    return float(_loudness(power)) if power > 0 else float("-inf")


def short_term(steps: np.ndarray) -> np.ndarray:
    """Short-term (3 s) loudness every 100 ms, in LUFS."""
    return _loudness(_windows(steps, SHORT_TERM_STEPS))


def loudness_range(steps: np.ndarray) -> float:
    """EBU R128 loudness range (LRA, EBU Tech 3342) in LU: the spread between the 10th and
    95th percentiles of the gated short-term loudness; 0 when too short to tell."""
    st = short_term(steps)
    st = st[st > ABSOLUTE_GATE_LUFS]
    if st.size == 0:
        return 0.0
    power = 10 ** ((st + 0.691) / 10)
    st = st[st > _loudness(power.mean()) + LRA_RELATIVE_GATE_LU]
    if st.size < 2:
        return 0.0
    lo, hi = np.percentile(st, [10, 95])
    return float(hi - lo)


@dataclass(frozen=True)
class Loudness:
    """What a meter read from a whole programme."""

    steps: np.ndarray  # channel-summed mean square of the K-weighted signal per 100 ms

    def integrated_lufs(self) -> float:
        return gated_lufs(self.steps)

    def short_term_lufs(self) -> np.ndarray:
        return short_term(self.steps)

    def range_lu(self) -> float:
        return loudness_range(self.steps)


class LoudnessMeter:
    """BS.1770-4 loudness fed block by block (stems never need to be whole in memory)."""

    def __init__(self, sample_rate: int, channels: int = 2):
        self.step = _step(sample_rate)
        self.sos = k_weighting(sample_rate)
        self.channels = channels
        self.state = _k_state(self.sos, channels)
        self.pending = np.zeros(0)
        self.steps: list[np.ndarray] = []
        self.peak = 0.0

    def feed(self, block: np.ndarray) -> None:
        """Add ``block`` shaped (channels, frames)."""
        if block.shape[1] == 0:
            return
        peak = float(np.abs(block).max())
        if peak == 0.0:
            self.silence(block.shape[1])
            return
        self.peak = max(self.peak, peak)
        self._filter(block)

    def silence(self, frames: int) -> None:
        """Add ``frames`` frames of digital silence. Once the filter has rung out (the usual
        case: a player resting) nothing is filtered: the powers are zero to within
        ``RUNG_OUT``², far under the −70 LUFS gate."""
        if frames <= 0:
            return
        if np.abs(self.state).max() >= RUNG_OUT:
            self._filter(np.zeros((self.channels, frames), dtype=np.float32))
        else:
            self.state[:] = 0.0
            self._add_power(np.zeros(frames))

    def _filter(self, block: np.ndarray) -> None:
        rows, self.state = _k_filter(self.sos, block, self.state)
        self._add_power(_power(rows))

    def _add_power(self, power: np.ndarray) -> None:
        y = np.concatenate((self.pending, power))
        whole = y.size // self.step
        if whole:
            self.steps.append(_step_means(y, self.step))
        self.pending = y[whole * self.step:]

    def result(self) -> Loudness:
        return Loudness(np.concatenate(self.steps) if self.steps else np.zeros(0))

    def integrated_lufs(self) -> float:
        return self.result().integrated_lufs()


def _k_state(sos: np.ndarray, channels: int) -> np.ndarray:
    """The K-weighting's initial (zero) state for ``channels`` channels (see :func:`_k_filter`)."""
    return np.zeros((sos.shape[0], 2), dtype=np.complex128) if channels == 2 else \
        np.zeros((sos.shape[0], channels, 2))


def _k_filter(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple:
    """The K-weighted channels of ``x`` (channels, n), float64, and the filter's new state.

    A stereo pair goes through as one complex signal (left real, right imaginary): real
    coefficients keep the parts apart, so the result is that of two real passes, bit for
    bit, in little more than the time of one."""
    if x.shape[0] == 2:
        y, zi = sosfilt(sos, x[0] + np.complex64(1j) * x[1], zi=zi)
        return (y.real, y.imag), zi
    return sosfilt(sos, x, axis=1, zi=zi)


def _power(rows) -> np.ndarray:
    """The channel-summed square of ``rows``."""
    power = rows[0] * rows[0]
    for row in rows[1:]:
        power += row * row
    return power


def _step_means(power: np.ndarray, step: int) -> np.ndarray:
    """Mean of ``power`` over each whole ``step`` frames (a last part step is dropped), float64."""
    whole = power.size // step
    return power[: whole * step].reshape(whole, step).mean(axis=1, dtype=np.float64)


def _k_weighted_chunks(audio: np.ndarray, sample_rate: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, power)`` for consecutive chunks of ``audio`` (channels, frames): the
    channel-summed square of the K-weighted signal, float32, the filter's state carried from
    chunk to chunk (the same figures as filtering the whole at once; only a chunk in memory).
    A chunk is a whole number of 100 ms steps."""
    sos = k_weighting(sample_rate)
    channels, frames = audio.shape
    chunk = max(1, _CHUNK // _step(sample_rate)) * _step(sample_rate)
    zi = _k_state(sos, channels)
    for start in range(0, frames, chunk):
        rows, zi = _k_filter(sos, audio[:, start:start + chunk], zi)
        yield start, _power([row.astype(np.float32) for row in rows])


def _step(sample_rate: int) -> int:
    return int(round(STEP_S * sample_rate))


def k_weighted_power(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-summed square of the K-weighted signal per frame, float32, shape (frames,)."""
    out = np.empty(audio.shape[1], dtype=np.float32)
    for start, power in _k_weighted_chunks(audio, sample_rate):
        out[start:start + power.size] = power
    return out


def step_powers(power: np.ndarray, sample_rate: int, gain: np.ndarray | None = None, *,
                scale: np.float32 | None = None) -> np.ndarray:
    """100 ms means of ``power`` (from :func:`k_weighted_power`), optionally after a per-frame
    amplitude ``gain`` (times a constant ``scale``) — the gain is applied after the K-weighting,
    which is exact for a constant gain and within a few hundredths of a LU for a limiter's brief
    dips. Worked through in chunks: no whole-length temporaries."""
    step = _step(sample_rate)
    whole = power.size // step
    out = np.empty(whole, dtype=np.float64)
    chunk = max(1, _CHUNK // step)  # steps at a time
    for first in range(0, whole, chunk):
        last = min(whole, first + chunk)
        p = power[first * step: last * step]
        if gain is not None:
            g = gain[first * step: last * step]
            if scale is not None:
                g = g * scale
            p = p * (g * g)
        out[first:last] = _step_means(p, step)
    return out


def measure(audio: np.ndarray, sample_rate: int) -> Loudness:
    """Integrated, short-term and range of ``audio`` (channels, frames) from one pass, chunk
    by chunk (the same figures as :func:`step_powers` of :func:`k_weighted_power`)."""
    step = _step(sample_rate)
    # only the last chunk has a part step: it is dropped
    steps = [_step_means(power, step) for _, power in _k_weighted_chunks(audio, sample_rate)]
    return Loudness(np.concatenate(steps) if steps else np.zeros(0))


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``audio`` shaped (channels, frames); ``-inf`` for silence."""
    return measure(audio, sample_rate).integrated_lufs()


@functools.lru_cache(maxsize=1)
def _interpolator() -> np.ndarray:
    # 48 taps, 12 per phase, as BS.1770-4's example; passband to ~0.45 of the base rate
    h = firwin(48, 0.9 / TRUE_PEAK_OVERSAMPLING, window=("kaiser", 8.0)) * TRUE_PEAK_OVERSAMPLING
    return h.astype(np.float32)


@functools.lru_cache(maxsize=1)
def interpolation_bound() -> float:
    """The most an interpolated point can exceed the largest neighbouring sample (|Σ h| per
    phase, worst phase): blocks whose sample peak times this stays under a floor cannot reach it."""
    h = _interpolator().astype(np.float64)
    return max(1.0, max(float(np.abs(h[k::TRUE_PEAK_OVERSAMPLING]).sum())
                        for k in range(TRUE_PEAK_OVERSAMPLING)))


def _channel_max(rows: np.ndarray) -> np.ndarray:
    """Element-wise maximum over the first axis (pairwise: much faster than ``max(axis=0)``)."""
    out = rows[0].copy()
    for row in rows[1:]:
        np.maximum(out, row, out=out)
    return out


def _oversampled_chunk(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    frames = audio.shape[1]
    h, os_ = _interpolator(), TRUE_PEAK_OVERSAMPLING
    delay = (len(h) - 1) // 2
    lo, hi = max(0, start - _OVERLAP), min(frames, stop + _OVERLAP)
    up = upfirdn(h, audio[:, lo:hi].astype(np.float32, copy=False), up=os_, axis=1)
    up = _channel_max(np.abs(up[:, delay: delay + (hi - lo) * os_]))
    per = _channel_max(np.stack([up[k::os_] for k in range(os_)]))
    return per[start - lo: stop - lo]


def true_peak_envelope(audio: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Per-frame true peak (linear) of ``audio`` (channels, frames): the largest magnitude of
    any channel at the frame or at the 4×-oversampled points up to the next frame; shape (frames,).

    Chunks that cannot reach ``floor`` (linear) even between samples keep their sample peaks,
    which is exact for every use that only asks where the envelope exceeds ``floor``.
    """
    frames = audio.shape[1]
    out = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _CHUNK):
        out[start:start + _CHUNK] = _channel_max(np.abs(audio[:, start:start + _CHUNK]))
    starts = _candidates([float(out[s:s + _CHUNK].max()) for s in range(0, frames, _CHUNK)],
                         floor)

    def one(start: int) -> None:
        stop = min(frames, start + _CHUNK)
        np.maximum(out[start:stop], _oversampled_chunk(audio, start, stop), out=out[start:stop])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, starts))
    return out


def _candidates(chunk_peaks: list[float], floor: float) -> list[int]:
    """Starts of the chunks whose true peak might reach ``floor`` (all when it is 0)."""
    starts = [i * _CHUNK for i in range(len(chunk_peaks))]
    if floor <= 0:
        return starts
    bound = interpolation_bound()
    # a chunk's edges see its neighbours' samples through the interpolator
    return [s for i, s in enumerate(starts)
            if max(chunk_peaks[max(0, i - 1): i + 2]) * bound >= floor]


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak in dBTP. Only chunks that could exceed the largest sample between their
    samples are oversampled: the result is exact and usually far cheaper than the whole (and
    no per-frame envelope is kept)."""
    frames = audio.shape[1]
    if frames == 0:
        return -200.0
    chunk_peaks = [float(np.abs(audio[:, s:s + _CHUNK]).max()) for s in range(0, frames, _CHUNK)]
    peak = max(chunk_peaks)
    if peak == 0.0:
        return -200.0

    def one(start: int) -> float:
        return float(_oversampled_chunk(audio, start, min(frames, start + _CHUNK)).max())

    with ThreadPoolExecutor(THREADS) as pool:
        between = list(pool.map(one, _candidates(chunk_peaks, peak)))
    return gain_to_db(max([peak, *between]))
