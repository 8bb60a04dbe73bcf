"""Loudness (ITU-R BS.1770 via pyloudnorm) and true peak (4× oversampled, as BS.1770-4)."""
from __future__ import annotations

import functools

import numpy as np
import pyloudnorm
from scipy.signal import firwin, lfilter, upfirdn

from .audio import gain_to_db

TRUE_PEAK_OVERSAMPLING = 4
_CHUNK = 1 << 18
_OVERLAP = 64  # frames of context either side of a chunk for the polyphase filter


ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
STEP_S = 0.1          # 100 ms steps: 400 ms blocks overlap by 75 %
BLOCK_STEPS = 4
SHORT_TERM_STEPS = 30  # 3 s


class LoudnessMeter:
    """BS.1770-4 loudness, fed block by block (stems never need to be whole in memory).

    The K-weighting filters are pyloudnorm's; gating is vectorised over 100 ms steps.
    """

    def __init__(self, sample_rate: int, channels: int = 2):
        self.sample_rate = sample_rate
        self.step = int(round(STEP_S * sample_rate))
        self.filters = [(f.b, f.a) for f in pyloudnorm.Meter(sample_rate)._filters.values()]
        self.state = [np.zeros((channels, max(len(a), len(b)) - 1)) for b, a in self.filters]
        self.pending = np.zeros((channels, 0))
        self.steps: list[np.ndarray] = []  # per step: mean square per channel
        self.peak = 0.0

    def feed(self, block: np.ndarray) -> None:
        """Add ``block`` shaped (channels, frames)."""
        if block.shape[1] == 0:
            return
        self.peak = max(self.peak, float(np.abs(block).max()))
        y = block.astype(np.float64)
        for k, (b, a) in enumerate(self.filters):
            y, self.state[k] = lfilter(b, a, y, axis=1, zi=self.state[k])
        y = np.concatenate((self.pending, y * y), axis=1)
        whole = y.shape[1] // self.step
        if whole:
            self.steps.append(y[:, : whole * self.step].reshape(y.shape[0], whole, self.step).mean(axis=2))
        self.pending = y[:, whole * self.step:]

    def _step_powers(self) -> np.ndarray:
        return np.concatenate(self.steps, axis=1) if self.steps else np.zeros((self.pending.shape[0], 0))

    def _windows(self, steps: int) -> np.ndarray:
        """Channel-summed mean square of every window of ``steps`` steps (hop = one step)."""
        z = self._step_powers().sum(axis=0)
        if z.size < steps:
            return np.zeros(0)
        c = np.concatenate(([0.0], np.cumsum(z)))
        return (c[steps:] - c[:-steps]) / steps

    def integrated_lufs(self) -> float:
        """Gated integrated loudness; ``-inf`` for silence or under 400 ms of audio."""
        power = self._windows(BLOCK_STEPS)
        loud = -0.691 + 10 * np.log10(np.maximum(power, 1e-30))
        gated = power[loud > ABSOLUTE_GATE_LUFS]
        if gated.size == 0:
            return float("-inf")
        relative = -0.691 + 10 * np.log10(gated.mean()) + RELATIVE_GATE_LU
        final = power[(loud > ABSOLUTE_GATE_LUFS) & (loud > relative)]
        return float(-0.691 + 10 * np.log10(final.mean()))

    def short_term_lufs(self) -> np.ndarray:
        """Short-term (3 s) loudness every 100 ms, in LUFS."""
        return -0.691 + 10 * np.log10(np.maximum(self._windows(SHORT_TERM_STEPS), 1e-30))


def measure(audio: np.ndarray, sample_rate: int) -> LoudnessMeter:
    """A meter that has heard all of ``audio`` (channels, frames): integrated and short-term
    loudness from one pass."""
    meter = LoudnessMeter(sample_rate, audio.shape[0])
    for start in range(0, audio.shape[1], _CHUNK):
        meter.feed(audio[:, start:start + _CHUNK])
    return meter


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``audio`` shaped (channels, frames); ``-inf`` for silence."""
    return measure(audio, sample_rate).integrated_lufs()


@functools.lru_cache(maxsize=1)
def _interpolator() -> np.ndarray:
    # 48 taps, 12 per phase, as BS.1770-4's example; passband to ~0.45 of the base rate
    h = firwin(48, 0.9 / TRUE_PEAK_OVERSAMPLING, window=("kaiser", 8.0)) * TRUE_PEAK_OVERSAMPLING
    return h.astype(np.float32)


def _channel_max(rows: np.ndarray) -> np.ndarray:
    """Element-wise maximum over the first axis (pairwise: much faster than ``max(axis=0)``)."""
    out = rows[0].copy()
    for row in rows[1:]:
        np.maximum(out, row, out=out)
    return out


def true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-frame true peak (linear) of ``audio`` (channels, frames): the largest magnitude of
    any channel at the frame or at the 4×-oversampled points up to the next frame; shape (frames,)."""
    frames = audio.shape[1]
    h = _interpolator()
    os_ = TRUE_PEAK_OVERSAMPLING
    delay = (len(h) - 1) // 2
    out = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _CHUNK):
        stop = min(frames, start + _CHUNK)
        lo, hi = max(0, start - _OVERLAP), min(frames, stop + _OVERLAP)
        up = upfirdn(h, audio[:, lo:hi].astype(np.float32, copy=False), up=os_, axis=1)
        up = _channel_max(np.abs(up[:, delay: delay + (hi - lo) * os_]))
        per = np.maximum(_channel_max(np.abs(audio[:, lo:hi])), _channel_max(
            np.stack([up[k::os_] for k in range(os_)])))
        out[start:stop] = per[start - lo: stop - lo]
    return out


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak in dBTP."""
    if audio.shape[1] == 0:
        return -200.0
    return gain_to_db(float(true_peak_envelope(audio).max()))
