"""The orchestrator: load → perform → assign → render → mix → master → export."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import gc
import logging
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipeline import __version__

from pipeline.dsp import kernels

from pipeline.speed import prefetch

from pipeline.speed import performance_cache as scorecache
from pipeline.voices.assign import assign, likely_presets
from pipeline.render.calibration import calibration_db
from pipeline.settings.config import Preset, Template, load_preset, load_template
from pipeline.voices.ensemble import detect_ensemble, instrumentation
from pipeline.errors import (OutputError, PipelineError, PresetError, RenderError, ScoreError,
                     SidecarError, TemplateError)
from pipeline.output.export import PieceFolder, read_mix, write_master, write_mix, write_report
from pipeline.score.humanize import DEFAULT_SEED as humanize_seed
from pipeline.score.humanize import check as check_humanize
from pipeline.score.humanize import humanize as humanized
from pipeline.score.load import MIDI_SUFFIXES, load
from pipeline.master.mastering import Prepared, Reference, album_targets, load_reference, master, prepare
from pipeline.mix.mixer import mix
from pipeline.score.musicxml import release_parsed
from pipeline.model import Mix, Performance, Stems
from pipeline.paths import slugify
from pipeline.score.perform import perform, write_midi
from pipeline.progress import MAX_DURATION_S, ProgressFn
from pipeline.render.stems import PresetHolder, StemFeed, max_stem_frames, render, stem_files
from pipeline.output.report import report_pictures, shape, stage_picture, trace, write_html
from pipeline.settings.sidecar import PieceSettings, choose, read_sidecar, swing_feel
from pipeline.settings.soundfonts import find_soundfont

log = logging.getLogger(__name__)

#: A write that failed with this little space left failed because the disk is full.
NEARLY_FULL_BYTES = 64 << 20


@dataclass(frozen=True)
class RenderResult:
    folder: Path
    report: dict


def perform_to_midi(score_path: str | Path, midi_path: str | Path, *,
                    soundfont: str | Path | None = None, swing: float | None = None,
                    fermata_hold: float | None = None, humanize: float = 0.0,
                    seed: int | None = None, max_duration_s: float = MAX_DURATION_S):
    """Load and perform a score and write ``performance.mid`` without rendering audio
    (``fermata_hold``: see :func:`pipeline.score.perform.perform`; None: its default;
    ``humanize``/``seed``: see :func:`pipeline.score.humanize.humanize`). The score's sidecar, if it
    has one, sets the swing, soundfont and parts' programs the options leave."""
    seed = _seed(humanize, seed)
    kwargs = {} if fermata_hold is None else {"fermata_hold": fermata_hold}
    settings = choose(read_sidecar(Path(score_path)), soundfont=soundfont, swing=swing)
    performance = perform(load(Path(score_path)), swing=swing_feel(None, settings.swing),
                          **kwargs)
    check_duration(performance, max_duration_s)
    performance = humanized(performance, amount=humanize, seed=seed)
    voices = assign(performance, soundfont=find_soundfont(settings.soundfont),
                    parts=_part_settings(settings, performance))
    write_midi(performance, Path(midi_path), [(v.bank, v.program) for v in voices])
    return performance


def _seed(humanize: float, seed: int | None) -> int:
    """The seed to humanize with, after checking both options (one-line errors)."""
    seed = humanize_seed if seed is None else seed
    check_humanize(humanize, seed)
    return seed


def check_duration(performance, max_duration_s: float) -> None:
    """Refuse a performance longer than ``max_duration_s`` seconds."""
    if performance.duration_s > max_duration_s:
        raise ScoreError(f"{performance.source}: the performance lasts "
                         f"{_clock(performance.duration_s)}, longer than the limit of "
                         f"{_clock(max_duration_s)} (a stray note or a broken tempo?); allow it "
                         f"with --max-duration SECONDS")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _check_space(out_root: Path, performance, sample_rate: int, *, mix_stems: bool) -> None:
    """Refuse at once when the stems alone will not fit, rather than an hour into the render:
    the dry stems and (``mix_stems``) the mix stems are float32 stereo (8 bytes a frame)."""
    frames = (performance.duration_s + 2.0) * sample_rate  # + release tails
    needed = int(len(performance.tracks) * (2 if mix_stems else 1) * frames * 8)
    free = shutil.disk_usage(out_root).free
    if needed > free:
        raise OutputError(f"{out_root}: not enough free space (the stems alone need about "
                          f"{needed / 2**20:.0f} MB, {free / 2**20:.0f} MB are free)")


