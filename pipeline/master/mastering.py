"""Master stage: the summed mix finished for its destination (a delivery preset).

The chain, in order:

1. sample-rate conversion to the preset's rate — first, so that everything after it, the
   true-peak limiter above all, acts on the samples that are delivered (converting after the
   limiter lets the converter's filter ring over the ceiling);
2. tonal balance: a gentle minimum-phase EQ fitted toward the ensemble's target curve, or toward a
   reference track's spectrum (``--reference``), plus the preset's high shelf;
3. glue compression: slow, low ratio, scaled by the ensemble (none for classical ensembles);
4. stereo image: side level and mono bass below the preset's frequency;
5. loudness gain toward the target, capped by the dynamic-range guard: the limiter may take at
   most ``min(preset, ensemble)`` dB; when the target needs more, the master stops lower and says so;
6. true-peak limiter: look-ahead without delay, program-dependent release, detection on the 4×
   oversampled signal (see :mod:`pipeline.master.limiter`);
7. silence trimming and fades at the head and tail — before the word length is reduced, so the
   dither is never faded;
8. word length: TPDF dither when the format has fewer bits than the float master (16-bit), plain
   rounding to the 24-bit grid otherwise.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from pipeline.dsp import kernels
from pipeline.dsp.audio import (BLOCK_FRAMES, PEAK_BLOCK, block_peaks, db_to_gain, gain_to_db,
                                peak_blocks, requantize, sample_peak, valid_audio)
from pipeline.settings.config import SAMPLE_RATES, Mastering, Preset
from pipeline.master.limiter import glue_gain
from pipeline.master.loud_spans import LoudSpans, loud_spans
from pipeline.errors import AudioFileError, ReferenceTrackError
from pipeline.files import read_audio
from pipeline.dsp.loudness import gated_lufs, integrated_lufs, measure, measure_with_true_peak
from pipeline.model import IN_MEMORY, AudioBuffers, Master, Mix, SpanGain
from pipeline.master.tone import (apply_tone, band_levels, correction, fit_eq, response_db, tilt_target,
                   tone_settings)

#: The limiter aims this far under the ceiling, so reconstruction between samples stays under it.
CEILING_MARGIN_DB = 0.15
#: Lossy coding adds overshoot of its own; aiming lower spares a second encode.
LOSSY_CEILING_MARGIN_DB = 0.5
LOUDNESS_TOLERANCE_LU = 0.05
REFERENCE_AMOUNT = 0.8      # how far toward a reference track's spectrum
REFERENCE_MAX_DB = 6.0
SILENCE_BELOW_PEAK_DB = 65.0  # quieter than this under the master's peak counts as silence
DITHER_SEED = 2024          # dither is noise, but the same piece always masters to the same file
MIN_REFERENCE_S = 3.0
STATS_CHUNK = 1 << 20  # frames at a time where the whole would need a whole-length temporary
#: The limiter's reach is kept for reductions this much deeper than the guard allows: the
#: gain search lowers its aim a little when true peaks overshoot between samples.
DEEPEST_MARGIN_DB = 3.0
REDUCED_DB = 0.1  # a frame whose gain is reduced by more than this counts as limited (or glued)


@dataclass(frozen=True)
class Reference:
    """A finished recording whose tonal balance and loudness a master should match."""

    path: Path
    band_db: np.ndarray
    lufs: float


def load_reference(path: str | Path) -> Reference:
    """Read a reference track (WAV, FLAC, OGG, MP3…) and measure its spectrum and loudness."""
    path = Path(path)
    audio, sr = read_audio(path, error=ReferenceTrackError, what="reference track")
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if audio.shape[1] < MIN_REFERENCE_S * sr:
        raise ReferenceTrackError(f"{path}: the reference track is shorter than "
                                  f"{MIN_REFERENCE_S:g} s; give a whole piece")
    lufs = integrated_lufs(audio[:2], sr)
    if not np.isfinite(lufs):
        raise ReferenceTrackError(f"{path}: the reference track is silent")
    return Reference(path, band_levels(audio[:2], sr), lufs)


#: How the chain masters a mix whose ensemble it is not told: the preset's chain as written
#: (its full glue, its own guard), toward the tonal target most templates share.
PRESET_ONLY = Mastering(tilt_db_per_octave=-4.5, glue_amount=1.0, max_limiting_db=float("inf"),
                        relative_loudness_lu=0.0)
#: The rates a mix from a file may have: the chain down-samples to the preset's rate first and
#: up-samples last; below the lowest delivery rate the EQ's bands (to 14 kHz) and the
#: presets' shelves would lie at or over the mix's Nyquist frequency.
MIX_RATES = (min(SAMPLE_RATES), 192000)


def load_mix(path: str | Path) -> Mix:
    """A mix from a file (WAV, FLAC…: mono or stereo, 16/24/32-bit or float, 44.1–192 kHz)
    for :func:`master`: mono is played on both channels. Raises :class:`AudioFileError` with
    one line naming the file and the problem."""
    path = Path(path)
    audio, sr = read_audio(path, what="mix")
    if audio.shape[0] > 2:
        raise AudioFileError(f"{path}: {audio.shape[0]} channels; the mastering chain takes a "
                             f"stereo (or mono) mix")
    if not MIX_RATES[0] <= sr <= MIX_RATES[1]:
        raise AudioFileError(f"{path}: sample rate {sr} Hz; the mastering chain takes "
                             f"{MIX_RATES[0]}–{MIX_RATES[1]} Hz (resample the mix first)")
    channels = audio.shape[0]
    if channels == 1:
        audio = np.repeat(audio, 2, axis=0)
    loud = measure(audio, sr)
    if not np.isfinite(loud.integrated_lufs()):
        raise AudioFileError(f"{path}: the mix is silent (under the meter's -70 LUFS gate): "
                             f"nothing to master")
    info = sf.info(str(path))
    return Mix(audio, sr, (), {"source": str(path), "format": f"{info.format} {info.subtype}",
                               "channels": channels},
               loud.integrated_lufs(), loud.short_term_lufs())


@dataclass
class Prepared:
    """A mix through the chain up to the loudness gain, with what the gain stage needs."""

    preset: Preset
    audio: np.ndarray           # (2, frames) float32 at ``sample_rate``
    sample_rate: int            # where the chain runs
    out_rate: int               # what is delivered (higher only when up-sampling)
    loud: LoudSpans | None      # where the limiter can act, for fast loudness iteration
    steps: np.ndarray           # K-weighted power per 100 ms step (what an album measures)
    lufs: float                 # integrated loudness before the gain
    true_peak_dbtp: float       # before the gain
    target_lufs: float | None
    target_source: str
    guard_db: float
    mix_lufs: float
    settings: dict = field(default_factory=dict)
    #: the audio's :func:`~pipeline.dsp.audio.block_peaks` (None: not known)
    block_peaks: np.ndarray | None = None

    @property
    def ceiling(self) -> float:
        margin = LOSSY_CEILING_MARGIN_DB if self.preset.lossy else CEILING_MARGIN_DB
        return self.preset.ceiling_dbtp - margin

    @property
    def gain_bound_db(self) -> float:
        """The most gain the guard allows: the limiter would then take exactly ``guard_db``."""
        return self.ceiling + self.guard_db - self.true_peak_dbtp

    def summary(self) -> Prepared:
        """A copy without the audio: what an album needs to know of the piece."""
        return replace(self, audio=None, loud=None, block_peaks=None)


def _resample(audio: np.ndarray, src: int, dst: int, buffers: AudioBuffers) -> np.ndarray:
    if src == dst:
        return audio
    g = np.gcd(src, dst)
    frames = -(-audio.shape[1] * (dst // g) // (src // g))
    out = buffers.empty(audio.shape[0], frames)

    def one(k: int) -> None:
        out[k] = resample_poly(audio[k], dst // g, src // g)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(audio.shape[0])))
    return out


def prepare(mix: Mix, preset: Preset, mastering: Mastering,
            reference: Reference | None = None, *, in_place: bool = False,
            mix_in_use: Callable[[int | None], None] | None = None,
            buffers: AudioBuffers = IN_MEMORY) -> Prepared:
    """Run the chain up to the loudness gain (steps 1–4) and measure what the gain needs
    (``buffers``: where its whole-piece arrays are made).

    ``in_place``: the chain may work in the mix's own audio (it is used up), so that a long
    piece needs one whole stereo array rather than two; ``mix_in_use(frames)`` is then called
    before the chain writes into the mix's first ``frames`` (None: all of it), e.g. to wait
    until the mix's file is written that far: the tone stage follows a writer chunk by chunk."""
    def taking_the_mix(frames: int | None = None) -> None:
        nonlocal mix_in_use
        if in_place and mix_in_use is not None:
            mix_in_use(frames)
            if frames is None:
                mix_in_use = None

    # down-sampling comes first, so the limiter sees the delivered samples; up-sampling comes
    # last (finish), as the limiter's 4× oversampled detection already covers the new samples
    out_rate = preset.sample_rate or mix.sample_rate
    sr = min(out_rate, mix.sample_rate)
    audio = _resample(mix.audio, mix.sample_rate, sr, buffers)
    own = in_place or audio is not mix.audio  # audio the chain may change in place
    settings: dict = {"sample_rate_conversion": f"{mix.sample_rate} → {out_rate} Hz"
                      if out_rate != mix.sample_rate else "none"}
    peaks = None  # the block peaks of ``audio``, when the pass that wrote it kept them
    target, source = preset.target_lufs, "preset"
    if preset.processing:
        measured = band_levels(audio, sr)
        if reference is not None:
            wanted = correction(measured, reference.band_db, amount=REFERENCE_AMOUNT,
                                max_db=REFERENCE_MAX_DB, sample_rate=sr)
            eq_max, curve = REFERENCE_MAX_DB, f"reference {reference.path.name}"
            if preset.follow_reference_loudness and reference.lufs < target:
                target, source = reference.lufs, f"reference {reference.path.name}"
        else:
            wanted = correction(measured, tilt_target(mastering.tilt_db_per_octave),
                                amount=preset.eq_amount, max_db=preset.eq_max_db, sample_rate=sr)
            eq_max = preset.eq_max_db
            curve = f"tilt {mastering.tilt_db_per_octave:g} dB/octave"
        eq_sos, bands = fit_eq(wanted, sr, max_db=eq_max)
        tone = tone_settings(eq_sos, bands, sr, width=preset.width,
                             mono_bass_hz=preset.mono_bass_hz, high_shelf_hz=preset.high_shelf_hz,
                             high_shelf_db=preset.high_shelf_db)
        in_mix = own and audio is mix.audio
        kept = not own and not tone.identity  # the mix itself, to be kept: filtered into another
        peaks = peak_blocks(audio.shape[1])
        audio = apply_tone(audio, tone, out=buffers.empty(*audio.shape) if kept else audio,
                           before_write=taking_the_mix if in_mix else None, peaks=peaks)
        if in_mix:
            taking_the_mix()  # what follows works on the whole
        own = own or audio is not mix.audio
        fitted = response_db(eq_sos, sr)
        ratio = 1.0 + (preset.glue_ratio - 1.0) * mastering.glue_amount
        glue_db = (0.0, 0.0)
        if ratio > 1.0:
            glue = glue_gain(audio, sr, ratio=ratio,
                             threshold_above_programme_db=preset.glue_threshold_lu,
                             attack_ms=preset.glue_attack_ms, release_ms=preset.glue_release_ms)
            # audio may still be the mix itself, to be kept: then the glued audio is new
            glued = audio if own else buffers.empty(*audio.shape)
            parts, peaks = [], peak_blocks(audio.shape[1])
            for start in range(0, audio.shape[1], STATS_CHUNK):
                stop = min(audio.shape[1], start + STATS_CHUNK)
                part = glue.slice(start, stop)
                parts.append(kernels.reduction_sums(part, REDUCED_DB))
                kernels.scaled(audio[:, start:stop], part, glued[:, start:stop], start,
                               PEAK_BLOCK, peaks)
            audio, own = glued, True
            glue_db = _reduction_stats(parts, audio.shape[1])[:2]
        settings.update({
            "eq": {"target": curve, "bands": list(tone.eq_bands),
                   "largest_correction_db": round(float(np.abs(wanted).max()), 2),
                   "fit_error_db": round(float(np.abs(fitted - wanted)[wanted != 0].max()), 2)
                   if np.any(wanted) else 0.0},
            "glue": {"ratio": round(ratio, 2), "threshold_above_programme_db": preset.glue_threshold_lu,
                     "attack_ms": preset.glue_attack_ms, "release_ms": preset.glue_release_ms,
                     "max_reduction_db": round(glue_db[0], 2),
                     "mean_reduction_db": round(glue_db[1], 3)},
            "stereo": {"width": preset.width, "mono_bass_hz": preset.mono_bass_hz},
        })
    written = audio
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if peaks is None or audio is not written:
        peaks = block_peaks(audio)  # one pass for the check, the peak and the peak map
    audio = valid_audio(audio, name="master", peaks=peaks)
    taking_the_mix()  # finish() works in it
    guard = min(preset.max_limiting_db, mastering.max_limiting_db) if preset.processing else 0.0
    loud = loud_spans(audio, sr, floor=float(peaks.max(initial=0.0)) * db_to_gain(-guard - 1.0),
                      deepest_db=guard + DEEPEST_MARGIN_DB, buffers=buffers, block_peaks=peaks)
    return Prepared(preset, audio, sr, out_rate, loud, loud.steps, gated_lufs(loud.steps),
                    gain_to_db(loud.true_peak), target, source, guard, mix.loudness_lufs,
                    settings, peaks)


