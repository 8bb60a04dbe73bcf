"""Tone and dynamics per stem: a gentle EQ per instrument family and a light compressor for
the players an engineer would hold steady (``data/stem-tone.toml``; the template names them).

The compressor works block by block on a stem, with its state carried across blocks, and
without a per-sample Python loop: its level detector and attack are one-pole IIR filters
(``scipy.signal.lfilter``) and its release, a gain reduction that falls at most
``release_db_per_s``, is :func:`pipeline.dsp.envelope.release` on the negated reduction.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from pipeline.dsp import kernels
from pipeline.dsp.audio import db_to_gain
from pipeline.settings.validation import number, package_toml
from pipeline.dsp.envelope import release
from pipeline.errors import PipelineError
from pipeline.settings.instruments import FAMILIES
from pipeline.dsp.loudness import k_weighting
from pipeline.dsp.filters import biquad

WHERE = "data/stem-tone.toml"
BAND_TYPES = ("peak", "lowshelf", "highshelf")
LUFS_OFFSET = -0.691  # BS.1770: loudness of K-weighted channel-summed power


@dataclass(frozen=True)
class Band:
    type: str
    hz: float
    gain_db: float
    q: float

    def as_dict(self) -> dict:
        return {"type": self.type, "hz": self.hz, "gain_db": self.gain_db, "q": self.q}


@dataclass(frozen=True)
class CompressorSettings:
    ratio: float
    threshold_lu: float       # above the instrument's calibrated mf
    detector_ms: float
    attack_ms: float
    release_db_per_s: float
    max_reduction_db: float


@dataclass(frozen=True)
class StemTone:
    eq: dict            # family → tuple[Band, ...]
    compressor: CompressorSettings

    def eq_bands(self, family: str) -> tuple[Band, ...]:
        return self.eq.get(family, ())

    def eq_sos(self, family: str, sample_rate: int) -> np.ndarray | None:
        """The family's EQ as second-order sections, or None when it has none."""
        bands = self.eq_bands(family)
        if not bands:
            return None
        return np.stack([biquad(b.type, b.hz, b.gain_db, sample_rate, q=b.q) for b in bands])


@functools.lru_cache(maxsize=1)
def load_stem_tone() -> StemTone:
    """Read and check ``data/stem-tone.toml``."""
    data = package_toml(WHERE)
    eq = {}
    for family, table in data.get("eq", {}).items():
        where = f"{WHERE} [eq.{family}]"
        if family not in FAMILIES:
            raise PipelineError(f"{where}: not a family (one of: {', '.join(FAMILIES)})")
        bands = table.get("bands") if isinstance(table, dict) else None
        if not isinstance(bands, list) or not all(isinstance(b, dict) for b in bands):
            raise PipelineError(f"{where}: 'bands' must be a list of {{type, hz, gain_db, q}}")
        checked = []
        for b in bands:
            if b.get("type") not in BAND_TYPES:
                raise PipelineError(f"{where}: band type {b.get('type')!r} is not allowed "
                                    f"(one of: {', '.join(BAND_TYPES)})")
            # gentle by rule: a stem EQ that needs more than 3 dB is the wrong sample
            checked.append(Band(b["type"], number(b, "hz", where, PipelineError, 20.0, 20000.0),
                                number(b, "gain_db", where, PipelineError, -3.0, 3.0),
                                number(b, "q", where, PipelineError, 0.3, 4.0)))
        eq[family] = tuple(checked)
    comp = data.get("compressor")
    where = f"{WHERE} [compressor]"
    if not isinstance(comp, dict):
        raise PipelineError(f"{where}: missing table")
    return StemTone(eq, CompressorSettings(
        ratio=number(comp, "ratio", where, PipelineError, 1.0, 2.0),  # light, by rule
        threshold_lu=number(comp, "threshold_lu", where, PipelineError, -6.0, 20.0),
        detector_ms=number(comp, "detector_ms", where, PipelineError, 1.0, 300.0),
        attack_ms=number(comp, "attack_ms", where, PipelineError, 1.0, 200.0),
        release_db_per_s=number(comp, "release_db_per_s", where, PipelineError, 1.0, 200.0),
        max_reduction_db=number(comp, "max_reduction_db", where, PipelineError, 0.5, 6.0)))


