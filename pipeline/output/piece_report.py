"""What a piece's report holds, typed: built by the orchestrator from what each stage made,
turned into ``report.json`` (:func:`as_json`) and ``report.html`` only when they are written.

Figures are rounded as they are reported (the stages measure at full precision)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from pipeline.model import AttackApplied, OutOfRange, StemLevel, VibratoApplied, ZoneRefit


@dataclass(frozen=True)
class Setting:
    """A piece-wide setting's value and where it came from (option, sidecar, template,
    detected, default)."""

    value: Any
    source: str


@dataclass(frozen=True)
class PartReport:
    """A part: the voice that played it and its levels in the mix."""

    part: str
    instrument: str
    instrument_map: str | None
    set_by_sidecar: tuple[str, ...]
    soundfont: str
    bank: int
    program: int
    voice_source: str
    family: str
    percussion: bool
    notes: int
    level: StemLevel
    #: how much earlier than written its notes start, to be heard on the beat; None when not
    #: compensated
    attack: AttackApplied | None = None
    #: the vibrato added or the preset's own swing; None: neither
    vibrato: VibratoApplied | None = None
    #: its notes beyond its instrument's professional or practical range
    out_of_range: tuple[OutOfRange, ...] = ()
    #: the notes its soundfont preset has no samples for, and how they were played instead
    zone_refits: tuple[ZoneRefit, ...] = ()

    @property
    def stem(self) -> str:
        return self.level.file


SHOWN_BARS = 5  # bars named in a line; the report.json lists more


def _notes(n: int) -> str:
    return f"{n} note" if n == 1 else f"{n} notes"


def _where(names: tuple[str, ...], bars: tuple[str, ...]) -> str:
    shown = ", ".join(bars[:SHOWN_BARS]) + (", …" if len(bars) > SHOWN_BARS else "")
    return f"({', '.join(names[:3])}{', …' if len(names) > 3 else ''} in " \
           f"{'bar' if len(bars) == 1 else 'bars'} {shown})"


def range_notes(part: PartReport) -> list[str]:
    """What a composer is told about a part's range and the soundfont: one phrase per
    finding, e.g. "3 notes below its practical range: for professional players only (B3 in
    bars 4, 9, 12)"."""
    out = []
    for f in part.out_of_range:
        if f.beyond == "professional":
            what = f"{_notes(f.notes)} {f.side} its range: no player can play them"
        else:
            what = f"{_notes(f.notes)} {f.side} its practical range: for professional players only"
        out.append(f"{what} {_where(f.written, f.bars)}")
    for z in part.zone_refits:
        if z.how == "fallback preset":
            what = f"{_notes(z.notes)} the soundfont's preset has no samples for, played by {z.preset}"
        elif z.how == "velocity":
            what = (f"{_notes(z.notes)} at a dynamic the soundfont's preset has no samples for, "
                    f"played at the nearest it has")
        else:
            what = f"{_notes(z.notes)} the soundfont's preset has no samples for, played an {z.how}"
        out.append(f"{what} {_where(z.keys, z.bars)}")
    return out


@dataclass(frozen=True)
class Guard:
    """The master's dynamic-range guard: whether it stopped the loudness short, and why."""

    max_limiting_db: float
    engaged: bool
    reached_lufs: float | None = None
    shortfall_lu: float | None = None
    why: str | None = None


@dataclass(frozen=True)
class MasterFile:
    """A file of a master; a lossy one as decoded again and checked against the ceiling."""

    file: str
    codec: str
    decoded_true_peak_dbtp: float | None = None
    decoded_lufs: float | None = None
    codec_trim_db: float | None = None


@dataclass(frozen=True)
class MasterReport:
    """One delivery preset's master: what was aimed at, measured and done."""

    preset: str
    description: str
    formats: tuple[str, ...]
    target_lufs: float | None
    target_source: str
    ceiling_dbtp: float
    integrated_lufs: float | None
    loudness_range_lu: float
    short_term_max_lufs: float | None
    true_peak_dbtp: float
    sample_peak_dbfs: float
    peak_to_loudness_db: float | None
    mix_lufs: float | None
    gain_db: float
    limiter_max_reduction_db: float
    limiter_mean_reduction_db: float
    limiting_time_percent: float
    guard: Guard
    sample_rate: int
    bit_depth: int
    duration_s: float
    chain: Mapping                 # each step's settings, as the master stage reports them
    album: Mapping | None = None   # the album's note, when mastered as one
    files: tuple[MasterFile, ...] = ()

    @classmethod
    def from_measurements(cls, preset, measurements: Mapping) -> "MasterReport":
        """From a :class:`pipeline.model.Master`'s measurements for ``preset``."""
        m = dict(measurements)
        guard = Guard(**m.pop("guard"))
        return cls(preset=preset.name, description=preset.description,
                   formats=tuple(preset.formats), guard=guard, album=m.pop("album", None), **m)


