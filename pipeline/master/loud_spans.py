"""What the master's loudness gain and limiter need to know of a piece, in memory that grows
with its loud moments rather than its length.

The gain search tries several gains, each time limiting and measuring the result. The
limiter can act only where the true peak comes within the guard of the piece's peak; there
(with the limiter's reach either side) the true-peak envelope and the K-weighted power are
kept per frame. Everywhere else the limiter's gain is exactly 1, so the 100 ms loudness steps,
measured once, only scale with the gain.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pipeline.dsp.loudness import (k_weighted_chunks, peak_map, step_frames, step_means,
                                   true_peak_span)
from pipeline.model import IN_MEMORY, AudioBuffers, SpanGain
from pipeline.master.limiter import reach_frames, span_limiter_gain

CHUNK_STEPS = 50  # 100 ms steps K-weighted at a time (5 s)


@dataclass(frozen=True)
class LoudSpans:
    """The stretches of a signal (``starts``, on 100 ms step borders) where the limiter can
    act, with the true-peak ``envelope`` and K-weighted ``power`` of each of their frames;
    ``quiet_peak``: at least the envelope's largest value elsewhere; ``steps``: the power's
    mean over every whole 100 ms step of the signal."""

    frames: int
    sample_rate: int
    starts: tuple[int, ...]
    envelope: tuple[np.ndarray, ...]
    power: tuple[np.ndarray, ...]
    quiet_peak: float
    steps: np.ndarray

    @property
    def step(self) -> int:
        return step_frames(self.sample_rate)

    @property
    def true_peak(self) -> float:
        """The largest value of the envelope (linear)."""
        return max([self.quiet_peak, *(float(e.max()) for e in self.envelope if e.size)])

    def limiter_gain(self, ceiling_dbtp: float, scale: np.float32) -> SpanGain:
        """The limiter's gain on the signal times ``scale``
        (:func:`~pipeline.master.limiter.limiter_gain`, kept as its stretches)."""
        return span_limiter_gain(zip(self.starts, self.envelope), self.frames, self.sample_rate,
                                 ceiling_dbtp, scale=scale)

    def step_powers(self, gain: SpanGain, scale: np.float32) -> np.ndarray:
        """The 100 ms step powers of the signal times ``scale`` and then ``gain``
        (:func:`~pipeline.dsp.loudness.step_powers`, the steps in the spans worked out frame
        by frame, the others scaled)."""
        step = self.step
        out = self.steps * float(scale) ** 2
        for start, power in zip(self.starts, self.power):
            first, whole = start // step, power.size // step
            if whole == 0:
                continue
            # the power times the squared gain: where the limiter does nothing that is the
            # scale's square (one pass, no gain array), where it acts the gain's own
            stop = start + whole * step
            gained = power[:whole * step] * (scale * scale)
            for a, g in _stretches_in(gain, start, stop):
                g = g * scale
                gained[a - start:a - start + g.size] = power[a - start:a - start + g.size] * (g * g)
            out[first:first + whole] = step_means(gained, step)
        return out

    def peak(self, gain: SpanGain, scale: np.float32) -> float:
        """The largest value of the envelope times ``scale`` and ``gain``."""
        peak = self.quiet_peak * float(scale)
        for start, env in zip(self.starts, self.envelope):
            if not env.size:
                continue
            # where the limiter does nothing the largest product is the largest value times
            # the scale (rounding keeps the order): only the stretches are multiplied out
            done = start
            for a, g in [*_stretches_in(gain, start, start + env.size),
                         (start + env.size, np.zeros(0, np.float32))]:
                if a > done:
                    peak = max(peak, float(env[done - start:a - start].max() * scale))
                if g.size:
                    peak = max(peak, float((env[a - start:a - start + g.size] * scale * g).max()))
                done = a + g.size
        return peak


def _stretches_in(gain: SpanGain, start: int, stop: int):
    """``(first frame, gains)`` of the parts of ``gain``'s stretches within ``start``…``stop``,
    in order."""
    for s, g in zip(gain.starts, gain.gains):
        a, b = max(start, s), min(stop, s + g.size)
        if a < b:
            yield a, g[a - s:b - s]


def loud_spans(audio: np.ndarray, sample_rate: int, *, floor: float, deepest_db: float,
               buffers: AudioBuffers = IN_MEMORY,
               block_peaks: np.ndarray | None = None) -> LoudSpans:
    """The :class:`LoudSpans` of ``audio`` (channels, frames) where its true peak may reach
    ``floor`` (linear), each widened by the limiter's reach for reductions up to
    ``deepest_db``; read a chunk at a time. The spans' envelope and power are kept in one
    array from ``buffers`` (a loud piece is loud for much of its length). ``block_peaks``:
    the audio's :func:`~pipeline.dsp.audio.block_peaks`, when known (see
    :func:`~pipeline.dsp.loudness.peak_map`)."""
    frames = audio.shape[1]
    step = step_frames(sample_rate)
    peaks = peak_map(audio, floor, sample_rate=sample_rate, block_peaks=block_peaks) \
        if floor > 0 else None
    before, after = reach_frames(sample_rate, deepest_db)
    regions: list[list[int]] = []
    for a, b, _ in peaks.candidates if peaks is not None else ():
        a, b = (max(0, a - before) // step) * step, min(frames, -(-(b + after) // step) * step)
        if regions and a <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], b)
        else:
            regions.append([a, b])
    spans = [(a, b) for a, b in regions]
    store = buffers.empty(2, sum(b - a for a, b in spans))
    ends = np.cumsum([0, *(b - a for a, b in spans)])
    envelope = tuple(store[0, i:j] for i, j in zip(ends, ends[1:]))
    power = tuple(store[1, i:j] for i, j in zip(ends, ends[1:]))
    # the K-weighting (one thread) runs beside the true-peak oversampling (two)
    with ThreadPoolExecutor(1) as side:
        weighting = side.submit(_k_weighted, audio, sample_rate, spans, power)
        for (a, b), env in zip(spans, envelope):
            true_peak_span(audio, a, b, peaks, out=env)
        steps = weighting.result()
    quiet = peaks.sample_peak_outside(spans) if peaks is not None else 0.0
    return LoudSpans(frames, sample_rate, tuple(a for a, _ in spans), envelope, power, quiet,
                     steps)


def _k_weighted(audio: np.ndarray, sample_rate: int, spans: list[tuple[int, int]],
                kept: tuple[np.ndarray, ...]) -> np.ndarray:
    """The K-weighted power's mean over every whole 100 ms step; its frames in ``spans`` are
    put in ``kept`` (the same figures as :func:`~pipeline.dsp.loudness.step_powers` of
    :func:`~pipeline.dsp.loudness.k_weighted_power`)."""
    step = step_frames(sample_rate)
    steps = np.empty(audio.shape[1] // step, dtype=np.float64)
    for start, power in k_weighted_chunks(audio, sample_rate, CHUNK_STEPS * step):
        means = step_means(power, step)  # the chunks hold whole steps but the last
        steps[start // step:start // step + means.size] = means
        stop = start + power.size
        for (a, b), out in zip(spans, kept):
            lo, hi = max(a, start), min(b, stop)
            if lo < hi:
                out[lo - a:hi - a] = power[lo - start:hi - start]
    return steps
