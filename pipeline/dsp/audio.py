"""Shared audio conventions: one layout, level conversions and requantizing (the files they
are written to: :mod:`pipeline.files`).

Audio is always float32 shaped ``(channels, frames)`` with finite values.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError

#: Frames processed at once by the block-wise stages (about 1.4 s at 48 kHz).
BLOCK_FRAMES = 1 << 16


def valid_audio(audio: np.ndarray, *, name: str = "audio") -> np.ndarray:
    """Check the pipeline's audio layout and return the array unchanged.

    Parameters
    ----------
    audio : np.ndarray, shape (channels, frames), float32
    name : str
        What the array is, for the error message.
    """
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise PipelineError(f"{name}: audio must be a 2-D array shaped (channels, frames)")
    if audio.dtype != np.float32:
        raise PipelineError(f"{name}: audio must be float32, got {audio.dtype}")
    if audio.shape[0] > 16 or (audio.shape[0] > audio.shape[1] and audio.shape[1] > 0):
        raise PipelineError(f"{name}: audio must be channels first, got shape {audio.shape}")
    for start in range(0, audio.shape[1], BLOCK_FRAMES):  # no whole-length mask
        if not np.isfinite(audio[:, start:start + BLOCK_FRAMES]).all():
            raise PipelineError(f"{name}: audio contains NaN or infinite samples")
    return audio


def sample_peak(audio: np.ndarray) -> float:
    """Largest magnitude in ``audio`` (0 for none), without a whole-length temporary."""
    peak = 0.0
    for start in range(0, audio.shape[-1], BLOCK_FRAMES):
        peak = max(peak, float(np.abs(audio[..., start:start + BLOCK_FRAMES]).max(initial=0.0)))
    return peak


def crop_in_place(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Frames ``start:stop`` of C-contiguous ``audio`` (channels, n) as a C-contiguous array
    in the same memory: each channel is moved down to its new place block by block, forward,
    so no block overwrites samples not yet moved; never a second whole copy."""
    channels, n = audio.shape
    start, stop = max(0, start), min(n, stop)
    frames = max(0, stop - start)
    if start == 0 and stop == n:
        return audio
    flat = audio.reshape(-1)
    for c in range(channels):
        src, dst = c * n + start, c * frames
        if src == dst:
            continue
        for offset in range(0, frames, BLOCK_FRAMES):
            k = min(BLOCK_FRAMES, frames - offset)
            flat[dst + offset: dst + offset + k] = flat[src + offset: src + offset + k]
    return flat[: channels * frames].reshape(channels, frames)


def db_to_gain(db: float | np.ndarray) -> float | np.ndarray:
    """Decibels to a linear amplitude factor."""
    out = 10.0 ** (np.asarray(db, dtype=np.float64) / 20.0)
    return float(out) if out.ndim == 0 else out


def gain_to_db(gain: float | np.ndarray, *, floor_db: float = -200.0) -> float | np.ndarray:
    """Linear amplitude to decibels, with silence reported as ``floor_db``."""
    g = np.maximum(np.abs(np.asarray(gain, dtype=np.float64)), 10.0 ** (floor_db / 20.0))
    out = 20.0 * np.log10(g)
    return float(out) if np.ndim(out) == 0 else out


def requantize(audio: np.ndarray, bits: int, *, dither: bool, seed: int = 2024,
               in_place: bool = False) -> np.ndarray:
    """``audio`` on the grid of a ``bits``-bit integer format (values k / 2^(bits−1)), with TPDF
    dither of ±1 LSB before rounding when ``dither``; float32, clipped to the format's range."""
    scale = np.float32(1 << (bits - 1))
    x = audio if in_place and audio.dtype == np.float32 else audio.astype(np.float32)
    x *= scale
    if dither:
        rng = np.random.default_rng(seed)
        for row in x:  # per channel: the difference of two uniform draws is triangular (TPDF)
            # drawn in blocks, in the order of one whole draw each (the same noise), so that
            # no whole-length noise array is needed
            for start in range(0, row.size, BLOCK_FRAMES):
                row[start:start + BLOCK_FRAMES] += rng.random(
                    min(BLOCK_FRAMES, row.size - start), dtype=np.float32)
            for start in range(0, row.size, BLOCK_FRAMES):
                row[start:start + BLOCK_FRAMES] -= rng.random(
                    min(BLOCK_FRAMES, row.size - start), dtype=np.float32)
    np.rint(x, out=x)
    np.clip(x, -scale, scale - 1, out=x)
    x *= np.float32(1.0) / scale
    return x