def _write_failure(out_root: Path, exc: BaseException) -> OutputError:
    """One clear line for a write that failed part-way. libsndfile reports a full disk only as
    'System error', so the cause is looked up: a disk with less than :data:`NEARLY_FULL_BYTES`
    left (measured before the partial files are removed; a file that failed may already be),
    or a file-size limit."""
    import resource

    free = shutil.disk_usage(out_root).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    errno_ = getattr(exc, "errno", None)
    if errno_ in (errno.ENOSPC, errno.EDQUOT) or free < NEARLY_FULL_BYTES:
        why = f"the disk is full ({free / 2**20:.1f} MB free)"
    elif errno_ == errno.EFBIG or limit != resource.RLIM_INFINITY:
        why = f"a file reached the size limit of {limit / 2**20:.1f} MB (ulimit -f)"
    else:
        why = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"{out_root}: the render could not be written: {why}; no partial files "
                       f"were left")


def _is_write_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a failed write to the output folder (see :func:`_write_failure`)."""
    import soundfile

    if isinstance(exc, soundfile.LibsndfileError):
        return True
    if isinstance(exc, OutputError):  # atomic_path's, which names a file in the hidden folder
        return _is_write_failure(exc.__cause__)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
                                                      errno.EROFS, errno.EIO)


class _WriteProgress:
    """How many frames a writer has read from its audio, for a thread that waits to change
    them: ``run(write, …)`` calls ``write(…, progress=…)`` and counts to the end however the
    writing ends (its error is raised by its own Future)."""

    def __init__(self) -> None:
        self.frames = 0.0
        self.changed = threading.Condition()

    def _advance(self, frames: float) -> None:
        with self.changed:
            self.frames = frames
            self.changed.notify_all()

    def run(self, write, *args):
        try:
            return write(*args, progress=self._advance)
        finally:
            self._advance(float("inf"))

    def wait(self, frames: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.frames >= frames)


@dataclass
class _Piece:
    """A piece rendered as far as its mix, in its hidden working folder."""

    score_path: Path
    performance: object
    voices: tuple
    stems: object
    mix: Mix
    ensemble: str
    settings: PieceSettings
    template: Template
    folder: PieceFolder
    soundfont: Path
    timings: dict[str, float]
    #: performance.mid and mix.wav being written beside the synths and the master's first
    #: steps: done before the mix's memory is reused and before the folder is committed
    written: tuple[Future, ...] = ()
    #: how far mix.wav's writer has read the mix (the master may change what is behind it)
    mix_written: _WriteProgress | None = None


def _stage_timer(progress: ProgressFn, timings: dict[str, float]):
    @contextmanager
    def stage(name: str) -> Iterator[None]:
        progress(name, 0.0)
        t0 = time.perf_counter()
        yield
        _release_freed_memory()
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)
        progress(name, 1.0)
    return stage


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def _release_freed_memory() -> None:
    """Hand memory freed during a stage back to the system. glibc keeps the blocks that
    numpy frees on each thread's heap; a stage's buffers would otherwise stay resident
    through the later stages (about 200 MB on a 30-part, 10-minute score)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _part_settings(settings: PieceSettings, performance) -> tuple | None:
    """Each track's sidecar settings, or None when the piece has no sidecar."""
    if settings.sidecar is None:
        return None
    return settings.sidecar.for_tracks([t.name for t in performance.tracks])


def _layout(template: Template, settings: PieceSettings) -> PieceSettings:
    """The settings with a layout ``template`` has: an unknown one is a one-line error naming
    where it was asked for, except a sidecar's layout for the sidecar's ensemble when the
    command line chose another ensemble (it is dropped, with a warning)."""
    if not settings.layout or settings.layout in template.layout_names:
        return settings
    origin = settings.origin
    choices = f"choose one of: {', '.join(template.layout_names)}"
    if origin["layout"] == "sidecar" and origin["ensemble"] == "option" and \
            settings.sidecar.ensemble not in (None, template.name):
        log.warning("%s: layout '%s' is for %s; %s has no such layout, so it is seated as "
                    "standard (%s)", settings.sidecar.path, settings.layout,
                    settings.sidecar.ensemble, template.name, choices)
        return replace(settings, layout=None, origin={**origin, "layout": "default"})
    if origin["layout"] == "sidecar":
        raise SidecarError(f"{settings.sidecar.path}: 'layout' = '{settings.layout}': the "
                           f"{template.name} template has no such layout ({choices})")
    raise TemplateError(f"--layout {settings.layout}: the {template.name} template has no such "
                        f"layout ({choices})")


