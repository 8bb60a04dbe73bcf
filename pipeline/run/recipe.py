"""The orchestrator: load → perform → assign → render → mix → master → export.

Each public function reads as the recipe it runs; the speed mechanics are the
:class:`~pipeline.speed.accelerator.Accelerator` it is handed (a plain one when none is), the
checks and the report's record live beside it in :mod:`pipeline.run.checks` and
:mod:`pipeline.run.piece_record`.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipeline import __version__
from pipeline.dsp.loudness import Reading, reading
from pipeline.errors import AudioFileError, RenderError
from pipeline.files import read_audio
from pipeline.master.mastering import (PRESET_ONLY, Prepared, Reference, album_targets,
                                       load_mix, load_reference, master, master_loop,
                                       prepare)
from pipeline.mix.mixer import mix
from pipeline.mix.loop import fold_loop
from pipeline.mix.rehearsal import Rehearsal, count_in, rehearsal_balance, with_count_in
from pipeline.model import Mix, Performance, Stems
from pipeline.output.export import (PieceFolder, read_mix, write_lossy, write_master, write_mix,
                                    write_report, write_timemap)
from pipeline.output.piece_report import (ExcerptReport, MasterReport, MixFileReport,
                                          PieceReport, RehearsalTrack, SourceMix, Timings)
from pipeline.output.report import report_pictures, shape, stage_picture, trace, write_html
from pipeline.paths import slugify
from pipeline.progress import MAX_DURATION_S, ProgressFn
from pipeline.render.calibration import calibration_db
from pipeline.render.attack import Timing, compensated_timing, written_timing
from pipeline.render.vibrato import plan as plan_vibrato
from pipeline.render.zones import fit_to_zones
from pipeline.render.stems import (StemFeed, max_stem_frames, preset_changes, render,
                                   stem_files)
from pipeline.run.checks import (check_duration, check_options, check_space, checked_seed,
                                 origin, part_settings, seat_layout, write_failure)
from pipeline.run.piece_record import PieceRecord, piece_record
from pipeline.score.excerpt import Bars, excerpt
from pipeline.score.humanize import DEFAULT_SEED
from pipeline.score.humanize import humanize as humanized
from pipeline.score.load import load
from pipeline.score.musicxml import release_parsed
from pipeline.score.perform import perform, write_midi
from pipeline.settings.config import Preset, load_preset, load_template
from pipeline.settings.sidecar import PieceSettings, choose, read_sidecar, swing_feel
from pipeline.settings.soundfonts import find_soundfont
from pipeline.speed.accelerator import Accelerator, WriteBehind
from pipeline.voices.assign import assign
from pipeline.voices.ensemble import detect_ensemble
from pipeline.voices.ranges import check_ranges

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderResult:
    folder: Path
    report: PieceReport


@dataclass
class MixedPiece:
    """A piece rendered as far as its mix, in its hidden working folder."""

    record: PieceRecord
    mix: Mix
    folder: PieceFolder
    #: performance.mid and mix.wav being written beside the master's first steps: done
    #: before the folder is committed (none for a piece read back from a cache)
    written: tuple[Future, ...] = ()
    #: mix.wav's writer, which the master's tone trails (it changes the mix in place)
    mix_written: WriteBehind | None = None

    def wait_written(self, *, quietly: bool = False) -> None:
        """Until the piece's MIDI and mix are on disk, raising what their writing raised
        unless ``quietly`` (on the way out of a failure: the first one is the one reported)."""
        self.mix_written = None
        while self.written:
            written, self.written = self.written[0], self.written[1:]
            if quietly:
                written.exception()
            else:
                written.result()


def _quiet(stage: str, fraction: float) -> None:
    pass


@contextmanager
def _accelerated(accelerator: Accelerator | None) -> Iterator[Accelerator]:
    """The caller's accelerator, or a plain one for this call."""
    if accelerator is not None:
        yield accelerator
    else:
        with Accelerator() as plain:
            yield plain


# ---- the recipes ----

