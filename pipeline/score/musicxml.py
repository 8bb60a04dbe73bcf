"""The raw MusicXML of a score, for the few things music21 does not keep (``<sound>`` jump
attributes, ``<swing>``, the drum each note of a drum kit plays), and the time signatures
music21 could not build (:func:`check_time_signatures`, before it parses).

:func:`part_measures` reads a file's text once and parses it only when it holds what is looked
for: parsing a long score takes about a second, and most scores have none of these. Both the
text and the parsed tree are kept for the last files read (per path and modification time), so
form and timing share one parse.
"""
from __future__ import annotations

import functools
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Iterator, TypeVar

from pipeline.errors import ScoreError
from pipeline.score.formats import MUSICXML_SUFFIXES
from pipeline.score.untrusted import check_musicxml, musicxml_member, mislabeled_as_wide

log = logging.getLogger(__name__)
T = TypeVar("T")


@functools.lru_cache(maxsize=2)
def _text(path: str, mtime_ns: int) -> bytes:
    """A MusicXML file's bytes; of a ``.mxl``, those of the member music21 reads (undecoded,
    as a plain file's: the XML declaration names their encoding), without loading music21."""
    check_musicxml(Path(path))  # as load does: this reader must not expand a bomb either
    if path.lower().endswith(".mxl"):
        with zipfile.ZipFile(path) as archive:
            member = musicxml_member(archive)
            data = archive.read(member) if member else b""
        if not data:
            raise ValueError("no MusicXML file in the archive")
        return data
    return Path(path).read_bytes()


@functools.lru_cache(maxsize=2)
def _root(path: str, mtime_ns: int) -> ET.Element:
    data = _text(path, mtime_ns)
    if mislabeled_as_wide(data[:256]):  # UTF-8 under a UTF-16 declaration: read as UTF-8
        parser = ET.XMLParser(encoding="utf-8")
        parser.feed(data)
        return parser.close()
    return ET.fromstring(data)


_WORDS = re.compile(rb"<words\b[^>]*>([^<]*)</words>")


def matches(source: str | Path | None, pattern: bytes) -> list[tuple[bytes, ...]]:
    """Every match of the regular expression ``pattern`` (its groups, or the whole match) in
    the MusicXML file ``source``'s text, without parsing it: a quick look before a parse that
    may not be needed. Empty for anything that is not a readable MusicXML file."""
    if source is None or Path(source).suffix.lower() not in MUSICXML_SUFFIXES:
        return []
    try:
        data = _text(str(source), Path(source).stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, ScoreError):
        return []
    return [m.groups() or (m.group(0),) for m in re.finditer(pattern, data)]


def part_list_preview(path: Path) -> tuple[list[dict], list[str]]:
    """What a MusicXML file's part list says of its players (``name``, ``instruments``,
    ``program`` and ``bank`` 0-based or None, ``unpitched``) and the texts of its words over
    the staves, read without music21: for a guess at the presets to load while the score is
    still being parsed. ([], []) for a file it cannot read."""
    try:
        data = _text(str(path), path.stat().st_mtime_ns)
        start, end = data.find(b"<part-list"), data.find(b"</part-list>")
        if start < 0 or end < 0:
            return [], []
        part_list = ET.fromstring(data[start:end + len(b"</part-list>")])
    except (OSError, ET.ParseError, ValueError, KeyError, zipfile.BadZipFile, ScoreError):
        return [], []

    def number(el: ET.Element, tag: str) -> int | None:
        text = el.findtext(f".//{tag}")
        return int(text) - 1 if text and text.strip().isdigit() and int(text) > 0 else None

    def unpitched(sp: ET.Element) -> bool:
        """A drum part: MIDI channel 10, or unpitched notes or a percussion clef in its
        music."""
        if (sp.findtext(".//midi-channel") or "").strip() == "10":
            return True
        at = data.find(b'<part id="%s"' % (sp.get("id") or "").encode())
        music = data[at:data.find(b"</part>", at)] if at >= 0 else b""
        return b"<unpitched" in music or b"<sign>percussion</sign>" in music

    parts = [{"name": (sp.findtext("part-name") or "").strip(),
              "instruments": [(t or "").strip() for t in
                              (e.text for e in sp.iter("instrument-name"))],
              "program": number(sp, "midi-program"), "bank": number(sp, "midi-bank"),
              "unpitched": unpitched(sp)}
             for sp in part_list.iter("score-part")]
    words = [w.decode("utf-8", "replace") for w in _WORDS.findall(data)]
    return parts, words


