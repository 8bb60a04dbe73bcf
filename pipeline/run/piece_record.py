"""A piece rendered as far as its mix, as a small explicit record: its report so far (parts,
levels, settings, timings) and what its master needs besides the mix's audio. The portfolio
keeps it as JSON beside ``mix.wav`` between rendering and mastering."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.model import Mix, OutOfRange, Performance, Stems, Voice, ZoneRefit
from pipeline.render.attack import Timing
from pipeline.render.vibrato import PartVibrato
from pipeline.output.piece_report import (ExcerptReport, MixSummary, PartReport,
                                          PerformanceSummary,
                                          PieceReport, Setting, StemsSummary, Timings,
                                          part_from_json)
from pipeline.run.checks import origin, part_settings
from pipeline.settings.config import Template
from pipeline.settings.sidecar import PieceSettings, swing_feel
from pipeline.voices.ensemble import instrumentation

FORMAT = 2  # bumped when what is stored changes shape


@dataclass(frozen=True)
class PieceRecord:
    """What mastering a piece needs besides its mix's audio, and its report so far
    (no masters yet)."""

    report: PieceReport
    template: str                  # the ensemble template, whose [master] table applies
    mix_sample_rate: int
    mix_loudness_lufs: float       # as measured by the mix stage, unrounded
    mix_short_term_lufs: tuple[float, ...]

    def mix(self, audio: np.ndarray) -> Mix:
        """The piece's mix, with ``audio`` (read back from mix.wav)."""
        return Mix(audio, self.mix_sample_rate, tuple(p.level for p in self.report.parts),
                   dict(self.report.mix.settings), self.mix_loudness_lufs,
                   np.asarray(self.mix_short_term_lufs))

    def tags(self, album: str | None) -> dict:
        """The audio files' tags."""
        r = self.report
        return {"title": r.title, "artist": r.composer, "album": album, "copyright": r.copyright,
                "comment": f"{r.ensemble} ({r.instrumentation}), rendered by score2audio",
                "software": f"score2audio {__version__}"}


def piece_record(score_path: Path, performance: Performance, voices: tuple[Voice, ...],
                 timing: Timing, vibrato: tuple[PartVibrato, ...] | None, stems: Stems,
                 the_mix: Mix, *, ensemble: str, settings: PieceSettings,
                 template: Template, soundfont: Path, timings: dict[str, float],
                 excerpt: ExcerptReport | None = None,
                 beyond: tuple[tuple[OutOfRange, ...], ...] | None = None,
                 refits: tuple[tuple[ZoneRefit, ...], ...] | None = None) -> PieceRecord:
    """The record of a piece (or the excerpt of it) just mixed (``beyond``: per part, its notes
    beyond its instrument's range; ``refits``: the notes its soundfont preset could not play,
    and how they were played)."""
    mix_lufs = the_mix.loudness_lufs
    mix_s = round(the_mix.audio.shape[1] / the_mix.sample_rate, 3)
    report = PieceReport(
        title=performance.title, composer=performance.composer,
        copyright=performance.copyright, source=str(score_path), ensemble=ensemble,
        ensemble_chosen_by=origin(settings, "ensemble"),
        sidecar=str(settings.sidecar.path) if settings.sidecar else None,
        settings=_settings(settings, ensemble, template, soundfont),
        instrumentation=instrumentation(performance), sample_rate=stems.sample_rate,
        duration_s=mix_s,  # with the room's tail
        performance=PerformanceSummary(
            file="performance.mid", notes=performance.note_count,
            played_s=round(performance.duration_s, 3),
            tempo_bpm_start=round(performance.tempo_map.bpm_at(0), 2),
            tempo_changes=len(performance.tempo_map.changes),
            time_signature=performance.time_signature),
        soundfont=str(soundfont),
        parts=_parts(performance, voices, timing, vibrato, the_mix, settings, beyond, refits),
        stems=StemsSummary(folder="stems", frames=stems.frames,
                           duration_s=round(stems.duration_s, 3),
                           lead_in_s=round(stems.lead_in_s, 4)),
        mix=MixSummary(file="mix.wav",
                       loudness_lufs=round(mix_lufs, 2) if np.isfinite(mix_lufs) else None,
                       duration_s=mix_s, settings=dict(the_mix.settings)),
        masters=(), timings=Timings(tuple(timings.items())), pipeline_version=__version__,
        excerpt=excerpt)
    return PieceRecord(report, template.name, the_mix.sample_rate, float(mix_lufs),
                       tuple(float(x) for x in the_mix.short_term_lufs))


def _settings(s: PieceSettings, ensemble: str, template: Template,
              soundfont: Path) -> tuple[tuple[str, Setting], ...]:
    """Each piece-wide setting's value and where it came from."""
    values = {"ensemble": ensemble, "layout": s.layout or "standard",
              "preset": ",".join(s.presets), "soundfont": str(soundfont),
              "swing": swing_feel(template, s.swing) or "straight"}
    origins = {k: origin(s, "presets" if k == "preset" else k) for k in values}
    if origins["swing"] == "default" and values["swing"] != "straight":
        origins["swing"] = "template"
    return tuple((k, Setting(v, origins[k])) for k, v in values.items())