def _reduction_db(gain: np.ndarray) -> np.ndarray:
    """Gain reduction in dB (≥ 0) per frame, float32."""
    return np.float32(-20) * np.log10(np.clip(gain, np.float32(1e-6), np.float32(1.0)))


def _reduction_stats(sums, frames: int) -> tuple[float, float, float]:
    """The largest and the mean gain reduction (dB) of a per-frame gain over ``frames``, and
    the fraction of frames reduced by more than :data:`REDUCED_DB`, from the
    :func:`~pipeline.dsp.kernels.reduction_sums` of its parts (frames not in any are not
    reduced); all 0 when nothing is. Logarithms are taken only where the gain works (the mean
    is summed in double precision: it may differ from a float32 mean of the whole in its last
    reported decimal)."""
    if frames == 0:
        return 0.0, 0.0, 0.0
    low, total, over = 1.0, 0.0, 0
    for lo, t, n in sums:
        low, total, over = min(low, lo), total + t, over + n
    if low >= 1.0:
        return 0.0, 0.0, 0.0
    return float(_reduction_db(np.float32(low))), total / frames, over / frames


def finish(prep: Prepared, *, target_lufs: float | None = None, album: dict | None = None,
           in_place: bool = False, ready: Callable[[np.ndarray, int], None] | None = None,
           buffers: AudioBuffers = IN_MEMORY) -> Master:
    """Gain, limiter, edges and word length (steps 5–8); ``target_lufs`` overrides the
    preset's (an album's level for this piece). ``in_place``: ``prep`` is used up (its audio
    becomes the master's). ``ready(audio, sample_rate)`` is called with the master's final
    audio before it is measured (its files can be written meanwhile; it must not change).
    ``buffers``: where its whole-piece arrays are made."""
    preset, sr = prep.preset, prep.sample_rate
    target = prep.target_lufs if target_lufs is None else target_lufs
    frames = prep.audio.shape[1]
    guard = {"max_limiting_db": prep.guard_db, "engaged": False}
    grid = None  # the bit depth when the word length is set with the gain
    if not preset.processing or not np.isfinite(prep.lufs):
        peak = gain_to_db(sample_peak(prep.audio))
        gain_db = 0.0 if preset.processing else min(0.0, preset.ceiling_dbtp - peak)
        out = prep.audio if in_place else buffers.empty(*prep.audio.shape)
        np.multiply(prep.audio, np.float32(db_to_gain(gain_db)), out=out)
        gr = SpanGain(frames)
        edges: dict = {"head_trim_s": 0.0, "tail_trim_s": 0.0}
    else:
        gain_db, gr, guard = _loudness_gain(prep, target)
        if in_place:  # what only the gain search needed
            prep.loud = None
        gain = np.float32(db_to_gain(gain_db))
        plan = _edge_plan(prep, gr, gain)
        # the gain, the edges and (when nothing comes between) the word length in one pass
        grid = None if preset.bit_depth == 32 or preset.dither or prep.out_rate != sr \
            else preset.bit_depth
        kept = plan.stop - plan.start
        out = _crop_view(prep.audio, kept) if in_place else buffers.empty(len(prep.audio), kept)
        peaks = peak_blocks(kept)
        _gain_and_edges(prep.audio, out, gr, gain, plan, grid, peaks)
        gr, edges = gr.crop(plan.start, plan.stop), plan.report
    upsampled = prep.out_rate != sr
    if upsampled:
        # measured before the up-sampling, which adds no content (and would double the cost)
        loud, tp = measure_with_true_peak(out, sr)
        out = _resample(out, sr, prep.out_rate, buffers)  # the limiter gain stays at the chain's rate
        sr = prep.out_rate
    if grid is None:
        peaks = peak_blocks(out.shape[1])  # of the final audio, kept as the word length is set
        out, word = _word_length(out, preset, in_place=True, peaks=peaks)
    else:
        word = _word_length_note(preset)
    out = valid_audio(out, name="master", peaks=peaks)
    if ready is not None:
        ready(out, sr)
    if not upsampled:
        loud, tp = measure_with_true_peak(out, sr, block_peaks=peaks)
    max_reduction, mean_reduction, limiting = _reduction_stats(
        [kernels.reduction_sums(g, REDUCED_DB) for g in gr.gains], gr.frames)
    integrated = loud.integrated_lufs()
    st = loud.short_term_lufs()
    measurements = {
        "target_lufs": target, "target_source": prep.target_source if target_lufs is None
        else "album", "ceiling_dbtp": preset.ceiling_dbtp,
        "integrated_lufs": _r(integrated), "loudness_range_lu": round(loud.range_lu(), 2),
        "short_term_max_lufs": _r(float(st.max())) if st.size else None,
        "true_peak_dbtp": round(tp, 2),
        "sample_peak_dbfs": round(gain_to_db(float(peaks.max(initial=0.0))), 2),
        "peak_to_loudness_db": _r(tp - integrated),
        "mix_lufs": _r(prep.mix_lufs), "gain_db": round(float(gain_db), 2),
        "limiter_max_reduction_db": round(max_reduction, 2),
        "limiter_mean_reduction_db": round(mean_reduction, 3),
        "limiting_time_percent": round(100 * limiting, 2),
        "guard": guard, "sample_rate": sr, "bit_depth": preset.bit_depth,
        "duration_s": round(out.shape[1] / sr, 3),
        "chain": {**prep.settings, "edges": edges, "word_length": word},
    }
    if album:
        measurements["album"] = album
    return Master(out, sr, preset.name, measurements, st, gr)


