"""The raw MusicXML of a score, for the few things music21 does not keep (``<sound>`` jump
attributes, ``<swing>``). The text is read once per file and parsed only when it holds what is
looked for: parsing a long score takes about a second, and most scores have none of these."""
from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from pathlib import Path


@functools.lru_cache(maxsize=2)
def _text(path: str, mtime_ns: int) -> bytes:
    if path.lower().endswith(".mxl"):
        from music21.converter import ArchiveManager

        data = ArchiveManager(Path(path)).getData()
        if not data:
            raise ValueError("no MusicXML file in the archive")
        return data.encode("utf-8") if isinstance(data, str) else data
    return Path(path).read_bytes()


def root_if(path: Path, pattern: bytes) -> ET.Element | None:
    """The parsed file, or None (without parsing) when the regular expression ``pattern`` does
    not occur in its text."""
    data = _text(str(path), path.stat().st_mtime_ns)
    return ET.fromstring(data) if re.search(pattern, data) else None