def render_score(score_path: str | Path, *, out_root: str | Path = "out",
                 ensemble: str | None = None, presets: tuple[str, ...] | None = None,
                 soundfont: str | Path | None = None, sample_rate: int = 48000,
                 reference: str | Path | None = None, swing: float | None = None,
                 layout: str | None = None, humanize: float = 0.0, seed: int | None = None,
                 mix_stems: bool = False, attack_compensation: bool = True,
                 vibrato: bool = True, phrasing: bool = True,
                 rehearsal: Rehearsal | None = None, bars: Bars | None = None,
                 progress: ProgressFn | None = None, max_duration_s: float = MAX_DURATION_S,
                 accelerator: Accelerator | None = None) -> RenderResult:
    """Render one score into ``out_root/<score-name>/``: :func:`render_to_mix`, then
    :func:`master_mix`.

    ``bars``: only those bars, as played (:mod:`pipeline.score.excerpt`), into
    ``out_root/<score-name>-bars-<first>-<last>/``; a loop's mix and masters are one turn of
    it that joins itself (:mod:`pipeline.mix.loop`).

    ``rehearsal``: also write ``rehearsal/<part>.mp3``, each part forward and centred and the
    others back (:mod:`pipeline.mix.rehearsal`), made from the mix stems (written too).

    ``attack_compensation``: each note starts early by the time its voice takes to be heard
    (:mod:`pipeline.render.attack`); ``performance.mid`` keeps the written times either way.
    ``vibrato``: long notes of straight samples get the vibrato their style wants
    (:mod:`pipeline.render.vibrato`). ``phrasing``: phrases shaped as a player does
    (:mod:`pipeline.score.phrasing`).

    ``mix_stems``: also write each player's post-fader contribution to the mix, its reverb
    included, to ``mix-stems/`` (one room convolution and one full-length file per player:
    slow for large ensembles, so off unless asked for).
    Options left as None are taken from the score's sidecar (``<score-name>.toml`` or
    ``piece.toml`` beside it, see :mod:`pipeline.settings.sidecar`), else detected or
    defaulted (presets: streaming).

    Raises
    ------
    PipelineError
        (or a subclass) with a one-line message naming the file or setting at fault; nothing is
        left in ``out_root`` for this piece when it is raised.
    """
    seed = checked_seed(humanize, seed)
    settings = choose(read_sidecar(Path(score_path)), ensemble=ensemble, layout=layout,
                      presets=presets, soundfont=soundfont, swing=swing)
    if rehearsal is None and settings.sidecar is not None and settings.sidecar.rehearsal:
        rehearsal = Rehearsal()
    preset_objs = check_options(settings.ensemble, settings.presets, settings.swing)
    sf_path = find_soundfont(settings.soundfont)
    ref = load_reference(reference) if reference else None
    with _accelerated(accelerator) as speed:
        piece = render_to_mix(Path(score_path), out_root=Path(out_root), settings=settings,
                              soundfont=sf_path, sample_rate=sample_rate, progress=progress,
                              humanize=humanize, seed=seed, max_duration_s=max_duration_s,
                              mix_stems=mix_stems or rehearsal is not None,
                              attack_compensation=attack_compensation, bars=bars,
                              vibrato=vibrato, phrasing=phrasing, accelerator=speed)
        return master_mix(piece, preset_objs, reference=ref, progress=progress,
                          rehearsal=rehearsal, accelerator=speed)


