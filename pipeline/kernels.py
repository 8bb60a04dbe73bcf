"""Compiled inner loops for the audio paths (numba): IIR filter cascades, K-weighted power and
4× true-peak interpolation.

scipy's ``sosfilt`` and ``upfirdn`` run one channel and one section at a time through generic
loops and temporaries; these run every channel and section in one pass over the samples, with
the state in double precision as scipy keeps it (the results agree with scipy's to float
rounding: tests/test_kernels.py). Every kernel releases the GIL, so threads run them side by
side. Compiled once per machine and cached beside the package (numba's ``cache=True``).
"""
from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@numba.njit(**_JIT)
def _biquads(sos, x, zi, y):
    """Transposed direct form II, as scipy's sosfilt: x, y (C, n); zi (S, C, 2) float64, updated."""
    channels, n = x.shape
    sections = sos.shape[0]
    for i in range(n):
        for c in range(channels):
            v = np.float64(x[c, i])
            for s in range(sections):
                out = sos[s, 0] * v + zi[s, c, 0]
                zi[s, c, 0] = sos[s, 1] * v - sos[s, 4] * out + zi[s, c, 1]
                zi[s, c, 1] = sos[s, 2] * v - sos[s, 5] * out
                v = out
            y[c, i] = v


def sos_filter(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, *,
               out: np.ndarray | None = None) -> np.ndarray:
    """Filter ``x`` (channels, frames) through the second-order sections ``sos`` (S, 6; a0 = 1)
    from state ``zi`` (S, channels, 2) float64, which is updated in place (scipy's layout for
    ``sosfilt(..., axis=1)``). Returns float32 (channels, frames), into ``out`` when given
    (which may be ``x`` itself)."""
    y = np.empty(x.shape, dtype=np.float32) if out is None else out
    if x.shape[1]:
        _biquads(np.ascontiguousarray(sos, dtype=np.float64), x, zi, y)
    return y


@numba.njit(**_JIT)
def _k_power(sos, x, zi, power):
    """Channel-summed square of the filtered signal per frame into ``power`` (n,)."""
    channels, n = x.shape
    sections = sos.shape[0]
    for i in range(n):
        p = 0.0
        for c in range(channels):
            v = np.float64(x[c, i])
            for s in range(sections):
                out = sos[s, 0] * v + zi[s, c, 0]
                zi[s, c, 0] = sos[s, 1] * v - sos[s, 4] * out + zi[s, c, 1]
                zi[s, c, 1] = sos[s, 2] * v - sos[s, 5] * out
                v = out
            p += v * v
        power[i] = p


