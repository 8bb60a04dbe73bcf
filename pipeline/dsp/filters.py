"""Filter design shared by the stem tone (the mix) and the mastering EQ.
"""
from __future__ import annotations

import numpy as np

EQ_Q = 1.1
SHELF_Q = 0.707


def biquad(kind: str, freq: float, gain_db: float, sample_rate: int,
           q: float | None = None) -> np.ndarray:
    """An RBJ-cookbook peaking or shelving filter as one second-order section; ``q``: the
    peak's bandwidth (``EQ_Q`` unless given) or the shelf's slope (``SHELF_Q`` unless given,
    the steepest without overshoot)."""
    if q is None:
        q = EQ_Q if kind == "peak" else SHELF_Q
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * min(freq, 0.45 * sample_rate) / sample_rate
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        sq = 2 * np.sqrt(a) * np.sin(w0) / (2 * q)  # 2·√A·α
        sign = 1 if kind == "lowshelf" else -1
        b = [a * ((a + 1) - sign * (a - 1) * cos + sq),
             sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
             a * ((a + 1) - sign * (a - 1) * cos - sq)]
        den = [(a + 1) + sign * (a - 1) * cos + sq,
               -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
               (a + 1) + sign * (a - 1) * cos - sq]
    return np.concatenate((np.array(b) / den[0], np.array(den) / den[0]))