def _parts(performance: Performance, voices: tuple[Voice, ...], timing: Timing,
           vibrato: tuple[PartVibrato, ...] | None, the_mix: Mix,
           settings: PieceSettings, beyond=None, refits=None) -> tuple[PartReport, ...]:
    """Each part's voice, seat and levels in the mix."""
    sidecar_parts = part_settings(settings, performance) or (None,) * len(voices)
    none = ((),) * len(voices)
    return tuple(
        PartReport(part=track.name, instrument=voice.preset_name or track.instrument,
                   instrument_map=voice.instrument or None,
                   set_by_sidecar=tuple(own.keys) if own is not None else (),
                   soundfont=str(voice.soundfont), bank=voice.bank, program=voice.program,
                   voice_source=voice.source, family=voice.family,
                   percussion=voice.is_percussion, notes=len(track.notes), level=level,
                   attack=attack, vibrato=wheel.summary() if wheel else None,
                   out_of_range=out, zone_refits=refit)
        for track, voice, level, own, attack, wheel, out, refit in zip(
            performance.tracks, voices, the_mix.stem_levels, sidecar_parts, timing.summary(),
            vibrato or (None,) * len(voices), beyond or none, refits or none))


# ---- the record as JSON (the portfolio's cache) ----

def write_record(path: Path, record: PieceRecord) -> None:
    """``record`` as JSON at ``path`` (written whole or not at all)."""
    from pipeline.files import atomic_path
    from pipeline.output.piece_report import as_json

    data = {"format": FORMAT, "report": as_json(record.report), "template": record.template,
            "mix_sample_rate": record.mix_sample_rate,
            "mix_loudness_lufs": record.mix_loudness_lufs,
            "mix_short_term_lufs": list(record.mix_short_term_lufs)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data), encoding="utf-8")


def read_record(path: Path) -> PieceRecord:
    """The record written by :func:`write_record`. Raises ValueError (or KeyError, TypeError)
    for a file of another format or shape, OSError for one that cannot be read."""
    data = json.loads(path.read_text("utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
    r = data["report"]
    mix = dict(r["mix"])
    mix_summary = MixSummary(file=mix.pop("file"), loudness_lufs=mix.pop("loudness_lufs"),
                             duration_s=mix.pop("duration_s"), settings=mix)
    report = PieceReport(
        title=r["title"], composer=r["composer"], copyright=r["copyright"], source=r["source"],
        ensemble=r["ensemble"], ensemble_chosen_by=r["ensemble_chosen_by"], sidecar=r["sidecar"],
        settings=tuple((k, Setting(s["value"], s["from"])) for k, s in r["settings"].items()),
        instrumentation=r["instrumentation"], sample_rate=r["sample_rate"],
        duration_s=r["duration_s"], performance=PerformanceSummary(
            **{**r["performance"], "time_signature": tuple(r["performance"]["time_signature"])}),
        soundfont=r["soundfont"], parts=tuple(part_from_json(p) for p in r["parts"]),
        stems=StemsSummary(**r["stems"]), mix=mix_summary, masters=(),
        timings=Timings(tuple((k, v) for k, v in r["timings_s"].items() if k != "total")),
        pipeline_version=r["pipeline_version"])
    return PieceRecord(report, data["template"], data["mix_sample_rate"],
                       data["mix_loudness_lufs"], tuple(data["mix_short_term_lufs"]))


# ---- an album's measurements of the piece, per preset (the portfolio's cache) ----

def write_album_entries(path: Path, entries: dict) -> None:
    """What :func:`pipeline.run.recipe.album_entries` measured, as JSON at ``path``: per
    preset the piece's name, its prepared summary (the preset by name, the 100 ms loudness
    steps as numbers) and the ensemble's relative loudness."""
    from pipeline.files import atomic_path

    data = {"format": FORMAT, "presets": {
        name: {"piece": piece, "relative_loudness_lu": relative,
               "summary": {**{k: v for k, v in vars(prep).items()
                              if k not in ("preset", "audio", "loud", "steps", "block_peaks")},
                           "preset": prep.preset.name, "steps_dtype": str(prep.steps.dtype),
                           "steps": [float(x) for x in prep.steps]}}
        for name, (piece, prep, relative) in entries.items()}}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data), encoding="utf-8")


def read_album_entries(path: Path) -> dict:
    """The entries written by :func:`write_album_entries` (ValueError, KeyError or TypeError
    for another format or shape, OSError for a file that cannot be read)."""
    from pipeline.master.mastering import Prepared
    from pipeline.settings.config import load_preset

    data = json.loads(path.read_text("utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
    entries = {}
    for name, e in data["presets"].items():
        s = dict(e["summary"])
        steps = np.asarray(s.pop("steps"), dtype=s.pop("steps_dtype"))
        prep = Prepared(preset=load_preset(s.pop("preset")), audio=None, loud=None,
                        steps=steps, **s)
        entries[name] = (e["piece"], prep, e["relative_loudness_lu"])
    return entries