def filtered_power(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """Channel-summed square of ``x`` (channels, frames) filtered by ``sos`` from ``zi``
    (S, channels, 2, updated), per frame: float32 (frames,)."""
    power = np.empty(x.shape[1], dtype=np.float32)
    if x.shape[1]:
        _k_power(np.ascontiguousarray(sos, dtype=np.float64), x, zi, power)
    return power


@numba.njit(**_JIT)
def _step_sums(sos, x, zi, step, carry, sums):
    """Like _k_power, summed over consecutive runs of ``step`` frames; ``carry`` = [sum,
    frames] of the run left open by the previous call (updated). Returns the runs closed."""
    channels, n = x.shape
    sections = sos.shape[0]
    acc, have, closed = carry[0], int(carry[1]), 0
    for i in range(n):
        for c in range(channels):
            v = np.float64(x[c, i])
            for s in range(sections):
                out = sos[s, 0] * v + zi[s, c, 0]
                zi[s, c, 0] = sos[s, 1] * v - sos[s, 4] * out + zi[s, c, 1]
                zi[s, c, 1] = sos[s, 2] * v - sos[s, 5] * out
                v = out
            acc += v * v
        have += 1
        if have == step:
            sums[closed] = acc
            closed += 1
            acc, have = 0.0, 0
    carry[0], carry[1] = acc, have
    return closed


def filtered_step_sums(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, step: int,
                       carry: np.ndarray) -> np.ndarray:
    """Sums of the channel-summed square of ``x`` filtered by ``sos`` over each run of ``step``
    frames that closes in this block, float64; ``carry`` ([sum, frames], float64) holds the
    open run between calls, ``zi`` (S, channels, 2) the filter state; both are updated."""
    sums = np.empty((int(carry[1]) + x.shape[1]) // step, dtype=np.float64)
    if x.shape[1]:
        closed = _step_sums(np.ascontiguousarray(sos, dtype=np.float64), x, zi, step, carry, sums)
        sums = sums[:closed]
    return sums


_TILE = 512


@numba.njit(**_JIT)
def _true_peak(x, taps, shifts, start, stop, env):
    """env[i - start] = max(env, |x[c, i]|, |phase k of the interpolation at i|) over channels c
    and phases k, for start ≤ i < stop. Phase k at frame i is Σ_t taps[k, t]·x[c, i − shifts[k, t]]
    (zero outside the signal)."""
    channels, n = x.shape
    phases, width = taps.shape
    reach = 0
    for k in range(phases):
        for t in range(width):
            reach = max(reach, abs(shifts[k, t]))
    acc = np.empty(_TILE, dtype=np.float32)
    best = np.empty(_TILE, dtype=np.float32)
    window = np.zeros(_TILE + 2 * reach, dtype=np.float32)  # a tile's samples and their context
    for t0 in range(start, stop, _TILE):
        m = min(stop, t0 + _TILE) - t0
        for j in range(m):
            best[j] = env[t0 - start + j]
        for c in range(channels):
            lo, hi = t0 - reach, t0 + m + reach
            for j in range(hi - lo):
                src = lo + j
                window[j] = x[c, src] if 0 <= src < n else np.float32(0.0)
            for j in range(m):
                best[j] = max(best[j], abs(window[reach + j]))
            for k in range(phases):
                acc[:m] = 0.0
                for t in range(width):
                    w = taps[k, t]
                    seen = window[reach - shifts[k, t]:]
                    for j in range(m):
                        acc[j] += w * seen[j]
                for j in range(m):
                    best[j] = max(best[j], abs(acc[j]))
        for j in range(m):
            env[t0 - start + j] = best[j]


def polyphase(h: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Taps and input shifts per phase for interpolating by ``factor`` with the odd- or
    even-length low-pass ``h``, aligned as ``upfirdn(h, x, up=factor)[(len(h) - 1) // 2:]``:
    phase k at frame i is the interpolated point k/factor of a frame after i."""
    delay = (len(h) - 1) // 2
    taps, shifts = [], []
    for k in range(factor):
        # output point factor·i + k + delay sees x[j] through h[factor·(i − j) + k + delay]
        pairs = [(d, h[factor * d + k + delay]) for d in range(-len(h), len(h) + 1)
                 if 0 <= factor * d + k + delay < len(h)]
        shifts.append([d for d, _ in pairs])
        taps.append([w for _, w in pairs])
    width = max(len(t) for t in taps)
    tap_array = np.zeros((factor, width), dtype=np.float32)
    shift_array = np.zeros((factor, width), dtype=np.int64)
    for k in range(factor):
        tap_array[k, :len(taps[k])] = taps[k]
        shift_array[k, :len(shifts[k])] = shifts[k]
    return tap_array, shift_array


def true_peak_frames(x: np.ndarray, taps: np.ndarray, shifts: np.ndarray, start: int,
                     stop: int, env: np.ndarray) -> None:
    """Raise ``env`` (stop − start,) float32 to the per-frame true peak of ``x`` (channels,
    frames) float32 over frames ``start``…``stop``: the largest magnitude of any channel at the
    frame or at its interpolated points (:func:`polyphase`)."""
    if stop > start:
        _true_peak(x, taps, shifts, start, stop, env)