def _collector_paused(fn):
    """``fn`` with Python's cyclic collector paused (and switched back on however it ends).
    music21 makes millions of objects that live until the performance is made: run as the
    heap grows, the collector walked them all again and again (a second of the Große Fuge's
    parse); the render collects them once, beside the synths' start (see _render_and_mix),
    and the audio stages make arrays, not cycles."""
    @functools.wraps(fn)
    def paused(*args, **kwargs):
        collecting = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()
    return paused


@_collector_paused
def _render_to_mix(score_path: Path, **options) -> _Piece:
    """Load, perform, assign, render and mix a score (see :func:`_render_with`). The presets
    guessed from the score's part list are decoded while a helper process parses it, and kept
    until the mix is done."""
    with PresetHolder(options["sample_rate"]) as preload:
        return _render_with(score_path, preload=preload, **options)


def _render_with(score_path: Path, *, out_root: Path, settings: PieceSettings, soundfont: Path,
                 sample_rate: int, progress: ProgressFn, preload: PresetHolder,
                 humanize: float = 0.0, seed: int = humanize_seed,
                 max_duration_s: float = MAX_DURATION_S, slug: str | None = None,
                 mix_stems: bool = True) -> _Piece:
    timings: dict[str, float] = {}
    stage = _stage_timer(progress, timings)
    ensemble, swing = settings.ensemble, settings.swing
    chosen = load_template(ensemble) if ensemble else None
    if chosen is not None:
        settings = _layout(chosen, settings)
    # the swing is known now unless it comes from a template still to be detected
    feel = swing_feel(chosen, swing)
    score = _Score(score_path)
    with stage("load"):
        score.prepare(swing=feel,
                      meanwhile=lambda busy: _warm_up(preload, score_path, soundfont, busy))
    with stage("perform"):
        performance = score.performance(swing=feel)
    check_duration(performance, max_duration_s)
    performance = humanized(performance, amount=humanize, seed=seed)
    log.info("perform: %d tracks, %d notes, %.1f s", len(performance.tracks),
             performance.note_count, performance.duration_s)
    with stage("assign"):
        parts = _part_settings(settings, performance)
        voices = assign(performance, soundfont=soundfont, sample_rate=sample_rate, parts=parts)
        ensemble_name = ensemble or detect_ensemble(performance, voices)
        template = load_template(ensemble_name)
        settings = _layout(template, settings)
    if not ensemble and swing_feel(template, swing) and not score.is_midi:
        with stage("perform"):  # a detected jazz band swings: play it again, swung
            performance = humanized(score.performance(swing=swing_feel(template, swing)),
                                    amount=humanize, seed=seed)
    if settings.sidecar is not None and settings.sidecar.copyright:
        performance = replace(performance, copyright=settings.sidecar.copyright)
    # the parsed score is large (music21 objects, the MusicXML tree): gone before the audio
    del score
    release_parsed()
    for track, voice in zip(performance.tracks, voices):
        log.info("assign: %s → %s (bank %d, program %d, from %s)", track.name,
                 voice.preset_name, voice.bank, voice.program, voice.source)
    log.info("ensemble: %s (%s)", ensemble_name, _origin(settings, "ensemble"))
    folder = PieceFolder(out_root, slug or slugify(score_path.stem))
    midi = None
    try:
        _check_space(out_root, performance, sample_rate, mix_stems=mix_stems)
        # written beside the synths, whose work leaves the interpreter free
        midi = _writer.submit(write_midi, performance, folder.work / "performance.mid",
                              [(v.bank, v.program) for v in voices])
        # the mix follows the synths block by block (nothing read back from disk): the
        # render's time runs until the synths finish, the mix's from there
        progress("render", 0.0)
        started = time.perf_counter()
        the_mix, stems, synthesised = _render_and_mix(
            performance, voices, template, folder, settings=settings, parts=parts,
            sample_rate=sample_rate, mix_stems=mix_stems, progress=lambda f: progress("render", f))
        _release_freed_memory()
        timings["render"] = round(synthesised - started, 3)
        timings["mix"] = round(time.perf_counter() - synthesised, 3)
        progress("mix", 1.0)
        log.info("render: %d stems of %.1f s at %d Hz", len(stems.stems), stems.duration_s,
                 stems.sample_rate)
        with stage("export"):
            mix_written = _WriteProgress()
            written = (midi, _writer.submit(mix_written.run, write_mix, folder.work, the_mix))
    except BaseException as exc:
        failure = _write_failure(out_root, exc) if _is_write_failure(exc) else None
        if midi is not None:
            midi.exception()  # nothing may write into the folder it removes
        folder.discard()  # after measuring the free space: it frees what was written
        if failure:
            raise failure from exc
        raise
    return _Piece(score_path, performance, voices, stems, the_mix, ensemble_name, settings,
                  template, folder, soundfont, timings, written, mix_written)


