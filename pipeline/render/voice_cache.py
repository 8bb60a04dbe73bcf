"""What is measured of a soundfont's voices once and kept on disk (the balance calibration, the
attack times, the samples' own vibrato): the JSON files beside each other in the cache folder, and the stamp that makes a
changed soundfont measure again (read and written with :func:`pipeline.files.read_cache` and
:func:`~pipeline.files.write_cache`)."""
from __future__ import annotations

from pathlib import Path

from pipeline.files import file_stamp
from pipeline.model import Voice
from pipeline.paths import cache_folder


def cache_file(name: str) -> Path:
    return cache_folder() / name


def voice_key(voice: Voice) -> str:
    """The voice's soundfont (its path, size and modification time: a replaced file measures
    again), bank, program and channel kind."""
    sf = Path(voice.soundfont)
    return f"{sf.resolve()}|{file_stamp(sf)}|{voice.bank}|{voice.program}|{int(voice.is_percussion)}"
