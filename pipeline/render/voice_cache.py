"""What is measured of a soundfont's voices once and kept on disk (the balance calibration, the
attack times, the samples' own vibrato): the JSON files beside each other in the cache folder, and the stamp that makes a
changed soundfont measure again."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.files import atomic_path
from pipeline.model import Voice
from pipeline.paths import cache_folder

log = logging.getLogger(__name__)


def cache_file(name: str) -> Path:
    return cache_folder() / name


def voice_key(voice: Voice) -> str:
    """The voice's soundfont (its path, size and modification time: a replaced file measures
    again), bank, program and channel kind."""
    sf = Path(voice.soundfont)
    try:
        stat = sf.stat()
        stamp = f"{stat.st_size}:{int(stat.st_mtime)}"
    except OSError:
        stamp = "?"
    return f"{sf.resolve()}|{stamp}|{voice.bank}|{voice.program}|{int(voice.is_percussion)}"


def load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: it is only a cache


def save(path: Path, data: dict, what: str) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")
    except PipelineError as exc:  # an unwritable cache only costs time on the next render
        log.warning("%s cache %s not written: %s", what, path, exc)
