"""Attack compensation: notes start early by the time their sound takes to be heard."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.model import Control, Note, Performance, TempoMap, Track
from pipeline.render import attack
from pipeline.render.attack import (HOP_S, compensated_timing, delay_s, level_curve, load_rules,
                                    written_timing)

LEGATO_HOLD_S, MIN_KEPT = load_rules().legato_hold_s, load_rules().min_kept

from conftest import MUSESCORE, score_file

SR = 48000
TPQ = TempoMap().ticks_per_quarter  # 120 bpm: a crotchet is 0.5 s


def _curve(*levels_db) -> list[float]:
    return [float(v) for v in levels_db]


def test_a_note_is_heard_where_its_level_first_comes_within_6_db_of_its_peak():
    curve = _curve(-80, -40, -20, -9, -5, -1, 0, 0, -2)
    assert delay_s(curve, len(curve)) == pytest.approx(4 * HOP_S)


def test_a_swelling_sample_is_heard_sooner_in_a_short_note_than_in_a_long_one():
    # a quick rise to -20 dB, then a slow swell to 0 dB
    curve = _curve(-80, -24, -20, -20, -19, -17, -14, -10, -6, -3, -1, 0)
    assert delay_s(curve, 4) == pytest.approx(1 * HOP_S)   # short: its own peak is -20 dB
    assert delay_s(curve, 12) == pytest.approx(8 * HOP_S)  # long: it reaches -6 dB late


def test_a_silent_note_is_not_moved():
    assert delay_s([attack.SILENT_DB] * 10, 10) == 0.0


def test_the_level_curve_finds_a_tone_where_it_starts():
    t = np.arange(int(0.5 * SR)) / SR
    tone = np.where(t >= 0.2, np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    curve = level_curve(np.stack([tone, tone]), SR)
    assert delay_s(list(curve), len(curve)) == pytest.approx(0.2, abs=0.006)


def _performance(*tracks: Track) -> Performance:
    return Performance("t", "c", tracks)


def _track(notes, controls=()) -> Track:
    return Track("part", "violin", tuple(Note(a, b, p, 80) for a, b, p in notes),
                 tuple(controls))


@pytest.fixture
def delays(monkeypatch):
    """Give each track's notes the delays listed (seconds), without a soundfont."""
    def use(*per_track):
        monkeypatch.setattr(attack, "note_delays",
                            lambda performance, voices, lengths_s, sample_rate: tuple(
                                np.array(d, dtype=float) for d in per_track))
    return use


def test_a_detached_line_keeps_its_notes_apart(delays):
    # crotchets C D E at 0.5, 1.0, 1.5 s played with a gap (as the perform stage plays notes
    # that are not slurred); the D speaks slower than the others
    gap = TPQ // 10
    perf = _performance(_track([(TPQ, 2 * TPQ - gap, 60), (2 * TPQ, 3 * TPQ - gap, 62),
                                (3 * TPQ, 4 * TPQ - gap, 64)]))
    delays([0.05, 0.12, 0.05])
    part = compensated_timing(perf, (None,), sample_rate=SR).parts[0]
    np.testing.assert_allclose(part.on_s, [0.45, 0.88, 1.45])
    # the C ends where the D now starts (it may not sound into it), the E keeps its length
    np.testing.assert_allclose(part.off_s, [0.88, 1.33, 1.90])
    assert np.all(part.on_s[1:] >= part.off_s[:-1])
    np.testing.assert_allclose(part.shift_s, [0.05, 0.12, 0.05])


def test_a_slurred_line_is_played_legato(delays):
    # the same line connected, as a slur plays it: each note sounds to its written end while
    # the next one starts early under it, so the line does not dip between notes
    perf = _performance(_track([(TPQ, 2 * TPQ, 60), (2 * TPQ, 3 * TPQ, 62),
                                (3 * TPQ, 4 * TPQ, 64)]))
    delays([0.05, 0.12, 0.05])
    part = compensated_timing(perf, (None,), sample_rate=SR).parts[0]
    np.testing.assert_allclose(part.on_s, [0.45, 0.88, 1.45])
    # each held 30 ms into the next (the last note: its own length)
    np.testing.assert_allclose(part.off_s, [1.0 + LEGATO_HOLD_S, 1.5 + LEGATO_HOLD_S, 1.95])


