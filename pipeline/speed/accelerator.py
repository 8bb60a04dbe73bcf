"""The speed mechanics of a render, in one object the orchestrator is handed explicitly.

Every trick here saves time or memory and changes nothing a listener hears; the stages know
none of them. A command makes one :class:`Accelerator` (the CLI starts its helper process
first, before the heavy modules load) and passes it to each render; a library caller that
passes none gets a plain one (no helper) made and closed for it.

- **Head start** (:mod:`pipeline.speed.prefetch`): the scores are parsed and performed in a
  helper process while the command imports the audio stages; the performance cache
  (:mod:`pipeline.speed.performance_cache`) hands them over.
- **Preset pre-decoding**: the presets a score's part list suggests are decoded while the helper
  parses it, and held until the mix is done (a soundfont's decoded samples are shared between
  the synths of a process while one holds them).
- **Warm-up**: numba's loader and matplotlib are loaded while the helper parses, if it still is.
- **The collector paused** from the parse to the mix, and run once beside the synths' start.
- **Freed memory handed back** to the system after each stage (glibc's ``malloc_trim``).
- **Whole-piece audio in files** mapped into memory, their resident pages let go of as the
  work moves on (:mod:`pipeline.speed.file_backed`): the mix's and the master's arrays cost
  disk, not memory, whatever the piece's length; the mix's pages are brought in ahead of the
  mixer, off the render's critical path.
- **Background writers**: performance.mid, mix.wav and the masters are written, and the
  report's pictures shaped, on threads of their own while the next step runs; the master's
  first step changes the mix only where mix.wav's writer has read it (:class:`WriteBehind`).
"""
from __future__ import annotations

import gc
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from pipeline.files import libc
from pipeline.speed import prefetch
from pipeline.speed.score_source import ScoreSource

if TYPE_CHECKING:  # imported where used: they load numba, and the helper starts first
    from pipeline.speed.file_backed import FileBackedAudio, Pager


class Accelerator:
    """The speed mechanics for the renders of one command (see the module's docstring).
    Close it (or use it as a context manager) when the command is done: it waits for the
    background writers' last work and stops the helper process."""

    def __init__(self, head_start: prefetch.Prefetch | None = None):
        self.head_start = head_start
        #: one thread that writes a piece's MIDI, mix and masters while the next step runs
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="score2audio-writer")
        #: one that takes the report's pictures' shapes meanwhile
        self._tracer = ThreadPoolExecutor(1, thread_name_prefix="score2audio-tracer")
        self._pager: Pager | None = None

    @classmethod
    def with_head_start(cls, scores: list[str], *, ensemble: str | None,
                        swing: float | None) -> "Accelerator":
        """An accelerator whose helper process starts parsing ``scores`` at once (call it
        before importing the render: that import is what the helper runs beside)."""
        return cls(prefetch.start(scores, ensemble=ensemble, swing=swing))

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the background work and stop its threads; end the helper, done or not."""
        for pool in (self._writer, self._tracer):
            pool.shutdown(wait=True)
        if self._pager is not None:
            self._pager.close()
        if self.head_start is not None:
            self.head_start.stop()

    # ---- the piece's score and presets ----

    def score(self, path: Path, *, phrasing: bool = True) -> ScoreSource:
        """The score's performance source: cache, helper, else a parse here."""
        return ScoreSource(path, self.head_start, phrasing=phrasing)

    @contextmanager
    def piece(self, score_path: Path, *, soundfont: Path, sample_rate: int) -> Iterator["PieceSpeed"]:
        """For one piece's load-to-mix: the collector paused (switched back on however it
        ends) and the presets its part list suggests decoded and held until the mix is done.
        music21 makes millions of objects that live until the performance is made: run as the
        heap grows, the collector walked them all again and again (a second of the Große
        Fuge's parse); they are collected once, beside the synths' start, and the audio stages
        make arrays, not cycles."""
        from pipeline.render.preset_holder import PresetHolder

        with self.collector_paused(), PresetHolder(sample_rate) as holder:
            yield PieceSpeed(score_path, soundfont, holder)

    @staticmethod
    @contextmanager
    def collector_paused() -> Iterator[None]:
        """Python's cyclic collector off (switched back on however it ends): music21's objects
        live until the performance is made, and the collector walked them again and again."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if collecting:
                gc.enable()

    # ---- memory ----

    def audio_buffers(self, folder: Path, *, filled_slowly: bool = False) -> FileBackedAudio:
        """Where a piece's mix and master make their whole-piece arrays: files in its working
        ``folder``, mapped (see :mod:`pipeline.speed.file_backed`); ``filled_slowly``: their
        pages are brought in ahead of the stage (the mix fills its array over the whole
        render)."""
        from pipeline.speed.file_backed import FileBackedAudio, Pager

        if self._pager is None:
            self._pager = Pager()
        return FileBackedAudio(folder, self._pager, ahead=filled_slowly)

    @staticmethod
    def release_freed_memory() -> None:
        """Hand memory freed during a stage back to the system. glibc keeps the blocks that
        numpy frees on each thread's heap; a stage's buffers would otherwise stay resident
        through the later stages (about 200 MB on a 30-part, 10-minute score)."""
        trim = _malloc_trim()
        if trim is not None:
            trim(0)

    @staticmethod
    def collect_parsed_score() -> None:
        """Collect a score parsed in this process (not by the helper: 0.1 s if nothing was),
        while the synths load their samples."""
        if "music21" in sys.modules:
            gc.collect()

    # ---- background work ----

    def in_background(self, fn: Callable, *args, **kwargs) -> Future:
        """``fn(*args, **kwargs)`` on the writer's thread (files, in the order asked)."""
        return self._writer.submit(fn, *args, **kwargs)

    def beside(self, fn: Callable, *args, **kwargs) -> Future:
        """``fn(*args, **kwargs)`` on the tracer's thread (the report's shapes and pictures)."""
        return self._tracer.submit(fn, *args, **kwargs)

    def write_behind(self, write: Callable, *args) -> "WriteBehind":
        """``write(*args, progress=…)`` on the writer's thread, telling how far it has read
        its audio so that a later step may change what is behind it (see :class:`WriteBehind`)."""
        behind = WriteBehind()
        behind.future = self._writer.submit(behind.run, write, *args)
        return behind