def master(mix: Mix, preset: Preset, mastering: Mastering, reference: Reference | None = None, *,
           target_lufs: float | None = None, album: dict | None = None,
           consume_mix: bool = False,
           mix_in_use: Callable[[int | None], None] | None = None,
           ready: Callable[[np.ndarray, int], None] | None = None,
           buffers: AudioBuffers = IN_MEMORY) -> Master:
    """The whole chain on one piece (``target_lufs``: an album's level for it, see
    :func:`album_targets`). ``consume_mix``: the chain works in the mix's own audio, which is
    used up (for the last master made from a mix: memory for one whole stereo array less;
    ``mix_in_use`` is called before the chain writes into it, see :func:`prepare`).
    ``ready``, ``buffers``: see :func:`finish`."""
    prep = prepare(mix, preset, mastering, reference, in_place=consume_mix, mix_in_use=mix_in_use,
                   buffers=buffers)
    # the prepared audio is this call's own unless it is still the mix itself, to be kept
    return finish(prep, target_lufs=target_lufs, album=album,
                  in_place=consume_mix or prep.audio is not mix.audio, ready=ready,
                  buffers=buffers)


#: a loop is mastered this many times round, the middle turn kept
LOOP_TURNS = 3


def master_loop(mix: Mix, preset: Preset, mastering: Mastering,
                reference: Reference | None = None, *,
                ready: Callable[[np.ndarray, int], None] | None = None,
                buffers: AudioBuffers = IN_MEMORY) -> Master:
    """The master of a mix that loops (:func:`pipeline.mix.loop.fold_loop`): the chain runs
    over it played three times round and keeps the middle turn, so its EQ, glue and limiter
    are in the state at the turn's end that they were in at its start and the loop joins
    itself without a step; nothing is trimmed or faded at its edges."""
    turns = replace(mix, audio=np.tile(mix.audio, (1, LOOP_TURNS)))
    m = master(turns, replace(preset, trim_silence=False), mastering, reference,
               consume_mix=True, buffers=buffers)
    turn = m.audio.shape[1] // LOOP_TURNS
    audio = np.ascontiguousarray(m.audio[:, turn:2 * turn])
    if ready is not None:
        ready(audio, m.sample_rate)
    chain_turn = m.limiter_gain.frames // LOOP_TURNS  # the limiter's gain is at the chain's rate
    steps = m.short_term_lufs.size // LOOP_TURNS
    return replace(m, audio=audio, limiter_gain=m.limiter_gain.crop(chain_turn, 2 * chain_turn),
                   short_term_lufs=m.short_term_lufs[steps:2 * steps],
                   measurements={**m.measurements,
                                 "duration_s": round(turn / m.sample_rate, 3)})