def render_to_mix(score_path: Path, *, out_root: Path, settings: PieceSettings, soundfont: Path,
                  sample_rate: int, progress: ProgressFn | None = None, humanize: float = 0.0,
                  seed: int = DEFAULT_SEED, max_duration_s: float = MAX_DURATION_S,
                  slug: str | None = None, mix_stems: bool = False,
                  attack_compensation: bool = True, vibrato: bool = True,
                  phrasing: bool = True, bars: Bars | None = None,
                  accelerator: Accelerator | None = None) -> MixedPiece:
    """Load, perform, assign, render and mix a score into a hidden working folder under
    ``out_root`` (stems, mix-stems, performance.mid, mix.wav): :func:`master_mix` finishes it.
    ``bars``: only those bars (see :func:`render_score`)."""
    progress = progress or _quiet
    timings: dict[str, float] = {}
    with _accelerated(accelerator) as speed, \
            speed.piece(score_path, soundfont=soundfont, sample_rate=sample_rate) as fast:
        stage = _stage_timer(progress, timings, speed)
        chosen = load_template(settings.ensemble) if settings.ensemble else None
        if chosen is not None:
            settings = seat_layout(chosen, settings)
        feel = swing_feel(chosen, settings.swing)  # unless a template still to be detected says
        score = speed.score(score_path, phrasing=phrasing)
        with stage("load"):
            fast.prepare(score, swing=feel)
        with stage("perform"):
            performance = _played(score.performance(swing=feel), max_duration_s, humanize, seed)
        with stage("assign"):
            parts = part_settings(settings, performance)
            voices = assign(performance, soundfont=soundfont, sample_rate=sample_rate, parts=parts)
            ensemble = settings.ensemble or detect_ensemble(performance, voices)
            template = load_template(ensemble)
            settings = seat_layout(template, settings)
        if not settings.ensemble and swing_feel(template, settings.swing) and not score.is_midi:
            with stage("perform"):  # a detected jazz band swings: play it again, swung
                performance = _played(score.performance(swing=swing_feel(template, settings.swing)),
                                      max_duration_s, humanize, seed)
        if settings.sidecar is not None and settings.sidecar.copyright:
            performance = replace(performance, copyright=settings.sidecar.copyright)
        excerpted = None
        if bars is not None:  # cut from the whole as played: its voices, ensemble and seats
            whole = performance
            performance, start_tick = excerpt(whole, bars)
            excerpted = _excerpt_report(whole, start_tick, performance, bars)
        del score  # the parsed score is large (music21 objects, the MusicXML tree)
        release_parsed()
        _log_choices(performance, voices, ensemble, settings)
        with stage("assign"):
            beyond = check_ranges(performance, voices)
            # what is rendered: every note where its preset has samples (performance.mid
            # keeps the written notes)
            played, refits = fit_to_zones(performance, voices)
        fast.hold([(v, v.program) for v in voices] + preset_changes(played, voices))
        with stage("attack"):
            timing = compensated_timing(played, voices, sample_rate=sample_rate) \
                if attack_compensation else written_timing(played)
            wheels = plan_vibrato(played, voices, timing, ensemble=ensemble,
                                  sample_rate=sample_rate) if vibrato else None

        folder = PieceFolder(out_root, slug or _slug(score_path, bars))
        midi = None
        try:
            check_space(out_root, performance, sample_rate, mix_stems=mix_stems)
            midi = speed.in_background(write_midi, performance, folder.work / "performance.mid",
                                       [(v.bank, v.program) for v in voices])
            the_mix, stems = _render_and_mix(played, voices, timing, wheels, template,
                                             folder, speed, settings=settings, parts=parts,
                                             sample_rate=sample_rate, mix_stems=mix_stems,
                                             progress=progress, timings=timings)
            looped = excerpted is not None and excerpted.loop
            if looped:  # one turn, from the first downbeat
                the_mix = fold_loop(the_mix, loop_s=excerpted.played_s, origin_s=timing.lead_in_s)
            with stage("export"):
                mix_written = speed.write_behind(write_mix, folder.work, the_mix)
                # the played bars where the audio has them: a page follows the score with it
                write_timemap(folder.work,
                              performance.timemap(0.0 if looped else stems.lead_in_s))
        except BaseException as exc:
            failure = write_failure(out_root, exc)
            if midi is not None:
                midi.exception()  # nothing may write into the folder it removes
            folder.discard()  # after measuring the free space: it frees what was written
            if failure:
                raise failure from exc
            raise
    record = piece_record(score_path, performance, voices, timing, wheels, stems, the_mix,
                          ensemble=ensemble, beyond=beyond, refits=refits,
                          settings=settings, template=template, soundfont=soundfont,
                          timings=timings, excerpt=excerpted)
    return MixedPiece(record, the_mix, folder, (midi, mix_written.future), mix_written)