class PieceSpeed:
    """What :meth:`Accelerator.piece` gives one piece's load-to-mix."""

    def __init__(self, score_path: Path, soundfont: Path, holder) -> None:
        self.score_path = score_path
        self.soundfont = soundfont
        self.holder = holder

    def hold(self, wanted: list) -> None:
        """Keep these ``(voice, program)`` presets decoded until the mix is done: the attack
        measurement and the render's synths then share one decoding of each."""
        self.holder.hold(wanted)

    def prepare(self, score: ScoreSource, *, swing: float | None) -> None:
        """Find the performance (cache or helper, else a parse here), warming up meanwhile."""
        score.prepare(swing=swing, meanwhile=self._warm_up)

    def _warm_up(self, helper_busy: Callable[[], bool]) -> None:
        """Loading that the render's first moments and the report would otherwise wait for,
        done while the helper process parses the score (``helper_busy()``: whether it still
        is): the presets the score's part list suggests (MuseScore General's piano takes 1.1 s
        to decode, its pizzicato strings 0.7 s, in the synths' way at the render's start),
        then numba's loader of compiled code (0.3 s at the first kernel called) and matplotlib
        (0.3 s at the first picture). One thing at a time, and only while the helper works:
        the two cores are full then, and a third busy thread would slow the parse, which the
        render waits for."""
        import numpy as np

        from pipeline.dsp import kernels
        from pipeline.speed.preset_guess import likely_presets

        self.holder.hold(likely_presets(self.score_path, self.soundfont))
        while helper_busy() and not self.holder.decoded(timeout=0.02):
            pass  # (the presets the helper outlasts go on decoding beside the render)
        if helper_busy():
            kernels.any_sound(np.zeros((2, 1), dtype=np.float32))
        if helper_busy():
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401


class WriteBehind:
    """A writer on the accelerator's thread and how many frames it has read from its audio,
    for a step that waits to change them (the master's tone trails mix.wav's writer)."""

    def __init__(self) -> None:
        self.frames = 0.0
        self.changed = threading.Condition()
        self.future: Future | None = None

    def _advance(self, frames: float) -> None:
        with self.changed:
            self.frames = frames
            self.changed.notify_all()

    def run(self, write, *args):
        """``write(*args, progress=…)``, counting to the end however the writing ends (its
        error is raised by its own Future)."""
        try:
            return write(*args, progress=self._advance)
        finally:
            self._advance(float("inf"))

    def wait(self, frames: int | None) -> None:
        """Until the writer has read the first ``frames`` (None: all of them)."""
        with self.changed:
            self.changed.wait_for(lambda: self.frames >= (float("inf") if frames is None
                                                          else frames))


def _malloc_trim():
    return getattr(libc(), "malloc_trim", None)  # not glibc: nothing to do