def _r(value: float) -> float | None:
    return round(float(value), 2) if np.isfinite(value) else None


def _loudness_gain(prep: Prepared, target: float) -> tuple[float, SpanGain, dict]:
    """The gain toward ``target`` (compensating what the limiter takes), capped by the guard,
    and the limiter's gain per frame."""
    bound = prep.gain_bound_db
    gain_db = min(target - prep.lufs, bound)
    ceiling, loud = prep.ceiling, prep.loud
    for _ in range(8):
        gain = np.float32(db_to_gain(gain_db))
        gr = loud.limiter_gain(ceiling, gain)
        reached = gated_lufs(loud.step_powers(gr, gain))
        short = target - reached
        if abs(short) > LOUDNESS_TOLERANCE_LU and gain_db < bound - 1e-3:
            gain_db = min(gain_db + short, bound)  # limiting took some loudness: give it back
            continue
        tp = gain_to_db(loud.peak(gr, gain))
        if tp <= prep.preset.ceiling_dbtp - 0.02:
            break
        ceiling -= tp - prep.preset.ceiling_dbtp + 0.05  # gain ripple between samples: aim lower
    engaged = target - reached > LOUDNESS_TOLERANCE_LU * 2 and gain_db >= bound - 1e-3
    guard = {"max_limiting_db": prep.guard_db, "engaged": bool(engaged)}
    if engaged:
        guard.update({
            "reached_lufs": round(reached, 2), "shortfall_lu": round(target - reached, 2),
            "why": (f"reaching {target:g} LUFS would need more than {prep.guard_db:g} dB of "
                    f"limiting on the loudest peaks; the master stops at {reached:.1f} LUFS to "
                    f"keep the dynamics" if prep.guard_db > 0 else
                    f"no brickwall limiting in this preset: the level stops where the peaks "
                    f"reach {prep.preset.ceiling_dbtp:g} dBTP, at {reached:.1f} LUFS")})
    return gain_db, gr, guard


