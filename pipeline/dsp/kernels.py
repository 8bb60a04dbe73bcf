"""Compiled inner loops for the audio paths (numba): IIR filter cascades, K-weighted power and
4× true-peak interpolation.

scipy's ``sosfilt`` and ``upfirdn`` run one channel and one section at a time through generic
loops and temporaries; these run every channel and section in one pass over the samples, with
the state in double precision as scipy keeps it (the results agree with scipy's to float
rounding: tests/test_kernels.py). Every kernel releases the GIL, so threads run them side by
side. Compiled once per machine and cached beside the package (numba's ``cache=True``).
"""
from __future__ import annotations

import sys

import numba
import numpy as np

_LITTLE_ENDIAN = sys.byteorder == "little"

#: exact: every product and sum rounded as numpy rounds it (the kernels that replace numpy
#: code give the same values)
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
#: for the filter recursions only: 'contract' lets a multiply and an add become one fused
#: multiply-add (one rounding, not two), which shortens their critical path (the mixer channel
#: 15 → 13 ns a frame); checked against scipy within float32's rounding
_FUSED = dict(_JIT, fastmath={"contract"})


#: A filter state under this (−600 dB) is set to zero, checked every ``FLUSH_FRAMES`` frames: a
#: state left to decay through silence reaches numbers so small (squared by the meters, under
#: 1e-308: subnormal) that the processor takes each operation on them some hundred times slower.
TINY = 1e-30
FLUSH_FRAMES = 4096


@numba.njit(inline="always")
def _flush(v):
    return 0.0 if abs(v) < TINY else v


@numba.njit(inline="always")
def _through(sos, zi, c, v):
    """``v`` through every section of ``sos`` on channel ``c``'s state (transposed direct
    form II, as scipy's sosfilt)."""
    for s in range(sos.shape[0]):
        out = sos[s, 0] * v + zi[s, c, 0]
        zi[s, c, 0] = sos[s, 1] * v - sos[s, 4] * out + zi[s, c, 1]
        zi[s, c, 1] = sos[s, 2] * v - sos[s, 5] * out
        v = out
    return v


#: sections one pass of :func:`sos_filter` runs (more are run in further passes, through a
#: double-precision row)
PASS_SECTIONS = 12


@numba.njit(**_FUSED)
def _sections(sos, first, count, x, zi, c, y):
    """Sections ``first`` … ``first + count − 1`` (1 ≤ count ≤ ``PASS_SECTIONS``) of ``sos``
    over the row ``x`` (n,) into ``y`` (n,), on channel ``c``'s state in ``zi`` (S, C, 2):
    transposed direct form II in double precision, as scipy's sosfilt. The states are locals
    for the length of the row (in the array, each step waits on the last store), and all the
    sections run in one pass: a section's recursion waits on its own last output only, so the
    processor works on several sections' at once (ten sections: 21 → 10 ns a frame, where
    passes of four each waited on their own chains); unused sections' locals are never
    touched (``count`` is tested per section, which the branch predictor makes free)."""
    n = x.shape[0]
    last = first + count - 1
    k0, k1 = _coefficients(sos, first), _coefficients(sos, min(first + 1, last))
    k2, k3 = _coefficients(sos, min(first + 2, last)), _coefficients(sos, min(first + 3, last))
    k4, k5 = _coefficients(sos, min(first + 4, last)), _coefficients(sos, min(first + 5, last))
    k6, k7 = _coefficients(sos, min(first + 6, last)), _coefficients(sos, min(first + 7, last))
    k8, k9 = _coefficients(sos, min(first + 8, last)), _coefficients(sos, min(first + 9, last))
    k10, k11 = _coefficients(sos, min(first + 10, last)), _coefficients(sos, last)
    s = np.zeros((PASS_SECTIONS, 2))
    for j in range(count):
        s[j, 0], s[j, 1] = zi[first + j, c, 0], zi[first + j, c, 1]
    a0, a1, b0, b1, d0, d1 = s[0, 0], s[0, 1], s[1, 0], s[1, 1], s[2, 0], s[2, 1]
    e0, e1, f0, f1, g0, g1 = s[3, 0], s[3, 1], s[4, 0], s[4, 1], s[5, 0], s[5, 1]
    h0, h1, j0, j1, l0, l1 = s[6, 0], s[6, 1], s[7, 0], s[7, 1], s[8, 0], s[8, 1]
    m0, m1, o0, o1, p0, p1 = s[9, 0], s[9, 1], s[10, 0], s[10, 1], s[11, 0], s[11, 1]
    for i in range(n):
        v, a0, a1 = _bq(k0, np.float64(x[i]), a0, a1)
        if count > 1:
            v, b0, b1 = _bq(k1, v, b0, b1)
        if count > 2:
            v, d0, d1 = _bq(k2, v, d0, d1)
        if count > 3:
            v, e0, e1 = _bq(k3, v, e0, e1)
        if count > 4:
            v, f0, f1 = _bq(k4, v, f0, f1)
        if count > 5:
            v, g0, g1 = _bq(k5, v, g0, g1)
        if count > 6:
            v, h0, h1 = _bq(k6, v, h0, h1)
        if count > 7:
            v, j0, j1 = _bq(k7, v, j0, j1)
        if count > 8:
            v, l0, l1 = _bq(k8, v, l0, l1)
        if count > 9:
            v, m0, m1 = _bq(k9, v, m0, m1)
        if count > 10:
            v, o0, o1 = _bq(k10, v, o0, o1)
        if count > 11:
            v, p0, p1 = _bq(k11, v, p0, p1)
        y[i] = v
    s[0, 0], s[0, 1], s[1, 0], s[1, 1], s[2, 0], s[2, 1] = a0, a1, b0, b1, d0, d1
    s[3, 0], s[3, 1], s[4, 0], s[4, 1], s[5, 0], s[5, 1] = e0, e1, f0, f1, g0, g1
    s[6, 0], s[6, 1], s[7, 0], s[7, 1], s[8, 0], s[8, 1] = h0, h1, j0, j1, l0, l1
    s[9, 0], s[9, 1], s[10, 0], s[10, 1], s[11, 0], s[11, 1] = m0, m1, o0, o1, p0, p1
    for j in range(count):
        zi[first + j, c, 0], zi[first + j, c, 1] = s[j, 0], s[j, 1]