def release_parsed() -> None:
    """Forget the files read and parsed so far (a large score's element tree is hundreds of
    MB): for when the performance is made and only audio work remains."""
    _root.cache_clear()
    _text.cache_clear()


def part_measures(source: str | Path | None, pattern: bytes, what: str,
                  ) -> list[list[ET.Element]] | None:
    """Each part's measures in the MusicXML file ``source``, in score order, or None when
    ``source`` is not a MusicXML file, when the regular expression ``pattern`` does not occur
    in its text (the file is then not parsed), or when it cannot be read (logged, naming the
    file and ``what`` was looked for).

    In a ``score-partwise`` file a measure is its ``<measure>`` element; in a ``score-timewise``
    file it is the part's ``<part>`` element inside the ``<measure>``: either way, the k-th
    element of a part's list holds what that part has in its k-th measure.
    """
    root = _parsed(source, pattern, what)
    return None if root is None else list(_parts(root).values())


def _parsed(source: str | Path | None, pattern: bytes, what: str) -> ET.Element | None:
    if source is None or Path(source).suffix.lower() not in MUSICXML_SUFFIXES:
        return None
    path = str(source)
    try:
        mtime = Path(path).stat().st_mtime_ns
        if not re.search(pattern, _text(path, mtime)):
            return None
        return _root(path, mtime)
    except (OSError, ET.ParseError, ValueError, KeyError, zipfile.BadZipFile, ScoreError) as exc:
        log.warning("%s: could not read %s (%s)", source, what, exc)
        return None


def _parts(root: ET.Element) -> dict[str | None, list[ET.Element]]:
    """Part id → the part's measures (see :func:`part_measures`)."""
    if root.tag == "score-timewise":
        parts: dict[str | None, list[ET.Element]] = {}
        for measure in root.findall("measure"):
            for part in measure.findall("part"):
                parts.setdefault(part.get("id"), []).append(part)
        return parts
    return {part.get("id"): part.findall("measure") for part in root.findall("part")}


def part_indexes(parts) -> list[int]:
    """For each music21 part of a MusicXML score, in order, the index of the ``<part>`` it was
    read from: a piano's staves (music21's PartStaffs "P1-Staff1", "P1-Staff2") come from one.
    (A plain part's ``id`` is its name, which two parts may share: only order tells them apart.)
    """
    from music21 import stream

    out, index, previous = [], -1, None
    for part in parts:
        base = re.sub(r"-Staff\d+$", "", str(part.id)) if isinstance(part, stream.PartStaff) else None
        if base is None or base != previous:
            index += 1
        previous = base
        out.append(index)
    return out


def by_part(parts, per_raw_part: list[T], source: str | Path | None, what: str) -> dict[int, T]:
    """Each music21 part's (by ``id``) item of ``per_raw_part``, which holds one item per
    ``<part>`` of the MusicXML file ``source`` in order (:func:`part_indexes`; a piano's staves
    share their part's). Empty, with a warning naming ``what``, when the file's parts and the
    score's do not match."""
    index = part_indexes(parts)
    if index and index[-1] + 1 != len(per_raw_part):
        log.warning("%s: %s not read: %d parts in the file, %d in the score", source, what,
                    len(per_raw_part), index[-1] + 1)
        return {}
    return {id(part): per_raw_part[i] for part, i in zip(parts, index)}


def positions(measures: list[ET.Element], source: str | Path | None = None,
              ) -> Iterator[tuple[int, ET.Element, float, float]]:
    """Every child element of one part's measures (:func:`part_measures`) with where it
    stands: ``(measure index, element, position, divisions)``, ``position`` in divisions from
    the measure's start and ``divisions`` those in force (per quarter note; they carry over
    from bar to bar), so ``position / divisions`` is in quarter notes.

    The position is the measure's time cursor, which notes, ``<backup>`` and ``<forward>``
    move; a chord's notes all stand at the chord's onset, and neither a chord note nor a grace
    note moves the cursor (MusicXML's rule). A ``<direction>``'s own ``<offset>`` is not added.
    """
    divisions = 1.0
    for k, measure in enumerate(measures):
        cursor = onset = 0.0
        for el in measure:
            if el.tag == "attributes" and el.findtext("divisions"):
                try:
                    divisions = max(1e-9, float(el.findtext("divisions")))
                except ValueError:
                    log.warning("%s: bar %d: unreadable <divisions>", source, k + 1)
            elif el.tag == "backup":
                cursor -= duration(el)
            elif el.tag == "forward":
                cursor += duration(el)
            elif el.tag == "note":
                if el.find("chord") is None:
                    onset = cursor
                    if el.find("grace") is None:
                        cursor += duration(el)
                yield k, el, onset, divisions
                continue
            yield k, el, cursor, divisions


