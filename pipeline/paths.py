"""Safe file and folder names."""
from __future__ import annotations

import re
import unicodedata


def slugify(text: str, *, fallback: str = "untitled", max_length: int = 60) -> str:
    """A lower-case ASCII name with only ``a-z 0-9 -``: no separators, no dots, never empty."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length].strip("-")
    return slug or fallback
