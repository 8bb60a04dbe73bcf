"""Portfolio: render every score under a folder, incrementally, and publish the pieces as a site.

A run has three phases:

1. **render** (in parallel: a local process pool, or a Dask cluster with ``dask=``): every new or
   changed piece is rendered to its mix and measured for each preset
   (:func:`pipeline.core.album_entries`); its state and measurements go to ``OUT/.cache/``;
2. **plan** (here): the pieces of each ensemble category are one album
   (:func:`pipeline.core.album_plan`), computed from the measurements of *all* its pieces, the
   unchanged ones read from the cache, so no piece is rendered again to compute its level;
3. **master** (in parallel): the rendered pieces are mastered and exported to
   ``OUT/pieces/<slug>/``; an unchanged piece whose album level moved by more than
   :data:`ALBUM_TOLERANCE_LU` (a piece of its category was added, changed or removed) is mastered
   again from its mix on disk, never rendered again. Below the tolerance it keeps its files: a
   difference no one hears is not worth re-encoding every piece of a category.

A piece is unchanged when its fingerprint is: the bytes of the score and of its sidecar
(:mod:`pipeline.sidecar`; its ``preset`` is not used: a portfolio has its own), the presets, the
instrument map and its category's template, the content of the soundfonts (the default, its
fallback and the sidecar's), the sample rate and the pipeline version (``OUT/manifest.json``
keeps one per piece). A piece that failed is reported as failed again
without another attempt until its fingerprint changes.

The workers need the scores and ``OUT`` at the same paths as this process (on a cluster: a
shared file system).
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import socket
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

from . import __version__
from .audio import atomic_path
from .config import load_preset
from .core import _finish, _render_to_mix, album_entries, album_plan
from .errors import OutputError, PipelineError, ScoreError
from .export import PieceFolder, read_mix
from .load import MIDI_SUFFIXES, MUSICXML_SUFFIXES
from .paths import slugify
from .sidecar import Sidecar, choose, find_sidecar, read_sidecar
from .site import WAVEFORM_COLUMNS, waveform_svg, write_site
from .soundfonts import fallback_soundfont, find_soundfont

log = logging.getLogger(__name__)

SCORE_SUFFIXES = MUSICXML_SUFFIXES | MIDI_SUFFIXES
#: The web demo (MP3 and OGG for the player) and a WAV master for download.
PRESETS = ("web-demo", "streaming")
PLAYER_PRESET, WAV_PRESET = PRESETS
PIECES = "pieces"
CACHE = ".cache"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: An unchanged piece is mastered again only when its album level moves by more than this.
ALBUM_TOLERANCE_LU = 0.1
#: Written by this module into a piece's folder beside what the render wrote.
STEMS_ZIP, WAVEFORM, SCORE_FOLDER = "stems.zip", "waveform.svg", "score"


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
    """What happened to one piece: ``status`` is ``rendered``, ``remastered`` (its album level
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


@dataclass(frozen=True)
class _MasterJob:
    source: Path
    slug: str
    out_dir: Path
    targets: dict[str, float]
    album: dict
    fresh: bool             # rendered in this run (else mastered again from its folder)


@dataclass
class _Piece:
    """One score found in the portfolio, as planned by this run."""

    source: Path
    rel: str
    slug: str
    fingerprint: str = ""
    record: dict = field(default_factory=dict)
    entries: dict | None = None   # album measurements per preset
    category: str = ""


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


def _fingerprint(piece: _Piece, settings: str, category: str | None,
                 soundfonts: dict | None = None) -> str:
    """``soundfonts``: the manifest's memo of soundfont hashes (for the sidecar's)."""
    h = hashlib.sha256(settings.encode())
    h.update(piece.source.read_bytes())
    side = find_sidecar(piece.source)
    if side is not None:
        h.update(side.name.encode() + b"\0" + side.read_bytes())
        fonts = _sidecar_soundfonts(read_sidecar(piece.source))
        h.update(str(_soundfont_identity(fonts, {} if soundfonts is None else soundfonts)).encode())
    if category:
        try:
            h.update(_package_bytes("templates", f"{category}.toml"))
        except FileNotFoundError:
            h.update(b"no template")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# the work done by a worker (a process of the pool or a Dask worker): top-level, picklable

def _cache(out_dir: Path, slug: str, what: str) -> Path:
    return out_dir / CACHE / f"{slug}.{what}.pickle"


def _dump(path: Path, value) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _render_piece(job: _RenderJob) -> tuple[str, dict]:
    """Render a piece to its mix (left in its hidden working folder) and measure it for the
    album; returns (category, measurements per preset)."""
    presets = [load_preset(n) for n in PRESETS]
    sidecar = read_sidecar(job.source)
    if sidecar is not None and sidecar.presets:
        log.info("%s: 'preset' is not used in a portfolio (mastered for: %s)", sidecar.path,
                 ", ".join(PRESETS))
        sidecar = replace(sidecar, presets=())
    settings = choose(sidecar, soundfont=job.soundfont, default_presets=PRESETS)
    piece = _render_to_mix(job.source, out_root=job.out_dir / PIECES, settings=settings,
                           soundfont=find_soundfont(settings.soundfont),
                           sample_rate=job.sample_rate, progress=lambda stage, fraction: None,
                           slug=job.slug)
    try:
        entries = album_entries(piece, presets)
        _dump(_cache(job.out_dir, job.slug, "piece"), piece)
        _dump(_cache(job.out_dir, job.slug, "album"), entries)
    except BaseException:
        piece.folder.discard()
        raise
    return piece.ensemble, entries


def _master_piece(job: _MasterJob) -> dict:
    """Master a measured piece at its album level, export it into ``pieces/<slug>/`` with what
    the site links to, and return its site entry."""
    presets = [load_preset(n) for n in PRESETS]
    try:
        piece = pickle.loads(_cache(job.out_dir, job.slug, "piece").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError) as exc:
        raise OutputError(f"{_cache(job.out_dir, job.slug, 'piece')}: the cached render cannot "
                          f"be read ({exc}); delete it to render the piece again") from exc
    final = job.out_dir / PIECES / job.slug
    if not job.fresh:
        piece.folder = _relink(final)
    piece.mix = replace(piece.mix, audio=read_mix(piece.folder.work))
    result = _finish(piece, presets, reference=None, progress=lambda stage, fraction: None,
                     targets=job.targets, album=job.album)
    folder, report = result.folder, result.report
    if not (folder / STEMS_ZIP).exists():
        _zip_stems(folder)
    score_copy = folder / SCORE_FOLDER / job.source.name
    if not score_copy.exists():
        with atomic_path(score_copy) as tmp:
            shutil.copyfile(job.source, tmp)
    masters = {m["preset"]: m for m in report["masters"]}
    files = {m["preset"]: [f["file"] for f in m["files"]] for m in report["masters"]}
    wav = folder / files[WAV_PRESET][0]
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    with atomic_path(folder / WAVEFORM) as tmp:
        tmp.write_text(waveform_svg(audio.T, WAVEFORM_COLUMNS), encoding="utf-8")
    player = masters[PLAYER_PRESET]
    return {
        "title": report["title"], "composer": report["composer"],
        "copyright": report.get("copyright", ""), "instrumentation": report["instrumentation"],
        "category": report["ensemble"], "duration_s": player["duration_s"],
        "lufs": {p: m["integrated_lufs"] for p, m in masters.items()},
        "true_peak_dbtp": {p: m["true_peak_dbtp"] for p, m in masters.items()},
        "player": files[PLAYER_PRESET], "wav": files[WAV_PRESET][0],
        "stems_zip": STEMS_ZIP, "score": f"{SCORE_FOLDER}/{job.source.name}",
        "waveform": WAVEFORM, "report": "report.html",
        "audio_sha256": {name: audio_digest(folder / name)
                         for names in files.values() for name in names},
    }


def _relink(final: Path) -> PieceFolder:
    """A working folder holding the piece's render (stems, mix, performance) as hard links to
    its published files, to master it again without copying audio."""
    if not (final / "mix.wav").is_file():
        raise OutputError(f"{final}: the published piece has no mix.wav to master again")
    folder = PieceFolder(final.parent, final.name)
    masters = {"report.json", "report.html", WAVEFORM}

    def keep(where: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(where) == final and (n in masters
                                                              or n.startswith("master"))]

    try:
        shutil.copytree(final, folder.work, copy_function=_link, ignore=keep, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        folder.discard()
        raise OutputError(f"{final}: cannot be prepared for mastering again ({exc})") from exc
    return folder


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links: copy
        shutil.copy2(src, dst)


def _zip_stems(folder: Path) -> None:
    # the fastest deflate: a dry stem's rests pack well, so a quartet's stems halve in ~1 s
    with atomic_path(folder / STEMS_ZIP) as tmp, \
            zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for stem in sorted((folder / "stems").glob("*.wav")):
            z.write(stem, f"{folder.name}-stems/{stem.name}")


def audio_digest(path: Path) -> str:
    """SHA-256 of the decoded samples: the same for the same audio even where the container is
    not (an Ogg stream carries a random serial number)."""
    h = hashlib.sha256()
    with sf.SoundFile(str(path)) as f:
        h.update(f"{f.samplerate}|{f.channels}".encode())
        for block in f.blocks(blocksize=1 << 16, dtype="float32"):
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


def _init_worker(level: int) -> None:
    logging.getLogger().setLevel(level)
    logging.getLogger("music21").setLevel(logging.ERROR)


class _LocalRunner:
    """A process pool over the machine's cores (spawned: no forking of a threaded parent)."""

    def __init__(self, workers: int | None):
        self.workers = workers or os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker,
                                        initargs=(logging.getLogger().getEffectiveLevel(),))

    def run(self, fn: Callable, jobs: dict[str, object]) -> Iterator[tuple[str, object, str | None]]:
        futures = {self.pool.submit(fn, job): key for key, job in jobs.items()}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result(), None
            except Exception as exc:  # one piece's failure, even a crashed worker, is its own
                yield futures[future], None, _reason(exc)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


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

    def close(self) -> None:
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
                    title: str = "Portfolio",
                    progress: Callable[[Progress], None] | None = None) -> PortfolioResult:
    """Render every score under ``scores_dir`` that changed since the last run into
    ``out_dir/pieces/``, master each ensemble category as an album and write ``out_dir/index.html``.

    ``workers``: processes of the local pool (default: one per core); ``dask``: the address of a
    Dask scheduler to send the pieces to instead.

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
    font = find_soundfont(soundfont)
    try:
        (out_dir / CACHE).mkdir(parents=True, exist_ok=True)
        lock = open(out_dir / CACHE / "lock", "w")
    except OSError as exc:
        raise OutputError(f"{out_dir}: the site folder cannot be written ({exc.strerror})") from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise OutputError(f"{out_dir}: another portfolio run is writing here") from exc
        runner = _DaskRunner(dask) if dask else _LocalRunner(workers)
        try:
            return _build(sources, scores_dir, out_dir, font, soundfont and Path(soundfont),
                          sample_rate, title, progress, runner)
        finally:
            runner.close()


def _build(sources, scores_dir, out_dir, font, font_option, sample_rate, title, progress, runner):
    manifest = _read_manifest(out_dir)
    records = manifest["pieces"]
    fonts = [font] + [f for f in (fallback_soundfont(font),) if f is not None]
    settings = _settings_digest(_soundfont_identity(fonts, manifest["soundfonts"]), sample_rate)
    rels = [s.relative_to(scores_dir).as_posix() for s in sources]
    pieces = [_Piece(s, r, slug, record=records.get(r, {}))
              for s, r, slug in zip(sources, rels, _slugs(rels))]
    outcomes: dict[str, Outcome] = {}
    render_jobs: dict[str, _RenderJob] = {}
    fonts_known = manifest["soundfonts"]
    fingerprint = functools.partial(_fingerprint, settings=settings, soundfonts=fonts_known)
    for piece in pieces:
        try:
            piece.fingerprint = fingerprint(piece, category=piece.record.get("category"))
        except (OSError, PipelineError) as exc:
            reason = _reason(exc) if isinstance(exc, PipelineError) else \
                f"{piece.source}: cannot be read ({exc.strerror})"
            outcomes[piece.rel] = Outcome(piece.rel, "failed", reason)
            records[piece.rel] = {"status": "failed", "reason": reason, "slug": piece.slug}
            continue
        if _unchanged(piece, out_dir):
            if piece.record["status"] == "failed":
                outcomes[piece.rel] = Outcome(piece.rel, "failed", piece.record["reason"])
            continue
        render_jobs[piece.rel] = _RenderJob(piece.source, piece.slug, out_dir, font_option,
                                            sample_rate)
    _clean(out_dir, {p.slug for p in pieces}, records, {p.rel for p in pieces})
    try:
        by_rel = {p.rel: p for p in pieces}
        for rel, value, error in _run(runner, _render_piece, render_jobs, "render", progress):
            piece = by_rel[rel]
            if error:
                outcomes[rel] = Outcome(rel, "failed", error)
                # fingerprinted without a category: the next run skips it until it changes
                records[rel] = {"status": "failed", "reason": error, "slug": piece.slug,
                                "fingerprint": fingerprint(piece, category=None)}
            else:
                piece.category, piece.entries = value
                piece.fingerprint = fingerprint(piece, category=piece.category)
        master_jobs = _plan(pieces, render_jobs, outcomes, out_dir, title)
        for rel, entry, error in _run(runner, _master_piece, master_jobs, "master", progress):
            piece, job = by_rel[rel], master_jobs[rel]
            if error:  # not fingerprinted: tried again next run, from its render
                outcomes[rel] = Outcome(rel, "failed", error)
                records[rel] = {"status": "failed", "reason": error, "slug": piece.slug}
                continue
            records[rel] = {"status": "done", "slug": piece.slug, "fingerprint": piece.fingerprint,
                            "category": piece.category, "album_targets": job.targets,
                            "entry": entry}
            outcomes[rel] = Outcome(rel, "rendered" if job.fresh else "remastered",
                                    category=piece.category, duration_s=entry["duration_s"],
                                    lufs=entry["lufs"][PLAYER_PRESET])
    finally:
        _discard_partials(out_dir / PIECES)
        _write_manifest(out_dir, manifest)
    for piece in pieces:
        if piece.rel not in outcomes:
            record = records[piece.rel]
            outcomes[piece.rel] = Outcome(piece.rel, "unchanged", category=record["category"],
                                          duration_s=record["entry"]["duration_s"],
                                          lufs=record["entry"]["lufs"][PLAYER_PRESET])
    done = [(records[p.rel]["slug"], records[p.rel]["entry"]) for p in pieces
            if records.get(p.rel, {}).get("status") == "done"]
    index = write_site(out_dir, done, pieces_folder=PIECES, title=title)
    return PortfolioResult(tuple(outcomes[p.rel] for p in pieces), index, out_dir / MANIFEST)


def _unchanged(piece: _Piece, out_dir: Path) -> bool:
    """The piece's last result still stands: same fingerprint and, for a rendered piece, its
    folder and its album measurements are there (read now, for the plan)."""
    record = piece.record
    if not record or record.get("fingerprint") != piece.fingerprint:
        return False
    if record["status"] == "failed":
        return True
    if not (out_dir / PIECES / piece.slug / "report.json").is_file():
        return False
    try:
        piece.entries = pickle.loads(_cache(out_dir, piece.slug, "album").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
        return False  # written by another version, or lost: render again
    piece.category = record["category"]
    return True


def _plan(pieces: list[_Piece], rendered: dict, outcomes: dict[str, Outcome], out_dir: Path,
          title: str) -> dict[str, _MasterJob]:
    """The album level of every piece per category; the jobs for the pieces rendered now and
    for those whose level moved."""
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
            fresh = piece.rel in rendered
            before = piece.record.get("album_targets", {})
            moved = any(abs(level - before.get(p, np.inf)) > ALBUM_TOLERANCE_LU
                        for p, level in target.items())
            if fresh or moved:
                jobs[piece.rel] = _MasterJob(piece.source, piece.slug, out_dir, target, note, fresh)
    return jobs


def _clean(out_dir: Path, slugs: set[str], records: dict, rels: set[str]) -> None:
    """Forget the pieces whose scores are gone, with their published folders and caches."""
    for rel in [r for r in records if r not in rels]:
        slug = records.pop(rel).get("slug")
        if slug and slug not in slugs:
            shutil.rmtree(out_dir / PIECES / slug, ignore_errors=True)
            for what in ("piece", "album"):
                _cache(out_dir, slug, what).unlink(missing_ok=True)


def _discard_partials(pieces_dir: Path) -> None:
    """Working folders left by a render that was not mastered (a failure or an interruption)."""
    if pieces_dir.is_dir():
        for work in pieces_dir.glob(".*.partial-*"):
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
        return empty
    return data


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                       encoding="utf-8")
