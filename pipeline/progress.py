"""One overall progress figure for a render's stages, and the longest performance rendered
by default (what the command line needs before the heavy modules load)."""
from __future__ import annotations

from typing import Callable

#: Rough share of a render's wall time per stage, for one overall progress figure.
STAGE_WEIGHTS = {"load": 0.15, "perform": 0.05, "assign": 0.01, "attack": 0.01, "render": 0.5,
                 "mix": 0.12, "export": 0.05, "master": 0.12, "report": 0.04}

ProgressFn = Callable[[str, float], None]

#: The longest performance rendered unless the caller allows more: hours of music almost always
#: mean a broken file (a stray note far past the end, a tempo near zero), and its stems would
#: fill the disk (30 parts × 3 hours is 120 GB).
MAX_DURATION_S = 3 * 3600.0


def overall_fraction(stage: str, fraction: float) -> float:
    """Where ``fraction`` of ``stage`` puts the whole render, 0–1."""
    names = list(STAGE_WEIGHTS)
    before = sum(STAGE_WEIGHTS[n] for n in names[: names.index(stage)])
    return min(1.0, before + STAGE_WEIGHTS[stage] * fraction) / sum(STAGE_WEIGHTS.values())