def _render_and_mix(performance, voices, template, folder: PieceFolder, *,
                    settings: PieceSettings, parts, sample_rate: int, mix_stems: bool,
                    progress: Callable[[float], None]) -> tuple[Mix, Stems, float]:
    """Render the stems (on a thread of their own, the synths on theirs) and mix each block as
    soon as every synth has made it; the balance calibration runs beside the synths' start,
    and so does the collection of the parsed score's objects. Returns the mix, the stems and
    when (``time.perf_counter``) the synths finished."""
    stems_dir = folder.work / "stems"
    feed = StemFeed(stem_files(performance, stems_dir), sample_rate,
                    max_stem_frames(performance, sample_rate))
    with ThreadPoolExecutor(2, thread_name_prefix="score2audio-render") as side:
        def synthesise() -> tuple[Stems, float]:
            stems = render(performance, voices, stems_dir=stems_dir, sample_rate=sample_rate,
                           progress=progress, feed=feed)
            return stems, time.perf_counter()

        rendering = side.submit(synthesise)
        balance = side.submit(calibration_db, performance, voices, sample_rate=sample_rate)
        if "music21" in sys.modules:  # a score parsed here, not by the helper (0.1 s if not)
            gc.collect()  # the parsed score's objects, while the synths load their samples
        try:
            the_mix = mix(feed, voices, template, calibration_db=balance.result(),
                          layout=settings.layout, parts=parts,
                          mix_stems_dir=folder.work / "mix-stems" if mix_stems else None)
        except BaseException:
            feed.stop()  # the synths stop; the render's own error, if any, comes first
            rendering.exception()
            raise
        stems, synthesised = rendering.result()
    if stems.frames != feed.frames:  # the feed works the length out on its own
        raise RenderError("render: the mixed stems differ from the files written")
    return the_mix, stems, synthesised


#: one thread that writes a piece's mix and MIDI while its master is being made
_writer = ThreadPoolExecutor(1, thread_name_prefix="score2audio-writer")
#: one that takes the mix's picture for the report meanwhile
_tracer = ThreadPoolExecutor(1, thread_name_prefix="score2audio-tracer")


def finish_background_work() -> None:
    """Wait for the writer's and tracer's last work and stop their threads (at the process's
    end: they cannot take more)."""
    for pool in (_writer, _tracer):
        pool.shutdown(wait=True)


def _wait_written(piece: _Piece, *, quietly: bool = False) -> None:
    """Until the piece's MIDI and mix are on disk, raising what their writing raised unless
    ``quietly`` (on the way out of a failure: the first one is the one reported)."""
    piece.mix_written = None  # (a thread's lock: a piece that waited can be pickled)
    while piece.written:
        written, piece.written = piece.written[0], piece.written[1:]
        if quietly:
            written.exception()
        else:
            written.result()


