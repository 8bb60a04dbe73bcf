"""Portfolio: render every score under a folder, incrementally, and publish the pieces as a site.

A run has three phases:

1. **render** (in parallel: a local process pool, or a Dask cluster with ``dask=``): every new or
   changed piece is rendered to its mix and measured for each preset
   (:func:`pipeline.run.recipe.album_entries`); what mastering needs again (the mix, the piece's state,
   its measurements, the stems zip) is kept in ``OUT/.cache/<slug>/``, a folder swapped into
   place whole and stamped with the fingerprint it was rendered for;
2. **plan** (here): the pieces of each ensemble category are one album
   (:func:`pipeline.run.recipe.album_plan`), computed from the measurements of *all* its pieces, the
   unchanged ones read from the cache, so no piece is rendered again to compute its level;
3. **master** (in parallel): the rendered pieces are mastered and published in
   ``OUT/pieces/<slug>/``, again a folder swapped into place whole; an unchanged piece whose album
   level moved by more than :data:`ALBUM_TOLERANCE_LU` (a piece of its category was added,
   changed or removed) is mastered again from its cached mix, never rendered again. Below the
   tolerance it keeps its files: a difference no one hears is not worth re-encoding every piece
   of a category.

The published folder holds what the pages link to: the masters (MP3 and Ogg for the player, a
WAV), ``stems.zip`` (the dry stems as 24-bit WAV with ``performance.mid``), the score, its
engraving (one SVG per page, :mod:`pipeline.portfolio.engrave`, made with the render: it depends
on the score only), ``timemap.json`` (where each played bar is heard), the waveform and the
report. The pages (``index.html``, each piece's ``index.html`` and ``embed.html``,
:mod:`pipeline.portfolio.site`) are written by this process from what is published and from the
composer's words (``portfolio.toml``, the sidecars' ``notes``), whenever their text changes: a
changed programme note rewrites a page and renders nothing. The float32 stems and the mix stems are working material: they are
deleted once the zip is made (``score2audio render`` keeps them for one piece).

Progress is durable: the manifest is rewritten (atomically) as soon as a piece is rendered and
as soon as it is published, so a run killed even by SIGKILL resumes where it stopped: a piece
whose cached render matches its fingerprint is only mastered (status ``resumed``), never
rendered twice. The index lists only published pieces.

A piece is unchanged when its fingerprint is: the bytes of the score and what its sidecar says
of the sound (:mod:`pipeline.settings.sidecar`, all but its ``notes``; its ``preset`` is not used:
a portfolio has its own), the presets, the
instrument map and its category's template, the content of the soundfonts (the default, its
fallback and the sidecar's), the sample rate and the pipeline version (``OUT/manifest.json``
keeps one per piece). A piece that failed is reported as failed again
without another attempt until its fingerprint changes.

The workers need the scores and ``OUT`` at the same paths as this process (on a cluster: a
shared file system).
"""
from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import json
import logging
import logging.handlers
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

from pipeline import __version__
from pipeline.dsp.audio import BLOCK_FRAMES, db_to_gain, requantize
from pipeline.files import AudioOut, atomic_path
from pipeline.settings.config import load_preset
from pipeline.mix.rehearsal import Rehearsal
from pipeline.run import (MixedPiece, album_entries, album_plan, master_mix, read_album_entries,
                          read_record, rehearsal_tracks, render_to_mix, write_album_entries,
                          write_record)
from pipeline.speed.accelerator import Accelerator
from pipeline.errors import OutputError, PipelineError, ScoreError
from pipeline.output.export import TIMEMAP, PieceFolder, read_mix
from pipeline.output.piece_report import PieceReport
from pipeline.score.load import MIDI_SUFFIXES, MUSICXML_SUFFIXES
from pipeline.paths import slugify
from pipeline.settings.sidecar import (PortfolioSettings, Sidecar, choose, find_sidecar,
                                       read_portfolio_settings, read_sidecar, sound_settings)
from pipeline.portfolio import engrave
from pipeline.portfolio.site import WAVEFORM_COLUMNS, waveform_svg, write_site
from pipeline.settings.soundfonts import fallback_soundfont, find_soundfont

log = logging.getLogger(__name__)

