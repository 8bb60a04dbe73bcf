"""The only module that touches music21's internals: three fixes to its MusicXML reader
(``music21.musicxml.xmlToM21``), applied only around our own parse.

``with patched_reader(): music21.converter.parse(...)`` replaces the methods on entering and
puts music21's own back on leaving (also when the parse fails), so a program that imports
``pipeline`` and parses its own scores gets music21 as it was. Nested and concurrent uses
share one installation (a lock and a count; the originals return when the last one leaves),
and each replacement applies its fix only in a thread inside the context: another thread
parsing meanwhile gets music21's own behaviour.

The replaced methods are private to music21 and may change in any release: they were read in
music21 9.1.0 and 10.5.1 (:data:`SUPPORTED`), and each is checked to exist before anything is
replaced; a music21 without one is refused with a :class:`~pipeline.errors.ScoreError`.
"""
from __future__ import annotations

import contextlib
import inspect
import threading
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


#: (class in ``music21.musicxml.xmlToM21``, its method, the fix: ``fix(original, self, ...)``).
PATCHES: tuple[tuple[str, str, Callable], ...] = (
    ("MeasureParser", "xmlGraceToGrace", _grace),  # <grace/> is an appoggiatura
    ("MeasureParser", "xmlToOffset", _offset),  # a direction sounds where it stands
    ("PartParser", "xmlMeasureToMeasure", _measure_insert),  # quadratic measure insertion
)

_lock = threading.Lock()
_open = 0  # contexts open, in all threads
_saved: list[tuple[type, str, object]] = []  # (class, name, its own attribute or _ABSENT)
_ABSENT = object()
_local = threading.local()  # .depth: the contexts open in this thread


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
    def method(self, *args):
        if getattr(_local, "depth", 0):
            return fix(original, self, *args)
        return original(self, *args)

    method.__name__ = method.__qualname__ = original.__name__
    method.__doc__ = fix.__doc__
    method.__wrapped__ = original
    return method
