"""Loudness (ITU-R BS.1770-4, EBU R128 loudness range) and true peak (4× oversampled).

Whole arrays are measured with the channels filtered on separate threads (scipy's filters
release the GIL); stems are measured block by block with :class:`LoudnessMeter`.
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyloudnorm
from scipy.signal import firwin, tf2sos

from pipeline.dsp import kernels
from pipeline.dsp.audio import PEAK_BLOCK, block_peaks as sample_peak_blocks, gain_to_db

TRUE_PEAK_OVERSAMPLING = 4  # at 48 kHz and above; lower rates are taken to 192 kHz or more
TRUE_PEAK_RATE = 192000     # BS.1770-4's 4× of 48 kHz, and the rate ffmpeg's ebur128 resamples to
_CHUNK = 1 << 18
_SPAN = 1 << 16        # frames oversampled at a time (one task for a thread)
THREADS = 2

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
STEP_S = 0.1          # 100 ms steps: 400 ms blocks overlap by 75 %
BLOCK_STEPS = 4
SHORT_TERM_STEPS = 30  # 3 s
#: A filter whose state is below this (−240 dBFS) has rung out: on silence it gives silence.
RUNG_OUT = 1e-12


@functools.lru_cache(maxsize=8)
def k_weighting(sample_rate: int) -> np.ndarray:
    """The K-weighting pre-filter and RLB high-pass (pyloudnorm's design) as second-order sections."""
    return np.vstack([tf2sos(f.b, f.a) for f in
                      pyloudnorm.Meter(sample_rate, filter_class="DeMan")._filters.values()])


def _loudness(power: np.ndarray) -> np.ndarray:
    return -0.691 + 10 * np.log10(np.maximum(power, 1e-30))


def _windows(steps: np.ndarray, size: int) -> np.ndarray:
    """Mean of every run of ``size`` consecutive step powers (hop = one step)."""
    if steps.size < size:
        return np.zeros(0)
    c = np.concatenate(([0.0], np.cumsum(steps, dtype=np.float64)))
    return (c[size:] - c[:-size]) / size


def gated_mean(power: np.ndarray) -> float:
    """Mean of the block powers that pass BS.1770's absolute (−70) and relative (−10 LU)
    gates; 0 when none does."""
    loud = _loudness(power)
    gated = power[loud > ABSOLUTE_GATE_LUFS]
    if gated.size == 0:
        return 0.0
    relative = _loudness(gated.mean()) + RELATIVE_GATE_LU
    return float(power[(loud > ABSOLUTE_GATE_LUFS) & (loud > relative)].mean())


def gated_lufs(steps: np.ndarray) -> float:
    """Integrated loudness from channel-summed 100 ms step powers; ``-inf`` for silence."""
    power = gated_mean(_windows(steps, BLOCK_STEPS))
    return float(_loudness(power)) if power > 0 else float("-inf")


def short_term(steps: np.ndarray) -> np.ndarray:
    """Short-term (3 s) loudness every 100 ms, in LUFS."""
    return _loudness(_windows(steps, SHORT_TERM_STEPS))


def loudness_range(steps: np.ndarray) -> float:
    """EBU R128 loudness range (LRA, EBU Tech 3342) in LU: the spread between the 10th and
    95th percentiles of the gated short-term loudness; 0 when too short to tell."""
    st = short_term(steps)
    st = st[st > ABSOLUTE_GATE_LUFS]
    if st.size == 0:
        return 0.0
    power = 10 ** ((st + 0.691) / 10)
    st = st[st > _loudness(power.mean()) + LRA_RELATIVE_GATE_LU]
    if st.size < 2:
        return 0.0
    lo, hi = np.percentile(st, [10, 95])
    return float(hi - lo)


@dataclass(frozen=True)
class Loudness:
    """What a meter read from a whole programme."""

    steps: np.ndarray  # channel-summed mean square of the K-weighted signal per 100 ms

    def integrated_lufs(self) -> float:
        return gated_lufs(self.steps)

    def short_term_lufs(self) -> np.ndarray:
        return short_term(self.steps)

    def range_lu(self) -> float:
        return loudness_range(self.steps)


class LoudnessMeter:
    """BS.1770-4 loudness fed block by block (stems never need to be whole in memory)."""

    def __init__(self, sample_rate: int, channels: int = 2):
        self.step = step_frames(sample_rate)
        self.sos = k_weighting(sample_rate)
        self.channels = channels
        self.state = _k_state(self.sos, channels)
        self.open_step = np.zeros(2)  # [sum of power, frames] of the step not yet whole
        self.steps: list[np.ndarray] = []
        self.peak = 0.0

    def feed(self, block: np.ndarray) -> None:
        """Add ``block`` shaped (channels, frames)."""
        if block.shape[1] == 0:
            return
        peak = float(np.abs(block).max())
        if peak == 0.0:
            self.silence(block.shape[1])
            return
        self.peak = max(self.peak, peak)
        self._filter(block)

    def silence(self, frames: int) -> None:
        """Add ``frames`` frames of digital silence. Once the filter has rung out (the usual
        case: a player resting) nothing is filtered: the powers are zero to within
        ``RUNG_OUT``², far under the −70 LUFS gate."""
        if frames <= 0:
            return
        if np.abs(self.state).max() >= RUNG_OUT:
            self._filter(np.zeros((self.channels, frames), dtype=np.float32))
        else:
            self.state[:] = 0.0
            self._add_silence(frames)

    def _filter(self, block: np.ndarray) -> None:
        self.add_step_sums(kernels.filtered_step_sums(self.sos, block, self.state, self.step,
                                                      self.open_step))

    def add_step_sums(self, step_sums: np.ndarray, peak: float = 0.0) -> None:
        """Take what a kernel worked out on this meter's state (:attr:`k_state`): the power
        sums of the steps it closed, and the block's sample peak."""
        self.peak = max(self.peak, peak)
        if step_sums.size:
            self.steps.append(step_sums / self.step)

    @property
    def k_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The filter state and open step, for a kernel that meters on this meter's behalf."""
        return self.state, self.open_step

    def _add_silence(self, frames: int) -> None:
        """``frames`` frames whose K-weighted power is zero."""
        have = int(self.open_step[1]) + frames
        whole = have // self.step
        if whole:
            first = self.open_step[0] / self.step
            self.steps.append(np.concatenate(([first], np.zeros(whole - 1))))
            self.open_step[0] = 0.0
        self.open_step[1] = have - whole * self.step

    def result(self) -> Loudness:
        return Loudness(np.concatenate(self.steps) if self.steps else np.zeros(0))

    def integrated_lufs(self) -> float:
        return self.result().integrated_lufs()


def _k_state(sos: np.ndarray, channels: int) -> np.ndarray:
    """The K-weighting's initial (zero) state for ``channels`` channels, (sections, channels, 2)."""
    return np.zeros((sos.shape[0], channels, 2))


def step_means(power: np.ndarray, step: int) -> np.ndarray:
    """Mean of ``power`` over each whole ``step`` frames (a last part step is dropped), float64."""
    whole = power.size // step
    return power[: whole * step].reshape(whole, step).mean(axis=1, dtype=np.float64)


def k_weighted_chunks(audio: np.ndarray, sample_rate: int, chunk: int = _CHUNK,
                      ) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, power)`` for consecutive chunks of ``chunk`` frames of ``audio`` (channels,
    frames): the channel-summed square of the K-weighted signal, float32, the filter's state
    carried from chunk to chunk (the same figures as filtering the whole at once; only a chunk
    in memory)."""
    sos = k_weighting(sample_rate)
    zi = _k_state(sos, audio.shape[0])
    for start in range(0, audio.shape[1], chunk):
        yield start, kernels.filtered_power(sos, audio[:, start:start + chunk], zi)


def step_frames(sample_rate: int) -> int:
    """Frames in one 100 ms loudness step."""
    return int(round(STEP_S * sample_rate))


def k_weighted_power(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-summed square of the K-weighted signal per frame, float32, shape (frames,)."""
    out = np.empty(audio.shape[1], dtype=np.float32)
    for start, power in k_weighted_chunks(audio, sample_rate):
        out[start:start + power.size] = power
    return out


