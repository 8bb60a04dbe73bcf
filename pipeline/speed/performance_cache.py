"""Performances kept on disk, so that rendering a score again skips parsing and performing.

Parsing with music21 is the largest fixed cost of a render (the Große Fuge: about 3 s; a
30-part, 10-minute score: about 4 s, and as much again to perform it). A performance depends
only on the score file's bytes, the options that shape the playing (swing, fermata hold) and
the code that reads and plays it, so it is stored under a hash of exactly those: the file's
content (not its name or time), the options, this package's own source files and music21's
version. Anything else that changes a render (ensemble, layout, preset, humanize, soundfont)
comes after the performance and is not part of it.

The cache lives beside the calibration cache (``$SCORE2AUDIO_CACHE`` or
``~/.cache/score2audio``); it is only a cache: an unreadable or damaged entry is ignored and
made again, and only the most recent ``KEEP`` entries are kept.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
from importlib import metadata, resources
from pathlib import Path

from pipeline.files import atomic_path
from pipeline.errors import PipelineError
from pipeline.model import Performance
from pipeline.paths import cache_folder

log = logging.getLogger(__name__)

FORMAT = 1   # bumped when what is stored changes shape
KEEP = 64    # entries; a 10-minute orchestral performance is about 2 MB


def folder() -> Path:
    return cache_folder() / "performances"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """A hash of this package's Python sources and data files, and music21's version: a new
    version of the code that reads or plays a score never uses an old performance. (The
    version from the package's metadata: importing music21 to ask takes 0.3 s.)"""
    h = hashlib.sha256(f"{FORMAT}|music21 {metadata.version('music21')}".encode())
    root = Path(str(resources.files("pipeline")))
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.toml")]):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def key(score_path: Path, *, swing: float | None, fermata_hold: float | None,
        phrasing: bool = True) -> str:
    """The cache key of the performance of ``score_path`` with these options."""
    h = hashlib.sha256(_code_digest().encode())
    h.update(f"|swing={swing!r}|fermata_hold={fermata_hold!r}|".encode())
    if not phrasing:  # (the key of a shaped performance is as it was)
        h.update(b"|phrasing=False|")
    with open(score_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read(cache_key: str) -> Performance | None:
    """The stored performance, or None when there is none (or it cannot be read)."""
    path = folder() / f"{cache_key}.pickle"
    try:
        with open(path, "rb") as f:
            performance = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged entry is only a missing one
        log.warning("performance cache %s not read (%s): performing again", path, exc)
        return None
    if not isinstance(performance, Performance):
        return None
    try:
        os.utime(path)  # recently used: kept longest
    except OSError:  # a read-only cache still serves what it holds
        pass
    return performance


def write(cache_key: str, performance: Performance) -> bool:
    """Store ``performance``; drop the least recently used entries beyond ``KEEP``. Whether it
    was stored."""
    where = folder()
    try:
        with atomic_path(where / f"{cache_key}.pickle") as tmp:
            tmp.write_bytes(pickle.dumps(performance, protocol=pickle.HIGHEST_PROTOCOL))
        entries = sorted(where.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
    except (PipelineError, OSError) as exc:  # an unwritable cache only costs time next time
        log.warning("performance cache %s not written: %s", where, exc)
        return False
    return True