def with_files(masters: tuple[MasterReport, ...],
               files: list[list[Mapping]]) -> tuple[MasterReport, ...]:
    """``masters`` with their written files (as the writer lists them, master by master)."""
    return tuple(replace(m, files=tuple(MasterFile(**f) for f in written))
                 for m, written in zip(masters, files))


@dataclass(frozen=True)
class PerformanceSummary:
    file: str
    notes: int
    played_s: float
    tempo_bpm_start: float
    tempo_changes: int
    time_signature: tuple[int, int] = (4, 4)  # the opening one


@dataclass(frozen=True)
class ExcerptReport:
    """Which bars of the piece were rendered, and where they are played in the whole."""

    first_bar: str
    last_bar: str
    pass_number: int
    loop: bool
    start_s: float   # in the whole performance
    played_s: float  # the bars' length (a loop's exactly)


@dataclass(frozen=True)
class RehearsalTrack:
    """A part's rehearsal track: the part forward and centred, the others back, mastered as the
    web demo is."""

    part: str
    file: str
    part_gain_db: float
    others_gain_db: float
    count_in_beats: int           # 0: no count-in
    integrated_lufs: float | None
    true_peak_dbtp: float | None  # of the decoded MP3


@dataclass(frozen=True)
class StemsSummary:
    folder: str
    frames: int
    duration_s: float
    lead_in_s: float = 0.0  # silence before the score's start (see pipeline.model.Stems)


@dataclass(frozen=True)
class MixSummary:
    file: str
    loudness_lufs: float | None
    duration_s: float
    settings: Mapping              # the template's figures and the mix's gain staging


@dataclass(frozen=True)
class Timings:
    """Seconds per stage, in the order the stages ran."""

    seconds: tuple[tuple[str, float], ...] = ()

    @property
    def total(self) -> float:
        return round(sum(s for _, s in self.seconds), 3)

    def as_dict(self) -> dict[str, float]:
        return {**dict(self.seconds), "total": self.total}


@dataclass(frozen=True)
class PieceReport:
    """Everything a piece's report says."""

    title: str
    composer: str
    copyright: str
    source: str
    ensemble: str
    ensemble_chosen_by: str
    sidecar: str | None
    settings: tuple[tuple[str, Setting], ...]
    instrumentation: str
    sample_rate: int
    duration_s: float              # the mix's, with the room's tail
    performance: PerformanceSummary
    soundfont: str
    parts: tuple[PartReport, ...]
    stems: StemsSummary
    mix: MixSummary
    masters: tuple[MasterReport, ...]
    timings: Timings
    pipeline_version: str
    rehearsal: tuple[RehearsalTrack, ...] = ()
    excerpt: ExcerptReport | None = None

    def setting(self, name: str) -> Setting:
        return dict(self.settings)[name]

    def with_files(self, files: list[list[Mapping]]) -> "PieceReport":
        """The report with each master's written files (as the writer lists them)."""
        return replace(self, masters=with_files(self.masters, files))


@dataclass(frozen=True)
class SourceMix:
    """A mix brought as a file to be mastered: what it is and what the meter read on it."""

    file: str
    format: str                    # e.g. "WAV PCM_24"
    sample_rate: int
    channels: int
    duration_s: float
    integrated_lufs: float | None
    loudness_range_lu: float
    true_peak_dbtp: float


@dataclass(frozen=True)
class MixFileReport:
    """Everything the report of a mix mastered from a file says (``score2audio master``)."""

    title: str
    source: SourceMix
    mastering: str                 # whose mastering settings: an ensemble's, or the presets'
    reference: str | None
    masters: tuple[MasterReport, ...]
    timings: Timings
    pipeline_version: str
    parts: tuple[PartReport, ...] = ()  # none: the pictures show no stage

    def with_files(self, files: list[list[Mapping]]) -> "MixFileReport":
        """The report with each master's written files (as the writer lists them)."""
        return replace(self, masters=with_files(self.masters, files))


def as_json(report: PieceReport | MixFileReport) -> dict:
    """``report.json``'s content: plain values, in the order a reader meets them."""
    if isinstance(report, MixFileReport):
        return {"title": report.title, "source": vars(report.source).copy(),
                "mastering": report.mastering, "reference": report.reference,
                "masters": [_master_json(m) for m in report.masters],
                "timings_s": report.timings.as_dict(),
                "pipeline_version": report.pipeline_version}
    return _piece_json(report)