def _warm_up(preload: PresetHolder, score_path: Path, soundfont: Path,
             helper_busy: Callable[[], bool]) -> None:
    """Loading that the render's first moments and the report would otherwise wait for, done
    while the helper process parses the score (``helper_busy()``: whether it still is): the
    presets the score's part list suggests (MuseScore General's piano takes 1.1 s to decode,
    its pizzicato strings 0.7 s, in the synths' way at the render's start), then numba's
    loader of compiled code (0.3 s at the first kernel called) and matplotlib (0.3 s at the
    first picture). One thing at a time, and only while the helper works: the two cores are
    full then, and a third busy thread would slow the parse, which the render waits for."""
    preload.hold(likely_presets(score_path, soundfont))
    while helper_busy() and not preload.decoded(timeout=0.02):
        pass  # (the presets the helper outlasts go on decoding beside the render)
    if helper_busy():
        kernels.any_sound(np.zeros((2, 1), dtype=np.float32))
    if helper_busy():
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401


class _Score:
    """A score to perform: its performance comes from the cache (:mod:`pipeline.speed.performance_cache`)
    when this file's content was performed with the same options before; it is parsed only
    when a performance has to be made."""

    def __init__(self, path: Path):
        self.path = path
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
                self.keys[swing] = scorecache.key(self.path, swing=swing, fermata_hold=None)
            except OSError:
                self.keys[swing] = None  # missing or unreadable: load() says so in its own words
            key = self.keys[swing]
            self.cached[swing] = scorecache.read(key) if key else None
        return self.cached[swing]

    def prepare(self, *, swing: float | None,
                meanwhile: Callable[[Callable[[], bool]], None] | None = None) -> None:
        """Find the performance in the cache (where the command's helper process may be
        putting it: see :mod:`pipeline.speed.prefetch`; ``meanwhile(busy)`` is called while waiting for
        it), else parse the score."""
        if self._look_up(swing) is None and prefetch.wait(self.path, swing, meanwhile):
            del self.cached[swing]  # the helper has performed it meanwhile: look again
        if self._look_up(swing) is None and self.loaded is None:
            self.loaded = load(self.path)

    def performance(self, *, swing: float | None) -> Performance:
        if self._look_up(swing) is None:
            if self.loaded is None:
                self.loaded = load(self.path)
            self.cached[swing] = perform(self.loaded, swing=swing)
            if self.keys[swing]:
                scorecache.write(self.keys[swing], self.cached[swing])
        return self.cached[swing]


def _origin(settings: PieceSettings, key: str) -> str:
    """Where a setting came from: option, sidecar, or (ensemble) detected / (others) default."""
    origin = settings.origin.get(key, "default")
    return "detected" if key == "ensemble" and origin == "default" else origin


def _tags(piece: _Piece, album: str | None) -> dict:
    perf = piece.performance
    return {"title": perf.title, "artist": perf.composer, "album": album, "copyright": perf.copyright,
            "comment": f"{piece.ensemble} ({instrumentation(perf)}), rendered by score2audio",
            "software": f"score2audio {__version__}"}


