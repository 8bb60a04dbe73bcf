"""Tonal balance and stereo image for mastering: the long-term spectrum in third-octave bands,
a gentle minimum-phase EQ fitted toward a target curve (an ensemble's tilt, or a reference
track), high-shelf taming and mono bass — all as second-order sections applied to mid and side
on two threads (scipy's filters release the GIL).
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import butter, sosfreqz

from pipeline.dsp import kernels
from pipeline.dsp.audio import PEAK_BLOCK, block_peaks
from pipeline.dsp.filters import biquad
from pipeline.dsp.spectrum import long_term_psd

#: Third-octave band centres analysed and corrected (ISO 266, 31.5 Hz – 16 kHz).
BAND_CENTRES = 1000.0 * 2.0 ** (np.arange(-15, 13) / 3)
ACTIVE_RANGE_DB = 35.0     # bands this far under the loudest band are left alone
CORRECTED = (45.0, 14000.0)  # never boost rumble or air that a mix hardly has
SMOOTHING_OCTAVES = 1.0
#: The EQ's bands: a low shelf, octave-wide peaks and a high shelf.
EQ_BANDS = (("lowshelf", 90.0), ("peak", 180.0), ("peak", 355.0), ("peak", 710.0),
            ("peak", 1400.0), ("peak", 2800.0), ("peak", 5600.0), ("highshelf", 9000.0))
TONE_CHUNK = 1 << 18  # frames filtered at a time


def band_levels(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Long-term energy (dB, relative to the whole) of the mid signal of ``audio`` (channels,
    frames, or 1-D) in each third-octave band of ``BAND_CENTRES``."""
    freqs, power = long_term_psd(audio, sample_rate)
    edges_lo, edges_hi = BAND_CENTRES * 2 ** (-1 / 6), BAND_CENTRES * 2 ** (1 / 6)
    out = np.empty(len(BAND_CENTRES))
    for i, (lo, hi) in enumerate(zip(edges_lo, edges_hi)):
        sel = (freqs >= lo) & (freqs < hi)
        out[i] = power[sel].sum() if sel.any() else 0.0
    return 10 * np.log10(np.maximum(out / max(power.sum(), 1e-30), 1e-20))


def tilt_target(slope_db_per_octave: float) -> np.ndarray:
    """A target curve: band energy falling ``slope`` dB per octave around 1 kHz."""
    return slope_db_per_octave * np.log2(BAND_CENTRES / 1000.0)