def master_mix(piece: MixedPiece, presets: list[Preset], *, reference: Reference | None = None,
               progress: ProgressFn | None = None, targets: dict[str, float] | None = None,
               album: dict | None = None,
               before_commit: Callable[[Path, PieceReport], None] | None = None,
               rehearsal: Rehearsal | None = None,
               accelerator: Accelerator | None = None) -> RenderResult:
    """Master a piece rendered to its mix for each preset, write its files and report, and
    move its folder into place (``targets``: an album's loudness per preset; ``album``: the
    album's note; ``before_commit(working folder, report)`` adds files that must arrive with
    the rest; ``rehearsal``: its rehearsal tracks too, from its mix stems)."""
    progress = progress or _quiet
    timings = dict(piece.record.report.timings.seconds)
    folder = piece.folder
    with _accelerated(accelerator) as speed:
        stage = _stage_timer(progress, timings, speed)
        jobs = _MasterJobs(speed)
        cut = piece.record.report.excerpt
        try:
            with stage("master"):
                masters, traces = _master_all(
                    piece.mix, load_template(piece.record.template).mastering, presets,
                    reference, targets, album, jobs, progress, folder=piece.folder.work,
                    tags=piece.record.tags((album or {}).get("name")),
                    parts=piece.record.report.parts,
                    mix_written=lambda frames: _mix_written(piece, frames),
                    loop=cut is not None and cut.loop)
            tracks = ()
            if rehearsal is not None:
                with stage("rehearsal"):
                    piece.wait_written()  # they are made from mix.wav
                    tracks = rehearsal_tracks(piece, rehearsal, album)
            with stage("report"):
                report = replace(piece.record.report, masters=tuple(masters), rehearsal=tracks,
                                 timings=Timings(tuple(timings.items())))  # the page's, so far
                # the pictures need no file names: drawn while the last master's are written
                pictures = report_pictures(report, jobs.mix_trace.result(), traces,
                                           stage=jobs.staging.result())
                report = report.with_files(jobs.files())
                piece.wait_written()
                write_html(folder.work, report, pictures)
            report = replace(report, timings=Timings(tuple(timings.items())))
            write_report(folder.work, report)
            if before_commit is not None:
                before_commit(folder.work, report)
            final = folder.commit()
        except BaseException as exc:
            failure = write_failure(folder.final.parent, exc)
            piece.wait_written(quietly=True)  # nothing may write into the folder it removes
            jobs.settle()  # nor read the mix, nor write, after this
            folder.discard()
            if failure:
                raise failure from exc
            raise
    return RenderResult(final, report)


def master_file(mix_path: str | Path, presets: tuple[str, ...], *, out_root: str | Path = "out",
                ensemble: str | None = None, reference: str | Path | None = None,
                progress: ProgressFn | None = None,
                accelerator: Accelerator | None = None) -> MixFileResult:
    """Master a mix brought as a file (WAV, FLAC…: mono or stereo, 44.1–192 kHz, any word
    length) for each preset into ``out_root/<file-name>/``: the masters the presets ask for,
    ``report.json`` and ``report.html``. ``ensemble``: master it as that template's pieces are
    (its tonal target, glue and guard); None: the presets' chain as written.

    Raises
    ------
    PipelineError
        (or a subclass) with a one-line message naming the file or setting at fault; nothing is
        left in ``out_root`` for this mix when it is raised.
    """
    progress = progress or _quiet
    mix_path = Path(mix_path)
    preset_objs = check_options(ensemble, presets, None)
    timings: dict[str, float] = {}
    with _accelerated(accelerator) as speed:
        stage = _stage_timer(progress, timings, speed)
        with stage("load"):
            the_mix = load_mix(mix_path)
            source = _source_mix(mix_path, the_mix)
        ref = load_reference(reference) if reference else None
        mastering = load_template(ensemble).mastering if ensemble else PRESET_ONLY
        folder = PieceFolder(Path(out_root), slugify(mix_path.stem))
        jobs = _MasterJobs(speed)
        try:
            with stage("master"):
                masters, traces = _master_all(
                    the_mix, mastering, preset_objs, ref, None, None, jobs, progress,
                    folder=folder.work, parts=(),
                    tags={"title": mix_path.stem, "software": f"score2audio {__version__}"})
            del the_mix
            with stage("report"):
                report = MixFileReport(
                    title=mix_path.name, source=source,
                    mastering=f"ensemble {ensemble}" if ensemble else "the presets' own",
                    reference=ref.path.name if ref else None, masters=tuple(masters),
                    timings=Timings(tuple(timings.items())), pipeline_version=__version__)
                pictures = report_pictures(report, jobs.mix_trace.result(), traces)
                report = report.with_files(jobs.files())
                write_html(folder.work, report, pictures)
            report = replace(report, timings=Timings(tuple(timings.items())))
            write_report(folder.work, report)
            final = folder.commit()
        except BaseException as exc:
            failure = write_failure(folder.final.parent, exc)
            jobs.settle()  # nothing may write into the folder after this
            folder.discard()
            if failure:
                raise failure from exc
            raise
    return MixFileResult(final, report)


@dataclass(frozen=True)
class MixFileResult:
    folder: Path
    report: MixFileReport


