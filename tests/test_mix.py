"""Mixing as a listener hears it: seating, balance, depth, headroom, mix stems."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import FLUIDR3, MUSESCORE, SCORES, read
from pipeline import instruments
from pipeline.assign import assign
from pipeline.calibrate import calibration_db, cache_file
from pipeline.config import _rules, _seats, load_template
from pipeline.errors import TemplateError
from pipeline.loudness import integrated_lufs
from pipeline.mix import mix, placements
from pipeline.model import Note, Performance, Stem, Stems, Track, Voice
from pipeline.render import render
from pipeline.seating import place

SR = 48000
TPQ = 960


def _scale_track(name: str, low: int, velocity: int = 80, beats: int = 16) -> Track:
    """Crotchets up and down a ninth from ``low``: one player at one dynamic."""
    steps = [0, 2, 4, 5, 7, 9, 11, 12, 14, 12, 11, 9, 7, 5, 4, 2]
    notes = tuple(Note(i * TPQ, (i + 1) * TPQ - 60, low + steps[i % len(steps)], velocity)
                  for i in range(beats))
    return Track(name, name, notes)


def _quartet(velocity: int = 80) -> Performance:
    return Performance("mf quartet", "", (_scale_track("Violin I", 67, velocity),
                                           _scale_track("Violin II", 62, velocity),
                                           _scale_track("Viola", 55, velocity),
                                           _scale_track("Violoncello", 43, velocity)))


def _stem_lufs(stems: Stems) -> list[float]:
    return [integrated_lufs(read(s.path)[0], stems.sample_rate) for s in stems.stems]


@pytest.mark.parametrize("soundfont", [FLUIDR3, MUSESCORE], ids=["FluidR3", "MuseScore"])
def test_calibration_brings_a_quartet_at_mf_within_a_few_lu(soundfont, tmp_path):
    if not soundfont.exists():
        pytest.skip(f"{soundfont} is not installed")
    performance = _quartet()
    voices = assign(performance, soundfont=soundfont, sample_rate=SR)
    stems = render(performance, voices, stems_dir=tmp_path / "stems", sample_rate=SR)
    raw = np.array(_stem_lufs(stems))
    gains = np.array(calibration_db(performance, voices, sample_rate=SR))
    calibrated = raw + gains
    # four players at one dynamic: within 3 LU of each other (the reference notes are in each
    # part's register but not its exact notes, and bowing attacks differ a little)
    assert calibrated.max() - calibrated.min() <= 3.0, (raw, calibrated)
    assert cache_file().exists()
    # the second time nothing is rendered: the figures come from the cache, unchanged
    assert calibration_db(performance, voices, sample_rate=SR) == tuple(gains)


def _voice(family: str, name: str = "", percussion: bool = False) -> Voice:
    return Voice(FLUIDR3, 128 if percussion else 0, 0, name, percussion, family, "test",
                 _canonical(name, family))


def _canonical(name: str, family: str) -> str:
    """The instrument-map name the assign stage gives a part of this name and family."""
    info = (instruments.voice_for(name) if family == "voices" else None) or instruments.lookup(name)
    return info.name if info else ""


def _place(template: str, parts: list[tuple[str, str]], layout: str | None = None):
    t = load_template(template)
    return {p.part: p for p in place([n for n, _ in parts], [_canonical(n, f) for n, f in parts],
                                     [f for _, f in parts], seats=t.seating(layout),
                                     rules=t.rules, stage_width=t.stage_width,
                                     chamber_depth=t.chamber_depth, section_db=t.section_db)}


ORCHESTRA = [("Flute 1", "woodwinds"), ("Oboe", "woodwinds"), ("Clarinet in B♭", "woodwinds"),
             ("Bassoon", "woodwinds"), ("Horn in F 1", "brass"), ("Horn in F 2", "brass"),
             ("Trumpet in C", "brass"), ("Trombone", "brass"), ("Timpani", "percussion"),
             ("Violin I", "strings"), ("Violin II", "strings"), ("Viola", "strings"),
             ("Violoncello", "strings"), ("Contrabass", "strings")]


def test_orchestra_standard_seating():
    s = _place("orchestra", ORCHESTRA)
    assert s["Violin I"].pan < s["Violin II"].pan < 0 < s["Viola"].pan < s["Violoncello"].pan
    # basses behind the cellos, toward the centre
    assert s["Contrabass"].depth > s["Violoncello"].depth
    assert abs(s["Contrabass"].pan) < abs(s["Violoncello"].pan)
    # strings in front of woodwinds, woodwinds in front of brass, percussion at the back
    assert max(s[n].depth for n in ("Violin I", "Viola", "Violoncello")) < s["Flute 1"].depth
    assert s["Bassoon"].depth < s["Horn in F 1"].depth < s["Timpani"].depth
    assert all(abs(s[n].pan) <= 0.2 for n in ("Flute 1", "Oboe", "Clarinet in B♭", "Bassoon"))
    assert s["Horn in F 1"].pan < s["Horn in F 2"].pan  # two players share the seat, in order
    assert s["Violin I"].bus == "strings" and s["Trumpet in C"].bus == "brass"


def test_orchestra_antiphonal_puts_second_violins_on_the_right():
    s = _place("orchestra", ORCHESTRA, layout="antiphonal")
    assert s["Violin I"].pan < 0 < s["Violin II"].pan
    assert s["Violoncello"].pan < s["Viola"].pan
    with pytest.raises(TemplateError, match="antiphonal"):
        load_template("orchestra").seating("backwards")


def test_jazz_band_saxes_in_front_lead_alto_centre():
    parts = [("Alto Sax 1", "saxes"), ("Alto Sax 2", "saxes"), ("Tenor Sax 1", "saxes"),
             ("Tenor Sax 2", "saxes"), ("Baritone Sax", "saxes")] + \
        [(f"Trumpet {i}", "brass") for i in range(1, 5)] + \
        [(f"Trombone {i}", "brass") for i in range(1, 4)] + [("Bass Trombone", "brass")] + \
        [("Piano", "keyboards"), ("Guitar", "plucked"), ("Bass", "plucked"), ("Drums", "percussion")]
    s = _place("jazz-band", parts)
    assert s["Alto Sax 1"].pan == 0.0
    order = ["Tenor Sax 1", "Alto Sax 1", "Alto Sax 2", "Tenor Sax 2", "Baritone Sax"]
    assert [s[n].pan for n in order] == sorted(s[n].pan for n in order)
    assert s["Alto Sax 1"].gain_db > s["Alto Sax 2"].gain_db  # the lead voice up
    assert s["Alto Sax 1"].depth < s["Trombone 1"].depth < s["Trumpet 1"].depth
    assert s["Bass Trombone"].seat == "trombones" and s["Bass"].seat == "bass"
    rhythm = [s[n] for n in ("Piano", "Guitar", "Bass", "Drums")]
    assert all(p.pan < -0.2 and p.bus == "rhythm" for p in rhythm)  # to one side


def test_brass_band_and_concert_band_sides():
    bb = _place("brass-band", [("Soprano Cornet", "brass"), ("Solo Cornet", "brass"),
                               ("Flugelhorn", "brass"), ("Solo Tenor Horn", "brass"),
                               ("1st Baritone", "brass"), ("Euphonium", "brass"),
                               ("Eb Bass", "brass"), ("Bb Bass", "brass")])
    assert bb["Solo Cornet"].pan < -0.3 and bb["Soprano Cornet"].pan < -0.3
    assert bb["Euphonium"].pan > 0.3 and bb["Eb Bass"].pan > 0.3
    assert abs(bb["Solo Tenor Horn"].pan) < 0.3 and abs(bb["1st Baritone"].pan) < 0.3
    cb = _place("concert-band", [("Flute", "woodwinds"), ("Clarinet 1", "woodwinds"),
                                 ("Trumpet 1", "brass"), ("Trombone", "brass"), ("Tuba", "brass"),
                                 ("Percussion", "percussion")])
    assert cb["Flute"].pan < 0 and cb["Clarinet 1"].pan < 0
    assert cb["Trumpet 1"].pan > 0 and cb["Trombone"].pan > 0
    assert abs(cb["Tuba"].pan) < 0.2 and cb["Percussion"].depth > 0.9


def test_choir_satb_left_to_right_and_blocks():
    parts = [("Soprano", "voices"), ("Alto", "voices"), ("Tenor", "voices"), ("Bass", "voices")]
    s = _place("choir", parts)
    assert s["Soprano"].pan < s["Alto"].pan < s["Tenor"].pan < s["Bass"].pan
    b = _place("choir", parts, layout="blocks")
    assert b["Soprano"].depth < b["Tenor"].depth and b["Soprano"].pan < 0 < b["Alto"].pan


def test_chamber_rules_and_score_order():
    q = _place("quartet", [("Violoncello", "strings"), ("Viola", "strings"),
                           ("Violin 2", "strings"), ("Violin 1", "strings")])
    # the string quartet rule seats vn1, vn2, va, vc left to right whatever the score order
    assert q["Violin 1"].pan < q["Violin 2"].pan < q["Viola"].pan < q["Violoncello"].pan
    assert q["Viola"].seat == "string quartet"
    t = _place("trio", [("Violin", "strings"), ("Piano", "keyboards"), ("Cello", "strings")])
    assert t["Violin"].pan < t["Piano"].pan < t["Cello"].pan
    assert t["Piano"].depth > t["Violin"].depth  # the piano sits behind in a piano trio
    other = _place("trio", [("Flute", "woodwinds"), ("Guitar", "plucked"), ("Marimba", "percussion")])
    assert other["Flute"].pan < other["Guitar"].pan < other["Marimba"].pan  # score order
    assert {p.seat for p in other.values()} == {"score order"}


def test_bad_seating_data_names_file_and_key():
    where = "templates/x.toml [[seat]]"
    with pytest.raises(TemplateError, match=r"templates/x\.toml.*'pan'"):
        _seats([{"name": "violins", "match": ["violin"], "pan": 3, "depth": 0.1}], where)
    with pytest.raises(TemplateError, match=r"templates/x\.toml.*'families'"):
        _seats([{"name": "x", "families": ["kazoos"], "pan": 0, "depth": 0}], where)
    with pytest.raises(TemplateError, match=r"'instruments'"):
        _rules([{"instruments": ["Violin", "Theremin"], "pans": [0, 0], "depths": [0, 0]}],
               "templates/x.toml [[rule]]")


def _tone_stem(path, seconds: float, sr: int = SR, level: float = 0.1, hz: float = 440.0,
               quiet_from: float | None = None):
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    x = level * np.sin(2 * np.pi * hz * t)
    if quiet_from is not None:
        x[int(quiet_from * sr):] *= 10 ** (-20 / 20)  # a pp passage 20 dB under the ff
    sf.write(str(path), np.stack([x, x]).T.astype(np.float32), sr, subtype="FLOAT")
    return path


def _stems(tmp_path, names, **kw) -> Stems:
    paths = [_tone_stem(tmp_path / f"{i + 1:02d}-{n.lower().replace(' ', '-')}.wav", 4.0,
                        hz=220.0 * (i + 1), **kw) for i, n in enumerate(names)]
    return Stems(SR, int(4.0 * SR), tuple(Stem(i, n, p) for i, (n, p)
                                          in enumerate(zip(names, paths))))


def test_mix_stems_sum_to_the_mix_and_headroom(tmp_path):
    names = ["Violin I", "Violin II", "Viola", "Violoncello"]
    stems = _stems(tmp_path, names, quiet_from=2.0)
    voices = tuple(_voice("strings", n) for n in ["Violin", "Violin", "Viola", "Cello"])
    result = mix(stems, voices, load_template("quartet"), mix_stems_dir=tmp_path / "mix-stems")
    audio = result.audio
    peak_db = 20 * np.log10(np.abs(audio).max())
    assert -6.0 <= peak_db <= -3.0
    total = sum(read(tmp_path / "mix-stems" / s.path.name)[0] for s in stems.stems)
    assert total.shape == audio.shape
    err_db = 20 * np.log10(np.abs(total - audio).max() / np.abs(audio).max())
    assert err_db < -60.0
    # a mix stem keeps its own dynamics: the pp half measures about 20 dB under the ff half
    one, _ = read(tmp_path / "mix-stems" / stems.stems[0].path.name)
    ff = integrated_lufs(one[:, int(0.5 * SR):int(1.9 * SR)], SR)
    pp = integrated_lufs(one[:, int(2.6 * SR):int(3.9 * SR)], SR)
    assert ff - pp == pytest.approx(20.0, abs=1.5)  # the room's tail adds a little to the pp
    # violin I sits left of the cello in the mix itself
    left, right = one[0].std(), one[1].std()
    cello, _ = read(tmp_path / "mix-stems" / stems.stems[3].path.name)
    assert left > right and cello[1].std() > cello[0].std()


def test_back_row_is_quieter_wetter_and_duller(tmp_path):
    # the same signal at the front (violin I) and at the back (timpani) of the orchestra
    names = ["Violin I", "Timpani"]
    paths = [_tone_stem(tmp_path / f"{i}.wav", 4.0, hz=3000.0) for i in range(2)]
    stems = Stems(SR, 4 * SR, tuple(Stem(i, n, p) for i, (n, p) in enumerate(zip(names, paths))))
    voices = (_voice("strings", "Violin"), _voice("percussion", "Timpani"))
    result = mix(stems, voices, load_template("orchestra"), mix_stems_dir=tmp_path / "ms")
    front, back = result.stem_levels
    assert back["depth"] > front["depth"]
    assert back["gain_db"] < front["gain_db"]          # quieter
    assert back["send_db"] > front["send_db"]          # more of it in the room
    assert back["predelay_ms"] < front["predelay_ms"]  # the room follows sooner
    assert back["damping_hz"] < front["damping_hz"]    # the highs go first
    assert back["mix_lufs"] < front["mix_lufs"]


def test_placements_use_the_voices_instrument_when_the_part_name_is_unknown(tmp_path):
    stems = _stems(tmp_path, ["Part 1", "Part 2"])
    voices = (_voice("brass", "Trumpet"), _voice("strings", "Violin"))
    seats = placements(stems, voices, load_template("orchestra"))
    assert [p.seat for p in seats] == ["trumpets", "violins"]  # the assign stage said what they are


def test_rendered_quartet_has_mix_stems_and_seating(render_once):
    result = render_once(SCORES / "string-quartet.musicxml")
    parts = {p["part"]: p for p in result.report["parts"]}
    assert parts["Violin I"]["pan"] < parts["Violoncello"]["pan"]
    for p in parts.values():
        assert (result.folder / p["mix_stem"]).exists()
        assert p["calibration_db"] is not None


@pytest.mark.parametrize("soundfont", [FLUIDR3, MUSESCORE], ids=["FluidR3", "MuseScore"])
def test_calibration_evens_out_mixed_instruments(soundfont, tmp_path):
    if not soundfont.exists():
        pytest.skip(f"{soundfont} is not installed")
    performance = Performance("mf winds", "", (
        _scale_track("Flute", 72), _scale_track("Trumpet", 60), _scale_track("Bassoon", 43),
        _scale_track("Violin", 67), _scale_track("Tuba", 36), _scale_track("Alto Sax", 60)))
    voices = assign(performance, soundfont=soundfont, sample_rate=SR)
    stems = render(performance, voices, stems_dir=tmp_path / "stems", sample_rate=SR)
    raw = np.array(_stem_lufs(stems))
    calibrated = raw + np.array(calibration_db(performance, voices, sample_rate=SR))
    # GM presets at one velocity differ by several LU (about 8 here); after calibration mf is mf
    assert np.ptp(calibrated) <= 2.5 and np.ptp(calibrated) < np.ptp(raw) / 2, (raw, calibrated)


def _detect(parts: list[tuple[str, str, int]]) -> str:
    from pipeline.ensemble import detect_ensemble

    tracks = tuple(Track(n, n, ()) for n, _, _ in parts)
    voices = tuple(Voice(FLUIDR3, 128 if f == "drums" else 0, p, n,
                         f == "drums", "percussion" if f == "drums" else f, "test")
                   for n, f, p in parts)
    return detect_ensemble(Performance("x", "", tracks), voices)


BIG_BAND = [(f"Alto Sax {i}", "saxes", 65) for i in (1, 2)] + \
    [(f"Tenor Sax {i}", "saxes", 66) for i in (1, 2)] + [("Baritone Sax", "saxes", 67)] + \
    [(f"Trumpet {i}", "brass", 56) for i in range(1, 5)] + \
    [(f"Trombone {i}", "brass", 57) for i in range(1, 4)] + [("Bass Trombone", "brass", 57)] + \
    [("Piano", "keyboards", 0), ("Guitar", "plucked", 26), ("Bass", "plucked", 32),
     ("Drums", "drums", 0)]
BRASS_BAND = [("Soprano Cornet", "brass", 56), ("Solo Cornet", "brass", 56),
              ("Repiano Cornet", "brass", 56), ("Flugelhorn", "brass", 56),
              ("Solo Tenor Horn", "brass", 60), ("1st Baritone", "brass", 58),
              ("Euphonium", "brass", 58), ("Trombone", "brass", 57), ("Eb Bass", "brass", 58),
              ("Percussion", "drums", 0)]
CONCERT_BAND = [("Flute", "woodwinds", 73), ("Oboe", "woodwinds", 68),
                ("Clarinet 1", "woodwinds", 71), ("Clarinet 2", "woodwinds", 71),
                ("Alto Sax", "saxes", 65), ("Tenor Sax", "saxes", 66), ("Trumpet 1", "brass", 56),
                ("Trumpet 2", "brass", 56), ("Horn", "brass", 60), ("Trombone", "brass", 57),
                ("Euphonium", "brass", 58), ("Tuba", "brass", 58),
                ("String Bass", "strings", 43), ("Percussion", "drums", 0)]
ORCHESTRA_PARTS = [(n, f, 0) for n, f in ORCHESTRA]


@pytest.mark.parametrize("parts, expected", [
    (BIG_BAND, "jazz-band"), (BRASS_BAND, "brass-band"), (CONCERT_BAND, "concert-band"),
    (ORCHESTRA_PARTS, "orchestra"),
    ([("Violin I", "strings", 40), ("Violin II", "strings", 40), ("Viola", "strings", 41),
      ("Cello", "strings", 42), ("Clarinet", "woodwinds", 71)], "quintet"),
    ([(f"Violin {i}", "strings", 40) for i in range(1, 9)], "orchestra"),  # string orchestra
    ([("Soprano", "voices", 52), ("Alto", "voices", 52), ("Tenor", "voices", 53),
      ("Bass", "voices", 53)], "choir"),
], ids=["big band", "brass band", "concert band (with string bass)", "orchestra",
        "clarinet quintet", "string orchestra", "SATB"])
def test_detected_ensemble(parts, expected):
    assert _detect(parts) == expected
