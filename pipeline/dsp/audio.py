"""Shared audio conventions: one layout, level conversions and atomic file writing.

Audio is always float32 shaped ``(channels, frames)`` with finite values.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.errors import OutputError, PipelineError

LITTLE_ENDIAN = sys.byteorder == "little"  # a float WAV's samples are little-endian

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


#: libsndfile's SFC_SET_ADD_PEAK_CHUNK command (sndfile.h).
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def for_output(f):
    """``f`` (a :class:`soundfile.SoundFile` just opened for writing) as the pipeline writes
    its files:

    - without libsndfile's PEAK chunk, which a float WAV gets by default and which holds the
      time of writing: the same audio must give the same file, byte for byte, for caching and
      comparing renders;
    - closed without an fsync. soundfile's ``close`` calls ``sf_write_sync``, which in
      libsndfile is nothing but an fsync: each stem, the mix and the master then waited until
      their data were on the disk (2.5 GB for the Große Fuge), the master's at the very end
      of the render. A piece's folder is swapped into place only when complete, so an
      interrupted render still leaves no finished-looking file; like every other program's
      output, the files reach the disk when the system writes them back."""
    import soundfile as sf

    if f.subtype in ("FLOAT", "DOUBLE") and f.mode == "w":
        # soundfile has no public call for sf_command; its cffi handles (_snd, _ffi, f._file)
        # are stable since 0.9, read in 0.12–0.14 (pyproject.toml: soundfile>=0.12,<1)
        sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
    f.flush = _no_sync  # an attribute of this file only (close calls self.flush())
    return f


def _no_sync() -> None:
    """What soundfile's ``flush`` does, less the fsync: nothing (libsndfile buffers nothing)."""


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final`` and rename it into place only on success.

    An interrupted or failed write leaves no file under the final name.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".partial{final.suffix}",
                                   dir=final.parent)
        os.close(fd)
        # the writer makes the file anew: one that exists is opened with O_TRUNC, and ext4
        # then writes a truncated file's data out when it is closed (0.8 s for the Große
        # Fuge's stems, at the end of the render)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{final.parent}: cannot write here ({exc.strerror})") from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, final)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"{final}: cannot be written ({exc.strerror})") from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


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


def write_raw(f, data: np.ndarray) -> None:
    """Append to ``f`` (a :class:`soundfile.SoundFile` open for writing) bytes already in its
    sample format (libsndfile's ``sf_write_raw``): for a float WAV, interleaved little-endian
    float32 frames."""
    import soundfile as sf

    written = sf._snd.sf_write_raw(f._file, sf._ffi.from_buffer(data), data.nbytes)
    if written != data.nbytes:  # as soundfile's own write reports it (a full disk, a limit)
        raise sf.LibsndfileError(sf._snd.sf_error(f._file), prefix=f"Error writing {f.name!r}: ")


def read_float_frames(f, frames: int) -> np.ndarray:
    """The next ``frames`` frames of ``f`` (a float32 WAV open for reading, a
    :class:`soundfile.SoundFile`) as (channels, frames) float32, read as the file's own
    bytes (libsndfile's ``sf_read_raw``: no conversion, no second copy); fewer at its end."""
    import soundfile as sf

    if not LITTLE_ENDIAN or f.subtype != "FLOAT":
        return f.read(frames, dtype="float32", always_2d=True).T
    out = np.empty((frames, f.channels), dtype=np.float32)
    got = sf._snd.sf_read_raw(f._file, sf._ffi.from_buffer(out), out.nbytes)
    if got < 0:
        raise sf.LibsndfileError(sf._snd.sf_error(f._file), prefix=f"Error reading {f.name!r}: ")
    return out[: got // (4 * f.channels)].T
