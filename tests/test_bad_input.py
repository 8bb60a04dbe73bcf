"""Issue 8, bad input: every refusal is one line naming the file and the problem, exit code 2,
no traceback and no file written; what can be played anyway is played, with a warning.

The command runs in-process (``cli.main``): the same code as the ``score2audio`` command without
an interpreter start per case; tests/test_errors.py runs a few through a real subprocess.
"""
from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import mido
import pytest

from conftest import DATA, MUSESCORE
from pipeline.settings import config
from pipeline.settings import soundfonts
from pipeline.cli import main
from pipeline.run.recipe import perform_to_midi

FLUTE = ('<score-part id="P1"><part-name>{name}</part-name>{program}</score-part>')
WHOLE_A4 = '<note><pitch><step>A</step><octave>4</octave></pitch><duration>4</duration><type>whole</type></note>'
WHOLE_REST = '<note><rest/><duration>4</duration><type>whole</type></note>'
ATTRIBUTES = ('<attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type>'
              '</time><clef><sign>G</sign><line>2</line></clef></attributes>')


def musicxml(body: str = WHOLE_A4, *, part_name: str = "Flute", program: int | None = 74,
             title: str = "Test", doctype: str = "", parts: int = 1) -> str:
    """A one-bar score; ``body`` is what the bar holds after its attributes."""
    prog = ("" if program is None else f'<midi-instrument id="P1-I1"><midi-program>{program + 1}'
            f'</midi-program></midi-instrument>')
    score_parts = "".join(FLUTE.format(name=part_name, program=prog).replace("P1", f"P{i + 1}")
                          for i in range(parts))
    measures = "".join(f'<part id="P{i + 1}"><measure number="1">{ATTRIBUTES}{body}</measure></part>'
                       for i in range(parts))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<score-partwise version="3.1">'
            f'<work><work-title>{title}</work-title></work><part-list>{score_parts}</part-list>'
            f'{measures}</score-partwise>\n')


def midi_bytes(*, tempo_us: int | None = 500_000, bank: int = 0, program: int = 0,
               note_tick: int = 0, name: str = "Piano") -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("track_name", name=name))
    if tempo_us is not None:
        track.append(mido.MetaMessage("set_tempo", tempo=tempo_us))
    if bank:
        track.append(mido.Message("control_change", control=0, value=bank))
    track.append(mido.Message("program_change", program=program))
    track.append(mido.Message("note_on", note=60, velocity=80, time=note_tick))
    track.append(mido.Message("note_off", note=60, time=480))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def mxl_bytes(xml: str | bytes, *, name: str = "score.musicxml") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="'
                   f'{name}"/></rootfiles></container>')
        z.writestr(name, xml)
    return buf.getvalue()


def refused(capsys, tmp_path: Path, score: Path, *words: str, options: tuple = (),
            at_fault: Path | None = None) -> str:
    """Render ``score``: exit code 2, one line naming the file at fault (``score`` unless
    given) and ``words``, nothing written."""
    out = tmp_path / "out"
    code = main(["render", str(score), "--out", str(out), "-q", *options])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("score2audio: error: "), err
    assert "Traceback" not in err
    for word in ((at_fault or score).name, *words):
        assert word in lines[0], lines[0]
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], list(out.rglob("*"))
    return lines[0]


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------------------------------------
# files that are not scores

def test_folder_instead_of_a_file(capsys, tmp_path):
    folder = tmp_path / "piece.musicxml"
    folder.mkdir()
    refused(capsys, tmp_path, folder, "is a folder")


@pytest.mark.parametrize("name", ["empty.musicxml", "empty.mxl", "empty.mid"])
def test_empty_file(capsys, tmp_path, name):
    refused(capsys, tmp_path, write(tmp_path, name, b""), "empty")