def direction_marks(source: str | Path | None, tag: str, *, printed_offset: bool = False,
                    ) -> list[list[tuple[int, float, ET.Element]]] | None:
    """Each part's ``<tag>`` marks (``pedal``, ``wedge``: lines music21 keeps only as the notes
    they span) in the ``<direction>`` elements of the MusicXML file ``source``: ``(measure
    index, quarter notes into the measure, element)`` in file order, where the direction stands
    plus its :func:`_sounding_offset` (with ``printed_offset``, any ``<offset>``), not before the
    bar's start. None when the file has none or is not MusicXML."""
    parts = part_measures(source, rb"<" + tag.encode("ascii") + rb"\b", f"<{tag}> marks")
    if not parts:
        return None
    return [[(k, max(0.0, position + (duration(el, "offset") if printed_offset else
                                      _sounding_offset(el))) / divisions, mark)
             for k, el, position, divisions in positions(measures, source)
             if el.tag == "direction" for mark in el.iter(tag)]
            for measures in parts]


def _sounding_offset(direction: ET.Element) -> float:
    """A ``<direction>``'s ``<offset>`` in divisions where it moves the sound too
    (``sound="yes"``); 0 for another, which moves only the print (Finale nudges a hairpin's
    end a 16th or so before the note it ends on)."""
    shift = direction.find("offset")
    return duration(direction, "offset") if shift is not None and shift.get("sound") == "yes" \
        else 0.0


def sound_values(source: str | Path | None, attribute: str, *, bars: int | None = None,
                 ) -> list[list[tuple[int, float, float]]] | None:
    """Each part's ``<sound attribute="…">`` numbers (tempo, dynamics…): ``(measure index,
    quarter notes into the measure, value)`` in file order, a direction's ``<sound>`` where its
    ``<offset sound="yes">`` puts it (another offset moves only the print). None when the file
    has none, or is not MusicXML, or (with a warning) when a part has not ``bars`` measures;
    an unreadable number is left out."""
    name = attribute.encode("ascii")
    parts = part_measures(source, rb"<sound\b[^>]*\b" + name + rb"\s*=", f"<sound {attribute}>")
    if not parts:
        return None
    if bars is not None and any(len(measures) != bars for measures in parts):
        log.warning("%s: <sound %s> not read: %d bars in the file, %d in the score", source,
                    attribute, len(parts[0]), bars)
        return None
    out = []
    for measures in parts:
        found = []
        for k, el, position, divisions in positions(measures, source):
            sounds = [el] if el.tag == "sound" else el.findall("sound")
            if el.tag == "direction":
                position += _sounding_offset(el)
            for sound in sounds:
                try:
                    value = float(sound.get(attribute) or "nan")
                except ValueError:
                    continue
                if value == value:  # not NaN: the attribute is there and a number
                    found.append((k, position / divisions, value))
        out.append(found)
    return out


def duration(el: ET.Element, tag: str = "duration") -> float:
    """The number in ``el``'s child ``tag`` (a duration or offset in divisions); 0 when it is
    missing or unreadable."""
    try:
        return float(el.findtext(tag) or 0)
    except ValueError:
        return 0.0


#: Where an unpitched note stands: (measure index, quarter notes into the measure, staff,
#: display step, display octave).
NotePlace = tuple[int, float, int, str, int]


def drum_keys(source: str | Path | None) -> dict[str, dict[NotePlace, int]]:
    """The General MIDI drum key of every unpitched note that names its instrument
    (``<instrument id>``) when its part lists that instrument's ``<midi-unpitched>``, per part
    id: music21 keeps only a part's first instrument, so a drum kit would play one drum.
    ``<midi-unpitched>`` counts from 1, drum keys from 0. Empty when the file has none."""
    root = _parsed(source, rb"<midi-unpitched\b", "<midi-unpitched> drum keys")
    if root is None:
        return {}
    keys_by_part: dict[str, dict[str, int]] = {}
    for score_part in root.iter("score-part"):
        keys = {}
        for mi in score_part.findall("midi-instrument"):
            text = (mi.findtext("midi-unpitched") or "").strip()
            if text.isdigit() and 1 <= int(text) <= 128:
                keys[mi.get("id")] = int(text) - 1
        if keys:
            keys_by_part[score_part.get("id")] = keys
    out: dict[str, dict[NotePlace, int]] = {}
    for part_id, measures in _parts(root).items():
        if part_id in keys_by_part:
            out[part_id] = _placed_keys(measures, keys_by_part[part_id])
    return out


