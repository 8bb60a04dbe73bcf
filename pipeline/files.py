"""Writing and reading the pipeline's files: atomically, byte for byte reproducibly, and
without needless copies or syncs. Below every stage (the score's MIDI, stems, mix, masters,
reports and caches are all written through it).

An audio file is written through the system's page cache, as every file is, but its pages are
let go of once they are on their way to the disk (:class:`AudioOut`): a render writes some
gigabytes (the Große Fuge: 1.8 GB of stems, the mix and the master), and each page the cache
keeps is a page of memory taken anew for the next. Memory taken anew is what costs: the system
finds and zeroes it, and on a virtual machine whose host has taken back the memory the guest
left free, the host faults it in too (tens of microseconds a page; pages let go of just before
are reused at next to no cost: the README's measurement notes give the figures).

It reaches into soundfile's internals, its cffi handles ``sf._snd`` (libsndfile) and
``sf._ffi``, for calls soundfile does not expose (``sf_command``, ``sf_write_raw``,
``sf_read_raw``); they have been stable since soundfile 0.9, and were read in 0.12–0.14
(pyproject.toml: ``soundfile>=0.12,<1``).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.errors import AudioFileError, OutputError, PipelineError

log = logging.getLogger(__name__)

LITTLE_ENDIAN = sys.byteorder == "little"  # a float WAV's samples are little-endian


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
        # soundfile has no public call for sf_command; its cffi handles are stable since 0.9
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


#: how much of an audio file is handed to the disk at a time; the pages of what was handed
#: over two such windows before are let go of (those on the disk by then: none is waited for)
WRITTEN_WINDOW_BYTES = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writing the range back, without waiting


class AudioOut:
    """An audio file being written for the pipeline's outputs (stems, mix stems, the mix, the
    masters): opened at ``path`` (made anew), written as :func:`for_output` says, and its pages
    in the page cache let go of as it grows (see the module). ``subtype``, ``format`` and
    ``options``: as :class:`soundfile.SoundFile` takes them. A context manager; ``file`` is the
    SoundFile (for its tags and properties)."""

    def __init__(self, path: Path, sample_rate: int, channels: int, *, subtype: str,
                 format: str = "WAV", **options):
        import soundfile as sf

        self.path = Path(path)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            self.file = for_output(sf.SoundFile(fd, "w", samplerate=sample_rate,
                                                channels=channels, subtype=subtype,
                                                format=format, closefd=True, **options))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._handed_over = 0  # bytes whose writing back has been started

    def __enter__(self) -> "AudioOut":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def write(self, frames: np.ndarray) -> None:
        """Append (frames, channels) samples, converted by libsndfile to the file's format."""
        self.file.write(frames)
        self._let_go_behind()

    def write_raw(self, data: np.ndarray) -> None:
        """Append bytes already in the file's sample format (libsndfile's ``sf_write_raw``):
        for a float WAV, interleaved little-endian float32 frames; for a 24-bit WAV, packed
        little-endian 3-byte samples."""
        write_raw(self.file, data, name=self.path)
        self._let_go_behind()

    def _let_go_behind(self) -> None:
        """Start writing back each whole window written since the last call, and let go of
        the pages up to two windows behind (those still being written back stay, until a
        later call: nothing waits for the disk)."""
        sync_file_range = _sync_file_range()
        if sync_file_range is None:
            return
        written = os.lseek(self._fd, 0, os.SEEK_CUR)  # libsndfile writes at the file's end
        window, handed_before = WRITTEN_WINDOW_BYTES, self._handed_over
        while written - self._handed_over >= window:
            sync_file_range(self._fd, self._handed_over, window, _SYNC_FILE_RANGE_WRITE)
            self._handed_over += window
        behind = self._handed_over - 2 * window
        if self._handed_over > handed_before and behind > 0:
            os.posix_fadvise(self._fd, 0, behind, os.POSIX_FADV_DONTNEED)


@functools.lru_cache(maxsize=1)
def libc() -> ctypes.CDLL | None:
    """The C library, for the few calls Python does not expose (None where it cannot be
    loaded): found once (``find_library`` runs ``ldconfig``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _sync_file_range():
    """Linux's ``sync_file_range`` (None elsewhere: the pages are then left to the system)."""
    call = getattr(libc(), "sync_file_range", None) if hasattr(os, "posix_fadvise") else None
    if call is not None:
        call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return call


def write_raw(f, data: np.ndarray, *, name: Path | None = None) -> None:
    """Append to ``f`` (a :class:`soundfile.SoundFile` open for writing) bytes already in its
    sample format (libsndfile's ``sf_write_raw``): for a float WAV, interleaved little-endian
    float32 frames. ``name``: the file's, for the error (else the SoundFile's)."""
    import soundfile as sf

    written = sf._snd.sf_write_raw(f._file, sf._ffi.from_buffer(data), data.nbytes)
    if written != data.nbytes:  # as soundfile's own write reports it (a full disk, a limit)
        raise sf.LibsndfileError(sf._snd.sf_error(f._file),
                                 prefix=f"Error writing {str(name or f.name)!r}: ")


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


def read_audio(path: Path, *, error: type[PipelineError] = AudioFileError,
               what: str = "audio file") -> tuple[np.ndarray, int]:
    """A user's audio file (WAV, FLAC, OGG, MP3…, 8–32-bit integer or float) as (channels,
    frames) float32 and its sample rate. Raises ``error`` with one line naming the file and
    the problem (``what`` it was meant to be): missing, not audio, empty, not finite."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise error(f"{path}: cannot read the {what}: not audio that libsndfile reads "
                    f"({str(exc).splitlines()[0]})") from exc
    if audio.size == 0:
        raise error(f"{path}: the {what} holds no audio (0 frames)")
    audio = np.ascontiguousarray(audio.T)
    if not np.isfinite(audio).all():
        raise error(f"{path}: the {what} holds samples that are not numbers (NaN or infinite)")
    return audio, int(sample_rate)


# ---- caches of what is measured or read once per file (a soundfont's voices, its zones) ----

def file_stamp(path: Path) -> str:
    """``path``'s size and modification time ("?" when it cannot be read): a file replaced or
    changed gets another stamp, so what was cached of it is measured again."""
    try:
        stat = Path(path).stat()
        return f"{stat.st_size}:{int(stat.st_mtime)}"
    except OSError:
        return "?"


def read_cache(path: Path) -> dict:
    """The JSON object cached at ``path``; empty when there is none yet or it is damaged (it is
    only a cache)."""
    try:
        data = json.loads(path.read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_cache(path: Path, data: dict, what: str) -> None:
    """``data`` as JSON at ``path``, written whole or not at all; an unwritable cache is a
    warning (it only costs time on the next run)."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")
    except PipelineError as exc:
        log.warning("%s cache %s not written: %s", what, path, exc)
