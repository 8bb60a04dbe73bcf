"""report.html: what was done and measured, with pictures, in one self-contained file
(the PNGs are embedded, so it opens from disk with no network)."""
from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.dsp import kernels
from pipeline.files import atomic_path
from pipeline.dsp.loudness import SHORT_TERM_STEPS, STEP_S
from pipeline.dsp.spectrum import long_term_psd
from pipeline.model import AttackApplied, SpanGain, StemLevel, VibratoApplied
from pipeline.output.piece_report import (Guard, MasterReport, MixFileReport, PartReport,
                                          PieceReport, range_notes)

WAVEFORM_COLUMNS = 2400
FIGURE_SIZE = (10, 3.2)
SPECTRUM_SEGMENT = 1 << 15  # 1.5 Hz bins at 48 kHz: the bass is resolved too
SPECTRUM_SEGMENTS = 400     # spread over the piece: a 20-minute master costs what a 5-minute one does
SPECTRUM_RANGE_DB = 90.0
SPECTRUM_SMOOTHING_OCTAVES = 1 / 6
MIX_COLOUR = "#4477aa"
#: one colour per master (colour-blind safe, Paul Tol's bright scheme)
MASTER_COLOURS = ("#ee6677", "#228833", "#ccbb44", "#aa3377", "#66ccee", "#bbbbbb", "#000000")


def _colour(i: int) -> str:
    return MASTER_COLOURS[i % len(MASTER_COLOURS)]


@dataclass(frozen=True)
class Trace:
    """What the pictures need of one signal (mix or master), a few thousand numbers: taken as
    soon as the signal exists, so no master has to stay in memory for the report."""

    label: str
    duration_s: float
    wave_lo: np.ndarray
    wave_hi: np.ndarray
    freqs: np.ndarray
    spectrum_db: np.ndarray      # 1/6-octave smoothed, shifted to equal loudness
    short_term: np.ndarray
    reduction_db: np.ndarray | None = None  # limiter gain reduction per column (masters)


@dataclass(frozen=True)
class Shape:
    """What a picture needs of a signal's audio alone: its waveform's envelope and its
    smoothed long-term spectrum (dB, not yet shifted to equal loudness)."""

    duration_s: float
    wave_lo: np.ndarray
    wave_hi: np.ndarray
    freqs: np.ndarray
    spectrum_db: np.ndarray


def shape(audio: np.ndarray, sample_rate: int) -> Shape:
    lo, hi = _envelope(audio, WAVEFORM_COLUMNS)
    freqs, power = long_term_psd(audio, sample_rate, segment=SPECTRUM_SEGMENT,
                                 segments=SPECTRUM_SEGMENTS)
    power = _octave_smooth(freqs, power, SPECTRUM_SMOOTHING_OCTAVES)
    return Shape(audio.shape[1] / sample_rate, lo, hi, freqs, 10 * np.log10(power + 1e-20))


def trace(label: str, audio: np.ndarray | Shape, sample_rate: int, lufs: float | None,
          short_term: np.ndarray, limiter_gain: SpanGain | None = None) -> Trace:
    """``audio``, or its :func:`shape` taken already (beside the signal's measurement)."""
    s = audio if isinstance(audio, Shape) else shape(audio, sample_rate)
    shift = -(lufs if lufs is not None and np.isfinite(lufs) else 0.0)
    reduction = None
    if limiter_gain is not None and limiter_gain.lowest() < 1.0:
        low = limiter_gain.column_lowest(WAVEFORM_COLUMNS)
        reduction = -20 * np.log10(np.maximum(low, 1e-6))
    return Trace(label, s.duration_s, s.wave_lo, s.wave_hi, s.freqs, s.spectrum_db + shift,
                 np.asarray(short_term), reduction)


STAGE_TITLE = "Stage layout: where each player sits (seen from the audience)"


