"""Load stage: a path becomes a parsed score.

MusicXML and everything else music21 reads go through music21; MIDI files are read with mido,
which keeps every controller, program change and the exact tick timing (music21's MIDI import
quantises and drops controllers).
"""
from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ScoreError
from pipeline.score.formats import MIDI_SUFFIXES, MUSICXML_SUFFIXES, SUPPORTED_SUFFIXES
from pipeline.score.musicxml import check_time_signatures
from pipeline.score.music21_patches import patched_reader
from pipeline.score.untrusted import check_musicxml, mislabeled_as_wide

log = logging.getLogger(__name__)

#: music21's warnings, in our words or silenced (None) where a composer hears nothing of them:
#: (what music21 says, what we say; ``{0}``… are the pattern's groups). A drum music21's own
#: table lacks is still played, on the key the file's ``<midi-unpitched>`` gives
#: (:func:`pipeline.score.musicxml.drum_keys`); music21's notes about how it files voices leave
#: every note played. Hairpins and pedal lines are read from the MusicXML file itself
#: (:func:`pipeline.score.musicxml.direction_marks`), so music21's failing to pair them says
#: nothing about what is played. A ``<midi-program>`` outside 1–128 leaves the part without a
#: program (music21 counts from 0: the file's 129 is its 128), so the assign stage goes by its
#: name.
MUSIC21_WARNINGS: tuple[tuple[re.Pattern, str | None], ...] = (
    (re.compile(r"\d+ does not map to a valid instrument"), None),
    (re.compile(r"Cannot put in an element with a missing voice tag"), None),
    (re.compile(r"Current voices?(Ids)?:"), None),
    (re.compile(r"Cannot find voice \S+; putting outside of voices"), None),
    (re.compile(r"Could not import (wedge|pedal)"), None),
    (re.compile(r"No instrument found for MIDI program -?\d+"),
     "a part's MIDI program is not one of the 128 General MIDI programs; its instrument is "
     "taken from its name"),
    (re.compile(r"(?:Warning: )?measure (\S+) in part (.*?) ?is overfull: ([\d./]+) > ([\d./]+)"),
     "bar {0} of part '{1}' holds {2} quarter notes where its time signature has {3}; the "
     "next bar starts after {3}"),
)


def music21_warning(text: str) -> str | None:
    """Our line for one of music21's warnings (see :data:`MUSIC21_WARNINGS`); None: silenced.
    Others keep music21's words, on one line."""
    for pattern, ours in MUSIC21_WARNINGS:
        found = pattern.match(text)
        if found:
            return None if ours is None else ours.format(*(_number(g) for g in found.groups()))
    return " ".join(text.split())


def _number(text: str) -> str:
    """A group of a warning as said: music21's fractions (3077/768) as decimals (4.01)."""
    from fractions import Fraction

    try:
        return f"{float(Fraction(text.strip())):g}" if any(c.isdigit() for c in text) else \
            text.strip()
    except (ValueError, ZeroDivisionError):
        return text.strip()


@dataclass(frozen=True)
class LoadedScore:
    """A parsed score: ``kind`` is ``"music21"`` (``data`` a music21 Score) or ``"midi"``
    (``data`` a mido MidiFile)."""

    path: Path
    kind: str
    data: Any


def load(path: str | Path) -> LoadedScore:
    """Read a score file.

    Raises
    ------
    ScoreError
        With the file name and the problem, for a missing, unreadable, unsupported or broken file.
    """
    path = Path(path)
    if not path.exists():
        raise ScoreError(f"{path}: no such file")
    if path.is_dir():
        raise ScoreError(f"{path}: is a folder, not a score file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ScoreError(f"{path}: unsupported file type '{suffix or '(none)'}' (use one of {allowed})")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ScoreError(f"{path}: cannot be read ({exc.strerror})") from exc
    if size == 0:
        raise ScoreError(f"{path}: the file is empty")
    if suffix in MIDI_SUFFIXES:
        return LoadedScore(path, "midi", _load_midi(path))
    return LoadedScore(path, "music21", _load_music21(path, suffix))


def _load_midi(path: Path):
    import mido

    try:
        return mido.MidiFile(str(path), clip=True)
    except Exception as exc:  # mido raises its own types too (KeySignatureError, …)
        reason = str(exc) or ("it ends too early" if isinstance(exc, EOFError) else
                              type(exc).__name__)
        raise ScoreError(f"{path}: not a readable MIDI file ({reason})") from exc


def _parse(music21, path: Path, suffix: str):
    """music21's parse of ``path``; a file whose declaration says UTF-16 over UTF-8 bytes
    (:func:`~pipeline.score.untrusted.mislabeled_as_wide`) is handed over as decoded text."""
    if suffix in (".musicxml", ".xml"):
        with open(path, "rb") as fh:
            head = fh.read(256)
        if mislabeled_as_wide(head):
            text = path.read_bytes().decode("utf-8", errors="replace")
            return music21.converter.parseData(text, format="musicxml", forceSource=True)
    return music21.converter.parse(str(path), forceSource=True)


def _load_music21(path: Path, suffix: str):
    import music21

    if suffix in MUSICXML_SUFFIXES:
        try:
            check_musicxml(path)  # zip bombs, entity declarations, bytes that are not XML
        except OSError as exc:
            raise ScoreError(f"{path}: cannot be read ({exc.strerror or exc})") from exc

    try:
        if suffix in MUSICXML_SUFFIXES:
            check_time_signatures(path)  # a damaged <time> would hang music21
        with patched_reader(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parsed = _parse(music21, path, suffix)
        for warning in caught:  # music21 warns about what it skips: say which file, in one line
            text = str(warning.message).strip().splitlines()[0][:200] if str(
                warning.message).strip() else type(warning.message).__name__
            ours = music21_warning(text)
            if ours is None:
                log.debug("%s: %s", path, text)
            else:
                log.warning("%s: %s", path, ours)
    except ScoreError:
        raise
    except Exception as exc:  # music21 raises many unrelated types for broken input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScoreError(f"{path}: cannot be read as a score ({reason[:200]})") from exc
    if isinstance(parsed, music21.stream.Opus):
        if not parsed.scores:
            raise ScoreError(f"{path}: the file holds no score")
        log.warning("%s holds %d scores; rendering the first", path, len(parsed.scores))
        parsed = parsed.scores[0]
    if not isinstance(parsed, music21.stream.Score):
        score = music21.stream.Score()
        score.insert(0, parsed if isinstance(parsed, music21.stream.Part) else music21.stream.Part(parsed))
        parsed = score
    if not parsed.parts:
        raise ScoreError(f"{path}: the score has no parts")
    return parsed