def _smooth(values: np.ndarray, octaves: float) -> np.ndarray:
    width = max(1, int(round(octaves * 3)))
    kernel = np.hanning(2 * width + 1)
    kernel /= kernel.sum()
    padded = np.pad(values, width, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def correction(measured: np.ndarray, target: np.ndarray, *, amount: float, max_db: float,
               sample_rate: int) -> np.ndarray:
    """The gain (dB per band) that moves ``measured`` ``amount`` of the way toward ``target``.

    Only bands where the mix has content (within ``ACTIVE_RANGE_DB`` of its loudest band, and
    inside ``CORRECTED``) are corrected; the target is aligned to the mix over those bands, so
    the EQ reshapes the balance without moving the overall level much.
    """
    active = (measured > measured.max() - ACTIVE_RANGE_DB) & (BAND_CENTRES >= CORRECTED[0]) \
        & (BAND_CENTRES <= min(CORRECTED[1], 0.45 * sample_rate))
    if amount <= 0 or active.sum() < 3:
        return np.zeros_like(measured)
    weight = 10 ** (measured / 10) * active
    diff = target - measured
    diff = diff - (weight * diff).sum() / weight.sum()   # level-neutral where the energy is
    diff = np.where(active, diff, 0.0)
    return np.clip(amount * _smooth(diff, SMOOTHING_OCTAVES) * active, -max_db, max_db)


def response_db(sos: np.ndarray, sample_rate: int, freqs: np.ndarray = BAND_CENTRES) -> np.ndarray:
    if len(sos) == 0:
        return np.zeros(len(freqs))
    _, h = sosfreqz(sos, worN=freqs, fs=sample_rate)
    return 20 * np.log10(np.maximum(np.abs(h), 1e-12))


@functools.lru_cache(maxsize=8)
def _basis(sample_rate: int) -> np.ndarray:
    """Each EQ band's response (dB per analysis band) at +1 dB: nearly linear for small gains."""
    return np.stack([response_db(biquad(k, f, 1.0, sample_rate)[None, :], sample_rate)
                     for k, f in EQ_BANDS], axis=1)


def fit_eq(wanted_db: np.ndarray, sample_rate: int, *, max_db: float) -> tuple[np.ndarray, list[dict]]:
    """Second-order sections (and their settings) whose response best matches ``wanted_db``
    (per analysis band), by least squares over the band gains, each within ±``max_db``."""
    if not np.any(wanted_db):
        return np.zeros((0, 6)), []
    basis = _basis(sample_rate)
    usable = np.array([f < 0.45 * sample_rate for _, f in EQ_BANDS])
    gains = np.zeros(len(EQ_BANDS))
    gains[usable] = np.linalg.lstsq(basis[:, usable], wanted_db, rcond=None)[0]
    gains = np.clip(gains, -max_db, max_db)
    bands = [{"type": k, "hz": f, "gain_db": round(float(g), 2)}
             for (k, f), g in zip(EQ_BANDS, gains) if abs(g) >= 0.05]
    sos = np.stack([biquad(b["type"], b["hz"], b["gain_db"], sample_rate) for b in bands]) \
        if bands else np.zeros((0, 6))
    return sos, bands


@dataclass(frozen=True)
class ToneSettings:
    """What the tone stage does: mid and side filters and the side level."""

    mid_sos: np.ndarray
    side_sos: np.ndarray
    width: float
    eq_bands: tuple[dict, ...]
    mono_bass_hz: float

    @property
    def identity(self) -> bool:
        return len(self.mid_sos) == 0 and len(self.side_sos) == 0 and self.width == 1.0


def tone_settings(eq_sos: np.ndarray, eq_bands: list[dict], sample_rate: int, *, width: float,
                  mono_bass_hz: float, high_shelf_hz: float, high_shelf_db: float) -> ToneSettings:
    sos = list(eq_sos)
    if high_shelf_db:
        sos.append(biquad("highshelf", high_shelf_hz, high_shelf_db, sample_rate))
        eq_bands = [*eq_bands, {"type": "highshelf", "hz": high_shelf_hz, "gain_db": high_shelf_db}]
    mid = np.array(sos).reshape(-1, 6)
    side = list(sos)
    if mono_bass_hz > 0:
        # 4th-order high-pass on the side: below it the two channels carry the same bass
        side.extend(butter(4, mono_bass_hz, btype="highpass", fs=sample_rate, output="sos"))
    return ToneSettings(mid, np.array(side).reshape(-1, 6), width, tuple(eq_bands), mono_bass_hz)


def apply_tone(audio: np.ndarray, settings: ToneSettings, *, out: np.ndarray | None = None,
               before_write: Callable[[int], None] | None = None,
               peaks: np.ndarray | None = None) -> np.ndarray:
    """Filter mid and side (on two threads) and return left/right, float32, into ``out`` (the
    same shape: ``audio`` itself, or another array; a new one when None). Worked through in
    chunks, the filters' state carried over (the same samples as filtering the whole at once,
    without whole-length temporaries). ``before_write(stop)``: called before the output's
    frames up to ``stop`` are written. ``peaks``: filled with the output's
    :func:`~pipeline.dsp.audio.block_peaks`, kept as it is written."""
    if settings.identity or audio.shape[0] != 2:
        if out is not None and out is not audio:
            out[:] = audio
        result = audio if out is None else out
        if peaks is not None:
            peaks[:] = block_peaks(result)
        return result
    out = np.empty_like(audio) if out is None else out
    filters = {False: settings.mid_sos, True: settings.side_sos}
    states = {side: np.zeros((len(sos), 1, 2)) for side, sos in filters.items()}
    rows = {side: np.empty(TONE_CHUNK, dtype=np.float32) for side in filters}
    if peaks is not None:
        peaks[:] = 0.0

    def run(side: bool, start: int, n: int) -> np.ndarray:
        """The mid (or side) of a chunk, filtered, in a row of its own (no interpreter work
        on the main thread between chunks)."""
        row = kernels.mid_or_side(audio[0, start:start + n], audio[1, start:start + n], side,
                                  rows[side][:n])
        if len(filters[side]):
            kernels.sos_filter(filters[side], row[None], states[side], out=row[None])
        return row

    with ThreadPoolExecutor(2) as pool:
        for start in range(0, audio.shape[1], TONE_CHUNK):
            n = min(TONE_CHUNK, audio.shape[1] - start)
            mid, side = pool.map(run, (False, True), (start, start), (n, n))
            if before_write is not None:
                before_write(start + n)  # the output's frames up to there are about to change
            kernels.left_right(mid, side, settings.width, out[0, start:start + n],
                               out[1, start:start + n], peaks, start, PEAK_BLOCK)
    return out