def test_xml_that_is_not_musicxml(capsys, tmp_path):
    page = write(tmp_path, "page.musicxml", "<html><body>a web page</body></html>")
    refused(capsys, tmp_path, page, "not a MusicXML score", "<html>")


def test_text_that_is_not_xml(capsys, tmp_path):
    refused(capsys, tmp_path, write(tmp_path, "notes.xml", "C D E F G\n"), "not a readable XML file")


def test_truncated_mxl(capsys, tmp_path):
    data = mxl_bytes(musicxml())
    refused(capsys, tmp_path, write(tmp_path, "cut.mxl", data[: len(data) // 2]), "not a zip archive")


def test_corrupt_mxl(capsys, tmp_path):
    data = bytearray(mxl_bytes(musicxml() * 20))
    start = data.find(b"score.musicxml", 40) + len("score.musicxml")  # the member's deflate data
    data[start:start + 200] = bytes(200)
    refused(capsys, tmp_path, write(tmp_path, "damaged.mxl", bytes(data)), "damaged")


def test_mxl_without_a_score(capsys, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("cover.png", b"\x89PNG")
    refused(capsys, tmp_path, write(tmp_path, "pictures.mxl", buf.getvalue()), "no MusicXML file")


def test_truncated_midi(capsys, tmp_path):
    data = midi_bytes()
    refused(capsys, tmp_path, write(tmp_path, "cut.mid", data[:30]), "not a readable MIDI file")


def test_corrupt_midi(capsys, tmp_path):
    data = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff\xff\xff" + bytes(40)
    refused(capsys, tmp_path, write(tmp_path, "damaged.midi", data), "not a readable MIDI file")


# ---------------------------------------------------------------------------------------------
# hostile files

def test_mxl_that_expands_to_gigabytes(capsys, tmp_path):
    bomb = tmp_path / "bomb.mxl"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("score.musicxml", "w", force_zip64=True) as f:
            for _ in range(300):  # 300 MB of zeros: 0.3 MB compressed
                f.write(bytes(1 << 20))
    assert bomb.stat().st_size < 1 << 20
    refused(capsys, tmp_path, bomb, "expands to 300 MB", "zip bomb")


def test_mxl_compressed_like_a_bomb(capsys, tmp_path):
    xml = musicxml().encode()
    padded = xml.replace(b"</score-partwise>", b" " * (20 << 20) + b"</score-partwise>")
    refused(capsys, tmp_path, write(tmp_path, "ratio.mxl", mxl_bytes(padded)), "compressed",
            "zip bomb")


def test_mxl_with_thousands_of_files(capsys, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("score.musicxml", musicxml())
        for i in range(1500):
            z.writestr(f"junk/{i}.txt", b"")
    refused(capsys, tmp_path, write(tmp_path, "many.mxl", buf.getvalue()), "1501 files")


LAUGHS = ('<!DOCTYPE score-partwise [\n <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">\n'
          + "".join(f' <!ENTITY {b} "{("&" + a + ";") * 10}">\n'
                    for a, b in zip("abcdefghi", "bcdefghij")) + "]>\n")


@pytest.mark.parametrize("doctype, entity", [
    (LAUGHS, "'a'"),
    ('<!DOCTYPE score-partwise [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>\n', "'secret'"),
    ('<!DOCTYPE score-partwise [ <!ENTITY % dtd SYSTEM "http://example.com/evil.dtd"> %dtd; ]>\n',
     "'dtd'"),
], ids=["billion-laughs", "external-file", "external-dtd"])
@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_xml_entities_are_refused(capsys, tmp_path, doctype, entity, suffix):
    xml = musicxml(title="&j;" if doctype is LAUGHS else "T", doctype=doctype)
    data = mxl_bytes(xml) if suffix == ".mxl" else xml
    line = refused(capsys, tmp_path, write(tmp_path, f"entities{suffix}", data), "<!ENTITY", entity)
    assert "amplification" not in line  # refused at the declaration, not by expat's limit


def test_the_standard_musicxml_doctype_is_accepted(tmp_path):
    doctype = ('<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN" '
               '"http://www.musicxml.org/dtds/partwise.dtd">\n')
    performance = perform_to_midi(write(tmp_path, "dtd.musicxml", musicxml(doctype=doctype)),
                                  tmp_path / "out.mid")
    assert performance.note_count == 1


# ---------------------------------------------------------------------------------------------
# scores with nothing to play

@pytest.mark.parametrize("xml, words", [
    ('<?xml version="1.0"?><score-partwise version="3.1"><part-list/></score-partwise>',
     "no parts"),
    (musicxml(""), "no notes"),
    (musicxml(WHOLE_REST, parts=3), "no notes"),
], ids=["no-parts", "no-notes", "only-rests"])
def test_nothing_to_play(capsys, tmp_path, xml, words):
    refused(capsys, tmp_path, write(tmp_path, "silent.musicxml", xml), words)


@pytest.mark.parametrize("beats, beat_type, words", [
    ("1e308e308", "4", "'1e308e308' beats"),   # found by the fuzzer: music21 hung, 23 GB
    ("100000", "4", "'100000' beats"),
    ("4", "3", "beat type '3'"),
])
def test_time_signature_music21_cannot_build(capsys, tmp_path, beats, beat_type, words):
    xml = musicxml().replace("<beats>4</beats><beat-type>4</beat-type>",
                             f"<beats>{beats}</beats><beat-type>{beat_type}</beat-type>")
    refused(capsys, tmp_path, write(tmp_path, "meter.musicxml", xml), words)


def test_midi_without_notes(capsys, tmp_path):
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000)]))
    buf = io.BytesIO()
    mid.save(file=buf)
    refused(capsys, tmp_path, write(tmp_path, "silent.mid", buf.getvalue()), "no notes")


# ---------------------------------------------------------------------------------------------
# tempo and length

@pytest.mark.parametrize("direction", [
    '<direction><direction-type><words>x</words></direction-type><sound tempo="0"/></direction>',
    '<direction><direction-type><words>x</words></direction-type><sound tempo="-60"/></direction>',
    '<direction><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>0'
    '</per-minute></metronome></direction-type></direction>',
    '<direction><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>100000'
    '</per-minute></metronome></direction-type></direction>',
], ids=["sound-0", "sound-negative", "metronome-0", "metronome-absurd"])
def test_impossible_musicxml_tempo_is_ignored_with_a_warning(tmp_path, caplog, direction):
    """Decision: one impossible tempo mark does not stop the piece; it is ignored and the tempo
    before it (120 at the start, MusicXML's default) continues, with a warning naming the file."""
    plain = perform_to_midi(write(tmp_path, "plain.musicxml", musicxml()), tmp_path / "a.mid")
    score = write(tmp_path, "tempo.musicxml", musicxml(direction + WHOLE_A4))
    with caplog.at_level(logging.WARNING):
        performance = perform_to_midi(score, tmp_path / "b.mid")
    assert performance.duration_s == pytest.approx(plain.duration_s, abs=1e-6)
    assert any(str(score) in r.getMessage() and "tempo" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize("tempo_us", [0, 1, 0xFFFFFF], ids=["zero", "60M-bpm", "3.6-bpm"])
def test_impossible_midi_tempo_is_ignored_with_a_warning(tmp_path, caplog, tempo_us):
    plain = perform_to_midi(write(tmp_path, "plain.mid", midi_bytes()), tmp_path / "a.mid")
    score = write(tmp_path, "tempo.mid", midi_bytes(tempo_us=tempo_us))
    with caplog.at_level(logging.WARNING):
        performance = perform_to_midi(score, tmp_path / "b.mid")
    assert performance.duration_s == pytest.approx(plain.duration_s, abs=1e-6)
    assert plain.duration_s == pytest.approx(0.5, abs=1e-6)  # one quarter at 120
    assert any(str(score) in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


def test_longer_than_the_limit(capsys, tmp_path):
    line = refused(capsys, tmp_path, DATA / "single-a4.musicxml", "longer than the limit",
                   "0:00:01", "--max-duration", options=("--max-duration", "1"))
    assert "0:00:0" in line


def test_stray_note_hours_after_the_end(capsys, tmp_path):
    # 4 hours at 120 BPM, 480 ticks a quarter: past the default limit of 3 hours
    stray = write(tmp_path, "stray.mid", midi_bytes(note_tick=4 * 3600 * 2 * 480))
    refused(capsys, tmp_path, stray, "lasts 4:00:0", "limit of 3:00:00")


# ---------------------------------------------------------------------------------------------
# instruments and soundfonts: played anyway, with a warning

def _programs(path: Path) -> list[tuple[int, int]]:
    """(bank, program) of each track of a performance.mid."""
    found = []
    for track in mido.MidiFile(str(path)).tracks[1:]:
        bank = next((m.value for m in track if m.type == "control_change" and m.control == 0), 0)
        found.append((bank, next(m.program for m in track if m.type == "program_change")))
    return found


def test_unknown_instrument_plays_on_a_piano(tmp_path, caplog):
    score = write(tmp_path, "odd.musicxml", musicxml(part_name="Zorblaxophone", program=None))
    with caplog.at_level(logging.WARNING):
        perform_to_midi(score, tmp_path / "out.mid", soundfont=MUSESCORE)
    assert _programs(tmp_path / "out.mid") == [(0, 0)]
    assert any("Zorblaxophone" in r.getMessage() and "unknown instrument" in r.getMessage()
               for r in caplog.records)


def test_a_program_the_soundfont_lacks_falls_back_to_bank_0(tmp_path, caplog):
    if not MUSESCORE.exists():
        pytest.skip("MuseScore General is not installed")
    score = write(tmp_path, "bank.mid", midi_bytes(bank=5, program=40, name="Fiddle"))
    with caplog.at_level(logging.WARNING):
        perform_to_midi(score, tmp_path / "out.mid", soundfont=MUSESCORE)
    assert _programs(tmp_path / "out.mid") == [(0, 40)]  # the violin of bank 0
    assert any("no bank 5 program 40" in r.getMessage() for r in caplog.records)


def test_truncated_soundfont(capsys, tmp_path):
    with open(MUSESCORE if MUSESCORE.exists() else "/usr/share/sounds/sf2/FluidR3_GM.sf2",
              "rb") as f:
        head = f.read(100_000)
    broken = write(tmp_path, "broken.sf2", head)
    line = refused(capsys, tmp_path, DATA / "single-a4.musicxml", "truncated",
                   options=("--soundfont", str(broken)), at_fault=broken)
    assert "100000 of" in line


def test_a_broken_soundfont_found_by_search_is_skipped(tmp_path, caplog, monkeypatch):
    broken = write(tmp_path, "broken.sf2", b"RIFF\xff\xff\x00\x00sfbk" + bytes(100))
    good = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if not good.exists():
        pytest.skip("FluidR3 GM is not installed")
    monkeypatch.delenv("SOUNDFONT", raising=False)
    monkeypatch.setattr(soundfonts, "candidates", lambda: [broken, good])
    with caplog.at_level(logging.WARNING):
        assert soundfonts.find_soundfont() == good.resolve()
    assert any("broken.sf2" in r.getMessage() and "truncated" in r.getMessage()
               for r in caplog.records)


# ---------------------------------------------------------------------------------------------
# settings and the output folder

def test_unknown_preset_lists_the_choices(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["render", str(DATA / "single-a4.musicxml"), "--out", str(out), "--preset",
                 "loudest"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'loudest'" in err and "streaming" in err and "cd" in err
    assert not out.exists()


@pytest.fixture
def data_folders(tmp_path, monkeypatch):
    """Templates and presets read from a copy the test may break."""
    import shutil
    from importlib import resources

    for kind in ("templates", "presets"):
        shutil.copytree(str(resources.files("pipeline").joinpath(kind)), tmp_path / kind)
    monkeypatch.setattr(config, "_folder", lambda kind: tmp_path / kind)
    config.load_template.cache_clear()
    config.load_preset.cache_clear()
    yield tmp_path
    config.load_template.cache_clear()
    config.load_preset.cache_clear()


@pytest.mark.parametrize("kind, name, line, words", [
    ("templates", "quartet", "stage_width = 3.0",
     ("templates/quartet.toml", "'stage_width' = 3.0", "from 0.0 to 1.0")),
    ("templates", "quartet", "rt60_s = 'huge'",
     ("templates/quartet.toml [room]", "'rt60_s' = 'huge'", "from 0.1 to 8.0")),
    ("presets", "streaming", "formats = ['wav', 'aiff']",
     ("presets/streaming.toml", "'formats'", "wav, flac, mp3, ogg")),
    ("presets", "streaming", "bit_depth = 20",
     ("presets/streaming.toml", "'bit_depth' = 20", "16, 24, 32")),
], ids=["template-range", "template-type", "preset-format", "preset-bit-depth"])
def test_invalid_template_or_preset_names_the_key_and_the_allowed_values(
        capsys, data_folders, kind, name, line, words):
    path = data_folders / kind / f"{name}.toml"
    key = line.split(" =")[0]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line if old.startswith(f"{key} =") else old for old in lines))
    out = data_folders / "out"
    options = ["--ensemble", name] if kind == "templates" else ["--preset", name]
    assert main(["render", str(DATA / "single-a4.musicxml"), "--out", str(out), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not out.exists()


def test_output_folder_that_is_a_file(capsys, tmp_path):
    blocker = write(tmp_path, "out", b"not a folder")
    code = main(["render", str(DATA / "single-a4.musicxml"), "--out", str(blocker / "sub"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert str(blocker) in err and "cannot be written" in err
    assert blocker.read_bytes() == b"not a folder"


def test_the_raw_musicxml_reader_refuses_entities_too(tmp_path, caplog):
    """pipeline.score.musicxml reads <sound>, <swing> and drum keys itself, after load: it applies
    the same check, so a bomb never reaches its parser even when called on its own."""
    from pipeline.score import musicxml as raw

    score = write(tmp_path, "swing.musicxml", musicxml(doctype=LAUGHS).replace(
        "<attributes>", "<attributes><swing/>", 1))
    with caplog.at_level(logging.WARNING):
        assert raw.part_measures(score, rb"<swing\b", "<swing>") is None
    assert any("<!ENTITY" in r.getMessage() for r in caplog.records)


def test_an_unknown_text_encoding(capsys, tmp_path):
    """Found by tests/test_load_fuzz.py: expat raised LookupError for the declared encoding."""
    score = write(tmp_path, "encoding.musicxml", musicxml().replace("UTF-8", "UTF-0"))
    refused(capsys, tmp_path, score, "unknown encoding: UTF-0")


def test_a_midi_key_signature_mido_cannot_decode(capsys, tmp_path):
    """Found by tests/test_load_fuzz.py: mido's KeySignatureError is not a ValueError."""
    data = bytearray(midi_bytes())
    track = data.index(b"MTrk") + 8
    meta = bytes([0x00, 0xFF, 0x59, 0x02, 84, 104])  # key signature: 84 sharps, mode 104
    data[track:track] = meta
    size = int.from_bytes(data[track - 4:track], "big") + len(meta)
    data[track - 4:track] = size.to_bytes(4, "big")
    refused(capsys, tmp_path, write(tmp_path, "key.mid", bytes(data)), "not a readable MIDI file",
            "84 sharps")