@dataclass(frozen=True)
class _EdgePlan:
    """The edges of a gained signal (step 7), worked out before it is written: silence is
    trimmed at the head (keeping a lead-in) and the tail, with raised-cosine fades. The
    frames kept (``start``…``stop`` of the signal), the fade-in's length ending at ``first``
    (counted from ``start``; the lead-in before it is silenced), the fade-out's length at the
    end, and the report's entry."""

    start: int
    stop: int
    first: int = 0
    fade_in: int = 0
    fade_out: int = 0
    report: dict = field(default_factory=lambda: {"head_trim_s": 0.0, "tail_trim_s": 0.0})


def _edge_plan(prep: Prepared, gr: SpanGain, gain: np.float32) -> _EdgePlan:
    """The :class:`_EdgePlan` of ``prep.audio`` times ``gr`` and ``gain``, found without the
    gained signal: its peak from the audio's block peaks (where the limiter does
    nothing, a block's gained peak is its peak times the gain: rounding keeps the order)
    and the frames where the limiter acts; its loud span searched for from either end."""
    audio, sr, preset = prep.audio, prep.sample_rate, prep.preset
    frames = audio.shape[1]
    if not preset.trim_silence or frames == 0:
        return _EdgePlan(0, frames)
    peak = _gained_peak(audio, prep.block_peaks, gr, gain)
    loud = _gained_loud_span(audio, gr, gain, peak * db_to_gain(-SILENCE_BELOW_PEAK_DB))
    if loud is None:
        return _EdgePlan(0, frames)
    first, last = loud
    start = max(0, first - int(preset.lead_in_ms / 1000 * sr))
    fade_out = int(preset.fade_out_ms / 1000 * sr)
    stop = min(frames, last + fade_out)
    fade_in = min(int(preset.fade_in_ms / 1000 * sr), first - start)  # only over the lead-in
    return _EdgePlan(start, stop, first - start, max(0, fade_in), min(fade_out, stop - start),
                     {"head_trim_s": round(start / sr, 3),
                      "tail_trim_s": round((frames - stop) / sr, 3),
                      "lead_in_ms": preset.lead_in_ms, "fade_in_ms": preset.fade_in_ms,
                      "fade_out_ms": preset.fade_out_ms})


