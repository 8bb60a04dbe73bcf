"""Habits of real notation programs' exports, each on a minimal fixture of our own: the file
reads and plays as the composer wrote it."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.score.load import load
from pipeline.score.perform import perform
from pipeline.score.untrusted import mislabeled_as_wide

DATA = Path(__file__).resolve().parent / "data"


def test_utf8_bytes_under_a_utf16_declaration_are_read_as_utf8(tmp_path):
    """One notation program writes encoding='UTF-16' over UTF-8 bytes; browsers, MuseScore and
    music21's text path read such files: so do we (the title's ü survives)."""
    text = (DATA / "single-a4.musicxml").read_text("utf-8")
    text = text.replace('encoding="UTF-8"', "encoding='UTF-16'").replace(
        "Single A4", "Single A4 für Flöte")
    path = tmp_path / "mislabeled.musicxml"
    path.write_bytes(text.encode("utf-8"))
    played = perform(load(path))
    assert played.title == "Single A4 für Flöte"
    assert [n.pitch for t in played.tracks for n in t.notes] == [69]


@pytest.mark.parametrize("head, mislabeled", [
    (b"<?xml version='1.0' encoding='UTF-16'?><score-partwise>", True),
    (b'<?xml version="1.0" encoding="utf-16le" standalone="no"?>', True),
    (b'<?xml version="1.0" encoding="UTF-8"?>', False),
    (b"<?xml version='1.0'?>", False),
    ('<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16"), False),  # a real UTF-16 file
])
def test_only_a_one_byte_declaration_naming_a_wide_encoding_is_mislabeled(head, mislabeled):
    assert mislabeled_as_wide(head) is mislabeled


def test_a_real_utf16_file_still_reads(tmp_path):
    text = (DATA / "single-a4.musicxml").read_text("utf-8").replace('encoding="UTF-8"',
                                                                    'encoding="UTF-16"')
    path = tmp_path / "wide.musicxml"
    path.write_bytes(text.encode("utf-16"))
    assert [n.pitch for t in perform(load(path)).tracks for n in t.notes] == [69]


def test_a_playback_dynamic_with_nothing_printed_sets_the_level():
    """<sound dynamics="40"/> at the opening (40 % of forte's 90: velocity 36) is played, not the
    default mf; a printed f beside a <sound dynamics> plays from our table (every program writes
    its own percentages); a later playback dynamic under words (120 %) sets 108."""
    from pipeline.model import DYNAMIC_VELOCITY

    played = perform(load(DATA / "sound-dynamics-unprinted.musicxml"))
    assert [n.velocity for n in played.tracks[0].notes] == [36, DYNAMIC_VELOCITY["f"], 108]


def test_a_chord_rolled_in_the_second_voice_of_a_piano_staff_is_rolled():
    """<arpeggiate number="1"/> on each note of a voice-2 chord: music21 keeps the roll as a
    spanner on the score, not on the staff; it is rolled from the bottom, a 64th apart, under
    the first voice's note, which sounds on the beat."""
    from pipeline.score.ornaments import ROLL_TICKS

    played = perform(load(DATA / "rolled-chord-second-voice.musicxml"))
    onsets = sorted((n.on, n.pitch) for n in played.tracks[0].notes)
    assert onsets == [(0, 48), (0, 60), (0, 76), (ROLL_TICKS, 64), (2 * ROLL_TICKS, 67)]


def test_a_cymbal_roll_on_a_drum_music21_cannot_name_is_rolled_and_said_nothing_of(caplog):
    """A suspended cymbal on <midi-unpitched>56 (key 55), a whole note with three tremolo
    strokes at ♩ = 60: a roll of 32nds on key 55 for the whole bar, then one hit. music21's
    own "55 does not map to a valid instrument!" reaches no one: the drum is played all the
    same, on the file's key."""
    import logging

    with caplog.at_level(logging.WARNING):
        played = perform(load(DATA / "cymbal-roll-unmapped.musicxml"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    notes = played.tracks[0].notes
    assert {n.pitch for n in notes} == {55} and played.tracks[0].is_percussion
    roll = [n for n in notes if n.on < 4 * 960]
    assert len(roll) == 32 and len(notes) == 33  # 4 beats of 32nds, then the quarter
    assert all(b.on - a.on == 120 for a, b in zip(roll, roll[1:]))


def test_musescore_4_pedal_lines_without_hooks_press_and_lift_the_pedal():
    """MuseScore 4 writes a "Ped. ____" line with no opening hook as <pedal type="resume">:
    the pedal goes down there (bar 1), a continue over a system break changes nothing (bar 2),
    a line broken off without its closing hook (discontinue, bar 3 beat 3) lifts it, and a
    resume after that presses again (bar 4). A resume right after a "Ped." sign (bar 5) is that
    one pedal going on as a line: pressed once."""
    from pipeline.score.expression import PEDAL_CHANGE_TICKS as gap
    from pipeline.model import TICKS_PER_QUARTER as Q

    piano = perform(load(DATA / "pedal-lines-resume.musicxml")).tracks[0]
    bar = 4 * Q
    assert [(c.tick, c.value) for c in piano.controls
            if c.kind == "control_change" and c.number == 64] == [
        (0, 127),                              # resume: down with the first note
        (2 * bar, 0), (2 * bar + gap, 127),    # stop at bar 2's end; "Ped." on bar 3
        (2 * bar + 2 * Q, 0),                  # discontinue: up before the A
        (3 * bar, 127), (4 * bar, 0),          # resumed for bar 4, lifted at its end
        (4 * bar + gap, 127), (5 * bar, 0),    # "Ped." and its line: one pedal
    ]


def test_hairpins_in_a_second_voice_start_and_stop_where_the_file_places_them():
    """MuseScore writes a hairpin's stop after the first voice's whole note, then backs up to
    the second voice where the next hairpin starts: the crescendo of bar 1 (beat 2 to the bar's
    end) and the diminuendo of bar 2 each end with their bar, so bar 3 starts back at p, where
    its own crescendo rises over beats 2-3 and holds. (Paired in the file's order, bar 1's
    crescendo ran on to the end of bar 2 and the diminuendo into bar 3.) A piano: each note's
    velocity."""
    from pipeline.model import DYNAMIC_VELOCITY
    from pipeline.model import TICKS_PER_QUARTER as Q

    played = perform(load(DATA / "hairpins-second-voice.musicxml")).tracks[0]
    # a hairpin with no mark after it moves one level: p < … = mp, mp > … = p
    p, mp = DYNAMIC_VELOCITY["p"], DYNAMIC_VELOCITY["mp"]
    step = (mp - p) / 3
    quarters = [n.velocity for n in played.notes if n.pitch != 67]  # the second voice
    assert quarters == [p, p, round(p + step), round(p + 2 * step),             # cresc.
                        mp, mp, round(mp - step), round(mp - 2 * step),         # dim.
                        p, p, round((p + mp) / 2), mp]                          # p, cresc.
    wholes = [(n.on, n.velocity) for n in played.notes if n.pitch == 67]
    assert wholes == [(0, p), (4 * Q, mp), (8 * Q, p)]


@pytest.mark.parametrize("music21_says, we_say", [
    ("55 does not map to a valid instrument!", None),
    ("Cannot find voice 3; putting outside of voices.", None),
    ("Current voiceIds: ['1', '2']", None),
    ("Could not import wedge: Error in getting DynamicWedges", None),  # read from the file
    ("Could not import pedal: Error in getting PedalMark", None),
    ("Warning: measure 12 in part Violin Iis overfull: 9/2 > 4.0,assuming 4.0 is correct.",
     "bar 12 of part 'Violin I' holds 4.5 quarter notes where its time signature has 4; the "
     "next bar starts after 4"),
    ("No instrument found for MIDI program 128", "a part's MIDI program is not one of the 128 "
     "General MIDI programs; its instrument is taken from its name"),
    ("something music21 says\n  over two lines", "something music21 says over two lines"),
])
def test_music21s_warnings_are_said_in_our_words_on_one_line_or_not_at_all(music21_says, we_say):
    from pipeline.score.load import music21_warning

    assert music21_warning(music21_says) == we_say


def test_the_list_of_exports_without_notes_says_why_for_each():
    import tomllib

    listed = tomllib.loads((Path(__file__).parent / "corpus-no-notes.toml").read_text("utf-8"))
    reasons = [why for table in listed.values() for why in table.values()]
    assert len(reasons) >= 30 and all(isinstance(why, str) and len(why) >= 8 for why in reasons)


# ---------------------------------------------------------------------------------------------
# what music21 cannot read but the music does not need: left out with one line, the file read

def warned(caplog) -> list[str]:
    """The load stage's warnings, as logged."""
    return [r.getMessage() for r in caplog.records
            if r.name == "pipeline.score.load" and r.levelname == "WARNING"]


def test_a_notehead_music21_cannot_name_is_drawn_normal_and_said_once(caplog):
    """MuseScore writes <notehead>named</notehead> for a notehead of its own font: music21
    refused the whole file. Every note plays, a normal notehead keeps the element's brackets,
    and three such noteheads make one warning."""
    import logging

    path = DATA / "notehead-named.musicxml"
    with caplog.at_level(logging.WARNING):
        loaded = load(path)
    notes = list(loaded.data.recurse().notes)
    assert [n.notehead for n in notes] == ["normal", "normal", "diamond", "normal"]
    assert notes[1].noteheadParenthesis
    assert [n.pitch for t in perform(loaded).tracks for n in t.notes] == [69, 71, 72, 74]
    assert warned(caplog) == [
        f"{path}: a notehead music21 cannot read ('named') is drawn as a normal one"]


def test_a_chord_symbol_music21_cannot_read_is_left_out_and_the_chord_before_goes_on(caplog):
    """Nashville numbers written as <function>1</function> (no Roman numeral) made music21
    refuse the lead sheet. The melody plays; the comp plays C, holds it through bar 2, F from
    bar 3 and on through bar 4; one warning names the first bar."""
    import logging

    from pipeline.model import TICKS_PER_QUARTER
    from pipeline.score import comping

    path = DATA / "chord-symbol-nashville.musicxml"
    with caplog.at_level(logging.WARNING):
        played = perform(load(path))
    melody, comp = played.tracks
    assert [n.pitch for n in melody.notes] == [76, 79, 81, 77]
    assert comp.name == comping.LEAD_SHEET_TRACK
    bar_ticks = 4 * TICKS_PER_QUARTER
    classes = {bar: {n.pitch % 12 for n in comp.notes if n.on // bar_ticks == bar}
               for bar in range(4)}
    assert classes == {0: {0, 4, 7}, 1: {0, 4, 7}, 2: {5, 9, 0}, 3: {5, 9, 0}}
    assert warned(caplog) == [
        f"{path}: chord symbols that cannot be read are not played (the first in bar 2)"]


def test_a_key_signature_music21_cannot_read_is_left_out_and_the_notes_sound_as_written(caplog):
    """Key signatures with Persian slash accidentals (slash-sharp, slash-flat, double-slash-flat)
    made music21 refuse the file. Each note's <alter> gives its pitch: F#4 B♭4 E♭5 C5 sound;
    the two key signatures make one warning."""
    import logging

    from music21 import key

    path = DATA / "key-signature-slash-accidentals.musicxml"
    with caplog.at_level(logging.WARNING):
        loaded = load(path)
    assert not list(loaded.data.recurse().getElementsByClass(key.KeySignature))
    assert [n.pitch for t in perform(loaded).tracks for n in t.notes] == [66, 70, 75, 72]
    assert warned(caplog) == [f"{path}: key signatures that cannot be read are left out; the "
                              f"notes sound as written (the first in bar 1)"]


def test_a_parts_midi_program_chooses_its_sound_whatever_its_name(caplog):
    """Parts named "Staff 1", "Music", "Staff 3" say what they are only by <midi-program>:
    41 (violin), 1 (piano) and 5 (electric piano 2); music21 dropped a piano's program (1–6)
    under a name it does not know, and those parts were guessed as "unknown" pianos. A program
    past 128 (129) leaves the flute to its name, said in our words."""
    import logging

    from conftest import MUSESCORE
    from pipeline.voices.assign import assign

    if not MUSESCORE.exists():
        pytest.skip("MuseScore General is not installed")
    path = DATA / "midi-programs-under-plain-names.musicxml"
    with caplog.at_level(logging.WARNING):
        played = perform(load(path))
        voices = assign(played, soundfont=MUSESCORE)
    assert [(t.name, t.program) for t in played.tracks] == [
        ("Staff 1", 40), ("Music", 0), ("Staff 3", 4), ("Flute", None)]
    assert [(v.program, v.source) for v in voices] == [
        (40, "score"), (0, "score"), (4, "score"), (73, "instrument map")]
    assert voices[0].instrument == "Violin" and voices[3].instrument == "Flute"
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{path}: a part's MIDI program is not one of the 128 General MIDI programs; its "
        f"instrument is taken from its name"]