def sos_filter(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, *,
               out: np.ndarray | None = None) -> np.ndarray:
    """Filter ``x`` (channels, frames) through the second-order sections ``sos`` (S, 6; a0 = 1)
    from state ``zi`` (S, channels, 2) float64, which is updated in place (scipy's layout for
    ``sosfilt(..., axis=1)``). Returns float32 (channels, frames), into ``out`` when given
    (which may be ``x`` itself). Up to ``PASS_SECTIONS`` sections at a time, through a
    double-precision row between them (the same samples as one pass through all)."""
    y = np.empty(x.shape, dtype=np.float32) if out is None else out
    sections = np.ascontiguousarray(sos, dtype=np.float64)
    count = sections.shape[0]
    if x.shape[1] == 0:
        return y
    if count == 0:
        y[...] = x
        return y
    row = np.empty(x.shape[1]) if count > PASS_SECTIONS else None
    for c in range(x.shape[0]):
        source = x[c]
        for first in range(0, count, PASS_SECTIONS):
            target = y[c] if first + PASS_SECTIONS >= count else row
            _sections(sections, first, min(PASS_SECTIONS, count - first), source, zi, c, target)
            source = row
    return y


@numba.njit(**_FUSED)
def _k_power(sos, x, zi, power):
    """Channel-summed square of the filtered signal per frame into ``power`` (n,)."""
    channels, n = x.shape
    for i in range(n):
        p = 0.0
        for c in range(channels):
            v = _through(sos, zi, c, np.float64(x[c, i]))
            p += v * v
        power[i] = p


@numba.njit(**_FUSED)
def _stereo_power(sos, x, zi, power, step, carry, sums):
    """_k_power (into ``power`` when it has a place per frame) and _step_sums (when ``step``
    > 0) for two channels through two sections, the states in locals: the same sums in the
    same order, at about half the time. Returns the runs closed."""
    n = x.shape[1]
    k1, k2 = _coefficients(sos, 0), _coefficients(sos, 1)
    l00, l01, l10, l11 = zi[0, 0, 0], zi[0, 0, 1], zi[1, 0, 0], zi[1, 0, 1]
    r00, r01, r10, r11 = zi[0, 1, 0], zi[0, 1, 1], zi[1, 1, 0], zi[1, 1, 1]
    acc, have, closed = carry[0], int(carry[1]), 0
    each = power.shape[0] == n
    for i in range(n):
        if i % FLUSH_FRAMES == 0:  # see TINY
            l00, l01, l10, l11 = _flush(l00), _flush(l01), _flush(l10), _flush(l11)
            r00, r01, r10, r11 = _flush(r00), _flush(r01), _flush(r10), _flush(r11)
        left, l00, l01 = _bq(k1, np.float64(x[0, i]), l00, l01)
        left, l10, l11 = _bq(k2, left, l10, l11)
        right, r00, r01 = _bq(k1, np.float64(x[1, i]), r00, r01)
        right, r10, r11 = _bq(k2, right, r10, r11)
        if each:
            power[i] = left * left + right * right
        if step > 0:
            acc, have, closed = _count(acc + left * left + right * right, have, closed, step,
                                       sums)
    zi[0, 0, 0], zi[0, 0, 1], zi[1, 0, 0], zi[1, 0, 1] = l00, l01, l10, l11
    zi[0, 1, 0], zi[0, 1, 1], zi[1, 1, 0], zi[1, 1, 1] = r00, r01, r10, r11
    carry[0], carry[1] = acc, have
    return closed


def _stereo_pair(sos: np.ndarray, x: np.ndarray) -> bool:
    return x.shape[0] == 2 and sos.shape[0] == 2