SCORE_SUFFIXES = MUSICXML_SUFFIXES | MIDI_SUFFIXES
#: The web demo (MP3 and OGG for the player) and a WAV master for download.
PRESETS = ("web-demo", "streaming")
PLAYER_PRESET, WAV_PRESET = PRESETS
PIECES = "pieces"
CACHE = ".cache"
MANIFEST = "manifest.json"
#: 2: the work material moved from the published folders to ``.cache/<slug>/``; 3: a render
#: has its timemap and engraving.
MANIFEST_FORMAT = 3
#: An unchanged piece is mastered again only when its album level moves by more than this.
ALBUM_TOLERANCE_LU = 0.1
#: Written by this module into a piece's folder beside what the render wrote.
STEMS_ZIP, WAVEFORM, SCORE_FOLDER = "stems.zip", "waveform.svg", "score"
REHEARSAL = "rehearsal"  # a folder of rehearsal tracks, NN-<part>.mp3
#: In a piece's cache folder: its state, its album measurements and what it was rendered for.
CACHED_PIECE, CACHED_ALBUM, CACHE_STAMP = "piece.json", "album.json", "render.json"
#: Where a stem too loud for a fixed-point file is brought to (all stems of the piece together).
STEMS_CEILING_DBFS = -1.0
#: A fixed date for the zip's entries: the same stems give the same zip, byte for byte.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Progress:
    """Where a run is: ``phase`` is ``"render"`` or ``"master"``; ``running`` names the pieces
    being worked on (their paths relative to the portfolio folder)."""

    phase: str
    done: int
    total: int
    running: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What happened to one piece: ``status`` is ``rendered``, ``resumed`` (rendered by a run
    that stopped before publishing it: only mastered now), ``remastered`` (its album level
    moved), ``unchanged`` or ``failed`` (``reason``: one line)."""

    source: str
    status: str
    reason: str = ""
    category: str = ""
    duration_s: float | None = None
    lufs: float | None = None


@dataclass(frozen=True)
class PortfolioResult:
    outcomes: tuple[Outcome, ...]
    index: Path
    manifest: Path

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


@dataclass(frozen=True)
class _RenderJob:
    source: Path
    slug: str
    out_dir: Path
    soundfont: Path | None  # the option's, over the sidecar's
    sample_rate: int
    base_fingerprint: str   # the cache is stamped with it and the category
    rehearsal: bool = False  # portfolio.toml's: every piece gets rehearsal tracks


@dataclass(frozen=True)
class _MasterJob:
    source: Path
    slug: str
    out_dir: Path
    targets: dict[str, float]
    album: dict
    status: str             # the outcome once published: rendered, resumed or remastered


@dataclass
class _Piece:
    """One score found in the portfolio, as planned by this run."""

    source: Path
    rel: str
    slug: str
    base_fingerprint: str = ""     # without the category's template (known once rendered)
    fingerprint: str = ""
    record: dict = field(default_factory=dict)
    entries: dict | None = None   # album measurements per preset
    category: str = ""
    resumed: bool = False          # its cached render is current: master only


# ---------------------------------------------------------------------------------------------
# finding scores and their fingerprints

def discover(root: str | Path, *, exclude: Path | None = None) -> list[Path]:
    """Every score under ``root`` (recursively, sorted), skipping hidden files and folders and
    the folder ``exclude`` (the site, when it is inside the portfolio)."""
    root = Path(root)
    if not root.is_dir():
        raise ScoreError(f"{root}: not a folder of scores")
    skip = exclude.resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip is None or (here / d).resolve() != skip))
        found.extend(here / f for f in sorted(filenames)
                     if not f.startswith(".") and Path(f).suffix.lower() in SCORE_SUFFIXES)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _slugs(rels: list[str]) -> list[str]:
    """A folder name per piece from its path in the portfolio (``strings/quartet-1``), unique
    and stable while the same scores are there (the extension breaks a tie)."""
    stems = [slugify(str(Path(r).with_suffix(""))) for r in rels]
    taken: set[str] = set()
    slugs = []
    for rel, stem in zip(rels, stems):
        slug = stem if stems.count(stem) == 1 else slugify(rel)
        base, n = slug, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        taken.add(slug)
        slugs.append(slug)
    return slugs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_bytes(*parts: str) -> bytes:
    return resources.files("pipeline").joinpath(*parts).read_bytes()


def _soundfont_identity(paths: Iterable[Path], known: dict) -> list[str]:
    """Content hashes of the soundfonts, computed once per (path, size, mtime) and remembered
    in ``known`` (the manifest's), so a warm run does not read 150 MB again."""
    out = []
    for path in paths:
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        if key not in known:
            known[key] = _sha256(path)
        out.append(known[key])
    return out


def _settings_digest(soundfonts: list[str], sample_rate: int) -> str:
    """Everything that shapes every piece's render besides its own files and template."""
    h = hashlib.sha256(f"{MANIFEST_FORMAT}|{__version__}|{sample_rate}|{soundfonts}".encode())
    for name in PRESETS:
        h.update(_package_bytes("presets", f"{name}.toml"))
    for data in sorted(p.name for p in resources.files("pipeline").joinpath("data").iterdir()
                       if p.name.endswith(".toml")):
        h.update(_package_bytes("data", data))
    return h.hexdigest()


def _sidecar_soundfonts(sidecar: Sidecar | None) -> list[Path]:
    if sidecar is None:
        return []
    fonts = [sidecar.soundfont] + [part.soundfont for _, part in sidecar.parts]
    return sorted({f for f in fonts if f is not None})


def _base_fingerprint(piece: _Piece, settings: str, soundfonts: dict | None = None) -> str:
    """What shapes the piece's render besides its category's template. ``soundfonts``: the
    manifest's memo of soundfont hashes (for the sidecar's)."""
    h = hashlib.sha256(settings.encode())
    h.update(piece.source.read_bytes())
    side = find_sidecar(piece.source)
    if side is not None:
        h.update(side.name.encode() + b"\0" + sound_settings(side))
        fonts = _sidecar_soundfonts(read_sidecar(piece.source))
        h.update(str(_soundfont_identity(fonts, {} if soundfonts is None else soundfonts)).encode())
    return h.hexdigest()


def _fingerprint(base: str, category: str | None) -> str:
    """The base fingerprint with the category's template (none: a piece that failed before its
    ensemble was known)."""
    if not category:
        return base
    h = hashlib.sha256(base.encode())
    try:
        h.update(_package_bytes("templates", f"{category}.toml"))
    except FileNotFoundError:
        h.update(b"no template")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# the work done by a worker (a process of the pool or a Dask worker): top-level, picklable

def _cache_dir(out_dir: Path, slug: str) -> Path:
    return out_dir / CACHE / slug


def _render_piece(job: _RenderJob) -> tuple[str, dict]:
    """Render a piece to its mix, measure it for the album and zip its stems, all in a working
    folder that becomes ``.cache/<slug>/`` only when complete; returns (category, measurements
    per preset)."""
    with Accelerator() as speed:  # its writers: the mix is written while it is measured
        return _render_piece_with(job, speed)


def _render_piece_with(job: _RenderJob, speed: Accelerator) -> tuple[str, dict]:
    presets = [load_preset(n) for n in PRESETS]
    sidecar = read_sidecar(job.source)
    if sidecar is not None and sidecar.presets:
        log.info("%s: 'preset' is not used in a portfolio (mastered for: %s)", sidecar.path,
                 ", ".join(PRESETS))
        sidecar = replace(sidecar, presets=())
    settings = choose(sidecar, soundfont=job.soundfont, default_presets=PRESETS)
    rehearsal = job.rehearsal or (sidecar is not None and sidecar.rehearsal)
    piece = render_to_mix(job.source, out_root=job.out_dir / CACHE, settings=settings,
                          soundfont=find_soundfont(settings.soundfont),
                          sample_rate=job.sample_rate, slug=job.slug, accelerator=speed,
                          # the site publishes the dry stems; rehearsal tracks are made of these
                          mix_stems=rehearsal)
    work = piece.folder.work
    try:
        entries = album_entries(piece, presets)
        if rehearsal:
            rehearsal_tracks(piece, Rehearsal())
            shutil.rmtree(work / "mix-stems")
        _zip_stems(work, job.slug, piece.record.report.title,
                   peaks_dbfs=[level.peak_dbfs for level in piece.mix.stem_levels])
        _engrave(job.source, work)
        # mastering needs only the mix; the stems live on in the zip
        shutil.rmtree(work / "stems")
        write_record(work / CACHED_PIECE, piece.record)
        write_album_entries(work / CACHED_ALBUM, entries)
        ensemble = piece.record.report.ensemble
        stamp = {"fingerprint": _fingerprint(job.base_fingerprint, ensemble),
                 "category": ensemble}
        with atomic_path(work / CACHE_STAMP) as tmp:
            tmp.write_text(json.dumps(stamp) + "\n", encoding="utf-8")
        piece.folder.commit()
    except BaseException:
        piece.wait_written(quietly=True)
        piece.folder.discard()
        raise
    return ensemble, entries


def _master_piece(job: _MasterJob) -> dict:
    """Master a piece from its cached mix at its album level and publish it in
    ``pieces/<slug>/`` with what the site links to; returns its site entry."""
    presets = [load_preset(n) for n in PRESETS]
    cache = _cache_dir(job.out_dir, job.slug)
    try:
        record = read_record(cache / CACHED_PIECE)
        mix = read_mix(cache)
        (cache / STEMS_ZIP).stat()
    except (OSError, sf.LibsndfileError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"{cache}: the cached render cannot be read ({exc}); delete the "
                          f"folder to render the piece again") from exc
    piece = MixedPiece(record, record.mix(mix), PieceFolder(job.out_dir / PIECES, job.slug))
    entry: dict = {}

    def publish(work: Path, report: PieceReport) -> None:
        # in the working folder, before it replaces the published one: all of it or nothing
        _link(cache / STEMS_ZIP, work / STEMS_ZIP)
        _link(cache / TIMEMAP, work / TIMEMAP)
        if (cache / engrave.FOLDER).is_dir():
            (work / engrave.FOLDER).mkdir()
            for page in (cache / engrave.FOLDER).iterdir():
                _link(page, work / engrave.FOLDER / page.name)
        if (cache / REHEARSAL).is_dir():
            (work / REHEARSAL).mkdir()
            for track in (cache / REHEARSAL).iterdir():
                _link(track, work / REHEARSAL / track.name)
        with atomic_path(work / SCORE_FOLDER / job.source.name) as tmp:
            shutil.copyfile(job.source, tmp)
        entry.update(_site_entry(work, report, job.source.name))

    with Accelerator() as speed:
        master_mix(piece, presets, targets=job.targets, album=job.album,
                   before_commit=publish, accelerator=speed)
    return entry


def _site_entry(folder: Path, report: PieceReport, score_name: str) -> dict:
    """The page's entry for a piece mastered into ``folder``; draws its waveform there."""
    masters = {m.preset: m for m in report.masters}
    files = {m.preset: [f.file for f in m.files] for m in report.masters}
    wav = files[WAV_PRESET][0]
    audio, rate = sf.read(str(folder / wav), dtype="float32", always_2d=True)
    with atomic_path(folder / WAVEFORM) as tmp:
        tmp.write_text(waveform_svg(audio.T, WAVEFORM_COLUMNS), encoding="utf-8")
    player = masters[PLAYER_PRESET]
    return {
        "title": report.title, "composer": report.composer,
        "copyright": report.copyright, "instrumentation": report.instrumentation,
        "category": report.ensemble, "duration_s": player.duration_s,
        "lufs": {p: m.integrated_lufs for p, m in masters.items()},
        "true_peak_dbtp": {p: m.true_peak_dbtp for p, m in masters.items()},
        "player": files[PLAYER_PRESET], "wav": wav,
        "stems_zip": STEMS_ZIP, "score": f"{SCORE_FOLDER}/{score_name}",
        "waveform": WAVEFORM, "report": "report.html",
        "timemap": TIMEMAP if (folder / TIMEMAP).is_file() else None,
        # a rehearsal track per part, named as its stem (NN-<part>.mp3)
        "rehearsal": [{"part": p.part, "file": f"{REHEARSAL}/{Path(p.stem).stem}.mp3"}
                      for p in report.parts
                      if (folder / REHEARSAL / f"{Path(p.stem).stem}.mp3").is_file()],
        "engraved": (folder / engrave.FOLDER / engrave.LAYOUT).is_file(),
        # the WAV is read already: its digest from those samples, not from the file again
        "audio_sha256": {name: _digest(rate, audio.shape[1], [audio]) if name == wav
                         else audio_digest(folder / name)
                         for names in files.values() for name in names},
    }


def _engrave(score: Path, folder: Path) -> None:
    """The score's engraving in ``folder``; a piece whose score cannot be engraved is
    published without it (its page says so)."""
    try:
        engrave.engrave(score, folder)
    except Exception as exc:  # Verovio's own failure: the recording still stands
        log.warning("%s: not engraved (%s: %s); its page shows no score", score,
                    type(exc).__name__, exc)
        shutil.rmtree(folder / engrave.FOLDER, ignore_errors=True)


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links: copy
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def _zip_stems(folder: Path, slug: str, title: str, *,
               peaks_dbfs: list[float] | None = None) -> None:
    """``folder/stems.zip`` for a producer to remix: the dry stems of ``folder/stems/`` as 24-bit
    WAV, with ``performance.mid`` and a note on what they are. 24-bit WAV is what every DAW opens
    (Pro Tools and Logic do not open FLAC) and holds a stem's range with room to spare; float32
    would make the download a third larger and deflate packs it worse. The stems keep their
    balance: if one peaks over full scale, all are lowered together.

    ``peaks_dbfs``: the stems' sample peaks as the mix measured them (rounded to 0.01 dB). When
    every one is below 0 dBFS no stem can be over full scale, and the files are not scanned
    for their peaks again; otherwise the exact peak is read from them."""
    stems = sorted((folder / "stems").glob("*.wav"))
    below_full_scale = peaks_dbfs is not None and all(p < 0.0 for p in peaks_dbfs)
    peak = 0.0 if below_full_scale else max((_peak(stem) for stem in stems), default=0.0)
    ceiling = db_to_gain(STEMS_CEILING_DBFS)
    gain = ceiling / peak if peak > 1.0 else 1.0
    root = f"{slug}-stems"
    rate = frames = 0
    with atomic_path(folder / STEMS_ZIP) as tmp, \
            zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for stem in stems:
            pcm = folder / f".{stem.stem}.pcm24.wav"
            try:
                rate, frames = _to_pcm24(stem, pcm, gain)
                with open(pcm, "rb") as src, \
                        z.open(_zip_info(f"{root}/{stem.name}", pcm.stat().st_size), "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            finally:
                pcm.unlink(missing_ok=True)
        midi = folder / "performance.mid"
        if midi.is_file():
            z.writestr(_zip_info(f"{root}/performance.mid"), midi.read_bytes())
        lowered = (f"\nOne stem peaked {20 * np.log10(peak):+.1f} dBFS, so all were lowered by "
                   f"{-20 * np.log10(gain):.1f} dB together (their balance is unchanged).\n"
                   if gain < 1.0 else "")
        z.writestr(_zip_info(f"{root}/README.txt"), (
            f"{title}: {len(stems)} stems, one per instrument, as the synthesizer played them: "
            f"dry, before any mixing (no level, EQ, compression, pan or reverb).\n"
            f"24-bit WAV, {rate} Hz, stereo, all {frames} frames "
            f"long and starting together: place them all at the start of a DAW session.\n"
            f"performance.mid holds the notes played, one track per instrument.\n{lowered}"))


def _zip_info(name: str, size: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.file_size = size  # over 2 GiB the entry needs ZIP64, decided from this
    return info


def _peak(path: Path) -> float:
    with sf.SoundFile(str(path)) as f:
        return max((float(np.abs(b).max()) for b in f.blocks(BLOCK_FRAMES, dtype="float32")),
                   default=0.0)


def _to_pcm24(src: Path, dst: Path, gain: float) -> tuple[int, int]:
    """``src`` (float WAV) as 24-bit WAV in ``dst``, block by block; returns (rate, frames)."""
    scale = np.float32(1 << 23)
    with sf.SoundFile(str(src)) as f, AudioOut(dst, f.samplerate, f.channels,
                                                subtype="PCM_24") as out:
        for block in f.blocks(BLOCK_FRAMES, dtype="float32"):
            if gain != 1.0:
                block *= np.float32(gain)
            # integers computed here, on the 24-bit grid, clipped: not libsndfile's scaling
            out.write((requantize(block, 24, dither=False, in_place=True) * scale)
                      .astype(np.int32) << 8)
        return f.samplerate, f.frames


def audio_digest(path: Path) -> str:
    """SHA-256 of the decoded samples: the same for the same audio even where the container is
    not (an Ogg stream carries a random serial number)."""
    with sf.SoundFile(str(path)) as f:
        return _digest(f.samplerate, f.channels, f.blocks(blocksize=1 << 16, dtype="float32"))


def _digest(sample_rate: int, channels: int, blocks: Iterable[np.ndarray]) -> str:
    """:func:`audio_digest` of decoded float32 audio given as (frames, channels) blocks in
    order: any split of the same samples gives the same digest."""
    h = hashlib.sha256(f"{sample_rate}|{channels}".encode())
    for block in blocks:
        h.update(np.ascontiguousarray(block).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# running jobs: a local process pool or a Dask cluster

def _reason(exc: BaseException) -> str:
    if isinstance(exc, PipelineError):
        text = str(exc)
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


#: Linux's prctl(PR_SET_PDEATHSIG): a signal the kernel sends a process when its parent dies.
_PR_SET_PDEATHSIG = 1


def _init_worker(level: int, records) -> None:
    """A pool process logs through the parent (``records``: a queue), where the lines reach the
    terminal above the progress bar rather than through it; Python warnings too."""
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level)
    logging.getLogger("music21").setLevel(logging.ERROR)
    logging.captureWarnings(True)
    if sys.platform.startswith("linux"):
        # a parent killed outright (SIGKILL) takes its workers along instead of leaving them
        # rendering into the site unseen
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


class _ToLoggers:
    """Hands a record from a pool process to the logger of the same name here."""

    @staticmethod
    def handle(record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


class _LocalRunner:
    """A process pool over the machine's cores (spawned: no forking of a threaded parent)."""

    def __init__(self, workers: int | None):
        self.workers = workers or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")
        self.records = context.Queue()
        self.listener = logging.handlers.QueueListener(self.records, _ToLoggers())
        self.listener.start()
        self.pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                        initializer=_init_worker,
                                        initargs=(logging.getLogger().getEffectiveLevel(),
                                                  self.records))

    def run(self, fn: Callable, jobs: dict[str, object]) -> Iterator[tuple[str, object, str | None]]:
        futures = {self.pool.submit(fn, job): key for key, job in jobs.items()}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result(), None
            except Exception as exc:  # one piece's failure, even a crashed worker, is its own
                yield futures[future], None, _reason(exc)

    def close(self, *, abort: bool = False) -> None:
        """``abort``: the run was interrupted; stop the pieces in work now rather than wait for
        them (their working folders are removed by the caller)."""
        if abort and hasattr(self.pool, "terminate_workers"):  # Python 3.14
            self.pool.terminate_workers()
        elif abort:  # before 3.14 the pool's processes are only reachable as a private field
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(cancel_futures=True)
        self.listener.stop()


class _DaskRunner:
    """The pieces go to the workers of a Dask distributed cluster (``tcp://host:port``)."""

    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError as exc:
            raise PipelineError("--dask needs Dask distributed: pip install 'dask[distributed]'") \
                from exc
        try:
            _knock(address)  # a refused connection is known at once; Dask would retry 20 s
            self.client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise PipelineError(f"--dask {address}: no Dask scheduler answers there ({exc})") \
                from exc
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def run(self, fn: Callable, jobs: dict[str, object]) -> Iterator[tuple[str, object, str | None]]:
        from distributed import as_completed as dask_completed

        futures = {self.client.submit(fn, job, pure=False, retries=0): key
                   for key, job in jobs.items()}
        for future in dask_completed(futures):
            try:
                yield futures[future], future.result(), None
            except Exception as exc:
                yield futures[future], None, _reason(exc)
            finally:
                future.release()

    def close(self, *, abort: bool = False) -> None:
        # the scheduler forgets what this client submitted; a piece a worker is rendering still
        # reaches its cache, stamped, for the next run
        self.client.close()


def _knock(address: str) -> None:
    """Open and close a TCP connection to a ``tcp://host:port`` scheduler (other protocols are
    left to Dask)."""
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme == "tcp" and host and port.isdigit():
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()


def _run(runner, fn, jobs: dict[str, object], phase: str,
         progress: Callable[[Progress], None]) -> Iterator[tuple[str, object, str | None]]:
    pending = list(jobs)
    progress(Progress(phase, 0, len(jobs), tuple(pending[:runner.workers])))
    for done, (key, value, error) in enumerate(runner.run(fn, jobs), 1):
        pending.remove(key)
        yield key, value, error
        progress(Progress(phase, done, len(jobs), tuple(pending[:runner.workers])))


# ---------------------------------------------------------------------------------------------
# the run

def build_portfolio(scores_dir: str | Path, out_dir: str | Path, *,
                    soundfont: str | Path | None = None, sample_rate: int = 48000,
                    workers: int | None = None, dask: str | None = None,
                    title: str | None = None,
                    progress: Callable[[Progress], None] | None = None) -> PortfolioResult:
    """Render every score under ``scores_dir`` that changed since the last run into
    ``out_dir/pieces/``, master each ensemble category as an album and write ``out_dir/index.html``.

    ``workers``: processes of the local pool (default: one per core); ``dask``: the address of a
    Dask scheduler to send the pieces to instead. ``title``: the site's, over the one of
    ``portfolio.toml`` in ``scores_dir`` (:func:`pipeline.settings.sidecar.read_portfolio_settings`:
    the composer's name, words and contact, the order of the categories), else "Portfolio".

    Raises
    ------
    PipelineError
        For what stops the whole run (no scores, an unusable soundfont or output folder, no
        scheduler); a piece that fails is reported in the result instead.
    """
    progress = progress or (lambda event: None)
    scores_dir, out_dir = Path(scores_dir), Path(out_dir)
    sources = discover(scores_dir, exclude=out_dir)
    if not sources:
        raise ScoreError(f"{scores_dir}: no scores found (looked for "
                         f"{', '.join(sorted(SCORE_SUFFIXES))} in it and its folders)")
    for preset in PRESETS:
        load_preset(preset)
    about = read_portfolio_settings(scores_dir)
    about = replace(about, title=title or about.title or "Portfolio")
    font = find_soundfont(soundfont)
    try:
        (out_dir / CACHE).mkdir(parents=True, exist_ok=True)
        # hidden: a piece's cache folder is named by its slug, which never starts with a dot
        lock = open(out_dir / CACHE / ".lock", "w")
    except OSError as exc:
        raise OutputError(f"{out_dir}: the site folder cannot be written ({exc.strerror})") from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise OutputError(f"{out_dir}: another portfolio run is writing here") from exc
        runner = _DaskRunner(dask) if dask else _LocalRunner(workers)
        try:
            result = _build(sources, scores_dir, out_dir, font, soundfont and Path(soundfont),
                            sample_rate, about, progress, runner)
        except BaseException:
            runner.close(abort=True)
            raise
        else:
            runner.close()
        finally:  # no job of this run is left running now
            _discard_partials(out_dir)
        return result


def _build(sources, scores_dir, out_dir, font, font_option, sample_rate, about, progress, runner):
    manifest = _read_manifest(out_dir)
    records = manifest["pieces"]
    fonts = [font] + [f for f in (fallback_soundfont(font),) if f is not None]
    settings = _settings_digest(_soundfont_identity(fonts, manifest["soundfonts"]), sample_rate)
    if about.rehearsal:  # every piece is rendered with its rehearsal tracks
        settings += "|rehearsal"
    rels = [s.relative_to(scores_dir).as_posix() for s in sources]
    pieces = [_Piece(s, r, slug, record=records.get(r, {}))
              for s, r, slug in zip(sources, rels, _slugs(rels))]
    by_rel = {p.rel: p for p in pieces}
    outcomes: dict[str, Outcome] = {}
    render_jobs: dict[str, _RenderJob] = {}
    for piece in pieces:
        try:
            piece.base_fingerprint = _base_fingerprint(piece, settings, manifest["soundfonts"])
        except (OSError, PipelineError) as exc:
            reason = _reason(exc) if isinstance(exc, PipelineError) else \
                f"{piece.source}: cannot be read ({exc.strerror})"
            outcomes[piece.rel] = Outcome(piece.rel, "failed", reason)
            records[piece.rel] = {"status": "failed", "reason": reason, "slug": piece.slug}
            continue
        record = piece.record
        if _cached_render(piece, out_dir):
            # rendered by a run that stopped before publishing it: master it, render nothing
            piece.resumed = not (record.get("status") == "done" and _published(out_dir, record)
                                 and record.get("fingerprint") == piece.fingerprint)
        elif record.get("status") == "failed" and \
                record.get("fingerprint") == _fingerprint(piece.base_fingerprint, None):
            outcomes[piece.rel] = Outcome(piece.rel, "failed", record["reason"])
        else:
            render_jobs[piece.rel] = _RenderJob(piece.source, piece.slug, out_dir, font_option,
                                                sample_rate, piece.base_fingerprint,
                                                about.rehearsal)
    _clean(out_dir, {p.slug for p in pieces}, records, {p.rel for p in pieces})
    save = functools.partial(_save, out_dir, manifest, pieces, about, _notes(pieces))
    save(index=True)  # the pieces whose scores are gone have left the page
    try:
        for rel, value, error in _run(runner, _render_piece, render_jobs, "render", progress):
            piece = by_rel[rel]
            if error:
                outcomes[rel] = Outcome(rel, "failed", error)
                # fingerprinted without a category: the next run skips it until it changes
                records[rel] = {"status": "failed", "reason": error, "slug": piece.slug,
                                "fingerprint": _fingerprint(piece.base_fingerprint, None)}
                save(index=True)
                continue
            piece.category, piece.entries = value
            piece.fingerprint = _fingerprint(piece.base_fingerprint, piece.category)
            # what is published stays on the page until this render replaces it
            published = {k: v for k, v in piece.record.items() if k in ("entry", "album_targets")
                         and piece.record.get("slug") == piece.slug}
            records[rel] = {**published, "status": "rendered", "slug": piece.slug,
                            "fingerprint": piece.fingerprint, "category": piece.category}
            save()
        master_jobs = _plan(pieces, render_jobs, outcomes, out_dir, about.title)
        for rel, entry, error in _run(runner, _master_piece, master_jobs, "master", progress):
            piece, job = by_rel[rel], master_jobs[rel]
            if error:  # not fingerprinted: tried again next run, from its cached render
                outcomes[rel] = Outcome(rel, "failed", error)
                records[rel] = {"status": "failed", "reason": error, "slug": piece.slug}
                save(index=True)
                continue
            records[rel] = {"status": "done", "slug": piece.slug, "fingerprint": piece.fingerprint,
                            "category": piece.category, "album_targets": job.targets,
                            "entry": entry}
            outcomes[rel] = Outcome(rel, job.status, category=piece.category,
                                    duration_s=entry["duration_s"],
                                    lufs=entry["lufs"][PLAYER_PRESET])
            save(index=True)
    finally:
        save()
    for piece in pieces:
        if piece.rel not in outcomes:
            record = records[piece.rel]
            outcomes[piece.rel] = Outcome(piece.rel, "unchanged", category=record["category"],
                                          duration_s=record["entry"]["duration_s"],
                                          lufs=record["entry"]["lufs"][PLAYER_PRESET])
    return PortfolioResult(tuple(outcomes[p.rel] for p in pieces), save(index=True),
                           out_dir / MANIFEST)


def _notes(pieces: list[_Piece]) -> dict[str, str]:
    """Each piece's programme note (its sidecar's ``notes``), by slug; a sidecar that cannot be
    read gives none here (its render says why)."""
    notes = {}
    for piece in pieces:
        try:
            sidecar = read_sidecar(piece.source)
        except PipelineError:
            continue
        if sidecar is not None and sidecar.notes:
            notes[piece.slug] = sidecar.notes
    return notes


def _save(out_dir: Path, manifest: dict, pieces: list[_Piece], about: PortfolioSettings,
          notes: dict[str, str], *, index: bool = False) -> Path:
    """Write the manifest and, with ``index``, the pages of the published pieces; returns the
    index's path. Each is replaced whole: a run killed at any moment leaves the last of each.
    The pages go first, so a piece the manifest calls done is already on them."""
    path = out_dir / "index.html"
    if index:
        records = manifest["pieces"]
        shown = [(r["slug"], r["entry"]) for r in (records.get(p.rel, {}) for p in pieces)
                 if r.get("status") in ("done", "rendered") and _published(out_dir, r)]
        path = write_site(out_dir, shown, pieces_folder=PIECES, about=about, notes=notes)
    _write_manifest(out_dir, manifest)
    return path


def _published(out_dir: Path, record: dict) -> bool:
    """Whether the record's piece is on the site: its folder is swapped in only when complete."""
    return "entry" in record and (out_dir / PIECES / record["slug"] / "report.json").is_file()


def _cached_render(piece: _Piece, out_dir: Path) -> bool:
    """Whether the piece's cache holds a render of it as it is now; if so its category,
    fingerprint and album measurements (read now, for the plan) are set."""
    cache = _cache_dir(out_dir, piece.slug)
    try:
        stamp = json.loads((cache / CACHE_STAMP).read_text("utf-8"))
        fingerprint = _fingerprint(piece.base_fingerprint, stamp["category"])
        if stamp["fingerprint"] != fingerprint:
            return False
        entries = read_album_entries(cache / CACHED_ALBUM)
    except (OSError, ValueError, KeyError, TypeError, PipelineError):
        return False  # not rendered, written by another version, or lost: render again
    piece.category, piece.fingerprint, piece.entries = stamp["category"], fingerprint, entries
    return True


def _plan(pieces: list[_Piece], rendered: dict, outcomes: dict[str, Outcome], out_dir: Path,
          title: str) -> dict[str, _MasterJob]:
    """The album level of every piece per category; the jobs for the pieces rendered now (or
    before an interruption) and for those whose level moved."""
    presets = [load_preset(n) for n in PRESETS]
    categories: dict[str, list[_Piece]] = {}
    for piece in pieces:
        if piece.entries is not None and outcomes.get(piece.rel) is None:
            categories.setdefault(piece.category, []).append(piece)
    jobs = {}
    for category, members in categories.items():
        name = f"{title}: {category.replace('-', ' ')}"
        targets, notes = album_plan([p.entries for p in members], presets, name)
        for piece, target, note in zip(members, targets, notes):
            before = piece.record.get("album_targets", {})
            moved = any(abs(level - before.get(p, np.inf)) > ALBUM_TOLERANCE_LU
                        for p, level in target.items())
            status = "rendered" if piece.rel in rendered else "resumed" if piece.resumed else \
                "remastered" if moved else None
            if status:
                jobs[piece.rel] = _MasterJob(piece.source, piece.slug, out_dir, target, note,
                                             status)
    return jobs


def _clean(out_dir: Path, slugs: set[str], records: dict, rels: set[str]) -> None:
    """Forget the pieces whose scores are gone, with their published folders and caches."""
    for rel in [r for r in records if r not in rels]:
        slug = records.pop(rel).get("slug")
        if slug and slug not in slugs:
            shutil.rmtree(out_dir / PIECES / slug, ignore_errors=True)
            shutil.rmtree(_cache_dir(out_dir, slug), ignore_errors=True)


def _discard_partials(out_dir: Path) -> None:
    """Working folders left by an interrupted run (a worker's own failures remove theirs)."""
    for folder in (out_dir / PIECES, out_dir / CACHE):
        if folder.is_dir():
            for work in folder.glob(".*.partial-*"):
                shutil.rmtree(work, ignore_errors=True)


def _read_manifest(out_dir: Path) -> dict:
    path = out_dir / MANIFEST
    empty = {"format": MANIFEST_FORMAT, "pieces": {}, "soundfonts": {}}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); rendering every piece again", path, exc)
        return empty
    if data.get("format") != MANIFEST_FORMAT:
        # an earlier format's caches: the published folders are replaced as they are mastered
        for old in (out_dir / CACHE).glob("*.pickle"):
            old.unlink(missing_ok=True)
        return empty
    return data


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                       encoding="utf-8")
