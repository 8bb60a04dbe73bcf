"""Checking numbers read from the settings' TOML files, shared by the templates and presets
(:mod:`pipeline.settings.config`) and the stem tone table (:mod:`pipeline.mix.stem_tone`).
"""
from __future__ import annotations


def number(data: dict, key: str, where: str, error, lo: float, hi: float) -> float:
    """``data[key]``, a number from ``lo`` to ``hi``; else ``error`` naming ``where``."""
    if key not in data:
        raise error(f"{where}: missing key '{key}' (a number from {lo} to {hi})")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise error(f"{where}: '{key}' = {value!r} is not allowed (a number from {lo} to {hi})")
    return float(value)
