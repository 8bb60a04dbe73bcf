"""Master stage: the stereo mix is brought to the preset's loudness under its true-peak ceiling.

The limiter looks ahead without delaying the signal (the master lines up sample for sample
with the mix): the gain needed at each frame comes from the 4×-oversampled true-peak envelope,
is held over the look-ahead window ahead of each peak, smoothed by a moving average over the same
window (so the gain is already down when the peak arrives), and released with a one-pole curve.
All of it is vectorised with scipy; there is no per-sample Python loop.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

from .audio import db_to_gain, gain_to_db, valid_audio
from .config import Preset
from .loudness import integrated_lufs, measure, true_peak_dbtp, true_peak_envelope
from .model import Master, Mix

LOOKAHEAD_MS = 1.5
RELEASE_MS = 80.0
#: The limiter aims this far under the ceiling, so reconstruction between samples stays under it.
CEILING_MARGIN_DB = 0.15
LOUDNESS_TOLERANCE_LU = 0.05


def limiter_gain(envelope: np.ndarray, sample_rate: int, ceiling_dbtp: float, *,
                 lookahead_ms: float = LOOKAHEAD_MS, release_ms: float = RELEASE_MS) -> np.ndarray:
    """Gain per frame (linear, ≤ 1) that keeps a signal with this true-peak ``envelope``
    (from :func:`~pipeline.loudness.true_peak_envelope`, shape (frames,)) under the ceiling."""
    need = np.minimum(np.float32(1.0), np.float32(db_to_gain(ceiling_dbtp))
                      / np.maximum(envelope.astype(np.float32), np.float32(1e-12)))
    if need.min() >= 1.0:
        return np.ones(envelope.shape[0], dtype=np.float32)
    window = max(3, int(round(lookahead_ms / 1000 * sample_rate)))
    # held[n] = min(need[n : n + window]); smooth[n] = mean(held[n - window + 1 : n + 1]),
    # so at a peak every value averaged is already at or below what the peak needs
    held = minimum_filter1d(need, size=window, origin=-(window // 2), mode="nearest")
    smooth = uniform_filter1d(held, size=window, origin=(window - 1) // 2, mode="nearest")
    smooth = np.minimum(smooth, held)
    a = np.float32(np.exp(-1.0 / (release_ms / 1000 * sample_rate)))
    released = lfilter([1 - a], [1, -a], smooth - np.float32(1.0)) + np.float32(1.0)
    return np.minimum(smooth, released).astype(np.float32)


def master(mix: Mix, preset: Preset) -> Master:
    """Bring ``mix`` to ``preset``'s loudness target and true-peak ceiling.

    Returns a :class:`Master` at the preset's sample rate with the measured loudness, true peak
    and the limiter's gain reduction.
    """
    audio, sr, mix_lufs = mix.audio, mix.sample_rate, mix.loudness_lufs
    if sr != preset.sample_rate:
        g = np.gcd(sr, preset.sample_rate)
        audio = resample_poly(audio, preset.sample_rate // g, sr // g, axis=1).astype(np.float32)
        sr = preset.sample_rate
        mix_lufs = integrated_lufs(audio, sr)
    if not np.isfinite(mix_lufs):
        out, gr = audio.copy(), np.ones(audio.shape[1], dtype=np.float32)
        return Master(out, sr, preset.name,
                      _measure(out, sr, preset, mix_lufs, mix_lufs, -200.0, 0.0, gr),
                      mix.short_term_lufs, gr)
    # the envelope scales with the gain, so it is measured once for all the iterations below
    envelope = true_peak_envelope(audio)
    gain_db = preset.target_lufs - mix_lufs
    ceiling = preset.ceiling_dbtp - CEILING_MARGIN_DB
    tp = None
    for _ in range(8):
        gain = np.float32(db_to_gain(gain_db))
        gr = limiter_gain(envelope * gain, sr, ceiling)
        out = audio * (gr * gain)
        meter = measure(out, sr)
        reached = meter.integrated_lufs()
        if abs(reached - preset.target_lufs) <= LOUDNESS_TOLERANCE_LU:
            tp = true_peak_dbtp(out)
            if tp <= preset.ceiling_dbtp:
                break
            ceiling -= tp - preset.ceiling_dbtp + 0.05  # gain ripple between samples: aim lower
            continue
        tp = None
        gain_db += preset.target_lufs - reached  # limiting took some loudness: give it back
    tp = true_peak_dbtp(out) if tp is None else tp
    if tp > preset.ceiling_dbtp:  # never hand over a master above its ceiling
        safety = np.float32(db_to_gain(preset.ceiling_dbtp - tp - 0.05))
        out, gr = out * safety, gr * safety
        meter = measure(out, sr)
        tp, reached = true_peak_dbtp(out), meter.integrated_lufs()
    out = valid_audio(out.astype(np.float32), name="master")
    return Master(out, sr, preset.name, _measure(out, sr, preset, mix_lufs, reached, tp, gain_db, gr),
                  meter.short_term_lufs(), gr)


def _measure(out, sr, preset: Preset, mix_lufs: float, lufs: float, tp: float, gain_db: float,
             gr: np.ndarray) -> dict:
    reduction = np.maximum(0.0, -gain_to_db(np.maximum(gr, 1e-6)))
    return {
        "target_lufs": preset.target_lufs,
        "ceiling_dbtp": preset.ceiling_dbtp,
        "integrated_lufs": round(lufs, 2) if np.isfinite(lufs) else None,
        "true_peak_dbtp": round(tp, 2),
        "sample_peak_dbfs": round(gain_to_db(float(np.abs(out).max()) if out.size else 0.0), 2),
        "mix_lufs": round(mix_lufs, 2) if np.isfinite(mix_lufs) else None,
        "gain_db": round(float(gain_db), 2),
        "limiter_max_reduction_db": round(float(reduction.max()), 2),
        "limiter_mean_reduction_db": round(float(reduction.mean()), 3),
        "sample_rate": sr,
    }
