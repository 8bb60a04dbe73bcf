"""Reading and checking the settings' TOML files, shared by the templates and presets
(:mod:`pipeline.settings.config`) and the data tables (:mod:`pipeline.mix.stem_tone`,
:mod:`pipeline.render.vibrato`).
"""
from __future__ import annotations

import tomllib
from importlib import resources

from pipeline.errors import PipelineError


def number(data: dict, key: str, where: str, error, lo: float, hi: float) -> float:
    """``data[key]``, a number from ``lo`` to ``hi``; else ``error`` naming ``where``."""
    if key not in data:
        raise error(f"{where}: missing key '{key}' (a number from {lo} to {hi})")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise error(f"{where}: '{key}' = {value!r} is not allowed (a number from {lo} to {hi})")
    return float(value)


def package_toml(where: str) -> dict:
    """A data table shipped with the package (``where``: its path under ``pipeline/``), parsed;
    a broken one is a one-line error naming it."""
    text = resources.files("pipeline").joinpath(where).read_text("utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"{where}: not valid TOML ({exc})") from exc
