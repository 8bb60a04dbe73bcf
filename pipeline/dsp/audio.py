"""Shared audio conventions: one layout, level conversions and requantizing (the files they
are written to: :mod:`pipeline.files`).

Audio is always float32 shaped ``(channels, frames)`` with finite values.
"""
from __future__ import annotations

import numpy as np

from pipeline.dsp import kernels
from pipeline.errors import PipelineError

#: Frames processed at once by the block-wise stages (about 1.4 s at 48 kHz).
BLOCK_FRAMES = 1 << 16
#: Frames per block whose sample peak a pass that writes a whole signal can keep on the way
#: (:func:`peak_blocks`): the true-peak meter decides by them which blocks to oversample.
PEAK_BLOCK = 1 << 12


def valid_audio(audio: np.ndarray, *, name: str = "audio",
                peaks: np.ndarray | None = None) -> np.ndarray:
    """Check the pipeline's audio layout and return the array unchanged.

    Parameters
    ----------
    audio : np.ndarray, shape (channels, frames), float32
    name : str
        What the array is, for the error message.
    peaks : np.ndarray, optional
        The audio's :func:`peak_blocks`, kept by the pass that wrote it: its samples are
        finite when these are (the audio is not read again).
    """
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise PipelineError(f"{name}: audio must be a 2-D array shaped (channels, frames)")
    if audio.dtype != np.float32:
        raise PipelineError(f"{name}: audio must be float32, got {audio.dtype}")
    if audio.shape[0] > 16 or (audio.shape[0] > audio.shape[1] and audio.shape[1] > 0):
        raise PipelineError(f"{name}: audio must be channels first, got shape {audio.shape}")
    if peaks is not None:
        if not np.isfinite(peaks).all():
            raise PipelineError(f"{name}: audio contains NaN or infinite samples")
        return audio
    for start in range(0, audio.shape[1], BLOCK_FRAMES):  # no whole-length mask
        if not np.isfinite(audio[:, start:start + BLOCK_FRAMES]).all():
            raise PipelineError(f"{name}: audio contains NaN or infinite samples")
    return audio


def peak_blocks(frames: int) -> np.ndarray:
    """Room for the sample peaks of a signal of ``frames`` frames, one per :data:`PEAK_BLOCK`
    frames (the last block may be shorter), zero: for the kernels that keep them while they
    write the signal (:func:`pipeline.dsp.kernels.block_peaks`)."""
    return np.zeros(-(-frames // PEAK_BLOCK), dtype=np.float32)


def block_peaks(audio: np.ndarray) -> np.ndarray:
    """The largest magnitude of any channel of ``audio`` (channels, frames) in each block of
    :data:`PEAK_BLOCK` frames, float32, in one pass (not finite for a block with a NaN or an
    infinity)."""
    peaks = peak_blocks(audio.shape[1])
    for start in range(0, audio.shape[1], BLOCK_FRAMES):
        kernels.block_peaks(audio[:, start:start + BLOCK_FRAMES], start, PEAK_BLOCK, peaks)
    return peaks


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
               in_place: bool = False, peaks: np.ndarray | None = None) -> np.ndarray:
    """``audio`` on the grid of a ``bits``-bit integer format (values k / 2^(bits−1)), with TPDF
    dither of ±1 LSB before rounding when ``dither``; float32, clipped to the format's range.
    ``peaks``: filled with the result's :func:`block_peaks` (kept as it is written)."""
    scale = np.float32(1 << (bits - 1))
    x = audio if in_place and audio.dtype == np.float32 else audio.astype(np.float32)
    peaks = peak_blocks(x.shape[-1]) if peaks is None else peaks
    rows = x if x.ndim == 2 else x[None]  # (channels, frames), or one row
    if dither:
        x *= scale
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
    # rounding, clipping and scaling back in one pass (numpy's values), the peaks on the way
    for start in range(0, x.shape[-1], BLOCK_FRAMES):
        kernels.to_grid(rows[:, start:start + BLOCK_FRAMES], scale, dither, start, PEAK_BLOCK,
                        peaks)
    return x