def filtered_power(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """Channel-summed square of ``x`` (channels, frames) filtered by ``sos`` from ``zi``
    (S, channels, 2, updated), per frame: float32 (frames,)."""
    power = np.empty(x.shape[1], dtype=np.float32)
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if x.shape[1] and _stereo_pair(sos, x):
        _stereo_power(sos, x, zi, power, 0, np.zeros(2), np.zeros(0))
    elif x.shape[1]:
        _k_power(sos, x, zi, power)
    return power


@numba.njit(inline="always")
def _count(acc, have, closed, step, sums):
    """One more frame into the open step, whose power sum is ``acc``: when the step is
    whole, its sum goes to ``sums[closed]`` and a new one opens. (acc, have, closed)."""
    have += 1
    if have == step:
        sums[closed] = acc
        return 0.0, 0, closed + 1
    return acc, have, closed


@numba.njit(**_FUSED)
def _step_sums(sos, x, zi, step, carry, sums):
    """Like _k_power, summed over consecutive runs of ``step`` frames; ``carry`` = [sum,
    frames] of the run left open by the previous call (updated). Returns the runs closed."""
    channels, n = x.shape
    acc, have, closed = carry[0], int(carry[1]), 0
    for i in range(n):
        for c in range(channels):
            v = _through(sos, zi, c, np.float64(x[c, i]))
            acc += v * v
        acc, have, closed = _count(acc, have, closed, step, sums)
    carry[0], carry[1] = acc, have
    return closed


def filtered_step_sums(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, step: int,
                       carry: np.ndarray) -> np.ndarray:
    """Sums of the channel-summed square of ``x`` filtered by ``sos`` over each run of ``step``
    frames that closes in this block, float64; ``carry`` ([sum, frames], float64) holds the
    open run between calls, ``zi`` (S, channels, 2) the filter state; both are updated."""
    sums = np.empty((int(carry[1]) + x.shape[1]) // step, dtype=np.float64)
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if x.shape[1] and _stereo_pair(sos, x):
        sums = sums[:_stereo_power(sos, x, zi, np.zeros(0, np.float32), step, carry, sums)]
    elif x.shape[1]:
        sums = sums[:_step_sums(sos, x, zi, step, carry, sums)]
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
                # four taps a pass over the tile (the same sums in the same order, with a
                # quarter of the accumulator's loads and stores)
                for t in range(0, width - width % 4, 4):
                    w0, w1, w2, w3 = taps[k, t], taps[k, t + 1], taps[k, t + 2], taps[k, t + 3]
                    s0, s1 = window[reach - shifts[k, t]:], window[reach - shifts[k, t + 1]:]
                    s2, s3 = window[reach - shifts[k, t + 2]:], window[reach - shifts[k, t + 3]:]
                    for j in range(m):
                        acc[j] = (((acc[j] + w0 * s0[j]) + w1 * s1[j]) + w2 * s2[j]) + w3 * s3[j]
                for t in range(width - width % 4, width):
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


@numba.njit(inline="always")
def _bq(c, v, z0, z1):
    """One biquad step (transposed direct form II) with coefficients c = (b0, b1, b2, a1, a2):
    (output, new z0, new z1). Kept in locals, the state stays in registers."""
    out = c[0] * v + z0
    return out, c[1] * v - c[3] * out + z1, c[2] * v - c[4] * out


@numba.njit(inline="always")
def _coefficients(sos, s):
    return (sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5])


#: filter sections a mixer channel runs in its one pass (fewer are padded with pass-throughs)
CHANNEL_SECTIONS = 4


@numba.njit(**_FUSED)
def _player(x, k_sos, step, meter_zi, meter_carry, meter_sums, sos, zi, sections, matrix, post,
            post_zi, post_carry, post_sums, y):
    """One pass of a stereo mixer channel over x (2, n): the K-weighted steps of x (the stem's
    meter), the first ``sections`` of the four filter sections ``sos`` (the others, the
    padding's pass-throughs, are skipped), then with ``post`` the 2×2 ``matrix`` and the
    K-weighted steps of the result (the player's meter in the mix) into y (2, n); without,
    y holds the filtered signal. Returns (stem steps closed, post steps closed, sample peak).
    Every state is a local for the length of the block, loaded and stored one by one (in an
    array, each step would wait on the last store: half the speed)."""
    n = x.shape[1]
    k1, k2 = _coefficients(k_sos, 0), _coefficients(k_sos, 1)
    c1, c2 = _coefficients(sos, 0), _coefficients(sos, 1)
    c3, c4 = _coefficients(sos, 2), _coefficients(sos, 3)
    m00, m01, m10, m11 = meter_zi[0, 0, 0], meter_zi[0, 0, 1], meter_zi[1, 0, 0], meter_zi[1, 0, 1]
    n00, n01, n10, n11 = meter_zi[0, 1, 0], meter_zi[0, 1, 1], meter_zi[1, 1, 0], meter_zi[1, 1, 1]
    p00, p01, p10, p11 = post_zi[0, 0, 0], post_zi[0, 0, 1], post_zi[1, 0, 0], post_zi[1, 0, 1]
    q00, q01, q10, q11 = post_zi[0, 1, 0], post_zi[0, 1, 1], post_zi[1, 1, 0], post_zi[1, 1, 1]
    f00, f01, f10, f11 = zi[0, 0, 0], zi[0, 0, 1], zi[1, 0, 0], zi[1, 0, 1]
    f20, f21, f30, f31 = zi[2, 0, 0], zi[2, 0, 1], zi[3, 0, 0], zi[3, 0, 1]
    g00, g01, g10, g11 = zi[0, 1, 0], zi[0, 1, 1], zi[1, 1, 0], zi[1, 1, 1]
    g20, g21, g30, g31 = zi[2, 1, 0], zi[2, 1, 1], zi[3, 1, 0], zi[3, 1, 1]
    mll, mlr = np.float64(matrix[0, 0]), np.float64(matrix[0, 1])
    mrl, mrr = np.float64(matrix[1, 0]), np.float64(matrix[1, 1])
    m_acc, m_have, m_closed = meter_carry[0], int(meter_carry[1]), 0
    p_acc, p_have, p_closed = post_carry[0], int(post_carry[1]), 0
    peak = 0.0
    for i in range(n):
        if i % FLUSH_FRAMES == 0:
            m00, m01, m10, m11 = _flush(m00), _flush(m01), _flush(m10), _flush(m11)
            n00, n01, n10, n11 = _flush(n00), _flush(n01), _flush(n10), _flush(n11)
            p00, p01, p10, p11 = _flush(p00), _flush(p01), _flush(p10), _flush(p11)
            q00, q01, q10, q11 = _flush(q00), _flush(q01), _flush(q10), _flush(q11)
            f00, f01, f10, f11 = _flush(f00), _flush(f01), _flush(f10), _flush(f11)
            f20, f21, f30, f31 = _flush(f20), _flush(f21), _flush(f30), _flush(f31)
            g00, g01, g10, g11 = _flush(g00), _flush(g01), _flush(g10), _flush(g11)
            g20, g21, g30, g31 = _flush(g20), _flush(g21), _flush(g30), _flush(g31)
        left, right = np.float64(x[0, i]), np.float64(x[1, i])
        peak = max(peak, abs(left), abs(right))
        kl, m00, m01 = _bq(k1, left, m00, m01)
        kl, m10, m11 = _bq(k2, kl, m10, m11)
        kr, n00, n01 = _bq(k1, right, n00, n01)
        kr, n10, n11 = _bq(k2, kr, n10, n11)
        m_acc, m_have, m_closed = _count(m_acc + kl * kl + kr * kr, m_have, m_closed, step,
                                         meter_sums)
        if sections > 0:
            left, f00, f01 = _bq(c1, left, f00, f01)
            right, g00, g01 = _bq(c1, right, g00, g01)
        if sections > 1:
            left, f10, f11 = _bq(c2, left, f10, f11)
            right, g10, g11 = _bq(c2, right, g10, g11)
        if sections > 2:
            left, f20, f21 = _bq(c3, left, f20, f21)
            right, g20, g21 = _bq(c3, right, g20, g21)
        if sections > 3:
            left, f30, f31 = _bq(c4, left, f30, f31)
            right, g30, g31 = _bq(c4, right, g30, g31)
        if not post:
            y[0, i], y[1, i] = left, right
            continue
        # float32 out, metered as it is mixed
        ol = np.float32(mll * left + mlr * right)
        orr = np.float32(mrl * left + mrr * right)
        y[0, i], y[1, i] = ol, orr
        kl, p00, p01 = _bq(k1, np.float64(ol), p00, p01)
        kl, p10, p11 = _bq(k2, kl, p10, p11)
        kr, q00, q01 = _bq(k1, np.float64(orr), q00, q01)
        kr, q10, q11 = _bq(k2, kr, q10, q11)
        p_acc, p_have, p_closed = _count(p_acc + kl * kl + kr * kr, p_have, p_closed, step,
                                         post_sums)
    meter_zi[0, 0, 0], meter_zi[0, 0, 1], meter_zi[1, 0, 0], meter_zi[1, 0, 1] = m00, m01, m10, m11
    meter_zi[0, 1, 0], meter_zi[0, 1, 1], meter_zi[1, 1, 0], meter_zi[1, 1, 1] = n00, n01, n10, n11
    post_zi[0, 0, 0], post_zi[0, 0, 1], post_zi[1, 0, 0], post_zi[1, 0, 1] = p00, p01, p10, p11
    post_zi[0, 1, 0], post_zi[0, 1, 1], post_zi[1, 1, 0], post_zi[1, 1, 1] = q00, q01, q10, q11
    zi[0, 0, 0], zi[0, 0, 1], zi[1, 0, 0], zi[1, 0, 1] = f00, f01, f10, f11
    zi[2, 0, 0], zi[2, 0, 1], zi[3, 0, 0], zi[3, 0, 1] = f20, f21, f30, f31
    zi[0, 1, 0], zi[0, 1, 1], zi[1, 1, 0], zi[1, 1, 1] = g00, g01, g10, g11
    zi[2, 1, 0], zi[2, 1, 1], zi[3, 1, 0], zi[3, 1, 1] = g20, g21, g30, g31
    meter_carry[0], meter_carry[1] = m_acc, m_have
    post_carry[0], post_carry[1] = p_acc, p_have
    return m_closed, p_closed, peak


_PASS = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])