def _finish(piece: _Piece, presets: list[Preset], *, reference: Reference | None,
            progress: ProgressFn, targets: dict[str, float] | None = None,
            album: dict | None = None,
            before_commit: Callable[[Path, dict], None] | None = None) -> RenderResult:
    """Master, export and report a piece rendered to its mix; commit its folder.
    ``before_commit(working folder, report)`` adds files that must arrive with the rest."""
    stage = _stage_timer(progress, piece.timings)
    folder = piece.folder
    tracing = writing = staging = shaping = None
    try:
        masters, files, traces, parts = [], [], [], _parts_report(piece)
        tags = _tags(piece, (album or {}).get("name"))
        with stage("master"):
            # the mix's trace is taken beside the master's first steps, before the last
            # master uses the mix up
            tracing = _tracer.submit(trace, "mix", piece.mix.audio, piece.mix.sample_rate,
                                     piece.mix.loudness_lufs, piece.mix.short_term_lufs)

            def mix_in_use(frames: int | None) -> None:
                """The master is about to change the mix's first ``frames`` (None: all)."""
                tracing.result()
                if frames is not None and piece.mix_written is not None:
                    piece.mix_written.wait(frames)  # the tone trails mix.wav's writer
                else:
                    _wait_written(piece)

            for i, p in enumerate(presets):
                if writing is not None:  # one master's audio in memory at a time
                    files.append(writing.result())
                target = (targets or {}).get(p.name)

                def ready(audio: np.ndarray, sample_rate: int, p: Preset = p) -> None:
                    """The master's audio is final: its files are written, and its picture's
                    shape taken, while it is measured (the last one's files while the
                    report's pictures are drawn)."""
                    nonlocal writing, shaping, staging
                    writing = _writer.submit(write_master, folder.work, audio, sample_rate, p,
                                             several=len(presets) > 1, tags=tags)
                    shaping = _tracer.submit(shape, audio, sample_rate)
                    if p is presets[-1]:
                        # matplotlib is loaded (and the stage drawn) past the master's peak of
                        # memory (the gain search), which it would add to
                        staging = _tracer.submit(stage_picture, parts)

                m = master(piece.mix, p, piece.template.mastering, reference, target_lufs=target,
                           album=(album or {}).get(p.name), consume_mix=i == len(presets) - 1,
                           mix_in_use=mix_in_use, ready=ready)
                log.info("master %s: %s LUFS, %s dBTP", p.name, m.measurements["integrated_lufs"],
                         m.measurements["true_peak_dbtp"])
                traces.append(trace(f"master ({p.name})", shaping.result(), m.sample_rate,
                                    m.measurements["integrated_lufs"], m.short_term_lufs,
                                    m.limiter_gain))
                masters.append((p, m.measurements))
                del m
                progress("master", (i + 1) / len(presets))
            mix_trace = tracing.result()
        with stage("report"):
            report = _report(piece, masters, parts)
            # the pictures need no file names: drawn while the last master's are written
            pictures = report_pictures(report, mix_trace, traces, stage=staging.result())
            files.append(writing.result())
            for entry, written in zip(report["masters"], files):
                entry["files"] = written
            _wait_written(piece)
            write_html(folder.work, report, pictures)
        report["timings_s"] = {**piece.timings, "total": round(sum(piece.timings.values()), 3)}
        write_report(folder.work, report)
        if before_commit is not None:
            before_commit(folder.work, report)
        final = folder.commit()
    except BaseException as exc:
        failure = _write_failure(folder.final.parent, exc) if _is_write_failure(exc) else None
        _wait_written(piece, quietly=True)  # nothing may write into the folder it removes
        for job in (tracing, writing, staging, shaping):
            if job is not None:
                job.exception()  # nor read the mix, nor write, after this
        folder.discard()
        if failure:
            raise failure from exc
        raise
    return RenderResult(final, report)


def _options(ensemble, presets, soundfont, reference, swing):
    """Check every option before the slow work, so a typo fails at once."""
    if swing is not None and not 0.0 <= swing <= 4.0:
        raise PipelineError(f"--swing {swing:g}: give a ratio from 1 (straight) to 4, e.g. 2 for "
                            f"a triplet feel")
    if ensemble:
        load_template(ensemble)
    preset_objs = [load_preset(p) for p in presets]
    if not preset_objs:
        raise PresetError("no preset given (see 'score2audio presets')")
    return preset_objs, find_soundfont(soundfont), (load_reference(reference) if reference else None)


def render_score(score_path: str | Path, *, out_root: str | Path = "out", ensemble: str | None = None,
                 presets: tuple[str, ...] | None = None, soundfont: str | Path | None = None,
                 sample_rate: int = 48000, reference: str | Path | None = None,
                 swing: float | None = None, layout: str | None = None,
                 humanize: float = 0.0, seed: int | None = None, mix_stems: bool = True,
                 progress: ProgressFn | None = None,
                 max_duration_s: float = MAX_DURATION_S) -> RenderResult:
    """Render one score into ``out_root/<score-name>/``.

    ``mix_stems``: also write each player's post-fader contribution to the mix, its reverb
    included, to ``mix-stems/`` (one room convolution per player: slow for large ensembles).

    Options left as None are taken from the score's sidecar (``<score-name>.toml`` or
    ``piece.toml`` beside it, see :mod:`pipeline.settings.sidecar`), else detected or defaulted
    (presets: streaming).

    Raises
    ------
    PipelineError
        (or a subclass) with a one-line message naming the file or setting at fault; nothing is
        left in ``out_root`` for this piece when it is raised.
    """
    progress = progress or (lambda stage, fraction: None)
    seed = _seed(humanize, seed)
    settings = choose(read_sidecar(Path(score_path)), ensemble=ensemble, layout=layout,
                      presets=presets, soundfont=soundfont, swing=swing)
    preset_objs, sf_path, ref = _options(settings.ensemble, settings.presets, settings.soundfont,
                                         reference, settings.swing)
    piece = _render_to_mix(Path(score_path), out_root=Path(out_root), settings=settings,
                           soundfont=sf_path, sample_rate=sample_rate, progress=progress,
                           humanize=humanize, seed=seed, max_duration_s=max_duration_s,
                           mix_stems=mix_stems)
    return _finish(piece, preset_objs, reference=ref, progress=progress)