def report_pictures(report: PieceReport | MixFileReport, mix: Trace, masters: list[Trace], *,
                    stage: str | None = None) -> list[tuple[str, str]]:
    """The report's pictures (title, PNG as base64) for the piece described by ``report``
    (its file names are not needed); ``stage``: the stage's, drawn already."""
    pictures = [
        ("Waveform: mix and master", _waveforms(mix, masters)),
        ("Short-term loudness (3 s) against the target", _loudness(mix, masters, report)),
        ("Long-term spectrum of mix and master, at equal loudness", _spectra(mix, masters)),
    ]
    if any(t.reduction_db is not None for t in masters):
        pictures.append(("Limiter gain reduction", _reduction(masters)))
    if report.parts:
        pictures.insert(0, (STAGE_TITLE, stage or stage_picture(report.parts)))
    return pictures


def stage_picture(parts: tuple[PartReport, ...]) -> str | None:
    """The stage's picture for the report's ``parts`` (None without parts)."""
    return _stage(parts) if parts else None


def write_html(folder: Path, report: PieceReport | MixFileReport,
               pictures: list[tuple[str, str]]) -> Path:
    """Write ``folder/report.html`` for the piece (or mix file) described by ``report``, with
    the :func:`report_pictures`."""
    path = folder / "report.html"
    page = _file_page(report, pictures) if isinstance(report, MixFileReport) else \
        _page(report, pictures)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE, dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _envelope(audio: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest sample of all channels in each of ``columns`` slices."""
    return kernels.column_range(audio, columns)


def _waveforms(mix: Trace, masters: list[Trace]) -> str:
    from matplotlib.figure import Figure

    rows = [mix, *masters]
    fig = Figure(figsize=(10, 1.9 * len(rows)), dpi=100, layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    colours = [MIX_COLOUR] + [_colour(i) for i in range(len(masters))]
    for ax, tr, colour in zip(axes, rows, colours):
        t = np.linspace(0, tr.duration_s, len(tr.wave_lo))
        ax.fill_between(t, tr.wave_lo, tr.wave_hi, color=colour, linewidth=0)
        ax.set_ylim(-1, 1)
        ax.axhline(0, color="#888", linewidth=0.5)
        ax.set_ylabel(tr.label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds")
    return _png(fig)


def _loudness(mix: Trace, masters: list[Trace], report: PieceReport | MixFileReport) -> str:
    fig, ax = _figure()
    offset = STEP_S * SHORT_TERM_STEPS  # a 3 s window ends 3 s after the start
    # earlier masters are drawn wider, so a master that lies on top of another still shows
    rows = [(mix, MIX_COLOUR, 1.0)] + [(m, _colour(i), 1.0 + 1.5 * (len(masters) - 1 - i))
                                       for i, m in enumerate(masters)]
    for tr, colour, width in rows:
        t = offset + STEP_S * np.arange(len(tr.short_term))
        ax.plot(t, np.maximum(tr.short_term, -70), color=colour, linewidth=width, label=tr.label)
    targets: dict[float, list[str]] = {}  # one line per target, naming every preset that has it
    for m in report.masters:
        if m.target_lufs is not None:
            targets.setdefault(m.target_lufs, []).append(m.preset)
    for target, names in targets.items():
        ax.axhline(target, color="#222", linestyle="--", linewidth=1,
                   label=f"target {target:g} LUFS ({', '.join(names)})")
    ax.set_ylabel("LUFS (short-term)")
    ax.set_xlabel("seconds")
    ax.set_ylim(-60, 0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _reduction(masters: list[Trace]) -> str:
    fig, ax = _figure()
    for i, tr in enumerate(masters):
        if tr.reduction_db is None:
            continue
        t = np.linspace(0, tr.duration_s, len(tr.reduction_db))
        ax.fill_between(t, 0, -tr.reduction_db, color=_colour(i), alpha=0.6, linewidth=0,
                        label=tr.label)
    ax.set_ylabel("dB (gain reduction)")
    ax.set_xlabel("seconds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


SECTION_COLOURS = {"strings": "#4477aa", "woodwinds": "#228833", "saxes": "#ccbb44",
                   "brass": "#ee6677", "rhythm": "#aa3377", "percussion": "#66ccee",
                   "voices": "#bbbbbb"}


#: Label offsets (points), tried in turn for a player whose label would run into a neighbour's
#: in the same row (its depth to within ``ROW_DEPTH``): above the dot, below it, higher above.
LABEL_SLOTS = ((8, "bottom"), (-8, "top"), (18, "bottom"))
ROW_DEPTH = 0.03  # seats in one row differ less than this in depth; rows differ by 0.05 or more
CHAR_PAN = 0.015      # about how much pan one character of a label covers at 7 points
CROWDED = 12          # more players than this: one-line labels, on a taller picture


def _stage(parts: tuple[PartReport, ...]) -> str:
    """Players on the stage: pan across, depth up (front row at the bottom, nearest the
    listener); the dot's size and shade fall with depth, its colour is the section bus. Labels
    of neighbours in a row take turns above and below their dots, so a full orchestra's stay
    readable."""
    from matplotlib.figure import Figure

    crowded = len(parts) > CROWDED
    fig = Figure(figsize=(10, 6.0 if crowded else 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.add_patch(_stage_outline())
    for p in parts:
        depth = p.level.depth
        colour = SECTION_COLOURS.get(p.level.bus, "#444444")
        ax.scatter([p.level.pan], [depth], s=260 * (1.0 - 0.6 * depth), color=colour,
                   alpha=1.0 - 0.5 * depth, edgecolors="#222", linewidths=0.6, zorder=3)
    labels = []
    for p in parts:
        level = p.level.mix_lufs
        # the transposition says nothing about where a player sits: "Horn in F 2" → "Horn 2"
        name = re.sub(r"\s+in\s+[A-G][b#♭♯]?(?=\s|$)", "", p.part)
        labels.append(name + ("" if level is None else f" {level:.1f}" if crowded else
                              f"\n{level:.1f} LUFS"))
    size = 6.5 if crowded else 7
    for p, label, (dy, va) in zip(parts, labels, _label_slots([(p.level.pan, p.level.depth) for p in parts], labels, size)):
        ax.annotate(label, (p.level.pan, p.level.depth), textcoords="offset points", xytext=(0, dy),
                    ha="center", va=va, fontsize=size, zorder=4)
    for bus, colour in SECTION_COLOURS.items():
        if any(p.level.bus == bus for p in parts):
            ax.scatter([], [], color=colour, label=bus)
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-0.16, 1.22)
    ax.set_xlabel("pan (left … right)" + ("; beside each name its level in the mix, LUFS"
                                          if crowded else ""))
    ax.set_ylabel("depth (front … back)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper right", fontsize=7, ncol=4)
    return _png(fig)


def _label_slots(seats: list[tuple[float, float]], labels: list[str],
                 size: float) -> list[tuple[int, str]]:
    """Each label's offset, row by row from the left (``seats``: each dot's pan and depth):
    above its dot unless it would run into the label before it there, then below, else
    wherever it overlaps least."""
    slots: list[tuple[int, str]] = [LABEL_SLOTS[0]] * len(seats)
    order = sorted(range(len(seats)), key=lambda i: (seats[i][1], seats[i][0]))
    row_depth, right_edges = None, []
    for i in order:
        pan, depth = seats[i]
        if row_depth is None or depth - row_depth >= ROW_DEPTH:
            row_depth, right_edges = depth, [-np.inf] * len(LABEL_SLOTS)
        half = max(len(line) for line in labels[i].splitlines()) * CHAR_PAN * size / 7 / 2
        left = pan - half
        free = [k for k, edge in enumerate(right_edges) if edge <= left]
        k = free[0] if free else int(np.argmin(right_edges))
        slots[i] = LABEL_SLOTS[k]
        right_edges[k] = pan + half
    return slots


def _stage_outline():
    from matplotlib.patches import Polygon

    # a stage widening toward the audience, drawn under the players
    return Polygon([(-1.05, -0.08), (1.05, -0.08), (0.85, 1.08), (-0.85, 1.08)], closed=True,
                   facecolor="#f4efe6", edgecolor="#c9b99a", zorder=1)


def _octave_smooth(freqs: np.ndarray, power: np.ndarray, octaves: float) -> np.ndarray:
    """Mean power over ±``octaves``/2 around each bin (cumulative sums: no loop per bin)."""
    c = np.concatenate(([0.0], np.cumsum(power)))
    lo = np.searchsorted(freqs, freqs * 2 ** (-octaves / 2))
    hi = np.maximum(np.searchsorted(freqs, freqs * 2 ** (octaves / 2), side="right"), lo + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def _spectra(mix: Trace, masters: list[Trace]) -> str:
    fig, ax = _figure()
    top = -200.0
    # each curve is set to the same loudness, so what differs is the tonal balance the EQ changed
    for tr, colour in [(mix, MIX_COLOUR)] + [(m, _colour(i)) for i, m in enumerate(masters)]:
        keep = tr.freqs >= 20
        top = max(top, float(tr.spectrum_db[keep].max()))
        ax.semilogx(tr.freqs[keep], tr.spectrum_db[keep], color=colour, linewidth=1.2, label=tr.label)
    ax.set_xlim(20, 20000)
    ax.set_ylim(top - SPECTRUM_RANGE_DB, top + 5)
    ax.set_xlabel("Hz")
    ax.set_ylabel("dB (1/6-octave, equal loudness)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def _row(cells) -> str:
    return "<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in cells) + "</tr>"


def _guard(guard: Guard) -> str:
    if guard.engaged:
        return f"stopped {guard.shortfall_lu} LU short: {guard.why}"
    return f"not needed (allows {guard.max_limiting_db:g} dB)"


def _chain(m: MasterReport) -> str:
    e = html.escape
    c = m.chain
    items = [f"sample-rate conversion: {c['sample_rate_conversion']}"]
    if "eq" in c:
        bands = ", ".join(f"{b['type']} {b['hz']:g} Hz {b['gain_db']:+.1f} dB" for b in c["eq"]["bands"])
        items.append(f"EQ toward {c['eq']['target']}: {bands or 'no change needed'}")
        g = c["glue"]
        items.append(f"glue compression: ratio {g['ratio']}:1 (max {g['max_reduction_db']} dB)"
                     if g["ratio"] > 1 else "glue compression: none for this ensemble")
        s = c["stereo"]
        items.append(f"stereo: width {s['width']:g}, mono bass below {s['mono_bass_hz']:g} Hz"
                     if s["mono_bass_hz"] else f"stereo: width {s['width']:g}")
    items.append(f"gain {m.gain_db:+.2f} dB; limiter at {m.ceiling_dbtp:g} dBTP took up to "
                 f"{m.limiter_max_reduction_db} dB ({m.limiting_time_percent} % of the time)")
    ed = c["edges"]
    items.append(f"head trimmed {ed['head_trim_s']} s, tail trimmed {ed['tail_trim_s']} s")
    items.append(f"word length: {c['word_length']}")
    if m.album:
        a = m.album
        items.append(f"album: {a['pieces']} pieces measured as one programme at {a['target_lufs']:g} "
                     f"LUFS" + (f"; {a['limited_by']}" if a.get("limited_by") else ""))
    for f in m.files:
        if f.decoded_true_peak_dbtp is not None:
            items.append(f"{f.file} ({f.codec}): decoded true peak {f.decoded_true_peak_dbtp} "
                         f"dBTP, {f.decoded_lufs} LUFS")
    return "".join(f"<li>{e(i)}</li>" for i in items)


def _attack(attack: AttackApplied | None) -> str:
    """'98 ms (up to 131)' for a part's attack compensation."""
    if not attack:
        return "—"
    held = f", {attack.held_back} held back" if attack.held_back else ""
    return f"{attack.median_ms:g} ms (up to {attack.max_ms:g}{held})"