def _piece_json(report: PieceReport) -> dict:
    """``report.json``'s content: plain values, in the order a reader meets them."""
    return {
        "title": report.title,
        "composer": report.composer,
        "copyright": report.copyright,
        "source": report.source,
        "ensemble": report.ensemble,
        "ensemble_chosen_by": report.ensemble_chosen_by,
        "sidecar": report.sidecar,
        "settings": {k: {"value": s.value, "from": s.source} for k, s in report.settings},
        "instrumentation": report.instrumentation,
        "sample_rate": report.sample_rate,
        "duration_s": report.duration_s,
        "performance": {**vars(report.performance),
                        "time_signature": list(report.performance.time_signature)},
        "soundfont": report.soundfont,
        "parts": [_part_json(p) for p in report.parts],
        "stems": vars(report.stems).copy(),
        "mix": {"file": report.mix.file, "loudness_lufs": report.mix.loudness_lufs,
                "duration_s": report.mix.duration_s, **report.mix.settings},
        "masters": [_master_json(m) for m in report.masters],
        "rehearsal": [vars(t).copy() for t in report.rehearsal],
        "excerpt": vars(report.excerpt).copy() if report.excerpt else None,
        "timings_s": report.timings.as_dict(),
        "pipeline_version": report.pipeline_version,
    }


#: A part's fields in report.json, in order, then its level's under their own names (the
#: level's file is the part's "stem"; its part, instrument and family are the part's own).
PART_KEYS = ("part", "instrument", "instrument_map", "set_by_sidecar", "soundfont", "bank",
             "program", "voice_source", "family", "percussion", "notes", "attack", "vibrato",
             "out_of_range", "zone_refits")
LEVEL_KEYS = ("pan", "peak_dbfs", "loudness_lufs", "depth", "seat", "bus", "calibration_db",
              "gain_db", "send_db", "predelay_ms", "damping_hz", "mix_lufs", "mix_stem",
              "level_db", "eq", "compressor")


def _part_json(p: PartReport) -> dict:
    level = p.level
    return {**{k: getattr(p, k) for k in PART_KEYS}, "set_by_sidecar": list(p.set_by_sidecar),
            "attack": vars(p.attack).copy() if p.attack else None,
            "vibrato": ({k: v for k, v in vars(p.vibrato).items() if v is not None}
                        if p.vibrato else None),
            "out_of_range": [{**vars(f), "written": list(f.written), "bars": list(f.bars)}
                             for f in p.out_of_range],
            "zone_refits": [{**vars(z), "keys": list(z.keys), "bars": list(z.bars)}
                            for z in p.zone_refits],
            "stem": level.file, **{k: getattr(level, k) for k in LEVEL_KEYS},
            "eq": [dict(b) for b in level.eq],
            "compressor": dict(level.compressor) if level.compressor is not None else None}


def part_from_json(p: dict) -> PartReport:
    """The part :func:`as_json` wrote as ``p``."""
    level = StemLevel(part=p["part"], file=p["stem"], instrument=p["instrument_map"] or "",
                      family=p["family"], **{k: p[k] for k in LEVEL_KEYS if k != "eq"},
                      eq=tuple(p["eq"]))
    attack, vibrato = p.get("attack"), p.get("vibrato")
    typed = ("set_by_sidecar", "attack", "vibrato", "out_of_range", "zone_refits")
    return PartReport(**{k: p.get(k) for k in PART_KEYS if k not in typed},
                      set_by_sidecar=tuple(p["set_by_sidecar"]), level=level,
                      attack=AttackApplied(**attack) if attack else None,
                      vibrato=VibratoApplied(**vibrato) if vibrato else None,
                      out_of_range=tuple(
                          OutOfRange(**{**f, "written": tuple(f["written"]),
                                        "bars": tuple(f["bars"])})
                          for f in p.get("out_of_range", ())),
                      zone_refits=tuple(
                          ZoneRefit(**{**z, "keys": tuple(z["keys"]), "bars": tuple(z["bars"])})
                          for z in p.get("zone_refits", ())))


def _master_json(m: MasterReport) -> dict:
    out = {"preset": m.preset, "description": m.description,
           "files": [{k: v for k, v in vars(f).items() if v is not None} for f in m.files],
           "formats": list(m.formats)}
    for name in ("target_lufs", "target_source", "ceiling_dbtp", "integrated_lufs",
                 "loudness_range_lu", "short_term_max_lufs", "true_peak_dbtp", "sample_peak_dbfs",
                 "peak_to_loudness_db", "mix_lufs", "gain_db", "limiter_max_reduction_db",
                 "limiter_mean_reduction_db", "limiting_time_percent"):
        out[name] = getattr(m, name)
    out["guard"] = {k: v for k, v in vars(m.guard).items()
                    if v is not None or k in ("max_limiting_db", "engaged")}
    out.update({"sample_rate": m.sample_rate, "bit_depth": m.bit_depth,
                "duration_s": m.duration_s, "chain": m.chain})
    if m.album:
        out["album"] = m.album
    return out
