"""Play order: repeats, repeat counts, endings, sections without a forward repeat, jumps
(D.C., D.S., al Fine, al Coda) and pickup bars."""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import pytest

from pipeline.score.form import Jump, _Bar, _classify, _with_marks, play_order
from pipeline.score.load import load
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"


def bars(spec: str) -> list[_Bar]:
    """One token per bar: '|:' forward, ':|' backward (':|3' three times), '[1]' ending 1."""
    out = []
    for k, token in enumerate(spec.split()):
        forward = token.startswith("|:")
        times = 0
        if ":|" in token:
            tail = token.split(":|", 1)[1].split("[")[0]
            times = int(tail) if tail else 2
        endings = None
        if "[" in token:
            endings = frozenset(int(n) for n in token[token.index("[") + 1: token.index("]")].split(","))
        out.append(_Bar(float(4 * k), 4.0, forward, times, endings))
    return out


def numbered(spec: str) -> list[int]:
    return [i + 1 for i in play_order(bars(spec))]


def test_simple_repeat_from_the_start():
    assert numbered("a b:| c") == [1, 2, 1, 2, 3]


def test_forward_and_backward_repeat():
    assert numbered("a |:b c:| d") == [1, 2, 3, 2, 3, 4]


def test_repeat_three_times():
    assert numbered("|:a b:|3 c") == [1, 2, 1, 2, 1, 2, 3]


def test_first_and_second_endings():
    assert numbered("|:a b [1]c:| [2]d e") == [1, 2, 3, 1, 2, 4, 5]


def test_section_without_forward_repeat_returns_after_previous_repeat():
    # bar 3 starts a new section (the previous one ended with a backward repeat); its own
    # backward repeat goes back to bar 3, not to bar 1 — as in Haydn op. 74/1, iii, bars 61–74
    assert numbered("a b:| c d:| e") == [1, 2, 1, 2, 3, 4, 3, 4, 5]


def test_endings_for_passes_one_and_two_then_three():
    assert numbered("|:a [1,2]b:|3 [3]c") == [1, 2, 1, 2, 1, 3]


# ---------------------------------------------------------------------------------------------
# Jumps: D.C., D.S., al Fine, al Coda (marks written as the words a player reads; '_' = space)

def marked(spec: str) -> list[_Bar]:
    """Like :func:`bars`, and 'c@D.S._al_Fine' puts the words "D.S. al Fine" on bar c."""
    tokens = spec.split()
    plain = bars(" ".join(t.split("@")[0] for t in tokens))
    marks = [(k, *_classify(t.split("@", 1)[1].replace("_", " ")))
             for k, t in enumerate(tokens) if "@" in t]
    return _with_marks(plain, marks)


def jumped(spec: str) -> list[int]:
    return [i + 1 for i in play_order(marked(spec))]


def test_da_capo_al_fine_stops_at_fine_and_ignores_it_the_first_time():
    assert jumped("a b@Fine c d@D.C._al_Fine") == [1, 2, 3, 4, 1, 2]


def test_dal_segno_al_coda_leaves_at_to_coda_for_the_coda():
    assert jumped("a b@Segno c@To_Coda d@D.S._al_Coda e@Coda f") == [1, 2, 3, 4, 2, 3, 5, 6]


def test_plain_da_capo_plays_to_the_end_of_the_piece_once_more():
    assert jumped("a b c@D.C. d") == [1, 2, 3, 1, 2, 3, 4]


def test_repeats_are_played_once_after_the_jump():
    assert jumped("a |:b c:| d@Fine e@D.C._al_Fine") == [1, 2, 3, 2, 3, 4, 5, 1, 2, 3, 4]


def test_only_the_last_ending_is_played_after_the_jump():
    assert jumped("a |:b [1]c:| [2]d@Fine e@D.C._al_Fine") == [1, 2, 3, 2, 4, 5, 1, 2, 4]


def test_con_ripetizione_takes_the_repeats_again():
    assert jumped("|:a b:| c@D.C._con_ripetizione") == [1, 2, 1, 2, 3, 1, 2, 1, 2, 3]


def test_a_jump_under_a_repeat_is_taken_after_the_repeat():
    assert jumped("a@Fine |:b c:|@D.C._al_Fine d") == [1, 2, 3, 2, 3, 1]


def test_dal_segno_goes_to_the_last_segno_before_it():
    assert jumped("a@Segno b c@Segno d@D.S. e") == [1, 2, 3, 4, 3, 4, 5]


def test_two_coda_signs_without_to_coda_the_first_is_the_way_out():
    assert jumped("a b@Coda c@D.C._al_Coda d@Coda e") == [1, 2, 3, 1, 2, 4, 5]


def test_al_fine_ignores_to_coda_and_al_coda_ignores_fine():
    assert jumped("a b@To_Coda c@Fine d@D.C._al_Fine e@Coda") == [1, 2, 3, 4, 1, 2, 3]
    assert jumped("a b@Fine c@To_Coda d@D.C._al_Coda e@Coda") == [1, 2, 3, 4, 1, 2, 3, 5]


