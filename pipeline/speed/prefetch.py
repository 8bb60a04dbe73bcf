"""A head start for ``score2audio render``: the scores are parsed and performed in a helper
process while the command itself loads.

The command spends its first second importing what the audio stages need (numba's kernels,
scipy, FluidSynth), on one core; parsing a long score with music21 and performing it then
takes a few seconds more on that same core (the Große Fuge: about 2.3 s). The helper does the
parse and the performance on the other core from the start, and leaves each performance in
the performance cache (:mod:`pipeline.speed.performance_cache`), where the render finds it. The render's
own process then never holds music21's objects.

It is only a head start. Whatever the helper cannot do (a missing or broken file, a cache that
cannot be written, a swing that only the detected ensemble decides) the render does itself, as
it always did, and reports in its own words; the helper says nothing.
"""
from __future__ import annotations

import gc
import os
import select
import subprocess
import sys
from pathlib import Path

#: the helper's line for a score it could not perform (the render will, or will say why)
FAILED = "-"


class Prefetch:
    """The parent's side: the helper process and what it has reported so far."""

    def __init__(self, scores: list[str], *, ensemble: str | None, swing: float | None):
        self.scores = [Path(s) for s in scores]
        self.done: dict[int, str] = {}  # score index → the swing performed, or FAILED
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
        cmd = [sys.executable, "-m", "pipeline.speed.prefetch",
               "--ensemble", ensemble or "", "--swing", "" if swing is None else repr(swing),
               "--", *map(str, self.scores)]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env, text=True)

    def wait(self, path: Path, swing: float | None, meanwhile=None) -> bool:
        """Wait until the helper is through with ``path``; whether it performed it with
        ``swing`` (and so left that performance in the cache, if the cache can be written).
        ``meanwhile(busy)`` is called first if the helper is not through yet; ``busy()`` tells
        it, without waiting, whether the helper may still be at work on it."""
        try:
            index = next(i for i, s in enumerate(self.scores) if s == path)
        except StopIteration:
            return False
        if index not in self.done and meanwhile is not None:
            meanwhile(lambda: self._busy(index))
        while index not in self.done and not self.process.stdout.closed:
            line = self.process.stdout.readline()
            if not line:  # the helper has ended (or died): the render does the rest itself
                self.stop()
                break
            i, _, played = line.rstrip("\n").partition("\t")
            self.done[int(i)] = played
        return self.done.get(index) == _swing_text(swing)

    def _busy(self, index: int) -> bool:
        """Whether the helper may still be at work on score ``index``: it has not reported on
        it, nor written anything since (a line, or its end, waiting in the pipe)."""
        if index in self.done or self.process.stdout.closed:
            return False
        readable, _, _ = select.select([self.process.stdout], [], [], 0)
        return not readable

    def stop(self) -> None:
        """End the helper, done or not (again: nothing more to do)."""
        if self.process.stdout.closed:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def start(scores: list[str], *, ensemble: str | None, swing: float | None) -> Prefetch | None:
    """Start a helper on ``scores`` with the command's options (those that decide how they
    are played); None when it cannot start (no loss: the render parses them itself)."""
    try:
        return Prefetch(scores, ensemble=ensemble, swing=swing)
    except OSError:
        return None


def _swing_text(swing: float | None) -> str:
    return "" if swing is None else repr(float(swing))


def _perform(path: Path, ensemble: str | None, swing: float | None) -> str:
    """The helper's work on one score: its performance in the cache; the swing it was
    played with, or FAILED."""
    from pipeline.speed import performance_cache as scorecache
    from pipeline.settings.config import load_template
    from pipeline.score.load import load
    from pipeline.score.perform import perform
    from pipeline.settings.sidecar import choose, read_sidecar, swing_feel

    try:
        settings = choose(read_sidecar(path), ensemble=ensemble, swing=swing)
        template = load_template(settings.ensemble) if settings.ensemble else None
        feel = swing_feel(template, settings.swing)
        key = scorecache.key(path, swing=feel, fermata_hold=None)
        if scorecache.read(key) is None and not scorecache.write(key, perform(load(path),
                                                                               swing=feel)):
            return FAILED  # not in the cache: the render performs it itself
        return _swing_text(feel)
    except Exception:  # the render meets the same problem and reports it
        return FAILED


def main(argv: list[str]) -> None:
    gc.disable()  # a short-lived process: music21's objects are freed with it
    options, scores = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    ensemble = options[options.index("--ensemble") + 1] or None
    swing_text = options[options.index("--swing") + 1]
    swing = float(swing_text) if swing_text else None
    for i, score in enumerate(scores):
        print(f"{i}\t{_perform(Path(score), ensemble, swing)}", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
        sys.stdout.flush()
    except (BrokenPipeError, KeyboardInterrupt):  # the render has ended or stopped it
        pass
    os._exit(0)  # no teardown of music21's objects