def _source_mix(path: Path, the_mix: Mix) -> SourceMix:
    """What the mix file is and what the meter reads on it (as the file is: mono as one
    channel, the level it had)."""
    channels = the_mix.settings["channels"]
    audio = the_mix.audio[:channels]
    metered = reading(audio, the_mix.sample_rate)
    return SourceMix(file=path.name, format=the_mix.settings["format"],
                     sample_rate=the_mix.sample_rate, channels=channels,
                     duration_s=round(audio.shape[1] / the_mix.sample_rate, 3),
                     integrated_lufs=_rounded(metered.integrated_lufs),
                     loudness_range_lu=round(metered.loudness_range_lu, 2),
                     true_peak_dbtp=round(metered.true_peak_dbtp, 2))


def _rounded(value: float) -> float | None:
    return round(value, 2) if np.isfinite(value) else None


def meter_file(path: str | Path) -> Reading:
    """The loudness meter's reading of an audio file as it is (mono as one channel, as
    ffmpeg's ``ebur128`` measures it): integrated loudness, loudness range, true peak."""
    path = Path(path)
    audio, sample_rate = read_audio(path)
    if audio.shape[0] > 2:  # BS.1770 weights surround channels and leaves out the LFE
        raise AudioFileError(f"{path}: {audio.shape[0]} channels; the meter measures mono and "
                             f"stereo files")
    return reading(audio, sample_rate)


def perform_to_midi(score_path: str | Path, midi_path: str | Path, *,
                    soundfont: str | Path | None = None, swing: float | None = None,
                    fermata_hold: float | None = None, humanize: float = 0.0,
                    seed: int | None = None, max_duration_s: float = MAX_DURATION_S,
                    phrasing: bool = True,
                    accelerator: Accelerator | None = None) -> Performance:
    """Load and perform a score and write ``performance.mid`` without rendering audio
    (``fermata_hold``, ``phrasing``: see :func:`pipeline.score.perform.perform`; None: its default;
    ``humanize``/``seed``: see :func:`pipeline.score.humanize.humanize`; ``accelerator``: the
    command's, see :mod:`pipeline.speed.accelerator`). The score's sidecar, if it has one, sets
    the swing, soundfont and parts' programs the options leave."""
    seed = checked_seed(humanize, seed)
    kwargs = {} if fermata_hold is None else {"fermata_hold": fermata_hold}
    settings = choose(read_sidecar(Path(score_path)), soundfont=soundfont, swing=swing)
    with _accelerated(accelerator) as speed, speed.collector_paused():
        performance = perform(load(Path(score_path)), swing=swing_feel(None, settings.swing),
                              phrasing=phrasing, **kwargs)
    performance = _played(performance, max_duration_s, humanize, seed)
    voices = assign(performance, soundfont=find_soundfont(settings.soundfont),
                    parts=part_settings(settings, performance))
    write_midi(performance, Path(midi_path), [(v.bank, v.program) for v in voices])
    return performance


# ---- albums: every piece to its mix, measured as one programme, then mastered ----

def render_album(score_paths: list[str | Path], *, name: str = "album",
                 out_root: str | Path = "out", ensemble: str | None = None,
                 presets: tuple[str, ...] | None = None, soundfont: str | Path | None = None,
                 sample_rate: int = 48000, reference: str | Path | None = None,
                 swing: float | None = None, layout: str | None = None, humanize: float = 0.0,
                 seed: int | None = None, mix_stems: bool = False,
                 attack_compensation: bool = True, vibrato: bool = True, phrasing: bool = True,
                 rehearsal: Rehearsal | None = None,
                 progress: Callable[[str, str, float], None] | None = None,
                 max_duration_s: float = MAX_DURATION_S,
                 accelerator: Accelerator | None = None) -> list[RenderResult]:
    """Render several scores and master them as one album: for each preset the pieces are
    measured as one programme (see :func:`pipeline.master.mastering.album_targets`).

    Each piece's sidecar applies as in :func:`render_score`, except its preset: an album is
    mastered for one set of presets (the option's, else streaming). The mixes are kept on disk
    between the two passes, never all in memory at once.
    """
    report_progress = progress or (lambda piece, stage, fraction: None)
    seed = checked_seed(humanize, seed)
    album_presets = tuple(presets or ("streaming",))
    preset_objs = check_options(ensemble, album_presets, swing)
    ref = load_reference(reference) if reference else None
    pieces: list[MixedPiece] = []
    results: list[RenderResult] = []
    with _accelerated(accelerator) as speed:
        try:
            summaries: list[dict[str, AlbumEntry]] = []
            for path in map(Path, score_paths):
                settings = choose(_album_sidecar(path, presets, album_presets),
                                  ensemble=ensemble, layout=layout, presets=presets,
                                  soundfont=soundfont, swing=swing, default_presets=album_presets)
                piece = render_to_mix(path, out_root=Path(out_root), settings=settings,
                                      soundfont=find_soundfont(settings.soundfont),
                                      sample_rate=sample_rate, humanize=humanize, seed=seed,
                                      max_duration_s=max_duration_s,
                                      mix_stems=mix_stems or rehearsal is not None,
                                      attack_compensation=attack_compensation,
                                      vibrato=vibrato, phrasing=phrasing,
                                      progress=lambda s, f, n=path.name: report_progress(n, s, f),
                                      accelerator=speed)
                pieces.append(piece)
                summaries.append(album_entries(piece, preset_objs, ref))
            targets, notes = album_plan(summaries, preset_objs, name)
            for piece, target, note in zip(pieces, targets, notes):
                piece.mix = replace(piece.mix, audio=read_mix(piece.folder.work))
                n = Path(piece.record.report.source).name
                results.append(master_mix(piece, preset_objs, reference=ref, targets=target,
                                          album=note, rehearsal=rehearsal, accelerator=speed,
                                          progress=lambda s, f, n=n: report_progress(n, s, f)))
            return results
        except BaseException:
            for piece in pieces[len(results):]:
                piece.wait_written(quietly=True)
                piece.folder.discard()  # finished pieces are committed; master_mix discards its own
            raise


