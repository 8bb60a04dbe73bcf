"""The long-term spectrum of a signal: read by the mastering's tone matching and drawn by the
report, so it lives below both.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from pipeline.dsp import kernels

ANALYSIS_SEGMENT = 1 << 14
FFT_WORKERS = 2
ANALYSIS_SEGMENTS = 1500   # spread over the whole piece: enough for a stable long-term average


def long_term_psd(audio: np.ndarray, sample_rate: int, *, segment: int = ANALYSIS_SEGMENT,
                  segments: int = ANALYSIS_SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Welch's power spectral density of the mid signal (the channels' mean) of ``audio``
    (channels, frames), or of a 1-D signal, averaged over at most ``segments`` Hann-windowed
    segments spread evenly over it, so a 20-minute mix costs no more than a 5-minute one.
    The mid is taken per segment: no whole-length mono copy."""
    x = audio if audio.ndim == 2 else audio[None, :]
    n = segment
    if x.shape[1] < n:
        x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
    frames = x.shape[1]
    count = min(segments, max(1, (frames - n) // (n // 2) + 1))
    starts = np.linspace(0, frames - n, count).astype(np.int64)
    window = np.hanning(n).astype(np.float32)
    power = np.zeros(n // 2 + 1)
    for chunk in np.array_split(starts, max(1, count // 16)):
        segs = kernels.mid_segments(x, chunk, window)
        # single precision (its rounding is some 70 dB under any band this is used for)
        spectra = scipy.fft.rfft(segs, axis=1, workers=FFT_WORKERS)
        power += (spectra.real ** 2 + spectra.imag ** 2).sum(axis=0, dtype=np.float64)
    power /= count * sample_rate * float((window.astype(np.float64) ** 2).sum()) / 2
    return np.fft.rfftfreq(n, 1 / sample_rate), power