def test_minuet_da_capo_without_fine_ends_before_the_trio():
    # MuseScore 3 plays the trio again: a D.C. without Fine runs to the end of the piece
    assert jumped("|:a:| b c@Trio d@D.C.") == [1, 1, 2, 3, 4, 1, 2]
    assert jumped("a b c@D.C.") == [1, 2, 3, 1, 2, 3]  # no trio: to the end, as before


def test_beethoven_minore_once_more_the_trio_then_the_minore_again():
    # op. 59/2 iii, last bar: "il minore ma senza replica ed allora ancora una volta il trio,
    # e dopo di nuovo da capo il minore senza replica" beside a D.C.: scherzo, trio, scherzo,
    # trio, scherzo (the repeats only the first time)
    plain = bars("|:a:| b c d")
    words = "il minore ma senza replica ed allora ancora una volta il trio, e dopo di nuovo " \
            "da capo il minore senza replica"
    marks = [(2, *_classify("Maggiore")), (3, *_classify(words)), (3, *_classify("D.C."))]
    order = [i + 1 for i in play_order(_with_marks(plain, marks))]
    assert order == [1, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
    assert jumped("a b@Trio c@D.C._once_more") == [1, 2, 3, 1, 2, 3, 1]


def test_dal_segno_without_segno_plays_on(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.score.form"):
        assert jumped("a b@Fine c@D.S._al_Fine d") == [1, 2, 3, 4]
    assert "no segno" in caplog.text


def test_to_coda_without_coda_plays_on(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.score.form"):
        assert jumped("a b@To_Coda c@D.C._al_Coda d") == [1, 2, 3, 1, 2, 3, 4]
    assert "no coda" in caplog.text


def test_al_fine_without_fine_plays_on_to_the_end(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.score.form"):
        assert jumped("a b@D.C._al_Fine c") == [1, 2, 1, 2, 3]
    assert "no Fine" in caplog.text


@pytest.mark.parametrize("words, meaning", [
    ("D.C. al Fine", ("jump", Jump("start", "fine"))),
    ("Da Capo al Coda", ("jump", Jump("start", "coda"))),
    ("D. S.", ("jump", Jump("segno"))),
    ("Dal Segno al Fine", ("jump", Jump("segno", "fine"))),
    ("D.S. al Coda \U0001D10C", ("jump", Jump("segno", "coda"))),
    ("To Coda", ("to_coda", None)),
    ("To \U0001D10C", ("to_coda", None)),
    ("Coda", ("coda", None)),
    ("\U0001D10B", ("segno", None)),
    ("Fine", ("fine", None)),
    ("dolce", None),
    ("cresc.", None),
    ("Da capo aria", ("jump", Jump("start"))),
    ("Maggiore", ("section", None)),
    ("Trio II", ("section", None)),
    ("Theme russe.", None),
])
def test_words_a_player_reads_as_jump_marks(words, meaning):
    assert _classify(words) == meaning


# ---------------------------------------------------------------------------------------------
# The same, from MusicXML files: bar k of each fixture sounds one whole note of its own pitch

BAR_OF_PITCH = {60: 1, 62: 2, 64: 3, 65: 4, 67: 5, 69: 6, 71: 7, 72: 8}  # C4 D4 E4 F4 G4 A4 B4 C5


def played_bars(path) -> list[int]:
    performance = perform(load(path))
    return [BAR_OF_PITCH[n.pitch] for n in sorted(performance.tracks[0].notes, key=lambda n: n.on)]


@pytest.mark.parametrize("fixture, order", [
    ("dc-al-fine.musicxml", [1, 2, 3, 4, 1, 2]),                   # words and <sound>
    ("ds-al-coda.musicxml", [1, 2, 3, 4, 2, 3, 5, 6]),             # signs, words and <sound>
    ("ds-al-fine-sound-only.musicxml", [1, 2, 3, 4, 5, 2, 3]),     # <sound> attributes only
    ("dc-al-coda-words-only.musicxml", [1, 2, 3, 1, 2, 4, 5]),     # words only
    ("dc-repeat-inside.musicxml", [1, 2, 3, 2, 3, 4, 5, 1, 2, 3, 4]),
    ("dc-endings-inside.musicxml", [1, 2, 3, 2, 4, 5, 1, 2, 4]),
    # music21 keeps only the first and last bar of the three-bar first ending
    ("ending-three-bars.musicxml", [1, 2, 3, 4, 5, 2, 6]),
])
def test_a_score_with_jumps_is_played_in_the_order_a_musician_reads_it(fixture, order):
    assert played_bars(DATA / fixture) == order


def test_sound_jumps_are_read_from_compressed_musicxml(tmp_path):
    mxl = tmp_path / "ds-al-fine.mxl"
    with zipfile.ZipFile(mxl, "w") as z:
        z.writestr("META-INF/container.xml", '<?xml version="1.0" encoding="UTF-8"?><container>'
                   '<rootfiles><rootfile full-path="score.musicxml"/></rootfiles></container>')
        z.write(DATA / "ds-al-fine-sound-only.musicxml", "score.musicxml")
    assert played_bars(mxl) == [1, 2, 3, 4, 5, 2, 3]


def test_a_pickup_bar_is_not_padded_and_the_repeat_returns_to_it():
    performance = perform(load(DATA / "pickup-repeat.musicxml"))
    tpq = performance.tempo_map.ticks_per_quarter
    onsets = [(n.on / tpq, n.pitch) for n in sorted(performance.tracks[0].notes, key=lambda n: n.on)]
    # 3/4: a one-beat pickup G4, two full bars C5 D5, a two-beat last bar E5, repeated
    once = [(0.0, 67), (1.0, 72), (4.0, 74), (7.0, 76)]
    assert onsets == once + [(t + 9.0, p) for t, p in once]


def test_beethoven_op59_2_iii_is_played_scherzo_trio_scherzo_trio_scherzo():
    from music21 import corpus

    from pipeline.score.form import _bars

    work = corpus.getWork("beethoven/opus59no2/movement3")
    bars_ = _bars(corpus.parse("beethoven/opus59no2/movement3"), work)
    runs: list[list[int]] = []
    for n in (int(bars_[i].number) for i in play_order(bars_)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    # first endings: bars 8-9 and 52-55 (music21 keeps only 52 and 55 of the second one)
    scherzo_again = [[1, 7], [10, 51], [56, 58]]
    assert runs == [[1, 9], [2, 7], [10, 55], [12, 51], [56, 142]] + scherzo_again[:2] + \
        [[56, 142]] + scherzo_again


def test_a_first_ending_without_a_second_is_skipped_on_the_second_pass():
    # Maple Leaf Rag (music21 corpus), bars 16–17: "1." over bar 16 with :|, bar 17 unbracketed
    assert numbered("|:a b [1]c:| d e") == [1, 2, 3, 1, 2, 4, 5]
    # after a jump without repeats, likewise: the "1." is left out
    assert jumped("|:a [1]b:| c@Fine d@D.C._al_Fine") == [1, 2, 1, 3, 4, 1, 3]


def test_a_tie_into_the_first_ending_also_holds_into_the_second():
    # Maple Leaf Rag, bars 65–67: the 2nd ending's first chord is written without the tie's stop
    performance = perform(load(DATA / "tie-into-endings.musicxml"))
    tpq = performance.tempo_map.ticks_per_quarter
    notes = [(n.on / tpq, n.pitch) for n in sorted(performance.tracks[0].notes, key=lambda n: n.on)]
    # E5 C5~ | C5 D5 :| E5 C5~ | C5 G4: C5 is struck once per pass, held over the bar line
    assert notes == [(0.0, 76), (1.0, 72), (3.0, 74), (4.0, 76), (5.0, 72), (7.0, 67)]
    c5 = [n for n in performance.tracks[0].notes if n.pitch == 72]
    assert all(n.off - n.on > 1.5 * tpq for n in c5)


def test_a_bar_one_part_overfills_keeps_the_parts_together_through_the_repeat():
    performance = perform(load(DATA / "overfull-bar-repeat.musicxml"))
    tpq = performance.tempo_map.ticks_per_quarter
    violin, cello = (sorted((n.on / tpq, n.pitch) for n in t.notes) for t in performance.tracks)
    # 2/4, the violin's bar 1 a 16th too long: bar 2 starts after 2.25 beats in every part
    assert [t for t, p in violin if p == 76] == [2.25, 6.5]     # E5, bar 2, both passes
    assert [t for t, p in cello if p == 43] == [2.25, 6.5]      # G2 with it
    assert [t for t, p in cello if p == 48] == [0.0, 4.25]      # C3, bar 1


def test_a_tie_holds_across_the_end_of_a_bar_its_part_leaves_unwritten():
    performance = perform(load(DATA / "tie-across-a-short-bar.musicxml"))
    tpq = performance.tempo_map.ticks_per_quarter
    canto, basso = (sorted(t.notes, key=lambda n: n.on) for t in performance.tracks)
    # the tie's stop and the next tie's start written as a start alone: held, not struck
    assert [(n.on / tpq, n.pitch) for n in basso] == [(0, 45), (12, 48)]
    # E5 from the start held to bar 2 beat 3 (not struck at bar 2), E5 struck there; the F5
    # tied over a rest is struck again after it
    assert [(n.on / tpq, n.pitch) for n in canto] == [(0, 76), (6, 76), (8, 77), (12, 77)]
    assert (canto[0].off - canto[0].on) / tpq > 5.5
    assert (canto[2].off - canto[2].on) / tpq < 2


def test_a_tie_written_without_its_stop_still_holds_into_the_next_note_of_its_pitch():
    performance = perform(load(DATA / "tie-without-stop.musicxml"))
    tpq = performance.tempo_map.ticks_per_quarter
    notes = sorted(performance.tracks[0].notes, key=lambda n: n.on)
    # E5 held over bars 1-2 (six beats), E5 struck on beat 3 of bar 2, then F5 G5 F5
    assert [(n.on / tpq, n.pitch) for n in notes] == [(0, 76), (6, 76), (8, 77), (9, 79), (10, 77)]
    assert (notes[0].off - notes[0].on) / tpq > 5.5