def render_album(score_paths: list[str | Path], *, name: str = "album", out_root: str | Path = "out",
                 ensemble: str | None = None, presets: tuple[str, ...] | None = None,
                 soundfont: str | Path | None = None, sample_rate: int = 48000,
                 reference: str | Path | None = None, swing: float | None = None,
                 layout: str | None = None, humanize: float = 0.0, seed: int | None = None,
                 mix_stems: bool = True,
                 progress: Callable[[str, str, float], None] | None = None,
                 max_duration_s: float = MAX_DURATION_S) -> list[RenderResult]:
    """Render several scores and master them as one album: for each preset the pieces are
    measured as one programme (see :func:`pipeline.master.mastering.album_targets`).

    Each piece's sidecar applies as in :func:`render_score`, except its preset: an album is
    mastered for one set of presets (the option's, else streaming).

    The mixes are kept on disk between the two passes, never all in memory at once.
    """
    report_progress = progress or (lambda piece, stage, fraction: None)
    seed = _seed(humanize, seed)
    album_presets = tuple(presets or ("streaming",))
    preset_objs, _, ref = _options(ensemble, album_presets, None, reference, swing)
    pieces: list[_Piece] = []
    results: list[RenderResult] = []
    try:
        summaries: list[dict[str, AlbumEntry]] = []
        for path in score_paths:
            path = Path(path)
            sidecar = read_sidecar(path)
            if sidecar is not None and sidecar.presets:
                if not presets:
                    log.warning("%s: 'preset' is not used in an album (mastered for: %s)",
                                sidecar.path, ", ".join(album_presets))
                sidecar = replace(sidecar, presets=())
            settings = choose(sidecar, ensemble=ensemble, layout=layout, presets=presets,
                              soundfont=soundfont, swing=swing, default_presets=album_presets)
            piece = _render_to_mix(path, out_root=Path(out_root), settings=settings,
                                   soundfont=find_soundfont(settings.soundfont),
                                   sample_rate=sample_rate, humanize=humanize, seed=seed,
                                   max_duration_s=max_duration_s, mix_stems=mix_stems,
                                   progress=lambda s, f, n=path.name: report_progress(n, s, f))
            pieces.append(piece)
            summaries.append(album_entries(piece, preset_objs, ref))
        targets, notes = album_plan(summaries, preset_objs, name)
        for piece, target, note in zip(pieces, targets, notes):
            piece.mix = replace(piece.mix, audio=read_mix(piece.folder.work))
            results.append(_finish(piece, preset_objs, reference=ref, targets=target, album=note,
                                   progress=lambda s, f, n=piece.score_path.name:
                                   report_progress(n, s, f)))
        return results
    except BaseException:
        for piece in pieces[len(results):]:
            _wait_written(piece, quietly=True)
            piece.folder.discard()  # finished pieces are committed; _finish discards its own
        raise


#: What an album needs of one piece for one preset: (name, prepared summary, the ensemble's
#: relative loudness in LU); see :func:`pipeline.master.mastering.album_targets`.
AlbumEntry = tuple[str, Prepared, float]


def album_entries(piece: _Piece, presets: list[Preset],
                  reference: Reference | None = None) -> dict[str, AlbumEntry]:
    """Measure a piece rendered to its mix for each preset, then let go of its mix audio
    (it is on disk: :func:`pipeline.output.export.read_mix` brings it back for the second pass)."""
    entries = {}
    for p in presets:
        prep = prepare(piece.mix, p, piece.template.mastering, reference)
        entries[p.name] = (piece.score_path.name, prep.summary(),
                           piece.template.mastering.relative_loudness_lu)
    piece.mix = replace(piece.mix, audio=np.zeros((2, 0), dtype=np.float32))
    _wait_written(piece)  # the second pass reads the mix back from its file
    return entries