def _gained_peak(audio: np.ndarray, peaks: np.ndarray | None, gr: SpanGain,
                 gain: np.float32) -> float:
    """:func:`sample_peak` of ``audio`` times ``gr`` and ``gain`` (``peaks``: the audio's
    block peaks), reading only the blocks where ``gr`` has stretches."""
    frames = audio.shape[1]
    if peaks is None:
        peaks = block_peaks(audio)
    touched = np.zeros(peaks.size, dtype=bool)
    for s, g in zip(gr.starts, gr.gains):
        if g.size:
            touched[s // PEAK_BLOCK:-(-(s + g.size) // PEAK_BLOCK)] = True
    rest = peaks[~touched]
    peak = float(rest.max() * gain) if rest.size else 0.0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], touched.view(np.int8), [0]))))
    for a, b in zip(edges[::2] * PEAK_BLOCK, np.minimum(edges[1::2] * PEAK_BLOCK, frames)):
        for lo in range(a, b, STATS_CHUNK):
            hi = min(b, lo + STATS_CHUNK)
            peak = max(peak, float(np.abs(audio[:, lo:hi] * (gr.slice(lo, hi) * gain)).max()))
    return peak


def _gained_loud_span(audio: np.ndarray, gr: SpanGain, gain: np.float32,
                      floor: float) -> tuple[int, int] | None:
    """The first and last frame where any channel of ``audio`` times ``gr`` and ``gain``
    exceeds ``floor`` (None when none does; compared in float32), the gained frames made a
    block at a time from either end until found."""
    frames, block = audio.shape[1], BLOCK_FRAMES
    level = float(np.float32(floor))

    def gained(lo: int, hi: int) -> np.ndarray:
        return audio[:, lo:hi] * (gr.slice(lo, hi) * gain)

    for lo in range(0, frames, block):
        first = kernels.first_above(gained(lo, min(frames, lo + block)), level)
        if first >= 0:
            break
    else:
        return None
    for hi in range(frames, 0, -block):
        last = kernels.last_above(gained(max(0, hi - block), hi), level)
        if last >= 0:
            return lo + first, max(0, hi - block) + last
    return None


