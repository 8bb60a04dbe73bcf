"""Gain computers for mastering: a look-ahead true-peak limiter and a slow glue compressor.

Both return a gain per frame and never delay the signal: the master lines up sample for sample
with the mix. Everything is vectorised (scipy filters, cumulative minima); no per-sample loops.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from pipeline.dsp import kernels
from pipeline.dsp.audio import db_to_gain
from pipeline.dsp.envelope import release
from pipeline.dsp.loudness import gated_mean
from pipeline.model import SpanGain

LOOKAHEAD_MS = 1.5
HOLD_MS = 12.0             # longer than half a period of 42 Hz: a steady low tone does not ripple
RELEASE_DB_PER_S = 40.0    # after a brief peak
SUSTAIN_WINDOW_MS = 400.0  # a reduction lasting about this long counts as sustained …
SUSTAIN_RELEASE_DB_PER_S = 8.0  # … and is let go slowly, so dense passages do not pump
INTERP_CHUNK = 1 << 20


def _window_min(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[n] = min(x[n - before : n + after + 1])`` (edges repeat the end values)."""
    size = before + after + 1
    return minimum_filter1d(x, size=size, origin=before - size // 2, mode="nearest")


def _window_mean(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[n] = mean(x[n - before : n + after + 1])``."""
    size = before + after + 1
    return uniform_filter1d(x, size=size, origin=before - size // 2, mode="nearest")


def limiter_gain(envelope: np.ndarray, sample_rate: int, ceiling_dbtp: float, *,
                 lookahead_ms: float = LOOKAHEAD_MS, hold_ms: float = HOLD_MS,
                 scale: np.float32 | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Gain per frame (linear, ≤ 1) that keeps a signal with this true-peak ``envelope``
    (from :func:`~pipeline.dsp.loudness.true_peak_envelope`, shape (frames,)) under the ceiling;
    ``scale``: the envelope is that of the signal times this (no scaled copy is made).

    The gain reaches what a peak needs by the peak (a ramp over the look-ahead), holds it for
    ``hold_ms`` and then releases; the release is program-dependent: a brief peak is let go at
    ``RELEASE_DB_PER_S``, a reduction sustained over ``SUSTAIN_WINDOW_MS`` at the slower
    ``SUSTAIN_RELEASE_DB_PER_S``. Only the stretches around peaks over the ceiling are computed;
    everywhere else the gain is exactly 1. ``out``: an earlier result to reuse (a search that
    tries several gains makes no new whole-length array per try).
    """
    if out is None:
        gain = np.ones(envelope.shape[0], dtype=np.float32)
    else:
        gain = out
        gain.fill(1.0)
    for start, part in _stretches(((0, envelope),), envelope.shape[0], sample_rate, ceiling_dbtp,
                                  lookahead_ms, hold_ms, scale):
        gain[start:start + part.size] = part
    return gain


def span_limiter_gain(spans, frames: int, sample_rate: int, ceiling_dbtp: float, *,
                      scale: np.float32 | None = None) -> SpanGain:
    """:func:`limiter_gain` of a signal whose envelope is known only in ``spans`` (``(start,
    envelope)`` pairs, in order): the same gain, kept as its stretches, where every frame over
    the ceiling lies at least :func:`reach_frames` inside its span (elsewhere the gain is 1)."""
    starts, gains = [], []
    for start, part in _stretches(spans, frames, sample_rate, ceiling_dbtp, LOOKAHEAD_MS,
                                  HOLD_MS, scale):
        starts.append(start)
        gains.append(part)
    return SpanGain(frames, tuple(starts), tuple(gains))


def reach_frames(sample_rate: int, deepest_db: float) -> tuple[int, int]:
    """How many frames before and after a frame over the ceiling the limiter's gain can
    differ from 1, for reductions up to ``deepest_db``."""
    ahead, hold, window = _lengths(sample_rate, LOOKAHEAD_MS, HOLD_MS)
    return ahead + 1, hold + window + int((deepest_db + 1.0) / SUSTAIN_RELEASE_DB_PER_S
                                           * sample_rate) + 1


def _lengths(sample_rate: int, lookahead_ms: float, hold_ms: float) -> tuple[int, int, int]:
    """The look-ahead, hold and sustain window in frames."""
    return (max(1, round(lookahead_ms / 1000 * sample_rate)), round(hold_ms / 1000 * sample_rate),
            round(SUSTAIN_WINDOW_MS / 1000 * sample_rate))


def _stretches(spans, frames: int, sample_rate: int, ceiling_dbtp: float, lookahead_ms: float,
               hold_ms: float, scale: np.float32 | None):
    """``(start, gain)`` of each stretch where the gain is not 1, from the envelope's
    ``spans`` (``(start, envelope)`` pairs: one covering every frame, or those where the
    envelope can reach the ceiling)."""
    ceiling = np.float32(db_to_gain(ceiling_dbtp))

    def scaled(part: np.ndarray) -> np.ndarray:
        return part if scale is None else part * scale

    overs = [(s, env, kernels.indices_above(env, ceiling, scale)) for s, env in spans]
    overs = [(s, env, over) for s, env, over in overs if over.size]
    if not overs:
        return
    ahead, hold, window = _lengths(sample_rate, lookahead_ms, hold_ms)
    # a stretch ends where even the slowest release is back at 0 dB
    deepest = 20 * np.log10(max(scaled(env[over]).max() for _, env, over in overs) / ceiling) + 1.0
    tail = hold + window + int(deepest / SUSTAIN_RELEASE_DB_PER_S * sample_rate)
    for s, envelope, over in overs:
        breaks = np.flatnonzero(np.diff(over) > tail + ahead + 1)
        for first, last in zip(over[np.r_[0, breaks + 1]], over[np.r_[breaks, over.size - 1]]):
            # the stretch in the signal's frames, kept inside its span
            a = max(s, s + first - ahead - 1)
            b = min(frames, s + envelope.shape[0], s + last + tail + 1)
            yield a, _limit(scaled(envelope[a - s:b - s]), sample_rate, ceiling, ahead, hold,
                            window)


def _limit(envelope: np.ndarray, sample_rate: int, ceiling: np.float32, ahead: int, hold: int,
           window: int) -> np.ndarray:
    need = np.minimum(np.float32(1.0), ceiling / np.maximum(envelope, np.float32(1e-12)))
    held = _window_min(need, hold, ahead)             # looks ahead, then holds
    # a ramp over the look-ahead that ends at each peak: every value averaged at a peak already
    # covers that peak, so the mean is at or below what it needs
    smooth = _window_mean(held, ahead, 0)
    smooth_db = np.float32(20) * np.log10(smooth)
    fast = release(smooth_db, RELEASE_DB_PER_S / sample_rate)
    # the mean reduction over the past window: slows the release after dense limiting
    sustained = release(_window_mean(smooth_db, window, 0), SUSTAIN_RELEASE_DB_PER_S / sample_rate)
    out_db = np.minimum(np.minimum(fast, sustained), np.float32(0.0))
    return np.minimum(np.float32(10) ** (out_db / np.float32(20)), smooth)


class GlueGain:
    """A glue compressor's gain per frame, kept on its 5 ms grid and interpolated a slice at a
    time where it is applied (no whole-length array)."""

    def __init__(self, frames: int, centres: np.ndarray | None = None,
                 levels: np.ndarray | None = None):
        self.frames = frames
        self.centres, self.levels = centres, levels

    def slice(self, start: int, stop: int) -> np.ndarray:
        """The gain of frames ``start``…``stop`` (float32)."""
        if self.centres is None:
            return np.ones(stop - start, dtype=np.float32)
        at = np.arange(start, stop, dtype=np.float64).astype(np.float32)  # as a float32 arange
        return np.interp(at, self.centres, self.levels).astype(np.float32)


def glue_gain(audio: np.ndarray, sample_rate: int, *, ratio: float, threshold_above_programme_db: float,
              attack_ms: float, release_ms: float, knee_db: float = 6.0,
              block_ms: float = 5.0) -> GlueGain:
    """A slow, low-ratio bus compressor's gain per frame (linear), from the RMS of both
    channels over the attack time, computed on a 5 ms grid and interpolated to every frame.

    The threshold sits ``threshold_above_programme_db`` above the programme's own level (the
    gated mean power, as loudness gating does), so the same settings suit any mix level.
    """
    frames = audio.shape[1]
    if ratio <= 1.0 or frames == 0:
        return GlueGain(frames)
    block = max(1, int(block_ms / 1000 * sample_rate))
    whole = frames // block
    if whole == 0:
        return GlueGain(frames)
    power = np.empty(whole, dtype=np.float64)
    step = max(1, INTERP_CHUNK // block)  # blocks at a time: no whole-length temporaries
    for first in range(0, whole, step):
        last = min(whole, first + step)
        blocks = audio[:, first * block:last * block].reshape(audio.shape[0], last - first, block)
        # mean square per block, channels summed, without a squared copy of the audio
        power[first:last] = np.einsum("ckb,ckb->k", blocks, blocks, dtype=np.float64) / block
    programme = gated_mean(power)  # the programme's own level, gated as loudness is
    if programme <= 0:
        return GlueGain(frames)
    attack = max(1, round(attack_ms / block_ms))
    level = 10 * np.log10(np.maximum(_window_mean(power, attack, 0), 1e-12))
    over = level - (10 * np.log10(programme) + threshold_above_programme_db)
    slope = 1.0 - 1.0 / ratio
    # soft knee: quadratic across ±knee/2, straight line above
    gr = np.where(over <= -knee_db / 2, 0.0,
                  np.where(over >= knee_db / 2, slope * over,
                           slope * (over + knee_db / 2) ** 2 / (2 * knee_db)))
    gain_db = release(-gr, (6.0 / release_ms) * block_ms)  # 6 dB per release time
    gain_db = _window_mean(gain_db.astype(np.float64), attack, 0)  # attack: a ramp, not a step
    return GlueGain(frames, (np.arange(whole) + 0.5) * block, 10 ** (gain_db / 20))
