"""Checks on a MusicXML file before any parser reads it: scores come from anywhere.

- A ``.mxl`` is a zip archive. Its directory is read first: an archive that would expand beyond
  :data:`MAX_XML_BYTES`, holds more than :data:`MAX_ARCHIVE_MEMBERS` files, or compresses a large
  member more than :data:`MAX_COMPRESSION_RATIO` times (a zip bomb) is refused before anything is
  extracted. Python's zipfile never inflates a member past the size its directory declares, so
  the declared sizes are a real bound.
- The XML prolog (everything before the root element) is streamed through expat until the root
  element opens: bytes that are not XML, a root that is not a MusicXML score, and any
  ``<!ENTITY>`` declaration are refused. MusicXML never declares entities; declared entities are
  how entity-expansion bombs ("billion laughs") and external-entity reads (``SYSTEM
  "file:///…"``) work. expat 2.4+ already limits expansion, but the check does not depend on
  the expat a system links, and the refusal names the file. This is what defusedxml does with
  its ``forbid_entities`` handlers, on the prolog only, so the check costs well under a
  millisecond however long the score is.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat

from pipeline.errors import ScoreError

#: Largest uncompressed MusicXML accepted; the longest real scores (a Mahler symphony) are tens
#: of MB, and music21 needs several times the file's size in memory.
MAX_XML_BYTES = 256 << 20
MAX_ARCHIVE_MEMBERS = 1000
#: Real .mxl files compress 10–55 times (music21's corpus); deflate's limit is about 1030.
MAX_COMPRESSION_RATIO = 200
#: Members smaller than this are not held to the ratio: tiny files compress oddly.
RATIO_CHECKED_FROM_BYTES = 1 << 20
#: The prolog (XML declaration, DOCTYPE) of a real score is a few hundred bytes.
MAX_PROLOG_BYTES = 1 << 20
MUSICXML_ROOTS = ("score-partwise", "score-timewise")
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError,
                  NotImplementedError, ValueError)  # zlib.error is an Exception; caught below


def check_musicxml(path: Path) -> None:
    """Refuse ``path`` (``.musicxml``, ``.xml`` or ``.mxl``) unless it is safe to parse.

    Raises
    ------
    ScoreError
        Naming the file (and the archive member) and what is wrong with it.
    """
    if path.suffix.lower() == ".mxl":
        _check_archive(path)
        return
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise ScoreError(f"{path}: {size / 2**20:.0f} MB is too large for a MusicXML score "
                         f"(at most {MAX_XML_BYTES >> 20} MB)")
    with open(path, "rb") as fh:
        _check_prolog(fh, str(path))


_DECLARED_ENCODING = re.compile(rb"""\A<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def mislabeled_as_wide(head: bytes) -> bool:
    """Whether a file's XML declaration names a two- or four-byte encoding (UTF-16, UTF-32)
    although the declaration itself is written one byte a character: a known habit of one
    notation program, whose bytes are UTF-8. Such a file is read as UTF-8, as browsers and
    MuseScore read it. (A real UTF-16 file starts with a byte-order mark or with NULs between
    the letters of ``<?xml``, which this never matches.)"""
    found = _DECLARED_ENCODING.match(head)
    if found is None:
        return False
    name = found.group(1).decode("ascii").lower().replace("_", "-")
    return name.startswith(("utf-16", "utf-32", "ucs-2", "ucs-4", "utf16", "utf32"))


def musicxml_member(archive: zipfile.ZipFile) -> str | None:
    """The member music21 reads from a ``.mxl``: the first MusicXML file outside META-INF
    (music21's own rule, so that the file checked is the file parsed)."""
    for name in archive.namelist():
        if "META-INF" in name:
            continue
        if Path(name).suffix in (".musicxml", ".xml", ".mxl") or name == ".xml":
            return name
    return None


def _check_archive(path: Path) -> None:
    import zlib

    try:
        if not zipfile.is_zipfile(path):
            raise ScoreError(f"{path}: not a valid compressed MusicXML (.mxl) file (not a zip "
                             f"archive; a plain MusicXML file is named .musicxml)")
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise ScoreError(f"{path}: the archive holds {len(members)} files; a .mxl holds "
                                 f"a score and a few pictures (refused as a zip bomb)")
            total = sum(m.file_size for m in members)
            if total > MAX_XML_BYTES:
                raise ScoreError(f"{path}: the archive expands to {total / 2**20:.0f} MB (at most "
                                 f"{MAX_XML_BYTES >> 20} MB; refused as a zip bomb)")
            for m in members:
                ratio = m.file_size / max(m.compress_size, 1)
                if m.file_size >= RATIO_CHECKED_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO:
                    raise ScoreError(f"{path}: '{m.filename}' is compressed {ratio:.0f} times "
                                     f"(real scores: under {MAX_COMPRESSION_RATIO}; refused as a "
                                     f"zip bomb)")
            name = musicxml_member(archive)
            if name is None:
                raise ScoreError(f"{path}: the archive holds no MusicXML file (.musicxml or .xml)")
            with archive.open(name) as fh:
                _check_prolog(fh, f"{path} ({name})")
    except ScoreError:
        raise
    except (*ARCHIVE_ERRORS, zlib.error) as exc:
        raise ScoreError(f"{path}: a damaged compressed MusicXML (.mxl) file ({exc})") from exc


class _RootFound(Exception):
    def __init__(self, tag: str):
        self.tag = tag


def _check_prolog(fh: BinaryIO, where: str) -> None:
    """Stream ``fh`` through expat until the root element opens; see the module's notes."""
    head = fh.peek(256)[:256] if hasattr(fh, "peek") else b""
    parser = expat.ParserCreate("UTF-8" if mislabeled_as_wide(head) else None)

    def root(tag, _attrs):
        raise _RootFound(tag)

    def entity(name, *_rest):
        raise ScoreError(f"{where}: declares the XML entity '{name}' (<!ENTITY>), which MusicXML "
                         f"never needs; refused, as entities are how XML bombs and external-file "
                         f"reads work")

    parser.StartElementHandler = root
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    read = 0
    try:
        while read <= MAX_PROLOG_BYTES:
            chunk = fh.read(1 << 14)
            read += len(chunk)
            parser.Parse(chunk, not chunk)
            if not chunk:
                break
        else:
            raise ScoreError(f"{where}: no score element in the first {MAX_PROLOG_BYTES >> 20} MB "
                             f"(not a MusicXML score)")
    except _RootFound as found:
        if found.tag not in MUSICXML_ROOTS:
            raise ScoreError(f"{where}: not a MusicXML score (its root element is <{found.tag}>, "
                             f"not <score-partwise>)") from None
        return
    except expat.ExpatError as exc:
        raise ScoreError(f"{where}: not a readable XML file ({expat.ErrorString(exc.code)} at "
                         f"line {exc.lineno}, column {exc.offset})") from None
    except (LookupError, UnicodeError) as exc:  # the encoding it declares is unknown or wrong
        raise ScoreError(f"{where}: not a readable XML file ({exc})") from None
    raise ScoreError(f"{where}: not a readable XML file (no element found)")