def album_plan(entries: list[dict[str, AlbumEntry]], presets: list[Preset],
               name: str) -> tuple[list[dict[str, float]], list[dict]]:
    """Each piece's loudness target per preset and the album note for its report, for pieces
    measured by :func:`album_entries` and mastered as one programme."""
    targets: list[dict[str, float]] = [{} for _ in entries]
    notes: list[dict] = [{"name": name} for _ in entries]
    for p in presets:
        if not p.processing:
            continue
        column = [e[p.name] for e in entries]
        levels, note = album_targets(column, min(s.target_lufs for _, s, _ in column))
        for i, level in enumerate(levels):
            targets[i][p.name] = level
            notes[i][p.name] = note
    return targets, notes


def _settings_report(piece: _Piece) -> dict:
    """Each piece-wide setting's value and where it came from."""
    s = piece.settings
    values = {"ensemble": piece.ensemble, "layout": s.layout or "standard",
              "preset": ",".join(s.presets), "soundfont": str(piece.soundfont),
              "swing": swing_feel(piece.template, s.swing) or "straight"}
    origins = {k: _origin(s, "presets" if k == "preset" else k) for k in values}
    if origins["swing"] == "default" and values["swing"] != "straight":
        origins["swing"] = "template"
    return {k: {"value": v, "from": origins[k]} for k, v in values.items()}


def _parts_report(piece: _Piece) -> list[dict]:
    """The report's entry for each part: its voice, seat and levels in the mix."""
    performance, voices, the_mix = piece.performance, piece.voices, piece.mix
    parts = []
    sidecar_parts = _part_settings(piece.settings, performance) or (None,) * len(voices)
    for track, voice, level, own in zip(performance.tracks, voices, the_mix.stem_levels,
                                        sidecar_parts):
        parts.append({
            "part": track.name, "instrument": voice.preset_name or track.instrument,
            "instrument_map": voice.instrument or None,
            "set_by_sidecar": list(own.keys) if own is not None else [],
            "soundfont": str(voice.soundfont), "bank": voice.bank, "program": voice.program,
            "voice_source": voice.source, "family": voice.family, "percussion": voice.is_percussion,
            "notes": len(track.notes), "stem": level["file"], "pan": level["pan"],
            "peak_dbfs": level["peak_dbfs"], "loudness_lufs": level["loudness_lufs"],
            **{k: level[k] for k in ("depth", "seat", "bus", "calibration_db", "gain_db",
                                     "send_db", "predelay_ms", "damping_hz", "mix_lufs",
                                     "mix_stem", "level_db", "eq", "compressor")},
        })
    return parts


def _report(piece: _Piece, masters, parts: list[dict]) -> dict:
    """The piece's report; each master's ``files`` are filled in when written."""
    performance, stems, the_mix = piece.performance, piece.stems, piece.mix
    mix_lufs = the_mix.loudness_lufs
    return {
        "title": performance.title,
        "composer": performance.composer,
        "copyright": performance.copyright,
        "source": str(piece.score_path),
        "ensemble": piece.ensemble,
        "ensemble_chosen_by": _origin(piece.settings, "ensemble"),
        "sidecar": str(piece.settings.sidecar.path) if piece.settings.sidecar else None,
        "settings": _settings_report(piece),
        "instrumentation": instrumentation(performance),
        "sample_rate": stems.sample_rate,
        "duration_s": round(the_mix.audio.shape[1] / the_mix.sample_rate, 3),  # with the room's tail
        "performance": {
            "file": "performance.mid", "notes": performance.note_count,
            "played_s": round(performance.duration_s, 3),
            "tempo_bpm_start": round(performance.tempo_map.bpm_at(0), 2),
            "tempo_changes": len(performance.tempo_map.changes),
        },
        "soundfont": str(piece.soundfont),
        "parts": parts,
        "stems": {"folder": "stems", "frames": stems.frames, "duration_s": round(stems.duration_s, 3)},
        "mix": {"file": "mix.wav",
                "loudness_lufs": round(mix_lufs, 2) if np.isfinite(mix_lufs) else None,
                "duration_s": round(the_mix.audio.shape[1] / the_mix.sample_rate, 3),
                **the_mix.settings},
        "masters": [{"preset": p.name, "description": p.description, "files": [],
                     "formats": list(p.formats), **m} for p, m in masters],
        "timings_s": {**piece.timings, "total": round(sum(piece.timings.values()), 3)},
        "pipeline_version": __version__,
    }
