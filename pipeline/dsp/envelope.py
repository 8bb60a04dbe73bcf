"""Gain envelopes: a gain reduction let go no faster than a rate, shared by the mastering
limiter and the stems' compressors.
"""
from __future__ import annotations

import numpy as np

from pipeline.dsp import kernels


def release(gain_db: np.ndarray, db_per_frame: float, *, initial: float = np.inf,
            dtype=np.float32, chunk: int = 1 << 20) -> np.ndarray:
    """Follow ``gain_db`` down at once and back up no faster than ``db_per_frame``:
    ``out[n] = min_k≤n(gain_db[k] + (n − k)·rate)``, a cumulative minimum per chunk, with the
    previous chunk's last value carried in (exact; bounded memory). ``initial``: the value
    before the first frame (a block-by-block caller carries its last one)."""
    out = np.empty(gain_db.size, dtype=dtype)
    kernels.release(np.asarray(gain_db).reshape(-1), db_per_frame, initial, chunk, out)
    return out
