"""The range check: notes beyond an instrument's range are reported with their bars, and a
note the soundfont has no samples for is still heard."""
from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, FLUIDR3, MUSESCORE
from pipeline.errors import PipelineError
from pipeline.model import Note, Performance, Track, Voice
from pipeline.output.piece_report import as_json, part_from_json, range_notes
from pipeline.render.zones import fit_to_zones
from pipeline.settings import instruments, ranges as range_table
from pipeline.settings.soundfont_zones import coverage, read_zones

FLUTE_TUBA = DATA / "range-flute-tuba.musicxml"
HIGH_BASS = DATA / "range-contrabass-high.musicxml"


def _part(report, name):
    return next(p for p in report.parts if p.part == name)


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_flute_b3_and_tuba_above_its_range_are_reported_with_their_bars(render_once):
    result = render_once(FLUTE_TUBA, soundfont=MUSESCORE)
    flute, tuba = _part(result.report, "Flute"), _part(result.report, "Tuba")
    # the flute's written B3 (bars 2 and 5) needs a B foot joint: a professional's note
    (low,) = flute.out_of_range
    assert (low.side, low.beyond, low.notes, low.written, low.bars) == \
        ("below", "practical", 2, ("B3",), ("2", "5"))
    # no tuba plays C5 (bars 3 and 6)
    (high,) = tuba.out_of_range
    assert (high.side, high.beyond, high.notes, high.written, high.bars) == \
        ("above", "professional", 2, ("C5",), ("3", "6"))
    assert range_notes(flute) == [
        "2 notes below its practical range: for professional players only (B3 in bars 2, 5)"]
    assert range_notes(tuba) == [
        "2 notes above its range: no player can play them (C5 in bars 3, 6)"]
    data = json.loads((result.folder / "report.json").read_text())
    parts = {p["part"]: p for p in data["parts"]}
    assert parts["Tuba"]["out_of_range"][0]["bars"] == ["3", "6"]
    assert parts["Flute"]["out_of_range"][0]["written"] == ["B3"]
    page = (result.folder / "report.html").read_text()
    assert "C5 in bars 3, 6" in page and "B3 in bars 2, 5" in page
    # the portfolio's cache keeps them: the parts read back from JSON are the same
    assert tuple(part_from_json(p) for p in as_json(result.report)["parts"]) == \
        result.report.parts


