"""Mix stage: stems become a stereo mix with room and headroom.

Stems are read block by block (they can be longer than memory); only the stereo mix is whole.
Each player is placed on the stage by equal-power panning of its mid signal while keeping
a template-set amount of its own stereo spread; a share of it is sent to the room, a generated
impulse response applied by overlap-add FFT convolution. The mix is then gain-staged so its
peak sits at ``MIX_PEAK_DBFS``: headroom for mastering, never clipped, never limited.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.fft
import soundfile as sf

from .audio import BLOCK_FRAMES, db_to_gain, gain_to_db, valid_audio
from .config import Template
from .loudness import LoudnessMeter, measure
from .model import Mix, Stems, Voice
from .rooms import impulse_response

MIX_PEAK_DBFS = -4.5  # inside the −6…−3 dBFS window a mastering engineer expects
SILENCE_DBFS = -90.0
#: Each side's room input hears some of the other side: a room's reverb is diffuse.
ROOM_FEED = np.array([[0.7, 0.3], [0.3, 0.7]], dtype=np.float32)

ProgressFn = Callable[[float], None]


def stage_positions(count: int, width: float) -> list[float]:
    """Pan positions (−1 left … +1 right) spreading ``count`` players in score order."""
    if count <= 1:
        return [0.0] * count
    return [float(width * (-1.0 + 2.0 * i / (count - 1))) for i in range(count)]


def pan_matrix(position: float, player_width: float) -> np.ndarray:
    """2×2 matrix taking a stem's (L, R) to its place on the stage.

    The mid signal is panned with the equal-power law (unity at centre); the side signal is
    kept at ``player_width``.
    """
    theta = (position + 1.0) * np.pi / 4.0
    gl, gr = np.sqrt(2.0) * np.cos(theta), np.sqrt(2.0) * np.sin(theta)
    mid = np.array([[gl, gl], [gr, gr]]) * 0.5
    side = np.array([[1.0, -1.0], [-1.0, 1.0]]) * 0.5 * player_width
    return (mid + side).astype(np.float32)


def mix(stems: Stems, voices: tuple[Voice, ...], template: Template, *,
        progress: ProgressFn | None = None) -> Mix:
    """Mix the stems with ``template``'s stage and room.

    Returns a :class:`Mix` whose audio is (2, frames) float32 peaking at ``MIX_PEAK_DBFS``; the
    frames include the room's decay after the last stem sample.
    """
    sr = stems.sample_rate
    positions = stage_positions(len(stems.stems), template.stage_width)
    matrices = [pan_matrix(p, template.player_width) for p in positions]
    send = db_to_gain(template.reverb_send_db)
    ir = impulse_response(template.room, sr)
    conv = _OverlapAdd(ir, BLOCK_FRAMES)
    out = np.zeros((2, stems.frames + ir.shape[1]), dtype=np.float32)
    meters = [LoudnessMeter(sr) for _ in stems.stems]
    files = [sf.SoundFile(str(s.path)) for s in stems.stems]
    try:
        for start in range(0, stems.frames, BLOCK_FRAMES):
            n = min(BLOCK_FRAMES, stems.frames - start)
            dry = np.zeros((2, n), dtype=np.float32)
            for f, m, meter in zip(files, matrices, meters):
                block = f.read(n, dtype="float32", always_2d=True).T
                meter.feed(block)
                dry += m @ block
            out[:, start:start + n] += dry
            conv.add(out, start, ROOM_FEED @ dry * send)
            if progress:
                progress((start + n) / stems.frames)
    finally:
        for f in files:
            f.close()
    out = _trim_tail(out, stems.frames)
    peak = float(np.abs(out).max()) if out.size else 0.0
    gain_db = MIX_PEAK_DBFS - gain_to_db(peak) if peak > 0 else 0.0
    out *= np.float32(db_to_gain(gain_db))
    levels = tuple({"part": s.name, "file": f"stems/{s.path.name}", "pan": round(pos, 3),
                    "peak_dbfs": round(gain_to_db(m.peak), 2),
                    "loudness_lufs": _round(m.integrated_lufs()),
                    "instrument": v.preset_name, "family": v.family}
                   for s, m, pos, v in zip(stems.stems, meters, positions, voices))
    settings = {"template": template.name, "stage_width": template.stage_width,
                "player_width": template.player_width, "room": template.room.name,
                "rt60_s": template.room.rt60_s, "predelay_ms": template.room.predelay_ms,
                "reverb_send_db": template.reverb_send_db, "mix_gain_db": round(gain_db, 2),
                "mix_peak_target_dbfs": MIX_PEAK_DBFS}
    meter = measure(out, sr)
    return Mix(valid_audio(out, name="mix"), sr, levels, settings, meter.integrated_lufs(),
               meter.short_term_lufs())


def _round(value: float) -> float | None:
    return round(value, 2) if np.isfinite(value) else None


def _trim_tail(audio: np.ndarray, keep: int) -> np.ndarray:
    """Drop the room's decay once it is below ``SILENCE_DBFS`` of the mix's peak."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak == 0:
        return audio[:, :keep]
    loud = np.flatnonzero(np.abs(audio[:, keep:]).max(axis=0) > peak * db_to_gain(SILENCE_DBFS))
    end = keep + (int(loud[-1]) + 1 if loud.size else 0)
    return np.ascontiguousarray(audio[:, :end])


class _OverlapAdd:
    """Convolution of a stream with a fixed stereo impulse response, block by block."""

    def __init__(self, ir: np.ndarray, block: int):
        self.ir_len = ir.shape[1]
        self.n_fft = scipy.fft.next_fast_len(block + self.ir_len - 1, real=True)
        self.spectrum = scipy.fft.rfft(ir.astype(np.float64), n=self.n_fft, axis=1)

    def add(self, out: np.ndarray, start: int, block: np.ndarray) -> None:
        """Add ``block`` (2, n) convolved with the response into ``out`` from ``start``."""
        n = block.shape[1]
        wet = scipy.fft.irfft(scipy.fft.rfft(block.astype(np.float64), n=self.n_fft, axis=1)
                              * self.spectrum, n=self.n_fft, axis=1)
        stop = min(out.shape[1], start + n + self.ir_len - 1)
        out[:, start:stop] += wet[:, : stop - start].astype(np.float32)