def test_a_repeated_key_never_overlaps_itself(delays):
    # a key struck again: its earlier note must end first (one key's note-off ends them all)
    perf = _performance(_track([(TPQ, 2 * TPQ, 60), (2 * TPQ, 3 * TPQ, 60)]))
    delays([0.02, 0.1])
    part = compensated_timing(perf, (None,), sample_rate=SR).parts[0]
    assert part.on_s[1] >= part.off_s[0]
    assert part.off_s[0] == pytest.approx(part.on_s[1])


def test_a_short_note_is_not_cut_to_nothing_for_the_next(delays):
    # a 50 ms grace-like note right before a slow-speaking one: it keeps half its length and
    # the next note gives up the rest of its head start
    short, gap = TPQ // 10, TPQ // 100  # 50 ms, then 5 ms of silence: detached
    perf = _performance(_track([(TPQ, TPQ + short - gap, 60), (TPQ + short, 3 * TPQ, 62)]))
    delays([0.0, 0.2])
    part = compensated_timing(perf, (None,), sample_rate=SR).parts[0]
    length = 0.045
    assert part.off_s[0] - part.on_s[0] >= MIN_KEPT * length - 1e-9
    assert part.on_s[1] >= part.off_s[0] - 1e-9
    assert part.shift_s[1] < 0.2
    timing = compensated_timing(perf, (None,), sample_rate=SR)
    assert timing.summary()[0].held_back == 1


def test_chords_and_overlapping_voices_are_left_overlapping(delays):
    # a held bass under a moving tune: the bass was still sounding, so nothing is shortened
    perf = _performance(_track([(0, 4 * TPQ, 48), (TPQ, 2 * TPQ, 72), (2 * TPQ, 3 * TPQ, 74)]))
    delays([0.01, 0.1, 0.1])
    timing = compensated_timing(perf, (None,), sample_rate=SR)
    part = timing.parts[0]
    assert timing.lead_in_s == pytest.approx(0.01)  # the bass at 0 s: every stem waits 10 ms
    assert part.off_s[0] - part.on_s[0] == pytest.approx(2.0)  # the bass keeps its length
    assert part.off_s[1] == pytest.approx(timing.lead_in_s + 1.0 + LEGATO_HOLD_S)  # legato


def test_nothing_moves_before_the_start_every_stem_waits_alike(delays):
    piano = _track([(0, TPQ, 60), (TPQ, 2 * TPQ, 62)])
    violin = _track([(0, TPQ, 72), (TPQ, 2 * TPQ, 74)])
    delays([0.005, 0.005], [0.13, 0.13])
    timing = compensated_timing(_performance(piano, violin), (None, None), sample_rate=SR)
    assert timing.lead_in_s == pytest.approx(0.13)
    p, v = timing.parts
    assert min(p.on_s.min(), v.on_s.min()) == pytest.approx(0.0)
    # both heard together on every beat: each starts early by its own delay
    np.testing.assert_allclose((p.on_s + p.delay_s) - (v.on_s + v.delay_s), 0.0, atol=1e-9)


def test_a_program_change_moves_with_the_note_it_prepares(delays):
    # arco, then pizz. from the second note: the change must still come before that note
    track = _track([(0, TPQ, 60), (TPQ, 2 * TPQ, 62)],
                   [Control(TPQ, "program_change", 45, 0), Control(TPQ // 2, "control_change",
                                                                  11, 90)])
    delays([0.1, 0.02])
    part = compensated_timing(_performance(track), (None,), sample_rate=SR).parts[0]
    assert part.control_s[0] == pytest.approx(part.on_s[1])
    assert part.control_s[1] == pytest.approx(part.on_s[1] - 0.25)  # with the next note


def test_a_control_long_before_the_first_note_adds_no_lead_in(delays):
    track = _track([(4 * TPQ, 5 * TPQ, 60)], [Control(0, "control_change", 7, 100)])
    delays([0.1])
    timing = compensated_timing(_performance(track), (None,), sample_rate=SR)
    assert timing.lead_in_s == 0.0
    assert timing.parts[0].control_s[0] == 0.0 and timing.parts[0].on_s[0] == pytest.approx(1.9)


def test_written_timing_is_the_score_s():
    perf = _performance(_track([(TPQ, 2 * TPQ, 60)], [Control(0, "control_change", 64, 127)]))
    timing = written_timing(perf)
    assert timing.lead_in_s == 0.0 and not timing.compensated
    np.testing.assert_allclose(timing.parts[0].on_s, [0.5])
    np.testing.assert_allclose(timing.parts[0].control_s, [0.0])
    assert timing.summary() == (None,)