def _crop_view(audio: np.ndarray, frames: int) -> np.ndarray:
    """The first ``2 · frames`` samples of C-contiguous ``audio`` as (channels, frames): where
    :func:`~pipeline.dsp.audio.crop_in_place` puts what it keeps."""
    return audio.reshape(-1)[:audio.shape[0] * frames].reshape(audio.shape[0], frames)


def _gain_and_edges(audio: np.ndarray, out: np.ndarray, gr: SpanGain, gain: np.float32,
                    plan: _EdgePlan, bits: int | None, peaks: np.ndarray) -> None:
    """``out`` = ``audio`` times ``gr`` and ``gain``, its frames ``plan.start``…``plan.stop``
    kept, with the plan's fades (the same samples as gaining the whole, cropping, fading and,
    with ``bits``, rounding to their grid as :func:`_word_length` does without dither), a
    channel at a time, front to back: ``out`` may be ``audio``'s own memory
    (:func:`_crop_view`), each sample read before its place is written. ``peaks``: the
    result's block peaks (with ``bits``)."""
    frames = out.shape[1]
    head = plan.first if plan.fade_in > 0 else 0  # the silenced lead-in and the fade-in
    tail = frames - plan.fade_out
    scale = np.float32(1 << (bits - 1)) if bits else None
    for c in range(audio.shape[0]):
        if head > tail:  # a short piece: all edge
            _edge_part(audio, out, gr, gain, plan, c, 0, frames, scale, peaks)
            continue
        _edge_part(audio, out, gr, gain, plan, c, 0, head, scale, peaks)
        for lo in range(head, tail, STATS_CHUNK):
            hi = min(tail, lo + STATS_CHUNK)
            a = plan.start + lo
            g = gr.slice(a, a + hi - lo) * gain
            if scale is None:
                kernels.scaled(audio[c:c + 1, a:a + hi - lo], g, out[c:c + 1, lo:hi], lo,
                               PEAK_BLOCK, peaks)
            else:
                kernels.gained_to_grid(audio[c:c + 1, a:a + hi - lo], g, out[c:c + 1, lo:hi],
                                       scale, lo, PEAK_BLOCK, peaks)
        _edge_part(audio, out, gr, gain, plan, c, tail, frames, scale, peaks)