def _vibrato(vibrato: VibratoApplied | None) -> str:
    """'±15 cents at 5.5 Hz (voices)', or the preset's own swing, for a part's vibrato."""
    if not vibrato:
        return "—"
    if vibrato.added:
        return f"±{vibrato.depth_cents:g} cents at {vibrato.rate_hz:g} Hz ({vibrato.added})"
    return f"its own, ±{vibrato.own_cents:g} cents"


def _ranges(report: PieceReport) -> str:
    """The parts' notes beyond their instruments' ranges and the soundfont's samples."""
    e = html.escape
    items = "\n".join(f"<li><b>{e(p.part)}</b>: {e('; '.join(lines))}</li>"
                      for p in report.parts if (lines := range_notes(p)))
    if not items:
        return ("<h2>Ranges</h2>\n<p>Every note lies within its instrument's practical range, "
                "and the soundfont has samples for all of them.</p>")
    return f"""<h2>Ranges</h2>
<p class="meta">Each part against its instrument's range (sounding pitch; notes named as the
player's part shows them): beyond the <i>practical</i> range, only a professional player can play
a note; beyond the <i>professional</i> range, no player can (see pipeline/data/ranges.toml). Notes
the soundfont's preset has no samples for would be silent: they are played an octave in, or by
the family's fallback preset; performance.mid keeps them as written.</p>
<ul>
{items}
</ul>"""