# ---- heard on the beat: a real render of piano with strings, winds, brass and a choir ----

ENSEMBLE = (  # name, GM program (1-based), lowest and highest MIDI pitch used, clef
    ("Piano", 1, 55, 72, ("G", 2)), ("Violin", 41, 62, 81, ("G", 2)),
    ("Cello", 43, 45, 62, ("F", 4)), ("Flute", 74, 67, 86, ("G", 2)),
    ("Clarinet", 72, 58, 77, ("G", 2)), ("Horn", 61, 53, 67, ("F", 4)),
    ("Trumpet", 57, 60, 74, ("G", 2)), ("Choir", 53, 62, 74, ("G", 2)),
)
#: (bpm, dynamic, bars): several tempi and dynamics; every bar is "crotchet, crotchet rest" twice
SECTIONS = ((60, "p", 4), (100, "mf", 4), (140, "f", 4))
STEPS = (0, 2, 4, 5, 7, 9, 11, 12)
NAMES = ("C", 0), ("C", 1), ("D", 0), ("D", 1), ("E", 0), ("F", 0), ("F", 1), ("G", 0), \
    ("G", 1), ("A", 0), ("A", 1), ("B", 0)


def _pitch_xml(midi: int) -> str:
    step, alter = NAMES[midi % 12]
    return (f"<pitch><step>{step}</step>{f'<alter>{alter}</alter>' if alter else ''}"
            f"<octave>{midi // 12 - 1}</octave></pitch>")


def _score_xml() -> str:
    parts_list, parts = [], []
    for i, (name, program, low, high, clef) in enumerate(ENSEMBLE, 1):
        parts_list.append(f'<score-part id="P{i}"><part-name>{name}</part-name>'
                          f'<score-instrument id="P{i}-I1"><instrument-name>{name}'
                          f'</instrument-name></score-instrument><midi-instrument id="P{i}-I1">'
                          f'<midi-channel>{i if i < 10 else i + 1}</midi-channel>'
                          f'<midi-program>{program}</midi-program></midi-instrument></score-part>')
        measures, n = [], 0
        for s, (bpm, dynamic, bars) in enumerate(SECTIONS):
            for b in range(bars):
                head = ""
                if n == 0:
                    head += (f"<attributes><divisions>1</divisions><key><fifths>0</fifths></key>"
                             f"<time><beats>4</beats><beat-type>4</beat-type></time><clef>"
                             f"<sign>{clef[0]}</sign><line>{clef[1]}</line></clef></attributes>")
                if b == 0:
                    head += (f'<direction placement="above"><direction-type><metronome>'
                             f'<beat-unit>quarter</beat-unit><per-minute>{bpm}</per-minute>'
                             f'</metronome></direction-type><sound tempo="{bpm}"/></direction>'
                             f'<direction placement="below"><direction-type><dynamics>'
                             f'<{dynamic}/></dynamics></direction-type></direction>')
                body = ""
                for beat in range(2):
                    pitch = low + STEPS[(n * 2 + beat) % len(STEPS)] * (high - low) // 12
                    body += (f"<note>{_pitch_xml(pitch)}<duration>1</duration><type>quarter"
                             f"</type></note><note><rest/><duration>1</duration><type>quarter"
                             f"</type></note>")
                measures.append(f'<measure number="{n + 1}">{head}{body}</measure>')
                n += 1
        parts.append(f'<part id="P{i}">{"".join(measures)}</part>')
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1">'
            '<work><work-title>On the beat</work-title></work>'
            f'<part-list>{"".join(parts_list)}</part-list>{"".join(parts)}</score-partwise>')