def _album_sidecar(path: Path, presets, album_presets):
    """The piece's sidecar without its preset: an album is mastered for one set."""
    sidecar = read_sidecar(path)
    if sidecar is not None and sidecar.presets:
        if not presets:
            log.warning("%s: 'preset' is not used in an album (mastered for: %s)",
                        sidecar.path, ", ".join(album_presets))
        sidecar = replace(sidecar, presets=())
    return sidecar


#: What an album needs of one piece for one preset: (name, prepared summary, the ensemble's
#: relative loudness in LU); see :func:`pipeline.master.mastering.album_targets`.
AlbumEntry = tuple[str, Prepared, float]


def album_entries(piece: MixedPiece, presets: list[Preset],
                  reference: Reference | None = None) -> dict[str, AlbumEntry]:
    """Measure a piece rendered to its mix for each preset, then let go of its mix audio
    (it is on disk: :func:`pipeline.output.export.read_mix` brings it back for the second
    pass)."""
    mastering = load_template(piece.record.template).mastering
    entries = {}
    for p in presets:
        prep = prepare(piece.mix, p, mastering, reference)
        entries[p.name] = (Path(piece.record.report.source).name, prep.summary(),
                           mastering.relative_loudness_lu)
    piece.mix = replace(piece.mix, audio=np.zeros((2, 0), dtype=np.float32))
    piece.wait_written()  # the second pass reads the mix back from its file
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


# ---- the steps the recipes share ----

def _stage_timer(progress: ProgressFn, timings: dict[str, float], speed: Accelerator):
    @contextmanager
    def stage(name: str) -> Iterator[None]:
        progress(name, 0.0)
        t0 = time.perf_counter()
        yield
        speed.release_freed_memory()
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)
        progress(name, 1.0)
    return stage


def _played(performance: Performance, max_duration_s: float, humanize: float,
            seed: int) -> Performance:
    """The performance checked for length and humanized (``humanize`` 0: as it is)."""
    check_duration(performance, max_duration_s)
    return humanized(performance, amount=humanize, seed=seed)


def _log_choices(performance: Performance, voices, ensemble: str, settings: PieceSettings) -> None:
    log.info("perform: %d tracks, %d notes, %.1f s", len(performance.tracks),
             performance.note_count, performance.duration_s)
    for track, voice in zip(performance.tracks, voices):
        log.info("assign: %s → %s (bank %d, program %d, from %s)", track.name,
                 voice.preset_name, voice.bank, voice.program, voice.source)
    log.info("ensemble: %s (%s)", ensemble, origin(settings, "ensemble"))


