"""The orchestrator: load → perform → assign → render → mix → master → export."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import __version__
from .assign import assign
from .audio import peak_dbfs
from .config import load_preset, load_template
from .ensemble import detect_ensemble, instrumentation
from .export import PieceFolder, write_master, write_mix, write_report
from .load import load
from .master import master
from .mix import mix
from .paths import slugify
from .perform import perform, write_midi
from .render import render
from .report import write_html
from .soundfonts import find_soundfont

log = logging.getLogger(__name__)

#: Rough share of a render's wall time per stage, for one overall progress figure.
STAGE_WEIGHTS = {"load": 0.15, "perform": 0.05, "assign": 0.01, "render": 0.5, "mix": 0.12,
                 "master": 0.12, "export": 0.05, "report": 0.04}

ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class RenderResult:
    folder: Path
    report: dict


def perform_to_midi(score_path: str | Path, midi_path: str | Path, *,
                    soundfont: str | Path | None = None):
    """Load and perform a score and write ``performance.mid`` without rendering audio."""
    performance = perform(load(Path(score_path)))
    voices = assign(performance, soundfont=find_soundfont(soundfont))
    write_midi(performance, Path(midi_path), [(v.bank, v.program) for v in voices])
    return performance


def overall_fraction(stage: str, fraction: float) -> float:
    """Where ``fraction`` of ``stage`` puts the whole render, 0–1."""
    names = list(STAGE_WEIGHTS)
    before = sum(STAGE_WEIGHTS[n] for n in names[: names.index(stage)])
    return min(1.0, before + STAGE_WEIGHTS[stage] * fraction) / sum(STAGE_WEIGHTS.values())


def render_score(score_path: str | Path, *, out_root: str | Path = "out", ensemble: str | None = None,
                 presets: tuple[str, ...] = ("streaming",), soundfont: str | Path | None = None,
                 sample_rate: int = 48000, progress: ProgressFn | None = None) -> RenderResult:
    """Render one score into ``out_root/<score-name>/``.

    Raises
    ------
    PipelineError
        (or a subclass) with a one-line message naming the file or setting at fault; nothing is
        left in ``out_root`` for this piece when it is raised.
    """
    score_path = Path(score_path)
    progress = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        progress(name, 0.0)
        t0 = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t0, 3)
        progress(name, 1.0)

    # check every option before the slow work, so a typo fails at once
    template = load_template(ensemble) if ensemble else None
    preset_objs = [load_preset(p) for p in presets]
    sf_path = find_soundfont(soundfont)

    with stage("load"):
        loaded = load(score_path)
    with stage("perform"):
        performance = perform(loaded)
    log.info("perform: %d tracks, %d notes, %.1f s", len(performance.tracks),
             performance.note_count, performance.duration_s)
    with stage("assign"):
        voices = assign(performance, soundfont=sf_path, sample_rate=sample_rate)
        ensemble_name = ensemble or detect_ensemble(performance, voices)
        template = template or load_template(ensemble_name)
    for track, voice in zip(performance.tracks, voices):
        log.info("assign: %s → %s (bank %d, program %d, from %s)", track.name, voice.preset_name,
                 voice.bank, voice.program, voice.source)
    log.info("ensemble: %s (%s)", ensemble_name, "chosen" if ensemble else "detected")

    folder = PieceFolder(Path(out_root), slugify(score_path.stem))
    try:
        with stage("render"):
            stems = render(performance, voices, stems_dir=folder.work / "stems",
                           sample_rate=sample_rate, progress=lambda f: progress("render", f))
        log.info("render: %d stems of %.1f s at %d Hz", len(stems.stems), stems.duration_s,
                 stems.sample_rate)
        with stage("mix"):
            the_mix = mix(stems, voices, template, progress=lambda f: progress("mix", f))
        masters = []
        with stage("master"):
            for i, p in enumerate(preset_objs):
                masters.append((p, master(the_mix, p)))
                log.info("master %s: %s", p.name, masters[-1][1].measurements)
                progress("master", (i + 1) / len(preset_objs))
        with stage("export"):
            write_midi(performance, folder.work / "performance.mid",
                       [(v.bank, v.program) for v in voices])
            write_mix(folder.work, the_mix)
            master_files = [write_master(folder.work, m, p, several=len(masters) > 1)
                            for p, m in masters]
        report = _report(score_path, performance, voices, stems, the_mix, masters, master_files,
                         ensemble_name, bool(ensemble), sf_path, timings)
        with stage("report"):
            write_html(folder.work, report, the_mix, [m for _, m in masters])
        report["timings_s"] = {**timings, "total": round(sum(timings.values()), 3)}
        write_report(folder.work, report)
        final = folder.commit()
    except BaseException:
        folder.discard()
        raise
    return RenderResult(final, report)


def _report(score_path, performance, voices, stems, the_mix, masters, master_files, ensemble_name,
            chosen, sf_path, timings) -> dict:
    mix_lufs = the_mix.loudness_lufs
    parts = []
    for track, voice, level in zip(performance.tracks, voices, the_mix.stem_levels):
        parts.append({
            "part": track.name, "instrument": voice.preset_name or track.instrument,
            "soundfont": str(voice.soundfont), "bank": voice.bank, "program": voice.program,
            "voice_source": voice.source, "family": voice.family, "percussion": voice.is_percussion,
            "notes": len(track.notes), "stem": level["file"], "pan": level["pan"],
            "peak_dbfs": level["peak_dbfs"], "loudness_lufs": level["loudness_lufs"],
        })
    return {
        "title": performance.title,
        "composer": performance.composer,
        "source": str(score_path),
        "ensemble": ensemble_name,
        "ensemble_chosen_by": "option" if chosen else "detected",
        "instrumentation": instrumentation(performance),
        "sample_rate": stems.sample_rate,
        "duration_s": round(the_mix.audio.shape[1] / the_mix.sample_rate, 3),
        "performance": {
            "file": "performance.mid", "notes": performance.note_count,
            "played_s": round(performance.duration_s, 3),
            "tempo_bpm_start": round(performance.tempo_map.bpm_at(0), 2),
            "tempo_changes": len(performance.tempo_map.changes),
        },
        "soundfont": str(sf_path),
        "parts": parts,
        "stems": {"folder": "stems", "frames": stems.frames, "duration_s": round(stems.duration_s, 3)},
        "mix": {"file": "mix.wav", "peak_dbfs": round(peak_dbfs(the_mix.audio), 2),
                "loudness_lufs": round(mix_lufs, 2) if np.isfinite(mix_lufs) else None,
                **the_mix.settings},
        "masters": [{"preset": p.name, "file": f.name, "format": p.format, "bit_depth": p.bit_depth,
                     **m.measurements} for (p, m), f in zip(masters, master_files)],
        "timings_s": {**timings, "total": round(sum(timings.values()), 3)},
        "pipeline_version": __version__,
    }
