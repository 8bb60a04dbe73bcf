"""Safe file and folder names."""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

CACHE_ENV = "SCORE2AUDIO_CACHE"   # a folder; tests point it at a temporary one


def cache_folder() -> Path:
    """Where the calibrations and performances are kept: ``$SCORE2AUDIO_CACHE``, else
    ``$XDG_CACHE_HOME/score2audio`` or ``~/.cache/score2audio``."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME")
                                             or Path.home() / ".cache") / "score2audio"
    return Path(root)


def slugify(text: str, *, fallback: str = "untitled", max_length: int = 60) -> str:
    """A lower-case ASCII name with only ``a-z 0-9 -``: no separators, no dots, never empty."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length].strip("-")
    return slug or fallback