def _render_and_mix(performance, voices, timing: Timing, wheels, template, folder: PieceFolder,
                    speed: Accelerator, *,
                    settings: PieceSettings, parts, sample_rate: int, mix_stems: bool,
                    progress: ProgressFn, timings: dict[str, float]) -> tuple[Mix, Stems]:
    """Render the stems (on a thread of their own, the synths on theirs, each player's block
    prepared for the mix by the synth that made it) and mix each block as soon as every synth
    has made it (nothing is read back from disk); the balance calibration
    runs beside the synths' start. The render's time runs until the synths finish, the mix's
    from there."""
    progress("render", 0.0)
    started = time.perf_counter()
    stems_dir = folder.work / "stems"
    feed = StemFeed(stem_files(performance, stems_dir), sample_rate,
                    max_stem_frames(performance, sample_rate, timing.lead_in_s))
    with ThreadPoolExecutor(2, thread_name_prefix="score2audio-render") as side:
        def synthesise() -> tuple[Stems, float]:
            stems = render(performance, voices, stems_dir=stems_dir, sample_rate=sample_rate,
                           timing=timing, vibrato=wheels,
                           progress=lambda f: progress("render", f), feed=feed)
            return stems, time.perf_counter()

        rendering = None
        try:  # from the synths' start: until the mixer takes their blocks, they wait for it
            rendering = side.submit(synthesise)
            balance = side.submit(calibration_db, performance, voices, sample_rate=sample_rate)
            speed.collect_parsed_score()
            the_mix = mix(feed, voices, template, calibration_db=balance.result(),
                          layout=settings.layout, parts=parts,
                          mix_stems_dir=folder.work / "mix-stems" if mix_stems else None,
                          buffers=speed.audio_buffers(folder.work, filled_slowly=True))
        except BaseException:
            feed.stop()  # the synths stop; the render's own error, if any, comes first
            if rendering is not None:
                rendering.exception()
            raise
        stems, synthesised = rendering.result()
    if stems.frames != feed.frames:  # the feed works the length out on its own
        raise RenderError("render: the mixed stems differ from the files written")
    speed.release_freed_memory()
    timings["render"] = round(synthesised - started, 3)
    timings["mix"] = round(time.perf_counter() - synthesised, 3)
    progress("mix", 1.0)
    log.info("render: %d stems of %.1f s at %d Hz", len(stems.stems), stems.duration_s,
             stems.sample_rate)
    return the_mix, stems


def _slug(score_path: Path, bars: Bars | None) -> str:
    """The piece's folder name: the score's, and which bars for an excerpt."""
    slug = slugify(score_path.stem)
    if bars is None:
        return slug
    return slugify(f"{slug}-bars-{bars.first}-{bars.last}"
                   + (f"-pass-{bars.pass_number}" if bars.pass_number > 1 else "")
                   + ("-loop" if bars.loop else ""), max_length=100)


def _excerpt_report(whole: Performance, start_tick: int, part: Performance,
                    bars: Bars) -> ExcerptReport:
    return ExcerptReport(bars.first, bars.last, bars.pass_number, bars.loop,
                         start_s=round(float(whole.tempo_map.seconds(start_tick)), 3),
                         played_s=float(part.tempo_map.seconds(part.bars[-1].end_tick)))


def rehearsal_tracks(piece: MixedPiece, rehearsal: Rehearsal,
                     album: dict | None = None) -> tuple[RehearsalTrack, ...]:
    """Each part's rehearsal track, ``rehearsal/<NN-part>.mp3`` in the piece's working folder:
    its balance (from mix.wav and its mix stem, both written), a bar of clicks first if asked,
    mastered and encoded as the web demo is."""
    record, work = piece.record, piece.folder.work
    report, sr = record.report, record.mix_sample_rate
    preset = load_preset("web-demo")
    mastering = load_template(record.template).mastering
    whole = read_mix(work)
    clicks, beats = None, 0
    if rehearsal.count_in:
        clicks, beats = count_in(report.performance.time_signature,
                                 report.performance.tempo_bpm_start, sr,
                                 music_peak=float(np.abs(whole).max()))
    (work / "rehearsal").mkdir(exist_ok=True)
    tracks = []
    for part in report.parts:
        audio = rehearsal_balance(whole, read_audio(work / part.level.mix_stem)[0], rehearsal)
        if clicks is not None:
            audio = with_count_in(audio, clicks, report.stems.lead_in_s, sr)
        # the mix's own loudness is only reported, and a track's master is not: not measured
        mastered = master(Mix(audio, sr, (), {}, float("nan"), np.zeros(0)), preset, mastering,
                          consume_mix=True)
        name = f"rehearsal/{Path(part.stem).stem}.mp3"  # named as its stem: NN-<part>
        written = write_lossy(work / name, mastered.audio, mastered.sample_rate, preset,
                              {**record.tags((album or {}).get("name")),
                               "title": f"{report.title} ({part.part}, rehearsal)"})
        tracks.append(RehearsalTrack(
            part=part.part, file=name, part_gain_db=rehearsal.part_gain_db,
            others_gain_db=rehearsal.others_gain_db, count_in_beats=beats,
            integrated_lufs=written["decoded_lufs"],
            true_peak_dbtp=written["decoded_true_peak_dbtp"]))
        del audio, mastered
    return tuple(tracks)


