"""Room impulse responses the project generates itself (seeded, so renders are reproducible).

A room is early reflections (sparse, decaying taps in the first ~80 ms) plus a late tail of
decorrelated noise whose decay time falls with frequency (three bands with their own RT60), as
in a real hall where air and surfaces absorb the highs first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BANDS_HZ = (250.0, 4000.0)  # low | mid | high crossovers


@dataclass(frozen=True)
class Room:
    """A reverberant space. ``rt60_s`` is the mid-band decay time (−60 dB)."""

    name: str
    rt60_s: float
    predelay_ms: float = 15.0
    low_rt60_ratio: float = 1.2   # bass decays this much longer than mids
    high_rt60_ratio: float = 0.55  # highs decay this much faster
    early_ms: float = 80.0
    width: float = 1.0  # 0 = mono tail, 1 = fully decorrelated left/right


def impulse_response(room: Room, sample_rate: int, *, seed: int = 1) -> np.ndarray:
    """Stereo impulse response, shape (2, frames), float32, normalised to unit energy per channel."""
    rng = np.random.default_rng(seed)
    length = int((room.rt60_s * max(1.0, room.low_rt60_ratio) * 1.1 + room.predelay_ms / 1000)
                 * sample_rate)
    t = np.arange(length) / sample_rate
    pre = int(room.predelay_ms / 1000 * sample_rate)
    ir = np.zeros((2, length))
    common = rng.standard_normal(length)
    from scipy.signal import sosfilt  # here: the templates are read without scipy.signal

    bands = _band_filters(sample_rate)
    for ch in range(2):
        own = rng.standard_normal(length)
        noise = np.sqrt(1 - room.width ** 2 / 2) * common + (room.width / np.sqrt(2)) * own
        tail = np.zeros(length)
        for sos, ratio in zip(bands, (room.low_rt60_ratio, 1.0, room.high_rt60_ratio)):
            rt = room.rt60_s * ratio
            tail += sosfilt(sos, noise) * np.exp(-6.91 * t / rt)  # 6.91 = ln(1000): −60 dB at rt
        onset = np.clip(t / (room.early_ms / 1000), 0, 1) ** 2  # the tail builds up after the early field
        ir[ch, pre:] = (tail * onset)[: length - pre]
        n_taps = 14
        tap_t = np.sort(rng.uniform(0.004, room.early_ms / 1000, n_taps))
        tap_idx = pre + (tap_t * sample_rate).astype(int)
        ir[ch, tap_idx] += rng.choice((-1.0, 1.0), n_taps) * 0.6 * np.exp(-3.0 * tap_t / (room.early_ms / 1000))
    ir /= np.sqrt((ir ** 2).sum(axis=1, keepdims=True))
    return ir.astype(np.float32)


def _band_filters(sample_rate: int):
    from scipy.signal import butter

    lo, hi = BANDS_HZ
    nyq = sample_rate / 2
    return (butter(4, lo / nyq, "lowpass", output="sos"),
            butter(4, [lo / nyq, hi / nyq], "bandpass", output="sos"),
            butter(4, hi / nyq, "highpass", output="sos"))


def measured_rt60(ir: np.ndarray, sample_rate: int) -> float:
    """RT60 from the Schroeder backward integral (T20 extrapolated), for checking rooms."""
    energy = (ir.astype(np.float64) ** 2).sum(axis=0)
    edc = np.cumsum(energy[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0] + 1e-30)
    i5 = int(np.argmax(edc_db <= -5))
    i25 = int(np.argmax(edc_db <= -25))
    return 3.0 * (i25 - i5) / sample_rate
