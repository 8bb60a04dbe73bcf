"""The file suffixes of the score formats read, by reader: a module of its own so that the
loader and the raw MusicXML reader share them without importing each other."""
from __future__ import annotations

MUSICXML_SUFFIXES = {".musicxml", ".xml", ".mxl"}
MIDI_SUFFIXES = {".mid", ".midi"}
#: Other formats music21 parses (a bonus: humdrum, ABC, MEI, Capella, Noteworthy…).
OTHER_SUFFIXES = {".krn", ".abc", ".mei", ".capx", ".nwctxt", ".rntxt", ".tntxt"}
SUPPORTED_SUFFIXES = MUSICXML_SUFFIXES | MIDI_SUFFIXES | OTHER_SUFFIXES