def _stem_tone(level: StemLevel) -> str:
    """'3200 Hz −2 dB; 2:1 over −32 LUFS, at most 2.1 dB' for a stem's EQ and compressor."""
    items = [f"{b['hz']:g} Hz {b['gain_db']:+g} dB" for b in level.eq]
    c = level.compressor
    if c:
        items.append(f"{c['ratio']:g}:1 over {c['threshold_lufs']:g} LUFS, at most "
                     f"{c['max_reduction_db']:g} dB")
    return "; ".join(items) or "—"


def _head(title: str) -> str:
    """The page's head and its first heading."""
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} — score2audio report</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 1040px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }}
img {{ max-width: 100%; }}
.meta {{ color: #555; }}
</style></head><body>
<h1>{e(title)}</h1>"""


def _masters(masters: tuple[MasterReport, ...]) -> str:
    """The masters' table and what the chain did for each."""
    e = html.escape
    rows = "\n".join(_row((m.preset, ", ".join(f.file for f in m.files),
                           m.integrated_lufs, m.target_lufs, m.loudness_range_lu,
                           m.short_term_max_lufs, m.true_peak_dbtp, m.ceiling_dbtp,
                           m.peak_to_loudness_db, m.limiter_max_reduction_db,
                           m.limiter_mean_reduction_db, _guard(m.guard)))
                     for m in masters)
    chains = "\n".join(f"<h3>{e(m.preset)}: {e(m.description)}</h3>\n<ul>{_chain(m)}</ul>"
                       for m in masters)
    return f"""<h2>Masters</h2>
<table><tr><th>preset</th><th>files</th><th>integrated LUFS</th><th>target</th><th>LRA LU</th>
<th>short-term max</th><th>true peak dBTP</th><th>ceiling</th><th>PLR dB</th>
<th>limiter max GR dB</th><th>mean GR dB</th><th>dynamic-range guard</th></tr>
{rows}</table>
<h2>What the mastering chain did</h2>
{chains}"""


def _images(pictures) -> str:
    e = html.escape
    return "\n".join(f'<h2>{e(title)}</h2>\n<img alt="{e(title)}" src="data:image/png;base64,{png}">'
                     for title, png in pictures)


def _file_page(report: MixFileReport, pictures) -> str:
    """The page of a mix mastered from a file: the mix as measured, the masters, the pictures."""
    e = html.escape
    src = report.source
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.as_dict().items())
    reference = f" · reference {e(report.reference)}" if report.reference else ""
    return f"""{_head(report.title)}
<p class="meta">Mix {e(src.file)}: {e(src.format)}, {src.sample_rate} Hz,
{"mono" if src.channels == 1 else "stereo"}, {src.duration_s:.1f} s ·
{src.integrated_lufs} LUFS, LRA {src.loudness_range_lu} LU, true peak {src.true_peak_dbtp} dBTP ·
mastering settings: {e(report.mastering)}{reference}</p>
{_masters(report.masters)}
{_images(pictures)}
<p class="meta">Time per stage: {e(timings)}. score2audio {e(report.pipeline_version)}.</p>
</body></html>
"""


def _page(report: PieceReport, pictures) -> str:
    e = html.escape
    parts = "\n".join(_row((p.part, p.instrument, p.program, p.level.seat, p.level.pan,
                            p.level.depth, p.level.bus, p.level.peak_dbfs, p.level.loudness_lufs,
                            p.level.calibration_db, p.level.gain_db, p.level.send_db,
                            p.level.mix_lufs, _stem_tone(p.level), _attack(p.attack),
                            _vibrato(p.vibrato), ", ".join(p.set_by_sidecar),
                            p.stem, p.level.mix_stem))
                      for p in report.parts)
    settings = " · ".join(f"{k} {v.value} ({v.source})" for k, v in report.settings if v.value)
    ranges = _ranges(report)
    rehearsal = ""
    if report.rehearsal:
        first = report.rehearsal[0]
        count = f", after a {first.count_in_beats}-beat count-in" if first.count_in_beats else ""
        rows = "\n".join(_row((t.part, t.file, t.integrated_lufs, t.true_peak_dbtp))
                         for t in report.rehearsal)
        rehearsal = (f"<h2>Rehearsal tracks</h2>\n<p class=\"meta\">Each part "
                     f"{first.part_gain_db:+g} dB and centred, the others "
                     f"{first.others_gain_db:+g} dB{e(count)}; mastered as the web demo is."
                     f"</p>\n<table><tr><th>part</th><th>file</th><th>integrated LUFS</th>"
                     f"<th>true peak dBTP (decoded)</th></tr>\n{rows}</table>")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.as_dict().items())
    mix = {"loudness_lufs": report.mix.loudness_lufs, **report.mix.settings}
    return f"""{_head(report.title)}
<p class="meta">{e(report.composer or 'composer unknown')} · {e(report.instrumentation)} ·
ensemble <b>{e(report.ensemble)}</b> ({e(report.ensemble_chosen_by)}) ·
{report.duration_s:.1f} s · {report.sample_rate} Hz</p>
<p class="meta">Settings: {e(settings)}{e(' · sidecar ' + report.sidecar if report.sidecar else '')}</p>
{ranges}
{_masters(report.masters)}
{rehearsal}
<p>Mix: peak {mix['peak_dbfs']} dBFS, {mix['loudness_lufs']} LUFS, room {e(mix['room'])}
(RT60 {mix['rt60_s']} s), gain {mix['mix_gain_db']} dB.</p>
{_images(pictures)}
<h2>Parts</h2>
<p class="meta">Stem levels: the dry stem as rendered (peak, LUFS); the balance calibration that
brings mf on this instrument to the common level; the total gain in the mix (calibration, seat,
section bus, depth and the mix's headroom gain); the reverb send; and the player's loudness in
the mix before the room; the stem's family EQ and compressor (its threshold, and the most gain
reduction it applied); how much earlier than written its notes start, to be heard on the beat
(attack compensation); the vibrato added to its long notes, or the samples' own; what the
piece's sidecar set.</p>
<table><tr><th>part</th><th>instrument</th><th>program</th><th>seat</th><th>pan</th><th>depth</th>
<th>bus</th><th>stem peak dBFS</th><th>stem LUFS</th><th>calibration dB</th><th>mix gain dB</th>
<th>send dB</th><th>in mix LUFS</th><th>EQ / compressor</th><th>attack</th><th>vibrato</th>
<th>sidecar</th><th>stem</th>
<th>mix stem</th></tr>
{parts}</table>
<p class="meta">Soundfont {e(report.soundfont)}. Time per stage: {e(timings)}.
score2audio {e(report.pipeline_version)}.</p>
</body></html>
"""
