"""Whole-piece audio in files mapped into memory: a piece's length costs disk, not memory.

The mix and the master work on one or two stereo arrays as long as the piece (a 20-minute
piece at 48 kHz: 450 MB each). Here each is a file in the piece's hidden working folder,
unlinked at once (it goes with its array, however the render ends), its blocks reserved up
front (a full disk is a clean error, never a crash at a page written later) and mapped into
memory: the stages see plain arrays. A :class:`Pager` thread watches how much of the
process's file-backed memory is resident and, once it has grown by ``BUDGET_BYTES``, lets go of
the mappings' pages (``madvise(MADV_DONTNEED)``: the data stay in the file and the system's
page cache and come back on the next touch), so resident memory holds what the stages touch
meanwhile, not the whole piece. Letting go by the budget, not by the clock, spares the slow
writers (the mixer fills its array over the whole render) a fault on every page again and again.

The first touch of a fresh page costs far more than the touches after it (the file system zeroes
it and the system finds it memory; on a virtual machine, memory the host has taken back costs a
fault on the host too). Two things keep that cost down:

- **Pages one at a time** (``MADV_RANDOM``): a fault on a file mapping otherwise reads ahead into
  large folios, blocks of up to 2 MB found whole among the system's free memory, and a virtual
  machine's host has taken back most of those (free page reporting hands it blocks of 2 MB and
  more); single pages come first from the pieces of memory freed lately (the README's
  measurement notes give the difference).
- **Brought in ahead**: a second thread brings the pages of an array that is filled slowly (the
  mix's) into the page cache ahead of the stage, from its start, a chunk at a time (reading a
  byte of each page, in compiled code that lets go of the GIL: holding it through the faults
  stopped every other thread of the render), on the time the stages leave a core idle; the
  pager lets go of them as of any others, and the stage's own touches then find them in the
  page cache. An array written at full speed (the master's) is not: its writer would only wait
  behind the reader.
"""
from __future__ import annotations

import mmap
import os
import queue
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from pipeline.dsp import kernels
from pipeline.errors import OutputError

#: how often the pager looks (a stage passes over a 20-minute piece's array in about a fifth of
#: a second: at most some 50 MB more is touched between two looks)
POLL_S = 0.01
BUDGET_BYTES = 96 << 20
#: how much the populating thread brings in at a time (it checks between chunks whether the
#: array is still in use)
POPULATE_BYTES = 2 << 20
_STATM = Path("/proc/self/statm")


class Pager:
    """One thread that lets go of the resident pages of every mapping handed to it, and one
    that brings each new mapping's pages in ahead of the stages (see the module); :meth:`close`
    stops them."""

    def __init__(self) -> None:
        self._maps: list[weakref.ref] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="score2audio-pager", daemon=True)
        self._thread.start()
        self._fresh: queue.SimpleQueue = queue.SimpleQueue()
        self._populator = threading.Thread(target=self._populate, name="score2audio-populate",
                                           daemon=True)
        self._populator.start()

    def add(self, mapped: mmap.mmap, *, ahead: bool = False) -> None:
        """Let go of ``mapped``'s pages as of the others; ``ahead``: bring them in first."""
        with self._lock:
            self._maps.append(weakref.ref(mapped))
        if ahead:
            self._fresh.put(weakref.ref(mapped))

    def close(self) -> None:
        self._stop.set()
        self._fresh.put(None)
        self._thread.join()
        self._populator.join()

    def _populate(self) -> None:
        """Bring each new mapping's pages in, from its start, until it is gone or done."""
        while (ref := self._fresh.get()) is not None:
            at = 0
            while not self._stop.is_set() and _populate_chunk(ref, at):
                at += POPULATE_BYTES

    def _run(self) -> None:
        base = _resident_file_bytes()
        while not self._stop.wait(POLL_S):
            resident = _resident_file_bytes()
            if resident is not None and base is not None and resident - base < BUDGET_BYTES:
                continue
            with self._lock:
                self._maps = [ref for ref in self._maps if ref() is not None]
                refs = list(self._maps)
            for ref in refs:
                _let_go(ref)
            base = _resident_file_bytes()


def _populate_chunk(ref: weakref.ref, at: int) -> bool:
    """Bring in the chunk of a mapping at ``at`` by reading a byte of each of its pages (a
    read, never a write: a stage may have written there meanwhile; page faults, unlike
    ``madvise``, hold no lock the other threads' allocations wait for); whether there is more
    of it to bring in (not when its array is gone or it is done). No reference is kept."""
    mapped = ref()
    if mapped is None or at >= len(mapped):
        return False
    try:
        chunk = np.frombuffer(mapped, dtype=np.uint8, count=min(POPULATE_BYTES, len(mapped) - at),
                              offset=at)
    except (ValueError, TypeError):  # closed meanwhile
        return False
    kernels.read_pages(chunk, mmap.PAGESIZE)  # without the GIL: the synths go on meanwhile
    return True


def _resident_file_bytes() -> int | None:
    """The process's resident file-backed (and shared) memory; None where the system does
    not tell (the pager then lets go at every look)."""
    try:
        return int(_STATM.read_bytes().split()[2]) * mmap.PAGESIZE
    except (OSError, IndexError, ValueError):
        return None


def _let_go(ref: weakref.ref) -> None:
    """Drop a mapping's resident pages, unless its array is gone (no reference is kept)."""
    mapped = ref()
    if mapped is not None:
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (ValueError, OSError):  # closed meanwhile
            pass


class FileBackedAudio:
    """:class:`~pipeline.model.AudioBuffers` in files of ``folder`` whose pages ``pager`` lets
    go of (see the module); ``ahead``: and brings in ahead of the stage, for a stage that fills
    its arrays slowly (a stage that writes at full speed would only wait behind it)."""

    def __init__(self, folder: Path, pager: Pager, *, ahead: bool = False):
        self.folder = folder
        self.pager = pager
        self.ahead = ahead

    def empty(self, channels: int, frames: int) -> np.ndarray:
        nbytes = channels * frames * 4
        if nbytes == 0:
            return np.empty((channels, frames), dtype=np.float32)
        try:
            fd, name = tempfile.mkstemp(prefix=".audio-", dir=self.folder)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot be written ({exc.strerror})") from exc
        try:
            os.unlink(name)
            os.posix_fallocate(fd, 0, nbytes)
            mapped = mmap.mmap(fd, nbytes)
        except OSError as exc:
            raise OutputError(f"{self.folder}: no room for the piece's audio "
                              f"({nbytes / 1e6:.0f} MB: {exc.strerror})") from exc
        finally:
            os.close(fd)
        if hasattr(mmap, "MADV_RANDOM"):  # pages taken one at a time (see the module)
            mapped.madvise(mmap.MADV_RANDOM)
        self.pager.add(mapped, ahead=self.ahead)
        return np.frombuffer(mapped, dtype=np.float32).reshape(channels, frames)
