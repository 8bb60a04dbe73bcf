"""Where a render's performance comes from, fastest first: the performance cache
(:mod:`pipeline.speed.performance_cache`), where the command's helper process may be putting it
(:mod:`pipeline.speed.prefetch`), else the score parsed and performed here."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.model import Performance
from pipeline.score.load import MIDI_SUFFIXES, load
from pipeline.score.perform import perform
from pipeline.speed import performance_cache
from pipeline.speed.prefetch import Prefetch


class ScoreSource:
    """A score to perform: its performance comes from the cache when this file's content was
    performed with the same options before; it is parsed only when a performance has to be
    made (``head_start``: the helper process parsing the command's scores, if any)."""

    def __init__(self, path: Path, head_start: Prefetch | None = None, *,
                 phrasing: bool = True):
        self.path = path
        self.head_start = head_start
        self.phrasing = phrasing  # (the helper shapes phrases: without, this parses itself)
        self.loaded = None
        self.keys: dict = {}    # swing → cache key (None: the file cannot be read)
        self.cached: dict = {}  # swing → performance, or None when the cache has none

    @property
    def is_midi(self) -> bool:
        return self.path.suffix.lower() in MIDI_SUFFIXES

    def _look_up(self, swing: float | None) -> Performance | None:
        """The cached performance for ``swing``; the file is hashed and the cache read once
        per swing, a miss included."""
        if swing not in self.cached:
            try:
                self.keys[swing] = performance_cache.key(self.path, swing=swing,
                                                         fermata_hold=None,
                                                         phrasing=self.phrasing)
            except OSError:
                self.keys[swing] = None  # missing or unreadable: load() says so in its own words
            key = self.keys[swing]
            self.cached[swing] = performance_cache.read(key) if key else None
        return self.cached[swing]

    def prepare(self, *, swing: float | None,
                meanwhile: Callable[[Callable[[], bool]], None] | None = None) -> None:
        """Find the performance in the cache (``meanwhile(busy)`` is called while waiting for
        the helper to put it there), else parse the score."""
        if self._look_up(swing) is None and self.head_start is not None and \
                self.head_start.wait(self.path, swing, meanwhile):
            del self.cached[swing]  # the helper has performed it meanwhile: look again
        if self._look_up(swing) is None and self.loaded is None:
            self.loaded = load(self.path)

    def performance(self, *, swing: float | None) -> Performance:
        if self._look_up(swing) is None:
            if self.loaded is None:
                self.loaded = load(self.path)
            self.cached[swing] = perform(self.loaded, swing=swing, phrasing=self.phrasing)
            if self.keys[swing]:
                performance_cache.write(self.keys[swing], self.cached[swing])
        return self.cached[swing]