def channel_sections(sos: np.ndarray | None) -> np.ndarray:
    """A mixer channel's cascade as exactly :data:`CHANNEL_SECTIONS` sections (pass-throughs
    added), for :func:`player`."""
    sos = np.zeros((0, 6)) if sos is None else np.asarray(sos, dtype=np.float64).reshape(-1, 6)
    if len(sos) > CHANNEL_SECTIONS:
        raise ValueError(f"a mixer channel runs at most {CHANNEL_SECTIONS} filter sections")
    return np.vstack([sos, np.tile(_PASS, (CHANNEL_SECTIONS - len(sos), 1))])


def player(x: np.ndarray, k_sos: np.ndarray, step: int, meter: tuple, sos: np.ndarray,
           zi: np.ndarray, matrix: np.ndarray | None, post: tuple | None,
           sections: int = CHANNEL_SECTIONS):
    """A stereo mixer channel in one pass over ``x`` (2, frames) float32.

    ``meter`` and ``post`` are K-weighting states ``(zi (2, 2, 2), carry [sum, frames])``
    (updated) for the stem as it comes and for the player in the mix; ``sos`` (4, 6) from
    :func:`channel_sections` with ``zi`` (4, 2, 2) is the channel's filter cascade, of which
    the first ``sections`` are run (the others must be the padding's pass-throughs). With
    ``matrix`` (2, 2) and ``post`` the result is the panned, metered signal; without, the
    filtered one (for a processor that must come between the filter and the pan). Returns
    ``(y (2, frames) float32, stem step sums, post step sums, stem sample peak)``; the step
    sums are those of ``step`` frames that closed in this block (float64)."""
    n = x.shape[1]
    y = np.empty((2, n), dtype=np.float32)
    meter_sums = np.empty((int(meter[1][1]) + n) // step)
    with_post = matrix is not None and post is not None
    post_zi, post_carry = post if with_post else (np.zeros((2, 2, 2)), np.zeros(2))
    post_sums = np.empty((int(post_carry[1]) + n) // step if with_post else 0)
    m_closed, p_closed, peak = _player(
        x, k_sos, step, meter[0], meter[1], meter_sums, sos, zi, sections,
        np.zeros((2, 2)) if matrix is None else matrix, with_post, post_zi, post_carry,
        post_sums, y)
    return y, meter_sums[:m_closed], post_sums[:p_closed], peak


@numba.njit(**_JIT)
def _to_pcm(x, scale, shift, out):
    channels, n = x.shape
    top = scale - np.float32(1.0)
    for i in range(n):
        for c in range(channels):
            v = np.rint(x[c, i] * scale)
            v = min(max(v, -scale), top)
            out[i, c] = np.int32(v) << shift


def to_pcm(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` (channels, frames) float32 as the interleaved integers of a ``bits``-bit (16 or
    24) PCM file, rounded to nearest (half to even) and clipped to the format's range:
    (frames, channels) int16, or int32 with the 24 bits at the top (libsndfile's layout).
    The same integers as :func:`pipeline.dsp.audio.requantize` without dither, in one pass."""
    out = np.empty((x.shape[1], x.shape[0]), dtype=np.int32)
    _to_pcm(np.ascontiguousarray(x, dtype=np.float32), np.float32(1 << (bits - 1)),
            32 - bits if bits == 24 else 0, out)
    return out.astype(np.int16) if bits == 16 else out


@numba.njit(**_JIT)
def _to_pcm24_bytes(x, out):
    channels, n = x.shape
    scale = np.float32(1 << 23)
    top = scale - np.float32(1.0)
    k = 0
    for i in range(n):
        for c in range(channels):
            v = np.int32(min(max(np.rint(x[c, i] * scale), -scale), top))
            out[k] = v & 0xFF
            out[k + 1] = (v >> 8) & 0xFF
            out[k + 2] = (v >> 16) & 0xFF
            k += 3


@numba.njit(inline="always")
def _pcm24(v, scale, top):
    """A float32 sample as its 24-bit integer (as :func:`_to_pcm24_bytes` rounds and clips
    it), in the low three bytes of an unsigned 32-bit word."""
    return np.uint32(np.int32(min(max(np.rint(v * scale), -scale), top)) & np.int32(0xFFFFFF))


@numba.njit(**_JIT)
def _stereo_pcm24_words(left, right, words):
    scale = np.float32(1 << 23)
    top = scale - np.float32(1.0)
    eight, sixteen, twenty_four = np.uint32(8), np.uint32(16), np.uint32(24)
    for k in range(words.shape[0] // 3):
        a, b = _pcm24(left[2 * k], scale, top), _pcm24(right[2 * k], scale, top)
        c, d = _pcm24(left[2 * k + 1], scale, top), _pcm24(right[2 * k + 1], scale, top)
        words[3 * k] = a | (b << twenty_four)
        words[3 * k + 1] = (b >> eight) | (c << sixteen)
        words[3 * k + 2] = (c >> sixteen) | (d << eight)


def to_pcm24_bytes(x: np.ndarray) -> np.ndarray:
    """``x`` (channels, frames) float32 as the bytes of a 24-bit little-endian PCM stream
    (a WAV file's data): the integers of :func:`to_pcm`, three bytes each, interleaved.
    Stereo is packed two frames (twelve bytes) at a time as three little-endian 32-bit words
    (no byte-wise stores: 2.8 → 0.4 ns a frame), read from the rows as they are (a slice of
    a longer signal is not copied first)."""
    out = np.empty(x.shape[0] * x.shape[1] * 3, dtype=np.uint8)
    pairs = x.shape[1] // 2
    if x.shape[0] == 2 and pairs and x.dtype == np.float32 and _LITTLE_ENDIAN:
        rows = [row if row.flags.c_contiguous else np.ascontiguousarray(row) for row in x]
        _stereo_pcm24_words(rows[0], rows[1], out[:12 * pairs].view(np.uint32))
        if x.shape[1] > 2 * pairs:  # the odd frame at the end
            _to_pcm24_bytes(np.ascontiguousarray(x[:, 2 * pairs:]), out[12 * pairs:])
        return out
    _to_pcm24_bytes(np.ascontiguousarray(x, dtype=np.float32), out)
    return out


@numba.njit(**_JIT)
def _any_sound(x):
    channels, n = x.shape
    for i in range(n):
        for c in range(channels):
            if x[c, i] != 0.0:
                return True
    return False


def any_sound(x: np.ndarray) -> bool:
    """True when ``x`` (channels, frames) has a sample that is not zero; stops at the first
    (a playing block costs next to nothing, where ``ndarray.any`` reads it all)."""
    return x.shape[1] > 0 and bool(_any_sound(x))


@numba.njit(**_JIT)
def _read_strided(x, stride):
    total = 0
    for i in range(0, x.size, stride):
        total += x[i]
    return total


def read_pages(x: np.ndarray, page_bytes: int) -> None:
    """Read one byte of each ``page_bytes`` of the bytes ``x`` (uint8, 1-d): brings a mapping's
    pages in, with the GIL released (a page fault on a virtual machine can take tens of
    microseconds: the other threads go on meanwhile)."""
    _read_strided(x, page_bytes)


def interleave(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``x`` (channels, frames) as a C-ordered (frames, channels) copy: a sound file's layout
    (into ``out``'s first frames when given: memory used again rather than taken anew).
    Column by column (a strided copy per channel: 0.3 ns a sample, where a loop over frames
    took 0.8 and numpy's copy of the transposed array 1.7)."""
    frames = x.shape[1]
    out = np.empty((frames, x.shape[0]), dtype=x.dtype) if out is None else out[:frames]
    for c in range(x.shape[0]):
        out[:, c] = x[c]
    return out


_NO_PEAKS = np.zeros(0, dtype=np.int32)
#: the bits of a float32's magnitude: as integers, magnitudes order as the floats do, with the
#: infinities above every finite value and the NaNs above them
_MAGNITUDE = np.int32(0x7FFFFFFF)


@numba.njit(inline="always")
def _peak_bits(bits, lo, hi, m):
    """The largest of ``m`` and the magnitudes' bits of ``bits[lo:hi]`` (a float32 row's bits,
    int32): an integer maximum, which the compiler runs in vector registers, where a float
    maximum that must keep a NaN runs a sample at a time."""
    top, row = np.int32(m), bits[lo:hi]
    for j in range(row.shape[0]):
        v = np.int32(row[j] & _MAGNITUDE)  # kept in 32 bits: eight to a vector register
        top = v if v > top else top
    return top


@numba.njit(**_JIT)
def _block_peaks(bits, start, block, peaks):
    n = bits.shape[0]
    i = 0
    while i < n:
        b = (start + i) // block
        stop = min(n, (b + 1) * block - start)
        peaks[b] = _peak_bits(bits, i, stop, peaks[b])
        i = stop


def _bits(x: np.ndarray) -> np.ndarray:
    return x.view(np.int32)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two rows are the same memory: a kernel that writes a row in place then loops
    over the one array (over two that might overlap, the compiled loop checks at run time,
    and where they are the same it runs a sample at a time: 2.0 → 4.6 ns a frame)."""
    return a.ctypes.data == b.ctypes.data and a.shape == b.shape and a.strides == b.strides


# The kernels below take a signal a row at a time: a row of a C-ordered (channels, frames)
# array is contiguous (compiled for unit steps: in vector registers), the whole slice of a
# block of frames is not.

def block_peaks(x: np.ndarray, start: int, block: int, peaks: np.ndarray) -> None:
    """Raise ``peaks[k]`` (float32, of the whole signal) to the largest magnitude of any
    channel of ``x`` (channels, frames) float32, the whole's frames from ``start``, in block
    ``k`` of ``block`` frames; a block with an infinity or a NaN gets a peak that is one."""
    for row in x:
        if row.size:
            _block_peaks(_bits(row), start, block, _bits(peaks))


@numba.njit(inline="always")
def _product(x, g, out):
    for j in range(x.shape[0]):
        out[j] = x[j] * g[j]


@numba.njit(inline="always")
def _product_here(x, g):
    for j in range(x.shape[0]):
        x[j] = x[j] * g[j]


@numba.njit(inline="always")
def _on_grid(v, scale, top, inverse):
    """``v`` (already times the grid's ``scale``) rounded half to even, clipped (a NaN kept,
    as np.clip keeps it) and scaled back."""
    r = np.rint(v)
    clipped = min(max(r, -scale), top)
    return (clipped if r == r else r) * inverse


@numba.njit(inline="always")
def _gained_on_grid(x, g, out, scale, top, inverse):
    for j in range(x.shape[0]):
        out[j] = _on_grid((x[j] * g[j]) * scale, scale, top, inverse)


@numba.njit(inline="always")
def _gained_on_grid_here(x, g, scale, top, inverse):
    for j in range(x.shape[0]):
        x[j] = _on_grid((x[j] * g[j]) * scale, scale, top, inverse)


@numba.njit(**_JIT)
def _gained(x, g, out, bits, scale, start, block, peaks, here, grid):
    """``out = x * g`` (with ``grid``: rounded to multiples of ``1 / scale``), a block at a
    time, each block's peak taken while it is in cache; ``here``: ``out`` is ``x``."""
    n = x.shape[0]
    top = scale - np.float32(1.0)
    inverse = np.float32(1.0) / scale
    i = 0
    while i < n:
        b = (start + i) // block
        stop = min(n, (b + 1) * block - start)
        xs, gs = x[i:stop], g[i:stop]  # (a loop from 0 over one array is vectorised)
        if grid and here:
            _gained_on_grid_here(xs, gs, scale, top, inverse)
        elif grid:
            _gained_on_grid(xs, gs, out[i:stop], scale, top, inverse)
        elif here:
            _product_here(xs, gs)
        else:
            _product(xs, gs, out[i:stop])
        peaks[b] = _peak_bits(bits, i, stop, peaks[b])
        i = stop


def scaled(x: np.ndarray, gain: np.ndarray, out: np.ndarray, start: int, block: int,
           peaks: np.ndarray) -> None:
    """``out = x * gain`` (``x``, ``out`` (channels, frames) float32, ``out`` may be ``x``;
    ``gain`` (frames,) float32: numpy's products) and :func:`block_peaks` of ``out``, a block
    at a time."""
    for row, into in zip(x, out):
        if row.size:
            _gained(row, gain, into, _bits(into), np.float32(1.0), start, block, _bits(peaks),
                    _same(row, into), False)


@numba.njit(**_JIT)
def _to_grid(x, bits, scale, factor, start, block, peaks):
    n = x.shape[0]
    top = scale - np.float32(1.0)
    inverse = np.float32(1.0) / scale
    i = 0
    while i < n:
        b = (start + i) // block
        stop = min(n, (b + 1) * block - start)
        xs = x[i:stop]  # (a loop from 0 is vectorised)
        for j in range(xs.shape[0]):
            xs[j] = _on_grid(xs[j] * factor, scale, top, inverse)  # times 1 is exact
        peaks[b] = _peak_bits(bits, i, stop, peaks[b])
        i = stop


def to_grid(x: np.ndarray, scale: np.float32, scaled: bool, start: int, block: int,
            peaks: np.ndarray) -> None:
    """``x`` (channels, frames) float32 rounded in place to multiples of ``1 / scale``, half
    to even, clipped to ``[−1, 1 − 1/scale]`` (``scaled``: ``x`` is already times ``scale``),
    with :func:`block_peaks` of the result: the same values as numpy's ``x *= scale``,
    ``rint``, ``clip``, ``x *= 1 / scale``, in one pass."""
    for row in x:
        if row.size:
            _to_grid(row, _bits(row), np.float32(scale), np.float32(1.0 if scaled else scale),
                     start, block, _bits(peaks))


def gained_to_grid(x: np.ndarray, gain: np.ndarray, out: np.ndarray, scale: np.float32,
                   start: int, block: int, peaks: np.ndarray) -> None:
    """:func:`scaled` and then :func:`to_grid` (``out = x * gain`` rounded to multiples of
    ``1 / scale``), in one pass: the same values. ``out`` may be ``x``, or lie before it in
    the same memory (each frame is read before it is written, in order)."""
    for row, into in zip(x, out):
        if row.size:
            _gained(row, gain, into, _bits(into), np.float32(scale), start, block,
                    _bits(peaks), _same(row, into), True)


@numba.njit(**_JIT)
def _last_above(x, level):
    channels, n = x.shape
    for i in range(n - 1, -1, -1):
        for c in range(channels):
            if abs(np.float64(x[c, i])) > level:
                return i
    return -1


@numba.njit(**_JIT)
def _first_above(x, level):
    channels, n = x.shape
    for i in range(n):
        for c in range(channels):
            if abs(np.float64(x[c, i])) > level:
                return i
    return -1


def first_above(x: np.ndarray, level: float) -> int:
    """The first frame of ``x`` (channels, frames) where a channel's magnitude exceeds
    ``level``, or −1: searched from the start."""
    return int(_first_above(x, np.float64(level))) if x.shape[1] else -1


def last_above(x: np.ndarray, level: float) -> int:
    """The last frame of ``x`` (channels, frames) where a channel's magnitude exceeds
    ``level``, or −1: searched from the end (a playing block costs next to nothing)."""
    return int(_last_above(x, np.float64(level))) if x.shape[1] else -1


@numba.njit(**_JIT)
def _count_scaled_above(x, scale, level):
    count = 0
    for i in range(x.shape[0]):
        if x[i] * scale > level:
            count += 1
    return count


@numba.njit(**_JIT)
def _scaled_above(x, scale, level, out):
    k = 0
    for i in range(x.shape[0]):
        if x[i] * scale > level:
            out[k] = i
            k += 1


def indices_above(x: np.ndarray, level: np.float32, scale: np.float32 | None = None) -> np.ndarray:
    """``np.flatnonzero(x * scale > level)`` for a row (``level`` and ``scale`` float32, as
    numpy promotes them), without the whole-length product and mask."""
    scale = np.float32(1.0) if scale is None else np.float32(scale)
    level = np.float32(level)
    out = np.empty(_count_scaled_above(x, scale, level), dtype=np.int64)
    _scaled_above(x, scale, level, out)
    return out


@numba.njit(**_JIT)
def _release(g, rate, last, chunk, out):
    n = g.shape[0]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        low = np.inf
        for i in range(start, stop):
            r = np.float64(i - start + 1) * rate
            low = min(low, min(np.float64(g[i]) - r, last))
            out[i] = low + r
        last = np.float64(low + np.float64(stop - start) * rate)


def release(g: np.ndarray, rate: float, initial: float, chunk: int, out: np.ndarray) -> None:
    """:func:`pipeline.dsp.envelope.release` in one pass, with the same chunks, products and sums
    (the same values)."""
    _release(g, np.float64(rate), np.float64(initial), chunk, out)


@numba.njit(**_JIT)
def _mid_segments(x, starts, window, out):
    channels, n = x.shape[0], window.shape[0]
    count = np.float32(channels)
    for s in range(starts.shape[0]):
        a = starts[s]
        for i in range(n):
            v = x[0, a + i]
            for c in range(1, channels):
                v += x[c, a + i]
            out[s, i] = v / count * window[i]


def mid_segments(x: np.ndarray, starts: np.ndarray, window: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
    """The channels' mean of ``x`` (channels, frames) float32 over ``len(window)`` frames from
    each of ``starts``, times ``window``: (len(starts), len(window)) float32 (the windowed
    segments of a Welch spectrum, gathered in one pass)."""
    if out is None:
        out = np.empty((len(starts), len(window)), dtype=np.float32)
    _mid_segments(x, np.asarray(starts, dtype=np.int64), window.astype(np.float32, copy=False),
                  out)
    return out


@numba.njit(**_JIT)
def _column_range(x, per, lo, hi):
    channels = x.shape[0]
    for k in range(lo.shape[0]):
        low, high = x[0, k * per], x[0, k * per]
        for c in range(channels):
            for i in range(k * per, (k + 1) * per):
                v = x[c, i]
                low = min(low, v)
                high = max(high, v)
        lo[k], hi[k] = low, high


def column_range(x: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest sample of all channels of ``x`` (channels, frames) in each of
    ``columns`` consecutive slices of ``frames // columns`` frames (fewer columns when there
    are fewer frames; the frames past the last whole slice are left out)."""
    per = max(1, x.shape[1] // columns)
    count = x.shape[1] // per
    lo, hi = np.empty(count, dtype=x.dtype), np.empty(count, dtype=x.dtype)
    if count:
        _column_range(x, per, lo, hi)
    return lo, hi


@numba.njit(**_JIT)
def _partitions(history, spectra, newest, acc):
    parts, channels, bins = spectra.shape
    for k in range(parts):
        h = history[(newest - k) % parts]
        for c in range(channels):
            for f in range(bins):
                if k == 0:
                    acc[c, f] = h[c, f] * spectra[0, c, f]
                else:
                    acc[c, f] += h[c, f] * spectra[k, c, f]


def partitioned_spectrum(history: np.ndarray, spectra: np.ndarray, newest: int) -> np.ndarray:
    """``Σ_k history[(newest − k) mod P] · spectra[k]`` over the P partitions of a uniformly
    partitioned convolution (both (P, channels, bins) complex): the next output block's
    spectrum, in one pass and no temporaries (the same products and sums, in the same order,
    as numpy's)."""
    acc = np.empty(spectra.shape[1:], dtype=np.result_type(history, spectra))
    _partitions(history, spectra, newest, acc)
    return acc


@numba.njit(**_JIT)
def _half_sum(a, b, sign, out):
    for i in range(out.shape[0]):
        out[i] = (a[i] + sign * b[i]) * np.float32(0.5)


def mid_or_side(left: np.ndarray, right: np.ndarray, side: bool, out: np.ndarray) -> np.ndarray:
    """``(left ± right) · 0.5`` (float32 rows) into ``out``: the mid, or with ``side`` the
    side."""
    _half_sum(left, right, np.float32(-1.0 if side else 1.0), out)
    return out


@numba.njit(**_JIT)
def _left_right(mid, side, width, left, right, left_bits, right_bits, start, block, peaks):
    n = mid.shape[0]
    i = 0
    while i < n:  # a block (of the peaks, or the whole row) at a time
        b = (start + i) // block if peaks.shape[0] else 0
        stop = min(n, (b + 1) * block - start) if peaks.shape[0] else n
        ms, ss, ls, rs = mid[i:stop], side[i:stop], left[i:stop], right[i:stop]
        for j in range(ms.shape[0]):  # (a loop from 0 is vectorised)
            s = ss[j] * width
            ls[j] = ms[j] + s
            rs[j] = ms[j] - s
        if peaks.shape[0]:
            peaks[b] = _peak_bits(right_bits, i, stop, _peak_bits(left_bits, i, stop, peaks[b]))
        i = stop


def left_right(mid: np.ndarray, side: np.ndarray, width: float, left: np.ndarray,
               right: np.ndarray, peaks: np.ndarray | None = None, start: int = 0,
               block: int = 1) -> None:
    """Left and right (float32 rows, written) from ``mid`` and ``side`` with the side
    scaled by ``width``; with ``peaks``, as :func:`block_peaks` of the rows written (frames
    from ``start`` of the whole, in blocks of ``block``)."""
    _left_right(mid, side, np.float32(width), left, right, _bits(left), _bits(right), start,
                block, _NO_PEAKS if peaks is None else _bits(peaks))


# A real FFT of 2B points as two of B points, of the even and of the odd samples: pocketfft
# runs four rows (two channels' even and odd samples) side by side in vector registers,
# while it runs two rows (two channels) one sample at a time: 2.6 → 1.6 ms for the room's
# two transforms of a 65,536-frame block, joining and splitting included.

def half_twiddles(block: int) -> np.ndarray:
    """``exp(−2πik / 2·block)`` for k = 0 … block/2 (complex64), for :func:`join_halves`
    and :func:`split_halves` (``block`` even)."""
    return np.exp(-2j * np.pi * np.arange(block // 2 + 1) / (2 * block)).astype(np.complex64)


@numba.njit(**_JIT)
def _deinterleave(x, out):
    channels, n = x.shape
    half = out.shape[2]
    for c in range(channels):
        for i in range(half):
            out[c, 0, i] = x[c, 2 * i] if 2 * i < n else np.float32(0.0)
            out[c, 1, i] = x[c, 2 * i + 1] if 2 * i + 1 < n else np.float32(0.0)


def deinterleave(x: np.ndarray, out: np.ndarray) -> None:
    """The even and the odd samples of ``x`` (channels, n ≤ 2·half) float32 into ``out``
    (channels, 2, half), zero past ``n``."""
    _deinterleave(x, out)


@numba.njit(**_JIT)
def _join_halves(halves, twiddles, out):
    channels, _, bins = halves.shape
    block = out.shape[1] - 1
    for c in range(channels):
        for k in range(bins):
            e = halves[c, 0, k]
            o = halves[c, 1, k] * twiddles[k]
            out[c, k] = e + o
            out[c, block - k] = np.conj(e - o)


def join_halves(halves: np.ndarray, twiddles: np.ndarray, out: np.ndarray) -> None:
    """The real FFT of a row of 2·block samples (``out``, (channels, block + 1)) from the real
    FFTs of its even and of its odd samples (``halves``, (channels, 2, block/2 + 1)), all
    complex64; ``twiddles`` from :func:`half_twiddles` (the radix-2 step of a transform)."""
    _join_halves(halves, twiddles, out)


@numba.njit(**_JIT)
def _split_halves(spectrum, twiddles, out):
    channels, _, bins = out.shape
    block = spectrum.shape[1] - 1
    half = np.float32(0.5)
    for c in range(channels):
        for k in range(bins):
            a = spectrum[c, k]
            b = np.conj(spectrum[c, block - k])  # the bin k + block, by symmetry
            out[c, 0, k] = (a + b) * half
            out[c, 1, k] = (a - b) * half * np.conj(twiddles[k])


def split_halves(spectrum: np.ndarray, twiddles: np.ndarray) -> np.ndarray:
    """The inverse of :func:`join_halves`: from a real FFT of 2·block points (channels,
    block + 1), the real FFTs (channels, 2, block/2 + 1) whose inverses (of block points) are
    the even and the odd samples of its inverse."""
    out = np.empty((spectrum.shape[0], 2, twiddles.shape[0]), dtype=np.complex64)
    _split_halves(spectrum, twiddles, out)
    return out


@numba.njit(**_JIT)
def _interleave_halves(halves, start, out):
    channels, n = out.shape
    for c in range(channels):
        for i in range(n // 2):
            out[c, 2 * i] = halves[c, 0, start + i]
            out[c, 2 * i + 1] = halves[c, 1, start + i]


def interleave_halves(halves: np.ndarray, start: int, n: int) -> np.ndarray:
    """Frames ``2·start`` … ``2·start + n`` (n even) of the rows whose even and odd samples
    are ``halves`` (channels, 2, m) float32: (channels, n)."""
    out = np.empty((halves.shape[0], n), dtype=np.float32)
    _interleave_halves(halves, start, out)
    return out


@numba.njit(**_JIT)
def _reduction_sums(gain, over):
    low, total, count = np.float32(1.0), 0.0, 0
    for i in range(gain.shape[0]):
        g = gain[i]
        if g < np.float32(1.0):
            low = min(low, g)
            db = np.float32(-20.0) * np.log10(max(g, np.float32(1e-6)))
            total += np.float64(db)
            count += db > over
    return low, total, count


def reduction_sums(gain: np.ndarray, over_db: float) -> tuple[float, float, int]:
    """Of a per-frame linear ``gain`` (float32, ≤ 1 where reduced): its smallest value, the
    sum of the reductions in dB (frames at 1 add nothing) and how many exceed ``over_db``;
    the logarithms are taken only where the gain is below 1."""
    low, total, count = _reduction_sums(gain, np.float32(over_db))
    return float(low), float(total), int(count)