def _placed_keys(measures: list[ET.Element], keys: dict[str, int]) -> dict[NotePlace, int]:
    placed: dict[NotePlace, int] = {}
    for k, el, position, divisions in positions(measures):
        if el.tag != "note":
            continue
        unpitched, inst = el.find("unpitched"), el.find("instrument")
        if unpitched is not None and inst is not None and inst.get("id") in keys:
            place = (k, round(position / divisions, 4), int(el.findtext("staff") or 1),
                     (unpitched.findtext("display-step") or "").strip(),
                     int(unpitched.findtext("display-octave") or 0))
            placed.setdefault(place, keys[inst.get("id")])
    return placed


#: The most beats a time signature may have (real scores: up to about 30, e.g. 27/16) and the
#: shortest beat unit: music21 builds a beat hierarchy element by element, so a damaged
#: ``<beats>1e308</beats>`` would hang the reader and fill the memory.
MAX_BEATS = 256
BEAT_TYPES = {1, 2, 4, 8, 16, 32, 64, 128}
_TIME_TAG = re.compile(rb"<(?:beats|beat-type)\b")
_TIME_VALUE = re.compile(rb"<(beats|beat-type)\b[^>]*>([^<]*)</\1>")


def check_time_signatures(path: Path) -> None:
    """Refuse a ``<time>`` music21 cannot build in reasonable time and memory: beats that are
    not whole numbers (or sums of them, 3+2) up to :data:`MAX_BEATS`, or a beat type that is not
    a power of two up to 128. The first such ``<time>`` music21 would read (a part's measures'
    ``<attributes>``, parts in the part list) is named, as its reader would have met it.

    The file's text is searched first and parsed only when a value there is not plainly a good
    one (or the text is not ASCII-based, e.g. UTF-16), so a usual score costs a regular
    expression. A file that cannot be parsed is left to music21, which says why.

    Raises
    ------
    ValueError
        Saying which value cannot be played (the loader makes it a one-line ScoreError).
    """
    mtime = path.stat().st_mtime_ns
    data = _text(str(path), mtime)
    values = _TIME_VALUE.findall(data)
    if b"\x00" not in data and len(values) == len(_TIME_TAG.findall(data)) and all(
            value.isascii() and _time_value_problem(tag.decode(), value.decode()) is None
            for tag, value in values):
        return
    try:
        root = _root(str(path), mtime)
    except ET.ParseError:
        return
    if root.tag != "score-partwise":  # music21 refuses it, saying so
        return
    part_list = root.find("part-list")
    listed = [] if part_list is None else [sp.get("id") for sp in part_list.iterfind("score-part")]
    for part in root.iterfind("part"):
        if part.get("id", listed[0] if listed else None) not in listed:
            continue  # music21 skips a part the part list does not name
        for measure in part.iterfind("measure"):
            for attributes in measure.iterfind("attributes"):
                for time in attributes.iterfind("time"):
                    for tag in ("beats", "beat-type"):  # all beats first, as music21's reader
                        for el in time.iterfind(tag):
                            problem = _time_value_problem(tag, el.text or "")
                            if problem:
                                raise ValueError(problem)


def _time_value_problem(tag: str, text: str) -> str | None:
    """Why ``text`` cannot be a ``<beats>`` (``tag`` "beats") or ``<beat-type>``; None if it
    can. (A digit str.isdigit knows but int does not, like '²', raises int's ValueError.)"""
    text = text.strip()
    if tag == "beats":
        numbers = text.split("+")
        if not all(n.strip().isdigit() for n in numbers) or \
                sum(int(n) for n in numbers) > MAX_BEATS:
            return f"a time signature with '{text[:20]}' beats cannot be played"
    elif not text.isdigit() or int(text) not in BEAT_TYPES:
        return f"a time signature's beat type '{text[:20]}' is not a note value"
    return None