class _MasterJobs:
    """The master's work on the accelerator's threads: the mix's picture, each master's files
    and picture shape, the stage picture."""

    def __init__(self, speed: Accelerator):
        self.speed = speed
        self.mix_trace: Future | None = None
        self.writing: list[Future] = []
        self.shaping: Future | None = None
        self.staging: Future | None = None

    def files(self) -> list:
        return [w.result() for w in self.writing]

    def settle(self) -> None:
        for job in (self.mix_trace, self.shaping, self.staging, *self.writing):
            if job is not None:
                job.exception()


def _mix_written(piece: MixedPiece, frames: int | None) -> None:
    """Until the piece's mix.wav is written as far as the master is about to change the mix
    (its first ``frames``; None: all)."""
    if frames is not None and piece.mix_written is not None:
        piece.mix_written.wait(frames)  # the tone trails mix.wav's writer
    else:
        piece.wait_written()


def _master_all(the_mix: Mix, mastering, presets: list[Preset], reference, targets, album,
                jobs: _MasterJobs, progress: ProgressFn, *, folder: Path, tags: dict, parts,
                mix_written: Callable[[int | None], None] | None = None, loop: bool = False,
                ) -> tuple[list[MasterReport], list]:
    """Each preset's master, its files written into ``folder`` and its picture's shape taken
    while the next is made (one master's audio in memory at a time); the last one uses the mix
    up (``mix_written(frames)`` is called before it changes the mix's first ``frames``; None:
    all). ``parts``: the report's, for the stage picture. ``loop``: the mix is one turn of a
    loop (:func:`pipeline.master.mastering.master_loop`)."""
    speed = jobs.speed
    # the mix's trace is taken beside the master's first steps, before the last master uses
    # the mix up
    jobs.mix_trace = speed.beside(trace, "mix", the_mix.audio, the_mix.sample_rate,
                                  the_mix.loudness_lufs, the_mix.short_term_lufs)

    def mix_in_use(frames: int | None) -> None:
        """The master is about to change the mix's first ``frames`` (None: all)."""
        jobs.mix_trace.result()
        if mix_written is not None:
            mix_written(frames)

    masters, traces = [], []
    for i, p in enumerate(presets):
        if jobs.writing:  # one master's audio in memory at a time
            jobs.writing[-1].result()
        target = (targets or {}).get(p.name)

        def ready(audio: np.ndarray, sample_rate: int, p: Preset = p) -> None:
            """The master's audio is final: its files are written, and its picture's shape
            taken, while it is measured (the last one's files while the report's pictures are
            drawn)."""
            jobs.writing.append(speed.in_background(write_master, folder, audio,
                                                    sample_rate, p, several=len(presets) > 1,
                                                    tags=tags))
            jobs.shaping = speed.beside(shape, audio, sample_rate)
            if p is presets[-1]:
                # matplotlib is loaded (and the stage drawn) past the master's peak of memory
                # (the gain search), which it would add to
                jobs.staging = speed.beside(stage_picture, parts)

        if loop:
            m = master_loop(the_mix, p, mastering, reference, ready=ready,
                            buffers=speed.audio_buffers(folder))
        else:
            m = master(the_mix, p, mastering, reference, target_lufs=target,
                       album=(album or {}).get(p.name), consume_mix=i == len(presets) - 1,
                       mix_in_use=mix_in_use, ready=ready, buffers=speed.audio_buffers(folder))
        log.info("master %s: %s LUFS, %s dBTP", p.name, m.measurements["integrated_lufs"],
                 m.measurements["true_peak_dbtp"])
        traces.append(trace(f"master ({p.name})", jobs.shaping.result(), m.sample_rate,
                            m.measurements["integrated_lufs"], m.short_term_lufs, m.limiter_gain))
        masters.append(MasterReport.from_measurements(p, m.measurements))
        del m
        progress("master", (i + 1) / len(presets))
    return masters, traces
