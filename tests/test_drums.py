"""Unpitched percussion sounds on the right General MIDI drum keys, on the drum channel: a
drum kit whose notes name their instruments (``<midi-unpitched>``), single-instrument parts
known by name, and drum-set staves read by position; timpani stay pitched."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import mido
import music21
import pytest

from pipeline.score.load import LoadedScore, load
from pipeline.model import TICKS_PER_QUARTER as Q
from pipeline.score.perform import perform, write_midi

DATA = Path(__file__).resolve().parent / "data"
LILYPOND = Path(music21.__file__).parent / "musicxml" / "lilypondTestSuite"
CORPUS_DRUMS = Path(music21.__file__).parent / "corpus" / "demos" / "drum_sample.xml"
E = Q // 2  # an eighth
BASS_DRUM, SNARE, CLOSED_HAT, CRASH, RIDE, LOW_FLOOR_TOM = 36, 38, 42, 49, 51, 41


def struck(track) -> list[tuple[int, int]]:
    return sorted((n.on, n.pitch) for n in track.notes)


def test_each_note_of_a_drum_kit_plays_the_drum_it_names():
    # tests/data/drum-kit.musicxml, as MuseScore 3 writes a drum set (see its description)
    (kit,) = perform(load(DATA / "drum-kit.musicxml")).tracks
    bar1 = [(k * E, CLOSED_HAT) for k in range(8)] + [(Q, SNARE), (3 * Q, SNARE),
                                                      (0, BASS_DRUM), (2 * Q, BASS_DRUM)]
    bar2 = [(4 * Q + k * Q, RIDE) for k in range(3)] + [
        (7 * Q, CRASH), (7 * Q, BASS_DRUM), (4 * Q, LOW_FLOOR_TOM)]
    assert struck(kit) == sorted(bar1 + bar2)
    assert kit.is_percussion and kit.program is None


def test_a_drum_kit_is_written_on_midi_channel_10(tmp_path):
    performance = perform(load(DATA / "drum-kit.musicxml"))
    path = tmp_path / "performance.mid"
    write_midi(performance, path)
    (notes,) = [[m for m in t if m.type == "note_on"] for t in mido.MidiFile(str(path)).tracks[1:]]
    assert {m.channel for m in notes} == {9}


def test_music21_corpus_drum_sample_plays_kick_snare_hi_hat_crash_and_cowbell():
    # Finale's export: four drums on one staff in bass clef, two of them (crash and hi-hat)
    # on the same line; a cowbell part. Keys from the file's own <midi-unpitched> (1-based):
    # snare 39, kick 37, crash 50, closed hi-hat 43, cowbell 57.
    drums, cowbell = perform(load(CORPUS_DRUMS)).tracks
    assert Counter(n.pitch for n in drums.notes) == {CLOSED_HAT: 15, BASS_DRUM: 8, SNARE: 4,
                                                     CRASH: 1}
    assert (0, CRASH) in struck(drums) and (Q, SNARE) in struck(drums)
    assert {n.pitch for n in cowbell.notes} == {56}
    assert drums.is_percussion and cowbell.is_percussion


def test_lilypond_percussion_staves():
    # 73a: timpani on a bass clef (pitched), cymbals on a five-line percussion staff, a
    # triangle on a one-line staff
    timpani, cymbals, triangle = perform(load(LILYPOND / "73a-Percussion.xml")).tracks
    assert not timpani.is_percussion and [n.pitch for n in timpani.notes] == [52, 45]  # E3 A2
    assert cymbals.is_percussion and {n.pitch for n in cymbals.notes} == {CRASH}
    assert triangle.is_percussion and {n.pitch for n in triangle.notes} == {81}


def test_lilypond_orchestra_percussion_is_on_the_drum_channel_and_the_harp_is_not():
    tracks = {t.name: t for t in perform(load(LILYPOND / "41c-StaffGroups.xml")).tracks}
    assert tracks["Percussion"].is_percussion and not tracks["Harp"].is_percussion


def _one_drum_part(name: str, positions: list[str]):
    from music21 import clef, meter, note, stream

    part = stream.Part()
    part.partName = name
    m = stream.Measure(number=1)
    m.append([meter.TimeSignature("4/4"), clef.PercussionClef()])
    for position in positions:
        m.append(note.Unpitched(displayName=position))
    part.append(m)
    score = stream.Score([part])
    (track,) = perform(LoadedScore(Path("drums.musicxml"), "music21", score)).tracks
    return track


@pytest.mark.parametrize("name, key", [
    ("Timbales", 65), ("Agogo", 67), ("Guiro", 74), ("Whistle", 71), ("Vibraslap", 58),
    ("Sleigh Bells", 83), ("Tom-toms", 45), ("Floor Tom", 41), ("Ride Cymbal", 51),
    ("Crash Cymbal", 49), ("Hi-Hat", 42), ("Suspended Cymbal", 49), ("Temple Blocks", 76),
    ("Cabasa", 69), ("Tambourine", 54), ("Bass Drum", 36),
])
def test_a_single_instrument_part_is_known_by_its_name(name, key):
    track = _one_drum_part(name, ["C5", "B4", "C5", "A4"])
    assert {n.pitch for n in track.notes} == {key} and track.is_percussion


@pytest.mark.parametrize("name", ["Drum Set", "Drums", "Drum Kit"])
def test_a_drum_set_staff_is_read_by_position(name):
    # the common drum-set layout: bass drum in the first space, snare in the third, hi-hat
    # above the staff
    track = _one_drum_part(name, ["F4", "C5", "G5", "C5"])
    assert [n.pitch for n in track.notes] == [BASS_DRUM, SNARE, CLOSED_HAT, SNARE]
    assert track.is_percussion and track.program is None