def _one_pole(time_ms: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.exp(-1000.0 / (time_ms * sample_rate))
    return np.array([1.0 - a]), np.array([1.0, -a])


class Compressor:
    """A feed-forward compressor for one stereo stem, fed block by block.

    Both channels get the same gain (the image does not wander). ``threshold_lufs`` is the
    short-term loudness in the stem, as rendered, above which it starts to work.
    """

    def __init__(self, settings: CompressorSettings, *, threshold_lufs: float, sample_rate: int):
        self.settings = settings
        self.threshold_lufs = threshold_lufs
        self.slope = 1.0 - 1.0 / settings.ratio
        self.k_sos = k_weighting(sample_rate)
        self.k_state = np.zeros((self.k_sos.shape[0], 2, 2))
        self.detector = _one_pole(settings.detector_ms, sample_rate)
        self.detector_state = np.zeros(1)
        self.attack = _one_pole(settings.attack_ms, sample_rate)
        self.attack_state = np.zeros(1)
        self.release_per_frame = settings.release_db_per_s / sample_rate
        self.held_db = 0.0             # the reduction at the end of the previous block
        self.max_reduction_db = 0.0    # for the report
        self.frames = self.compressed_frames = 0

    def reduction_db(self, block: np.ndarray) -> np.ndarray:
        """Gain reduction (dB, ≥ 0) per frame of ``block`` (2, n); advances the state."""
        n = block.shape[1]
        weighted = kernels.filtered_power(self.k_sos, block, self.k_state)
        power, self.detector_state = lfilter(*self.detector, weighted.astype(np.float64),
                                             zi=self.detector_state)
        level = LUFS_OFFSET + 10.0 * np.log10(power + 1e-20)
        wanted = np.clip((level - self.threshold_lufs) * self.slope, 0.0,
                         self.settings.max_reduction_db)
        # release: reduction[i] = max over j ≤ i of wanted[j] − (i − j)·rate (and what the last
        # block still held): the limiter's release, on the negated reduction
        held = -release(-wanted, self.release_per_frame, initial=-self.held_db, dtype=np.float64)
        held = np.maximum(held, 0.0)
        self.held_db = float(held[-1]) if n else self.held_db
        smooth, self.attack_state = lfilter(*self.attack, held, zi=self.attack_state)
        return smooth

    def at_rest(self, threshold: float) -> bool:
        """True when nothing is held or ringing: on silence it would give silence and stay so."""
        return (self.held_db == 0.0 and float(np.abs(self.k_state).max()) < threshold
                and abs(float(self.detector_state[0])) < threshold
                and abs(float(self.attack_state[0])) < threshold)

    def rest(self, frames: int) -> None:
        """Count ``frames`` of silence passed by without processing (see :meth:`at_rest`)."""
        self.frames += frames

    def process(self, block: np.ndarray) -> np.ndarray:
        """``block`` (2, n) float32 compressed, same shape."""
        if block.shape[1] == 0:
            return block
        reduction = self.reduction_db(block)
        self.max_reduction_db = max(self.max_reduction_db, float(reduction.max()))
        self.frames += reduction.size
        self.compressed_frames += int(np.count_nonzero(reduction > 0.5))
        return block * db_to_gain(-reduction).astype(np.float32)

    def summary(self) -> dict:
        s = self.settings
        return {"ratio": s.ratio, "threshold_lufs": round(self.threshold_lufs, 2),
                "attack_ms": s.attack_ms, "release_db_per_s": s.release_db_per_s,
                "max_reduction_db": round(self.max_reduction_db, 2),
                "compressed_pct": round(100.0 * self.compressed_frames / max(1, self.frames), 1)}
