"""The only module that touches music21's internals: fixes to its MusicXML reader
(``music21.musicxml.xmlToM21``), applied only around our own parse. :data:`PATCHES` lists each
method replaced and why: ``MeasureParser.xmlGraceToGrace`` (``<grace/>`` is an appoggiatura),
``MeasureParser.xmlToOffset`` (a direction sounds where it stands),
``PartParser.xmlMeasureToMeasure`` (measures inserted without quadratic work),
``MeasureParser.xmlNotehead`` (a notehead music21 cannot name is drawn normal),
``MeasureParser.xmlHarmony`` (a chord symbol it cannot read is left out),
``MeasureParser.handleKeySignature`` (a key signature it cannot read is left out) and
``PartParser.getDefaultInstrument`` (the file's ``<midi-program>`` kept where music21 drops it).

``with patched_reader(): music21.converter.parse(...)`` replaces the methods on entering and
puts music21's own back on leaving (also when the parse fails), so a program that imports
``pipeline`` and parses its own scores gets music21 as it was. Nested and concurrent uses
share one installation (a lock and a count; the originals return when the last one leaves),
and each replacement applies its fix only in a thread inside the context: another thread
parsing meanwhile gets music21's own behaviour.

What a fix leaves out it says with :func:`warnings.warn`, in our words and once per parse (the
first use of the context in a thread starts a parse): the load stage logs music21's warnings
with the file's name.

The replaced methods are private to music21 and may change in any release: they were read in
music21 9.1.0 and 10.5.1 (:data:`SUPPORTED`), and each is checked to exist before anything is
replaced; a music21 without one is refused with a :class:`~pipeline.errors.ScoreError`.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import threading
import warnings
from typing import Callable, Iterator

from pipeline.errors import ScoreError

#: The music21 versions the replaced methods were read in (pyproject.toml pins the same range).
SUPPORTED = ">=9.1,<11"


def _grace(original, self, mxGrace, noteOrChord):
    """music21 reads ``<grace/>`` without ``slash`` as slashed (an acciaccatura); MusicXML and
    every notation program mean an appoggiatura."""
    post = original(self, mxGrace, noteOrChord)
    post.duration.slash = mxGrace.get("slash") == "yes"
    return post


def _offset(original, self, mxObj):
    """music21 moves a direction (tempo, dynamics, words) or chord symbol by its ``<offset>``;
    MusicXML says the offset only moves what is printed unless it says ``sound="yes"``: what is
    heard takes effect where the direction stands. (Weber's Clarinet Concertino in music21's
    corpus prints its ♩ = 60 three beats to the right of the first beat, where it is meant.)"""
    found = mxObj.find("offset")
    if found is not None and found.get("sound") != "yes":
        return 0.0
    return original(self, mxObj)


def _measure_insert(original, self, mxMeasure):
    """Let music21 add each measure to its part without working out the part's length first.

    A part that is sorted measures its whole length (every element's offset and duration) at
    each insertion, to keep knowing whether it is still sorted: quadratic in the measures
    (about 1.1 million offset look-ups, a third of the Große Fuge's parse). Marked unsorted
    while a measure goes in, the part is sorted once when it is next read (music21 sorts an
    unsorted stream on access), into the same order."""
    self.stream.isSorted = False
    return original(self, mxMeasure)


def _notehead(original, self, n, mxNotehead):
    """A notehead value music21 has no name for (MuseScore writes ``<notehead>named</notehead>``
    for a notehead from its own font) makes music21 refuse the whole file; a notehead only
    changes the look: a normal one is drawn, with the element's colour, fill and brackets."""
    try:
        return original(self, n, mxNotehead)
    except _unreadable():
        _say_once(("notehead", mxNotehead.text), f"a notehead music21 cannot read "
                  f"({(mxNotehead.text or '').strip()[:40]!r}) is drawn as a normal one")
        plain = copy.copy(mxNotehead)  # the same element without its value
        plain.text = None
        return original(self, n, plain)


def _left_out(key: str, words: str, why: str) -> Callable:
    """A fix that leaves out the element music21 cannot read, saying ``words`` (``{bar}``: where
    the first was) once per parse; ``why`` becomes its docstring."""
    def fix(original, self, element):
        try:
            return original(self, element)
        except _unreadable():
            _say_once(key, words.format(bar=_bar(self)))
            return None

    fix.__doc__ = why
    return fix


_harmony = _left_out(
    "harmony", "chord symbols that cannot be read are not played (the first in bar {bar})",
    """A chord symbol music21 cannot read (a ``<function>`` that is no Roman numeral, as
    MuseScore writes a Nashville number) makes it refuse the whole file: that chord symbol is
    left out (it is heard only where we comp, and there the chord before goes on).""")

_key_signature = _left_out(
    "key", "key signatures that cannot be read are left out; the notes sound as written (the "
    "first in bar {bar})",
    """A key signature music21 cannot read (a ``<key-accidental>`` it has no name for:
    slash-sharp, slash-quarter-sharp, double-slash-flat…) makes it refuse the whole file: that
    key signature is left out. What sounds does not change: MusicXML gives every note its own
    ``<alter>``.""")


def _midi_program(original, self, mxScorePart=None):
    """music21 swaps the instrument a part's ``<midi-program>`` names for the one its
    ``<instrument-name>`` names when the program is a piano's (1–6): a name it does not know
    ("Music", "Staff 1") leaves no program, and the part is guessed from its name (an
    "unknown instrument" on a piano). The file's program (1–128, music21 counting from 0 and
    taking a 0 for 1) is put back where music21 left none; a drum (``<midi-unpitched>``)
    keeps music21's reading."""
    from music21 import instrument

    found = original(self, mxScorePart)
    if found.midiProgram is not None or isinstance(found, instrument.UnpitchedPercussion):
        return found
    part = mxScorePart if mxScorePart is not None else self.mxScorePart
    midi = part.find("midi-instrument")  # music21 reads only the first one too
    if midi is None or (midi.findtext("midi-unpitched") or "").strip():
        return found
    text = (midi.findtext("midi-program") or "").strip()
    if text.isdigit() and int(text) <= 128:
        found.midiProgram = max(int(text) - 1, 0)
    return found


def _unreadable() -> tuple[type[Exception], ...]:
    """What music21 raises for a value it cannot read. A function: an ``except`` clause
    evaluates it only when something is raised, and music21 is imported late."""
    from music21.exceptions21 import Music21Exception

    return (Music21Exception, ValueError)


def _bar(parser) -> str:
    """The number of the bar a ``MeasureParser`` reads, as the file writes it."""
    measure = getattr(parser, "mxMeasure", None)
    return (measure.get("number") or "?") if measure is not None else "?"


def _say_once(key, text: str) -> None:
    """Warn ``text`` the first time ``key`` comes up in this thread's parse."""
    said = _local.said
    if key not in said:
        said.add(key)
        warnings.warn(text, stacklevel=2)


#: (class in ``music21.musicxml.xmlToM21``, its method, the fix: ``fix(original, self, ...)``).
PATCHES: tuple[tuple[str, str, Callable], ...] = (
    ("MeasureParser", "xmlGraceToGrace", _grace),  # <grace/> is an appoggiatura
    ("MeasureParser", "xmlToOffset", _offset),  # a direction sounds where it stands
    ("PartParser", "xmlMeasureToMeasure", _measure_insert),  # quadratic measure insertion
    ("MeasureParser", "xmlNotehead", _notehead),  # an unknown notehead is drawn normal
    ("MeasureParser", "xmlHarmony", _harmony),  # an unreadable chord symbol is left out
    ("MeasureParser", "handleKeySignature", _key_signature),  # so is a key signature
    ("PartParser", "getDefaultInstrument", _midi_program),  # the file's program is kept
)

_lock = threading.Lock()
_open = 0  # contexts open, in all threads
_saved: list[tuple[type, str, object]] = []  # (class, name, its own attribute or _ABSENT)
_ABSENT = object()
_local = threading.local()  # .depth: the contexts open in this thread; .said: see _say_once


@contextlib.contextmanager
def patched_reader() -> Iterator[None]:
    """music21's MusicXML reader with our fixes, for the ``with`` block.

    Raises
    ------
    ScoreError
        When the installed music21 lacks a method the fixes replace (nothing is replaced).
    """
    global _open
    with _lock:
        if _open == 0:
            _install()
        _open += 1
    _local.depth = getattr(_local, "depth", 0) + 1
    if _local.depth == 1:  # a parse begins: nothing said yet
        _local.said = set()
    try:
        yield
    finally:
        _local.depth -= 1
        with _lock:
            _open -= 1
            if _open == 0:
                _restore()


def _targets() -> list[tuple[type, str, Callable, Callable]]:
    """(class, method name, music21's method, the fix) for each patch, every one checked."""
    import music21

    def missing(what: str) -> ScoreError:
        return ScoreError(f"music21 {music21.__version__} has no {what}, which score2audio's "
                          f"MusicXML fixes replace (written for music21{SUPPORTED})")

    try:
        from music21.musicxml import xmlToM21
    except ImportError as exc:
        raise missing("music21.musicxml.xmlToM21") from exc
    out = []
    for class_name, name, fix in PATCHES:
        cls = getattr(xmlToM21, class_name, None)
        original = getattr(cls, name, None) if inspect.isclass(cls) else None
        if not inspect.isfunction(original):
            raise missing(f"xmlToM21.{class_name}.{name} method")
        out.append((cls, name, original, fix))
    return out


def _install() -> None:
    targets = _targets()  # all checked before any is replaced
    for cls, name, original, fix in targets:
        _saved.append((cls, name, cls.__dict__.get(name, _ABSENT)))
        setattr(cls, name, _scoped(original, fix))


def _restore() -> None:
    while _saved:
        cls, name, own = _saved.pop()
        if own is _ABSENT:  # inherited: take ours away rather than shadow the base's
            delattr(cls, name)
        else:
            setattr(cls, name, own)


def _scoped(original: Callable, fix: Callable) -> Callable:
    """``original`` with ``fix`` applied in threads inside :func:`patched_reader`."""
    def method(self, *args, **kwargs):
        if getattr(_local, "depth", 0):
            return fix(original, self, *args, **kwargs)
        return original(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = original.__name__
    method.__doc__ = fix.__doc__
    method.__wrapped__ = original
    return method