def heard_onsets(stem: Path, ons_s: np.ndarray, offs_s: np.ndarray, lead_in_s: float,
                 look_back_s: float = 0.4) -> np.ndarray:
    """Each note's heard onset in a dry stem minus its written start (s): where the level (the
    power over 10 ms, every 1 ms) first comes within 6 dB of its peak between ``look_back_s``
    before the written start and the written end. Measured here independently of the render."""
    audio, sr = sf.read(str(stem), dtype="float64", always_2d=True)
    power = np.square(audio).sum(axis=1)
    window, hop = int(0.010 * sr), int(0.001 * sr)
    sums = np.concatenate(([0.0], np.cumsum(power)))
    out = []
    for on, off in zip(ons_s + lead_in_s, offs_s + lead_in_s):
        centres = np.arange(int((on - look_back_s) * sr), int(off * sr), hop)
        lo = np.clip(centres - window // 2, 0, power.size)
        hi = np.clip(centres + window // 2, 0, power.size)
        level = (sums[hi] - sums[lo]) / window
        first = int(np.argmax(level >= level.max() / 4))  # -6 dB in power
        out.append(centres[first] / sr - on)
    return np.array(out)


@pytest.fixture(scope="module")
def on_the_beat(tmp_path_factory):
    return score_file(tmp_path_factory, "on-the-beat", _score_xml())


def _written(score: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each part's written note starts and ends (s)."""
    from pipeline.score.load import load
    from pipeline.score.perform import perform

    performance = perform(load(score))
    tm = performance.tempo_map
    return {t.name: (tm.seconds(np.array([n.on for n in t.notes])),
                     tm.seconds(np.array([n.off for n in t.notes]))) for t in performance.tracks}


def _medians(result, written) -> dict[str, float]:
    lead_in = result.report.stems.lead_in_s
    return {p.part: float(np.median(heard_onsets(result.folder / p.stem, *written[p.part],
                                                 lead_in)))
            for p in result.report.parts}


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_every_instrument_is_heard_within_20_ms_of_the_piano(on_the_beat, render_once):
    written = _written(on_the_beat)
    plain = _medians(render_once(on_the_beat, soundfont=MUSESCORE, attack_compensation=False),
                     written)
    result = render_once(on_the_beat, soundfont=MUSESCORE)
    medians = _medians(result, written)
    behind = {name: round(1000 * (m - medians["Piano"])) for name, m in medians.items()}
    assert all(abs(ms) <= 20 for ms in behind.values()), f"ms behind the piano: {behind}"
    # as written, the strings and the choir trail the piano by a tenth of a second or more
    assert max(m - plain["Piano"] for m in plain.values()) > 0.08
    # the report says what was done
    attack_ms = {p.part: p.attack.median_ms for p in result.report.parts}
    assert attack_ms["Violin"] > 40 > attack_ms["Piano"]


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_performance_mid_keeps_the_written_times(on_the_beat, render_once):
    plain = render_once(on_the_beat, soundfont=MUSESCORE, attack_compensation=False)
    compensated = render_once(on_the_beat, soundfont=MUSESCORE)
    assert (plain.folder / "performance.mid").read_bytes() == \
        (compensated.folder / "performance.mid").read_bytes()
    assert plain.report.stems.lead_in_s == 0.0 < compensated.report.stems.lead_in_s
    assert all(p.attack is None for p in plain.report.parts)


# ---- legato: a slurred line does not dip between its notes ----

def _line_xml(name: str, program: int, base: int, slurred: bool, bars: int = 6) -> str:
    """Quavers at crotchet 100 up and down a major scale from ``base``, mf, each bar under a
    slur or not."""
    scale = (0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0, 2)
    measures = []
    for b in range(bars):
        head = ("<attributes><divisions>2</divisions><key><fifths>0</fifths></key><time>"
                "<beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2"
                "</line></clef></attributes><direction><direction-type><metronome><beat-unit>"
                "quarter</beat-unit><per-minute>100</per-minute></metronome></direction-type>"
                '<sound tempo="100"/></direction><direction><direction-type><dynamics><mf/>'
                "</dynamics></direction-type></direction>") if b == 0 else ""
        notes = ""
        for i in range(8):
            slur = "" if not slurred or i not in (0, 7) else \
                f'<notations><slur type="{"start" if i == 0 else "stop"}" number="1"/></notations>'
            notes += (f"<note>{_pitch_xml(base + scale[(b * 8 + i) % len(scale)])}<duration>1"
                      f"</duration><type>eighth</type>{slur}</note>")
        measures.append(f'<measure number="{b + 1}">{head}{notes}</measure>')
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list>'
            f'<score-part id="P1"><part-name>{name}</part-name><score-instrument id="P1-I1">'
            f'<instrument-name>{name}</instrument-name></score-instrument><midi-instrument '
            f'id="P1-I1"><midi-channel>1</midi-channel><midi-program>{program}</midi-program>'
            f'</midi-instrument></score-part></part-list><part id="P1">{"".join(measures)}'
            '</part></score-partwise>')


def note_change_dips(stem: Path, ons_s: np.ndarray, lead_in_s: float) -> np.ndarray:
    """At each written note change inside a bar: how far (dB) the level (the power over 10 ms,
    every 5 ms) falls between 40 ms before and 60 ms after it, under the median level of the
    middle thirds of the two notes (their bodies, clear of any gap, wherever it falls)."""
    audio, sr = sf.read(str(stem), dtype="float64", always_2d=True)
    power = np.square(audio).sum(axis=1)
    window, sums = int(0.010 * sr), np.concatenate(([0.0], np.cumsum(power)))

    def level(a: float, b: float) -> np.ndarray:
        centres = np.arange(int(a * sr), int(b * sr), int(0.005 * sr))
        lo = np.clip(centres - window // 2, 0, power.size)
        hi = np.clip(centres + window // 2, 0, power.size)
        return 10 * np.log10(np.maximum((sums[hi] - sums[lo]) / window, 1e-20))

    def body(a: float, b: float) -> np.ndarray:
        return level(a + (b - a) / 3, a + 2 * (b - a) / 3)

    starts = ons_s + lead_in_s
    dips = []
    for k in range(1, starts.size - 1):
        if k % 8:  # not across a bar line, where the slur ends
            t = starts[k]
            middles = np.concatenate([body(starts[k - 1], t), body(t, starts[k + 1])])
            dips.append(np.median(middles) - level(t - 0.04, t + 0.06).min())
    return np.array(dips)


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
@pytest.mark.parametrize("name, program, base", [("Flute", 74, 72), ("Violin", 41, 67)])
def test_a_slurred_line_dips_far_less_than_a_detached_one(tmp_path, render_once, name, program,
                                                          base):
    dips = {}
    for slurred in (False, True):
        score = tmp_path / f"{name.lower()}-{'slurred' if slurred else 'detached'}.musicxml"
        score.write_text(_line_xml(name, program, base, slurred), encoding="utf-8")
        result = render_once(score, soundfont=MUSESCORE, ensemble="solo")
        ons, _ = _written(score)[name]
        dips[slurred] = float(np.median(note_change_dips(
            result.folder / result.report.parts[0].stem, ons, result.report.stems.lead_in_s)))
    # detached, each note is re-attacked from near silence (about 7 dB down); slurred, the
    # line carries on through the change
    assert dips[True] <= dips[False] - 6.0, dips
    assert dips[True] < 1.0, dips


# ---- vibrato: added where the samples are straight and the style wants it ----

def test_a_long_note_gets_a_vibrato_that_starts_late_and_grows():
    from pipeline.render.vibrato import BEND_PER_CENT, STEP_S, load_table, wheel
    style = next(s for s in load_table().styles if s.name == "voices")
    times, values = wheel(np.array([1.0, 3.0]), np.array([3.0, 3.3]), style)
    first = times[0]
    assert first == pytest.approx(1.0 + style.onset_ms / 1000)  # not at the attack
    early = np.abs(values[times < first + 0.2]).max()
    late = np.abs(values[(times > first + style.grow_ms / 1000) & (times < 2.9)]).max()
    assert early < late <= style.depth_cents * BEND_PER_CENT + 1  # it grows to its depth
    assert late >= 0.95 * style.depth_cents * BEND_PER_CENT
    assert values[-1] == 0 and times[-1] == pytest.approx(3.0)  # back to the centre at its end
    assert times.max() <= 3.0 + STEP_S  # the short second note gets none


def test_the_table_says_who_gets_vibrato():
    from pipeline.render.vibrato import load_table
    from pipeline.model import Voice

    def voice(family, instrument):
        return Voice(Path("sf"), 0, 0, "x", False, family, "test", instrument)

    def styles(v, ensemble):
        return [s.name for s in load_table().styles if s.wanted(v, ensemble)]
    assert styles(voice("saxes", "Tenor Sax"), "quintet") == ["saxes"]
    assert styles(voice("voices", "Soprano"), "choir") == ["voices"]
    assert styles(voice("brass", "Trumpet"), "jazz-band") == ["jazz-brass"]
    assert styles(voice("brass", "Trumpet"), "orchestra") == []  # classical brass: straight
    assert styles(voice("brass", "Horn"), "jazz-band") == []
    for family, name in (("keyboards", "Piano"), ("plucked", "Harp"), ("strings", "Violin"),
                         ("percussion", "Drum Set")):
        assert styles(voice(family, name), "jazz-band") == []


LONG_NOTES = (("Voice", 54, 67), ("Trumpet", 57, 67), ("Piano", 1, 60), ("Harp", 47, 60),
              ("Pizzicato", 46, 55))


def _long_notes_xml() -> str:
    """Half notes at crotchet 60 (two seconds each), mf, for a voice, a trumpet, a piano, a
    harp and pizzicato strings."""
    head = ('<attributes><divisions>1</divisions><key><fifths>0</fifths></key><time><beats>4'
            '</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef>'
            '</attributes><direction><direction-type><metronome><beat-unit>quarter</beat-unit>'
            '<per-minute>60</per-minute></metronome></direction-type><sound tempo="60"/>'
            '</direction><direction><direction-type><dynamics><mf/></dynamics></direction-type>'
            '</direction>')
    part_list, parts = [], []
    for i, (name, program, base) in enumerate(LONG_NOTES, 1):
        part_list.append(f'<score-part id="P{i}"><part-name>{name}</part-name><score-instrument '
                         f'id="P{i}-I1"><instrument-name>{name}</instrument-name>'
                         f'</score-instrument><midi-instrument id="P{i}-I1"><midi-channel>{i}'
                         f'</midi-channel><midi-program>{program}</midi-program>'
                         f'</midi-instrument></score-part>')
        measures = "".join(
            f'<measure number="{b + 1}">{head if b == 0 else ""}' + "".join(
                f"<note>{_pitch_xml(base + (0, 4)[k] + (b % 2) * 2)}<duration>2</duration>"
                f"<type>half</type></note>" for k in range(2)) + "</measure>" for b in range(4))
        parts.append(f'<part id="P{i}">{measures}</part>')
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list>'
            f'{"".join(part_list)}</part-list>{"".join(parts)}</score-partwise>')


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_vibrato_is_measured_on_the_stem_as_the_table_says(tmp_path, render_once):
    from pipeline.render.vibrato import load_table, pitch_cents, rate_hz, swing_cents
    score = tmp_path / "long-notes.musicxml"
    score.write_text(_long_notes_xml(), encoding="utf-8")
    result = render_once(score, soundfont=MUSESCORE, ensemble="quintet")
    straight = render_once(score, soundfont=MUSESCORE, ensemble="quintet", vibrato=False)
    voices = next(s for s in load_table().styles if s.name == "voices")
    parts = {p.part: p for p in result.report.parts}
    assert parts["Voice"].vibrato.added == "voices"
    # the voice's long notes, once the vibrato has grown: its depth and rate, pitch-tracked
    from pipeline.score.load import load
    from pipeline.score.perform import perform
    performance = perform(load(score))
    track = next(t for t in performance.tracks if t.name == "Voice")
    audio, sr = sf.read(str(result.folder / parts["Voice"].stem), dtype="float64",
                        always_2d=True)
    mono, lead = audio.mean(axis=1), result.report.stems.lead_in_s
    depth, rate = [], []
    for n in track.notes:
        a, b = performance.tempo_map.seconds(np.array([n.on, n.off])) + lead
        cents = pitch_cents(mono[int((a + 0.8) * sr):int((b - 0.1) * sr)], sr, n.pitch)
        depth.append(swing_cents(cents))
        rate.append(rate_hz(cents))
    assert np.median(depth) == pytest.approx(voices.depth_cents, abs=3.0)
    assert np.median(rate) == pytest.approx(voices.rate_hz, abs=0.3)
    # none on the piano, the harp, the pizzicato strings, nor a classical trumpet: their stems
    # are the same samples with or without it
    for name in ("Trumpet", "Piano", "Harp", "Pizzicato"):
        assert parts[name].vibrato is None
        same = [sf.read(str(r.folder / parts[name].stem))[0] for r in (result, straight)]
        np.testing.assert_array_equal(*same)


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_a_jazz_band_s_trumpet_gets_vibrato(tmp_path, render_once):
    score = tmp_path / "long-notes.musicxml"
    score.write_text(_long_notes_xml(), encoding="utf-8")
    result = render_once(score, soundfont=MUSESCORE, ensemble="jazz-band")
    parts = {p.part: p for p in result.report.parts}
    assert parts["Trumpet"].vibrato.added == "jazz-brass"
    assert parts["Piano"].vibrato is None