def _edge_part(audio: np.ndarray, out: np.ndarray, gr: SpanGain, gain: np.float32,
               plan: _EdgePlan, c: int, lo: int, hi: int, scale: np.float32 | None,
               peaks: np.ndarray) -> None:
    """Frames ``lo``…``hi`` (of the kept ones) of channel ``c`` of :func:`_gain_and_edges`,
    with numpy, in this order: the gain, the fade-in, the lead-in's silence, the fade-out."""
    if hi <= lo:
        return
    a = plan.start + lo
    part = audio[c, a:a + hi - lo] * (gr.slice(a, a + hi - lo) * gain)
    frames = out.shape[1]
    if plan.fade_in > 0:
        ramp = slice(plan.first - plan.fade_in, plan.first)
        lo_r, hi_r = max(lo, ramp.start), min(hi, ramp.stop)
        if lo_r < hi_r:
            part[lo_r - lo:hi_r - lo] *= _cosine(plan.fade_in)[lo_r - ramp.start:hi_r - ramp.start]
        if lo < ramp.start:
            part[:min(hi, ramp.start) - lo] = 0.0
    if plan.fade_out > 0:
        begin = frames - plan.fade_out
        lo_f = max(lo, begin)
        if lo_f < hi:
            part[lo_f - lo:] *= _cosine(plan.fade_out)[::-1][lo_f - begin:hi - begin]
    out[c, lo:hi] = part
    if scale is not None:
        kernels.to_grid(out[c:c + 1, lo:hi], scale, False, lo, PEAK_BLOCK, peaks)


def _cosine(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def _word_length(out: np.ndarray, preset: Preset, *, in_place: bool = False,
                 peaks: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Put the samples on the format's grid: TPDF dither (±1 LSB) then rounding for 16-bit,
    rounding alone for 24-bit (a float32 master has 24 bits of mantissa: nothing to dither).
    ``peaks``: filled with the result's :func:`~pipeline.dsp.audio.block_peaks`."""
    if preset.bit_depth == 32:
        x = out.astype(np.float32, copy=not in_place)
        if peaks is not None:
            peaks[:] = block_peaks(x)
        return x, "32-bit float, untouched"
    x = requantize(out, preset.bit_depth, dither=preset.dither, seed=DITHER_SEED, in_place=in_place,
                   peaks=peaks)
    return x, _word_length_note(preset)


def _word_length_note(preset: Preset) -> str:
    if preset.dither:
        return f"{preset.bit_depth}-bit, TPDF dither (±1 LSB)"
    return f"{preset.bit_depth}-bit, rounded"


def album_targets(pieces: list[tuple[str, Prepared, float]], target: float) -> tuple[list[float], dict]:
    """Per-piece loudness targets for an album of ``pieces`` (name, prepared, the ensemble's
    relative loudness in LU) so that it measures ``target`` as one programme.

    Pieces of one ensemble get the same level; ensembles keep their relative loudness; when a
    piece's guard cannot reach its level, the whole album comes down with it so none sticks out.
    """
    levels = [target + rel for _, _, rel in pieces]
    gains = [lv - p.lufs for lv, (_, p, _) in zip(levels, pieces)]
    combined = np.concatenate([p.steps * db_to_gain(2 * g) for g, (_, p, _) in zip(gains, pieces)])
    shift = target - gated_lufs(combined)
    over = [g + shift - p.gain_bound_db for g, (_, p, _) in zip(gains, pieces)]
    worst = int(np.argmax(over))
    note = {"target_lufs": target, "pieces": len(pieces), "limited_by": None}
    if over[worst] > 0:
        shift -= over[worst]
        note["limited_by"] = (f"{pieces[worst][0]}: its dynamic-range guard "
                              f"({pieces[worst][1].guard_db:g} dB of limiting) sets the album's level")
    note["album_shift_lu"] = round(shift, 2)
    return [lv + shift for lv in levels], note