def test_the_summary_prints_one_line_per_part(tmp_path, capsys):
    """As the user sees it: ``score2audio render`` prints one line per part out of range."""
    from pipeline.cli import main

    sf_options = ["--soundfont", str(MUSESCORE if MUSESCORE.exists() else FLUIDR3)]
    assert main(["render", str(FLUTE_TUBA), "--out", str(tmp_path), *sf_options]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  Flute: 2 notes below its practical range: for professional players only " \
           "(B3 in bars 2, 5)" in lines
    assert "  Tuba: 2 notes above its range: no player can play them (C5 in bars 3, 6)" in lines


def test_bars_are_named_as_printed_on_every_pass_of_a_repeat():
    from pipeline.score.load import load
    from pipeline.score.perform import perform

    performance = perform(load(DATA / "two-bars-repeated.musicxml"))
    ticks = np.array([n.on for n in performance.tracks[0].notes])
    bars = performance.bar_numbers(np.sort(ticks))
    runs = [b for i, b in enumerate(bars) if i == 0 or bars[i - 1] != b]
    assert runs == ["1", "2", "1", "2"]  # the second pass is bars 1 and 2 again, not 3 and 4


@pytest.mark.skipif(not FLUIDR3.exists(), reason="FluidR3 GM is not installed")
def test_fluidr3_contrabass_has_no_sample_above_a3():
    bass = coverage(FLUIDR3, 0, 43)
    assert bass.covers(np.array([57]), np.array([80]))[0]       # A3
    assert not bass.covers(np.array([62]), np.array([80]))[0]   # D4: FluidSynth plays nothing


@pytest.mark.skipif(not FLUIDR3.exists(), reason="FluidR3 GM is not installed")
def test_a_double_bass_high_d_is_heard_on_fluidr3_an_octave_down(render_once):
    """Written D5 sounds D4: a professional bassist's note, but FluidR3's contrabass preset has
    no sample above A3. Played as written it is silent; it must be heard (an octave down),
    and performance.mid keeps the written D4."""
    result = render_once(HIGH_BASS, soundfont=FLUIDR3)
    bass = _part(result.report, "Contrabass")
    (refit,) = bass.zone_refits
    assert (refit.how, refit.notes, refit.keys, refit.bars) == ("octave down", 1, ("D5",), ("2",))
    audio, rate = sf.read(result.folder / bass.stem, dtype="float32", always_2d=True)
    lead_in = result.report.stems.lead_in_s

    def level_db(start_s: float, stop_s: float) -> float:
        """The stem's RMS level over score time start–stop (-inf where the stem has ended:
        a stem is cut after its last sound)."""
        part = audio[int((lead_in + start_s) * rate):int((lead_in + stop_s) * rate)]
        return 20 * np.log10(np.sqrt(np.mean(part ** 2))) if part.size else -np.inf

    # bar 1's G2 (0–1 s at crotchet 120) against the middle of bar 2's D (2.5–3.5 s, clear
    # of the G's release). Measured: G2 -41 dBFS, the D -49 dBFS (a bass note dies away over
    # a whole note; as written the stem ends after the G, 1.2 s long). 15 dB of tolerance.
    g2 = level_db(0.2, 0.8)
    assert level_db(2.5, 3.5) > g2 - 15.0, "the high D is not heard"
    midi = mido.MidiFile(result.folder / "performance.mid")
    played = [m.note for t in midi.tracks for m in t if m.type == "note_on" and m.velocity]
    assert played == [43, 62]   # G2 and D4 as written, not the D3 rendered
    assert part_from_json(as_json(result.report)["parts"][0]) == bass


@pytest.mark.skipif(not MUSESCORE.exists(), reason="MuseScore General is not installed")
def test_a_piano_note_too_soft_for_any_layer_is_played_by_the_fallback_preset():
    """MuseScore General's pianos have no layer below velocity 3: no octave helps, so the
    keyboards' fallback preset plays the note, switched to at its start and back at the next."""
    assert not coverage(MUSESCORE, 0, 0).covers(np.array([60]), np.array([2]))[0]
    track = Track("Piano", "Piano", (Note(0, 960, 60, 2), Note(960, 1920, 62, 80)))
    voice = Voice(MUSESCORE, 0, 0, "Grand Piano", False, "keyboards", "instrument map",
                  instrument="Piano")
    performance = Performance("t", "", (track,))
    played, refits = fit_to_zones(performance, (voice,))
    (refit,) = refits[0]
    assert (refit.how, refit.notes, refit.keys, refit.bars) == ("fallback preset", 1, ("C4",), ("1",))
    switches = [(c.tick, c.number) for c in played.tracks[0].controls]
    fallback = range_table.fallback_programs()["keyboards"]
    assert switches == [(0, fallback), (960, -1)]   # -1: back to the part's own program
    assert played.tracks[0].notes == track.notes    # same keys, same velocities
    assert performance.tracks[0].controls == ()     # the written performance is untouched


def test_every_instrument_has_its_ranges():
    table = range_table.ranges()
    for _, info in instruments.instrument_map():
        assert info.name in table or info.percussion, info.name
    for r in table.values():
        (p_lo, p_hi), (q_lo, q_hi) = r.professional, r.practical
        assert p_lo <= q_lo <= q_hi <= p_hi, r.instrument
    flute, clarinet = table["Flute"], table["Clarinet"]
    assert range_table.note_name(flute.practical[0]) == "C4"
    # a B-flat clarinet's written low E sounds D3
    assert range_table.note_name(clarinet.professional[0] + clarinet.transposition) == "E3"


def test_a_broken_range_table_names_its_file_and_key(monkeypatch):
    text = (DATA.parent.parent / "pipeline/data/ranges.toml").read_text()
    broken = text.replace('[instrument."Flute"]\nprofessional = ["B3", "D7"]',
                          '[instrument."Flute"]\nprofessional = ["B3", "Q7"]')
    assert broken != text
    monkeypatch.setattr(range_table, "package_toml",
                        lambda where: __import__("tomllib").loads(broken))
    range_table.ranges.cache_clear()
    try:
        with pytest.raises(PipelineError, match=r'data/ranges.toml: instrument."Flute".professional'):
            range_table.ranges()
    finally:
        range_table.ranges.cache_clear()


def test_a_file_that_is_not_a_soundfont_is_refused(tmp_path):
    fake = tmp_path / "x.sf2"
    fake.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(PipelineError, match="not a SoundFont"):
        read_zones(fake)