def step_powers(power: np.ndarray, sample_rate: int, gain: np.ndarray | None = None, *,
                scale: np.float32 | None = None) -> np.ndarray:
    """100 ms means of ``power`` (from :func:`k_weighted_power`), optionally after a per-frame
    amplitude ``gain`` (times a constant ``scale``) — the gain is applied after the K-weighting,
    which is exact for a constant gain and within a few hundredths of a LU for a limiter's brief
    dips. Worked through in chunks: no whole-length temporaries."""
    step = step_frames(sample_rate)
    whole = power.size // step
    out = np.empty(whole, dtype=np.float64)
    chunk = max(1, _CHUNK // step)  # steps at a time
    for first in range(0, whole, chunk):
        last = min(whole, first + chunk)
        p = power[first * step: last * step]
        if gain is not None:
            g = gain[first * step: last * step]
            if scale is not None:
                g = g * scale
            p = p * (g * g)
        out[first:last] = step_means(p, step)
    return out


def measure(audio: np.ndarray, sample_rate: int) -> Loudness:
    """Integrated, short-term and range of ``audio`` (channels, frames) from one pass, chunk
    by chunk (the same figures as :func:`step_powers` of :func:`k_weighted_power`)."""
    meter = LoudnessMeter(sample_rate, audio.shape[0])
    for start in range(0, audio.shape[1], _CHUNK):
        meter._filter(audio[:, start:start + _CHUNK])
    return meter.result()


@dataclass(frozen=True)
class Reading:
    """What a loudness meter shows for a whole programme (EBU R128 / ITU-R BS.1770-4)."""

    integrated_lufs: float      # -inf for silence
    loudness_range_lu: float
    true_peak_dbtp: float

    @property
    def plr_db(self) -> float:
        """Peak-to-loudness ratio: true peak minus integrated loudness."""
        return self.true_peak_dbtp - self.integrated_lufs


def measure_with_true_peak(audio: np.ndarray, sample_rate: int, *,
                           block_peaks: np.ndarray | None = None) -> tuple[Loudness, float]:
    """:func:`measure` and :func:`true_peak_dbtp` of ``audio`` (channels, frames): the meter
    (one thread) runs beside the true-peak oversampling (two). ``block_peaks``: see
    :func:`true_peak_dbtp`."""
    with ThreadPoolExecutor(1) as side:
        loud = side.submit(measure, audio, sample_rate)
        tp = true_peak_dbtp(audio, sample_rate, block_peaks=block_peaks)
        return loud.result(), tp


def reading(audio: np.ndarray, sample_rate: int) -> Reading:
    """The meter's :class:`Reading` of ``audio`` (channels, frames), each channel weighted 1
    (mono is measured as one channel, as ffmpeg's ``ebur128`` does)."""
    loud, tp = measure_with_true_peak(audio, sample_rate)
    return Reading(loud.integrated_lufs(), loud.range_lu(), tp)


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``audio`` shaped (channels, frames); ``-inf`` for silence."""
    return measure(audio, sample_rate).integrated_lufs()


def oversampling(sample_rate: int | None) -> int:
    """How many points per frame the true peak is read at: 4 at 48 kHz and above (None: 4);
    below, the fewest that reach :data:`TRUE_PEAK_RATE` and include the half frame (6 at
    44.1 kHz: at 4× a limited CD master's peaks between the points rose 0.12 dB over what the
    limiter held; at 5× a quarter-rate sine sampled at ±45° read 0.11 dB low)."""
    if sample_rate is None or sample_rate * TRUE_PEAK_OVERSAMPLING >= TRUE_PEAK_RATE:
        return TRUE_PEAK_OVERSAMPLING
    factor = -(-TRUE_PEAK_RATE // sample_rate)
    return factor + factor % 2


@functools.lru_cache(maxsize=4)
def _interpolator(factor: int = TRUE_PEAK_OVERSAMPLING) -> np.ndarray:
    # 24 taps per phase and one more (97 for 4×). Odd: the interpolated points fall on the
    # quarters of a frame, as ffmpeg's 192 kHz resampling does, not an eighth off them (which
    # read a sine at a quarter of the rate sampled at ±45° 0.17 dB low). Twice BS.1770-4's
    # example's 12 per phase, passing to 0.95 of the Nyquist frequency: with 12 (to 0.9) the
    # top octave was 2.5 dB down at 0.8 of it, and a 16-bit CD master's peaks made of it read
    # 0.11 dB under ffmpeg's (and its limiter let them through)
    h = firwin(24 * factor + 1, 0.95 / factor, window=("kaiser", 8.0)) * factor
    return h.astype(np.float32)


@functools.lru_cache(maxsize=4)
def interpolation_bound(factor: int = TRUE_PEAK_OVERSAMPLING) -> float:
    """The most an interpolated point can exceed the largest neighbouring sample (|Σ h| per
    phase, worst phase): blocks whose sample peak times this stays under a floor cannot reach it."""
    h = _interpolator(factor).astype(np.float64)
    return max(1.0, max(float(np.abs(h[k::factor]).sum()) for k in range(factor)))


@functools.lru_cache(maxsize=4)
def _polyphase(factor: int = TRUE_PEAK_OVERSAMPLING) -> tuple[np.ndarray, np.ndarray]:
    return kernels.polyphase(_interpolator(factor), factor)


def _frame_peaks(chunk: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Largest magnitude of any channel per frame of ``chunk`` (channels, n)."""
    out = np.abs(chunk[0], out=out)
    for row in chunk[1:]:
        np.maximum(out, np.abs(row), out=out)
    return out


def _block_peaks(frame_peaks: np.ndarray) -> np.ndarray:
    """Largest of ``frame_peaks`` in each run of ``PEAK_BLOCK`` frames (the last may be
    shorter), float32."""
    whole = frame_peaks.size // PEAK_BLOCK
    out = [frame_peaks[:whole * PEAK_BLOCK].reshape(whole, PEAK_BLOCK).max(axis=1)]
    if frame_peaks.size > whole * PEAK_BLOCK:
        out.append(frame_peaks[whole * PEAK_BLOCK:].max(keepdims=True))
    return np.concatenate(out).astype(np.float32, copy=False)


def _candidate_spans(block_peaks: np.ndarray, floor: float, frames: int,
                     factor: int = TRUE_PEAK_OVERSAMPLING) -> list[tuple[int, int, float]]:
    """``(start, stop, reach)`` of the frame spans (at most ``_SPAN`` long) whose true peak
    might reach ``floor``, ``reach`` being the most it can be: a block's interpolated points
    see only its own and its neighbours' samples, and exceed the largest of them by at most
    :func:`interpolation_bound`."""
    near = block_peaks.copy()
    near[1:] = np.maximum(near[1:], block_peaks[:-1])
    near[:-1] = np.maximum(near[:-1], block_peaks[1:])
    reach = near * np.float32(interpolation_bound(factor))
    hit = reach >= floor
    edges = np.flatnonzero(np.diff(np.concatenate(([0], hit.view(np.int8), [0]))))
    spans = []
    for first, last in zip(edges[::2], edges[1::2]):
        start, stop = int(first) * PEAK_BLOCK, min(frames, int(last) * PEAK_BLOCK)
        for a in range(start, stop, _SPAN):
            b = min(stop, a + _SPAN)
            spans.append((a, b, float(reach[a // PEAK_BLOCK: -(-b // PEAK_BLOCK)].max())))
    return spans


def _true_peaks(audio: np.ndarray, spans, env: np.ndarray | None = None, env_start: int = 0,
                factor: int = TRUE_PEAK_OVERSAMPLING):
    """Per span, the largest true peak in it, each worked out on a thread; with ``env``
    (frames from ``env_start``), its frames of the span are raised to the per-frame true
    peak too."""
    taps, shifts = _polyphase(factor)
    x = np.ascontiguousarray(audio, dtype=np.float32)

    def one(span) -> float:
        start, stop = span[0], span[1]
        part = np.zeros(stop - start, dtype=np.float32) if env is None else \
            env[start - env_start:stop - env_start]
        kernels.true_peak_frames(x, taps, shifts, start, stop, part)
        return float(part.max())

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, spans))


def true_peak_envelope(audio: np.ndarray, floor: float = 0.0, *,
                       sample_rate: int | None = None) -> np.ndarray:
    """Per-frame true peak (linear) of ``audio`` (channels, frames): the largest magnitude of
    any channel at the frame or at the oversampled points up to the next frame (4×, or more
    under 48 kHz: see :func:`oversampling`); shape (frames,).

    Blocks that cannot reach ``floor`` (linear) even between samples keep their sample peaks,
    which is exact for every use that only asks where the envelope exceeds ``floor``.
    """
    frames, factor = audio.shape[1], oversampling(sample_rate)
    if floor <= 0:  # everywhere: the kernel takes the samples' own peaks too
        out = np.zeros(frames, dtype=np.float32)
        _true_peaks(audio, [(a, min(frames, a + _SPAN)) for a in range(0, frames, _SPAN)], out,
                    factor=factor)
        return out
    out = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _CHUNK):
        _frame_peaks(audio[:, start:start + _CHUNK], out[start:start + _CHUNK])
    _true_peaks(audio, _candidate_spans(_block_peaks(out), floor, frames, factor), out,
                factor=factor)
    return out


@dataclass(frozen=True)
class PeakMap:
    """Where a signal's true peak may reach a floor: the frame spans to oversample
    (``(start, stop, reach)``, in order, see :func:`peak_map`) and the sample peak of every
    block of ``block`` frames."""

    frames: int
    block: int
    block_peaks: np.ndarray
    candidates: tuple[tuple[int, int, float], ...]
    factor: int = TRUE_PEAK_OVERSAMPLING  # points per frame (see :func:`oversampling`)

    def sample_peak_outside(self, regions: list[tuple[int, int]]) -> float:
        """The largest sample peak of the blocks not wholly inside any of ``regions``
        (``(start, stop)`` frames): at least the signal's largest magnitude outside them."""
        starts = np.arange(self.block_peaks.size, dtype=np.int64) * self.block
        stops = np.minimum(starts + self.block, self.frames)
        inside = np.zeros(starts.size, dtype=bool)
        for a, b in regions:
            inside |= (starts >= a) & (stops <= b)
        outside = self.block_peaks[~inside]
        return float(outside.max()) if outside.size else 0.0


def peak_map(audio: np.ndarray, floor: float, *, sample_rate: int | None = None,
             block_peaks: np.ndarray | None = None) -> PeakMap:
    """The :class:`PeakMap` of ``audio`` (channels, frames) for ``floor`` (linear, > 0), read in
    one pass (no per-frame array is kept); ``block_peaks``: the audio's
    :func:`~pipeline.dsp.audio.block_peaks`, when kept by the pass that wrote it (then the
    audio is not read)."""
    frames, factor = audio.shape[1], oversampling(sample_rate)
    if block_peaks is None:
        block_peaks = sample_peak_blocks(audio)
    return PeakMap(frames, PEAK_BLOCK, block_peaks,
                   tuple(_candidate_spans(block_peaks, floor, frames, factor)), factor)


def true_peak_span(audio: np.ndarray, start: int, stop: int, peaks: PeakMap, *,
                   out: np.ndarray | None = None) -> np.ndarray:
    """``true_peak_envelope(audio, floor)[start:stop]`` for the floor ``peaks`` was mapped for,
    computed for those frames alone (``start`` and ``stop`` on the map's candidate spans'
    borders, or outside them), into ``out`` if given."""
    out = np.empty(stop - start, dtype=np.float32) if out is None else out
    inside = [(a, b) for a, b, _ in peaks.candidates if start <= a and b <= stop]
    # the oversampling takes the samples' own peaks too: only the frames outside its spans
    # need them read
    done = start
    for a, b in [*inside, (stop, stop)]:
        for lo in range(done, a, _CHUNK):
            hi = min(a, lo + _CHUNK)
            _frame_peaks(audio[:, lo:hi], out[lo - start:hi - start])
        out[a - start:b - start] = 0.0
        done = b
    if inside:
        _true_peaks(audio, inside, out, env_start=start, factor=peaks.factor)
    return out


def true_peak_dbtp(audio: np.ndarray, sample_rate: int | None = None, *,
                   block_peaks: np.ndarray | None = None) -> float:
    """True peak in dBTP (oversampled 4×, or more under 48 kHz: see :func:`oversampling`;
    None: 4×). Only blocks that could exceed the largest sample between their
    samples are oversampled: the result is exact and usually far cheaper than the whole (and
    no per-frame envelope is kept). ``block_peaks``: the audio's
    :func:`~pipeline.dsp.audio.block_peaks`, when kept by the pass that wrote it."""
    frames = audio.shape[1]
    if frames == 0:
        return -200.0
    if block_peaks is None:
        block_peaks = sample_peak_blocks(audio)
    peak = float(block_peaks.max())
    if peak == 0.0:
        return -200.0
    # loudest first: once a true peak is found, spans that cannot beat it are skipped
    factor = oversampling(sample_rate)
    spans = sorted(_candidate_spans(block_peaks, peak, frames, factor), key=lambda span: -span[2])
    best, batch = peak, 4 * THREADS
    for first in range(0, len(spans), batch):
        todo = [span for span in spans[first:first + batch] if span[2] > best]
        if not todo:
            break
        best = max([best, *_true_peaks(audio, todo, factor=factor)])
    return gain_to_db(best)

