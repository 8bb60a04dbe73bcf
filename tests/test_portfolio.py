"""The portfolio: a folder of scores rendered incrementally, mastered per category, published.

One cold run of a small portfolio (two solos, a duet with a sidecar, a MIDI trio and a broken
file, all a few seconds long) is shared by the tests; a test that changes something works on its
own copy.
"""
from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, run_cli
from pipeline.portfolio import build as portfolio
from pipeline.portfolio.build import CACHE, PIECES, build_portfolio

RIGHTS = "© 2024 A. Composer, all rights reserved"
SIDECAR_RIGHTS = "CC BY 4.0 — Duo Sidecar"
MIDI_RIGHTS = "(c) 2025 Trio Meta"
BROKEN = "broken.musicxml"
NOTE = "Two players & their pauses.\n\nA second paragraph <b>not</b> bold."
#: An MP3 carries the encoder's delay and padding (about 50 ms); a browser may also round.
DURATION_TOLERANCE_S = 0.15
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--hide-scrollbars", "--mute-audio"]


def _make_scores(root: Path) -> Path:
    (root / "solo").mkdir(parents=True)
    (root / "duets").mkdir()
    shutil.copy(DATA / "single-a4.musicxml", root / "solo")
    text = (DATA / "clarinet-written-d.musicxml").read_text("utf-8")
    assert text.count("</creator>") == 1
    (root / "solo" / "clarinet-written-d.musicxml").write_text(
        text.replace("</creator>", f"</creator><rights>{RIGHTS}</rights>"), "utf-8")
    shutil.copy(DATA / "caesura-breath.musicxml", root / "duets")
    (root / "duets" / "caesura-breath.toml").write_text(
        f'copyright = "{SIDECAR_RIGHTS}"\nnotes = """{NOTE}"""\nrehearsal = true\n', "utf-8")
    _trio_midi(root / "little-trio.mid")
    (root / BROKEN).write_text("<score-partwise><part-list>", "utf-8")
    return root


def _trio_midi(path: Path) -> None:
    """Two bars for flute, piano and bass with a copyright notice: a short MIDI trio."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="Little Trio"),
                                       mido.MetaMessage("copyright", text=MIDI_RIGHTS),
                                       mido.MetaMessage("set_tempo", tempo=500_000)]))
    for channel, (name, program, pitches) in enumerate((("Flute", 73, (72, 74, 76, 77)),
                                                        ("Piano", 0, (60, 62, 64, 65)),
                                                        ("Bass", 32, (36, 38, 40, 41)))):
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name),
                                mido.Message("program_change", channel=channel, program=program)])
        for pitch in pitches:
            track += [mido.Message("note_on", channel=channel, note=pitch, velocity=80, time=0),
                      mido.Message("note_off", channel=channel, note=pitch, velocity=0, time=960)]
        midi.tracks.append(track)
    midi.save(str(path))


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """(scores folder, site folder, result) of a first run."""
    base = tmp_path_factory.mktemp("portfolio")
    scores = _make_scores(base / "scores")
    site = base / "site"
    events = []
    result = build_portfolio(scores, site, workers=2, progress=events.append)
    return scores, site, result, events


def _copy(cold, tmp_path) -> tuple[Path, Path]:
    scores, site, _, _ = cold
    return (Path(shutil.copytree(scores, tmp_path / "scores")),
            Path(shutil.copytree(site, tmp_path / "site")))


def _status(result) -> dict[str, str]:
    return {o.source: o.status for o in result.outcomes}


def _manifest(site: Path) -> dict:
    return json.loads((site / "manifest.json").read_text("utf-8"))["pieces"]


def _audio_files(site: Path) -> dict[str, int]:
    """mtime of every master in the site, by path."""
    return {str(p.relative_to(site)): p.stat().st_mtime_ns
            for p in (site / PIECES).glob("*/master*")}


def test_the_broken_score_fails_alone_and_the_others_are_published(cold):
    scores, site, result, events = cold
    assert _status(result) == {BROKEN: "failed", "little-trio.mid": "rendered",
                               "duets/caesura-breath.musicxml": "rendered",
                               "solo/clarinet-written-d.musicxml": "rendered",
                               "solo/single-a4.musicxml": "rendered"}
    (failed,) = result.failed
    assert failed.reason.startswith(f"{scores / BROKEN}: cannot be read as a score")
    assert "\n" not in failed.reason
    page = (site / "index.html").read_text("utf-8")
    # categories in the order of the design, each with its count
    assert ">2 Solo</a> · <a href=\"#duet\">1 Duet</a> · <a href=\"#trio\">1 Trio</a>" in page
    for title in ("Single A4", "Clarinet written D", "Pauses", "Little Trio"):
        assert f">{title}</a></h3>" in page
    assert page.count("<audio ") == 4 and "broken" not in page
    assert "http://" not in page and "https://" not in page  # nothing from the network
    for record in _manifest(site).values():
        if record["status"] != "done":
            continue
        entry, folder = record["entry"], site / PIECES / record["slug"]
        for name in (*entry["player"], entry["wav"], entry["stems_zip"], entry["score"],
                     entry["waveform"], entry["report"]):
            assert (folder / name).is_file(), name
            assert f'{PIECES}/{record["slug"]}/{name}' in page  # linked relatively
        assert entry["player"] == ["master-web-demo.mp3", "master-web-demo.ogg"]
    phases = [e.phase for e in events]
    assert phases[0] == "render" and phases[-1] == "master"
    assert events[-1].done == events[-1].total == 4 and events[-1].running == ()


def test_copyright_from_the_score_and_the_sidecar_reaches_page_and_tags(cold):
    from mutagen.id3 import ID3

    _, site, _, _ = cold
    page = (site / "index.html").read_text("utf-8")
    assert f'<p class="rights">{RIGHTS}</p>' in page
    assert f'<p class="rights">{SIDECAR_RIGHTS}</p>' in page
    assert f'<p class="rights">{MIDI_RIGHTS}</p>' in page
    for slug, rights in (("solo-clarinet-written-d", RIGHTS), ("duets-caesura-breath", SIDECAR_RIGHTS),
                         ("little-trio", MIDI_RIGHTS)):
        folder = site / PIECES / slug
        assert str(ID3(folder / "master-web-demo.mp3")["TCOP"]) == rights
        with sf.SoundFile(str(folder / "master-streaming.wav")) as f:
            assert f.copyright == rights
        with sf.SoundFile(str(folder / "master-web-demo.ogg")) as f:
            assert f.copyright == rights
        assert json.loads((folder / "report.json").read_text("utf-8"))["copyright"] == rights


def test_a_category_is_mastered_as_one_album(cold):
    from mutagen.id3 import ID3

    _, site, _, _ = cold
    records = [r for r in _manifest(site).values() if r["status"] == "done"]
    solos = [r for r in records if r["category"] == "solo"]
    assert len(solos) == 2
    for preset in portfolio.PRESETS:
        reports = [json.loads((site / PIECES / r["slug"] / "report.json").read_text("utf-8"))
                   for r in solos]
        albums = [next(m for m in rep["masters"] if m["preset"] == preset)["album"]
                  for rep in reports]
        assert all(a["pieces"] == 2 for a in albums)
        # pieces of one ensemble get one level
        assert solos[0]["album_targets"][preset] == pytest.approx(solos[1]["album_targets"][preset])
    for r in solos:
        assert str(ID3(site / PIECES / r["slug"] / "master-web-demo.mp3")["TALB"]) == \
            "Portfolio: solo"


def test_a_second_run_renders_nothing(cold, tmp_path):
    scores, site = _copy(cold, tmp_path)
    before = _audio_files(site)
    events = []
    result = build_portfolio(scores, site, workers=2, progress=events.append)
    assert _status(result) == {**{o.source: "unchanged" for o in cold[2].outcomes},
                               BROKEN: "failed"}
    assert result.failed[0].reason == cold[2].failed[0].reason
    assert all(e.total == 0 for e in events)  # not one piece was sent to a worker
    assert _audio_files(site) == before


def test_touching_one_score_renders_only_that_piece(cold, tmp_path):
    scores, site = _copy(cold, tmp_path)
    touched = scores / "solo" / "single-a4.musicxml"
    touched.write_text(touched.read_text("utf-8") + "<!-- touched -->\n", "utf-8")
    before = _audio_files(site)
    result = build_portfolio(scores, site, workers=2)
    status = _status(result)
    assert status.pop("solo/single-a4.musicxml") == "rendered"
    assert status == {BROKEN: "failed", "little-trio.mid": "unchanged",
                      "duets/caesura-breath.musicxml": "unchanged",
                      "solo/clarinet-written-d.musicxml": "unchanged"}
    after = _audio_files(site)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed and all(p.startswith(f"{PIECES}/solo-single-a4/") for p in changed)


def test_a_piece_whose_album_level_moved_is_mastered_again_from_its_mix(cold, tmp_path):
    scores, site = _copy(cold, tmp_path)
    manifest = json.loads((site / "manifest.json").read_text("utf-8"))
    record = manifest["pieces"]["solo/single-a4.musicxml"]
    # as if the other solos had moved the album 1 LU since this piece was mastered
    record["album_targets"] = {p: v + 1.0 for p, v in record["album_targets"].items()}
    (site / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    cache = site / portfolio.CACHE / "solo-single-a4"
    mix = (cache / "mix.wav").stat().st_ino
    result = build_portfolio(scores, site, workers=1)
    assert _status(result)["solo/single-a4.musicxml"] == "remastered"
    assert _status(result)["solo/clarinet-written-d.musicxml"] == "unchanged"
    again = _manifest(site)["solo/single-a4.musicxml"]
    assert again["album_targets"] == _manifest(cold[1])["solo/single-a4.musicxml"]["album_targets"]
    # mastered from the same cached mix to the same level: the same audio; the zip not copied
    assert again["entry"]["audio_sha256"] == record["entry"]["audio_sha256"]
    assert (cache / "mix.wav").stat().st_ino == mix
    assert (site / PIECES / "solo-single-a4" / "stems.zip").stat().st_ino == \
        (cache / "stems.zip").stat().st_ino


def test_a_removed_score_leaves_the_site(cold, tmp_path):
    scores, site = _copy(cold, tmp_path)
    (scores / "little-trio.mid").unlink()
    result = build_portfolio(scores, site, workers=1)
    assert "little-trio.mid" not in _status(result)
    assert not (site / PIECES / "little-trio").exists()
    assert "Little Trio" not in (site / "index.html").read_text("utf-8")


def test_dask_renders_the_same_portfolio_as_the_local_pool(cold, tmp_path):
    distributed = pytest.importorskip("distributed", reason="make test installs dask[distributed]")
    scores, site, local, _ = cold
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        result = build_portfolio(scores, tmp_path / "site", dask=cluster.scheduler_address)
    assert _status(result) == _status(local)
    assert result.failed[0].reason == local.failed[0].reason
    ours, theirs = _manifest(site), _manifest(tmp_path / "site")
    for rel, record in ours.items():
        if record["status"] == "done":
            assert theirs[rel]["entry"]["audio_sha256"] == record["entry"]["audio_sha256"], rel


def test_an_unreachable_scheduler_is_one_line(cold, tmp_path):
    pytest.importorskip("distributed", reason="make test installs dask[distributed]")
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match=r"^--dask tcp://127.0.0.1:9: no Dask scheduler"):
        build_portfolio(cold[0], tmp_path / "site", dask="tcp://127.0.0.1:9")


def test_slugs_are_unique_and_follow_the_folders():
    assert portfolio._slugs(["a/Quartet.musicxml", "b/quartet.xml", "b/quartet.mid",
                             "Solo 1.mid"]) == ["a-quartet", "b-quartet-xml", "b-quartet-mid",
                                                "solo-1"]


# ---------------------------------------------------------------------------------------------
# what a web host carries

#: Everything in a published piece's folder: what its card and its pages link to (a score
#: that is not MIDI has its engraving too).
PUBLISHED = {"master-web-demo.mp3", "master-web-demo.ogg", "master-streaming.wav", "stems.zip",
             "score", "waveform.svg", "report.html", "report.json", "timemap.json",
             "index.html", "embed.html"}
#: A float sample rounded to the 24-bit grid moves by at most half a step.
HALF_LSB_24 = 2.0 ** -24


def test_a_published_folder_holds_what_the_page_links_to(cold):
    _, site, _, _ = cold
    for record in _manifest(site).values():
        if record["status"] == "done":
            engraved = {"engraving"} if not record["slug"].endswith("trio") else set()
            asked = {"rehearsal"} if record["slug"] == "duets-caesura-breath" else set()  # its sidecar
            assert {p.name for p in (site / PIECES / record["slug"]).iterdir()} == \
                PUBLISHED | engraved | asked
            # the work material stays out of the site: only the mix, to master again
            cache = site / CACHE / record["slug"]
            assert (cache / "mix.wav").is_file()
            assert not (cache / "stems").exists() and not (cache / "mix-stems").exists()


def test_the_stems_zip_holds_the_dry_stems_of_the_render_as_24_bit_wav(cold, tmp_path):
    from pipeline.run.recipe import render_score

    scores, site, _, _ = cold
    with zipfile.ZipFile(site / PIECES / "little-trio" / "stems.zip") as z:
        assert all(info.date_time == portfolio.ZIP_DATE for info in z.infolist())
        z.extractall(tmp_path / "zip")
    ours = sorted((tmp_path / "zip" / "little-trio-stems").glob("*.wav"))
    assert (tmp_path / "zip" / "little-trio-stems" / "performance.mid").is_file()
    assert "24-bit WAV" in (tmp_path / "zip" / "little-trio-stems" / "README.txt").read_text()
    alone = render_score(scores / "little-trio.mid", out_root=tmp_path / "out",
                         presets=("web-demo",))
    theirs = sorted((alone.folder / "stems").glob("*.wav"))
    assert [p.name for p in ours] == [p.name for p in theirs] and len(ours) == 3
    for mine, render in zip(ours, theirs):
        assert sf.info(str(mine)).subtype == "PCM_24"
        a, _ = sf.read(str(mine), dtype="float64")
        b, _ = sf.read(str(render), dtype="float64")
        assert a.shape == b.shape and np.abs(b).max() > 0.01
        assert np.abs(a - b).max() <= HALF_LSB_24 * 1.0001, mine.name


def test_stems_over_full_scale_are_lowered_together_not_clipped(tmp_path):
    rate, t = 48000, np.arange(4800) / 48000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    (tmp_path / "stems").mkdir()
    sf.write(str(tmp_path / "stems" / "01-loud.wav"), np.stack([tone * 2.0] * 2, 1), rate,
             subtype="FLOAT")
    sf.write(str(tmp_path / "stems" / "02-soft.wav"), np.stack([tone * 0.5] * 2, 1), rate,
             subtype="FLOAT")
    portfolio._zip_stems(tmp_path, "piece", "A Piece")
    with zipfile.ZipFile(tmp_path / "stems.zip") as z:
        z.extractall(tmp_path / "zip")
        note = z.read("piece-stems/README.txt").decode()
    loud, _ = sf.read(str(tmp_path / "zip" / "piece-stems" / "01-loud.wav"))
    soft, _ = sf.read(str(tmp_path / "zip" / "piece-stems" / "02-soft.wav"))
    ceiling = 10 ** (portfolio.STEMS_CEILING_DBFS / 20)
    assert np.abs(loud).max() == pytest.approx(ceiling, abs=1e-3)
    assert np.abs(soft).max() / np.abs(loud).max() == pytest.approx(0.25, abs=1e-4)  # balance kept
    assert "lowered by 7.0 dB" in note


# ---------------------------------------------------------------------------------------------
# killed part-way: the next run resumes, renders nothing twice, and publishes the same site

def _portfolio_process(scores: Path, site: Path) -> subprocess.Popen:
    """``score2audio portfolio`` one piece at a time, with Ctrl-C working even when the test
    runner ignores SIGINT."""
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "portfolio", str(scores),
                             "--out", str(site), "--jobs", "1"],
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_status(proc: subprocess.Popen, site: Path, status: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if any(r["status"] == status for r in _manifest(site).values()):
                return
        except (OSError, ValueError):
            pass  # not written yet (it is replaced whole, never seen half-written)
        assert proc.poll() is None, \
            f"the run ended before a piece was {status}: {proc.stderr.read()}"
        time.sleep(0.02)
    raise AssertionError(f"no piece was {status} in 300 s")


def _wait_for_workers(site: Path) -> None:
    """The pool's processes die with their parent: wait for those whose working folders are
    left (the pid is in the folder's name)."""
    deadline = time.monotonic() + 60
    for folder in [*site.glob(f"{PIECES}/.*.partial-*"), *site.glob(f"{CACHE}/.*.partial-*")]:
        pid = int(re.search(r"\.partial-(\d+)-", folder.name).group(1))
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _statuses(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^(\S+) {2,}(\w+) {2,}", stdout, flags=re.M))


def _cached_mixes(site: Path) -> dict[str, int]:
    """The inode of each rendered piece's cached mix, by slug (a piece rendered again gets a
    new one)."""
    return {p.parent.name: (p.parent / "mix.wav").stat().st_ino
            for p in (site / CACHE).glob("*/render.json")}


@pytest.mark.parametrize("signum, moment", [(signal.SIGKILL, "rendered"), (signal.SIGKILL, "done"),
                                            (signal.SIGINT, "rendered"), (signal.SIGTERM, "done")],
                         ids=["sigkill-rendering", "sigkill-mastering", "sigint-rendering",
                              "sigterm-mastering"])
def test_a_killed_run_resumes_where_it_stopped_and_renders_nothing_twice(cold, tmp_path, signum,
                                                                        moment):
    clean_scores, clean_site, _, _ = cold
    scores = Path(shutil.copytree(clean_scores, tmp_path / "scores"))
    site = tmp_path / "site"
    first = _portfolio_process(scores, site)
    _wait_for_status(first, site, moment)
    first.send_signal(signum)
    code = first.wait(timeout=300)
    stderr = first.stderr.read()
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        _wait_for_workers(site)
    else:  # unwound: no working folder is left
        assert code == (130 if signum == signal.SIGINT else 128 + signum), stderr
        assert "no files were left half-written" in stderr
        assert not list(site.rglob(".*.partial*"))
    # the page lists only what is published, all of it whole (a piece a worker published just
    # before the kill may not be listed yet: the next run lists it)
    page = (site / "index.html").read_text("utf-8") if (site / "index.html").exists() else ""
    listed = set(re.findall(r'<article class="card" id="([^"]+)">', page))
    published = {p.name for p in (site / PIECES).glob("*") if not p.name.startswith(".")}
    assert listed <= published
    for slug in published:
        assert (site / PIECES / slug / "report.json").is_file()
    rendered = _cached_mixes(site)
    assert rendered, "the kill came before any piece was rendered"
    if moment == "rendered":
        assert len(rendered) < 4, "the kill came after every piece was rendered"

    second = run_cli("portfolio", str(scores), "--out", str(site), "--jobs", "1")
    assert second.returncode == 2, second.stderr  # the broken score
    status = _statuses(second.stdout)
    slugs = {rel: r["slug"] for rel, r in _manifest(site).items()}
    for rel, slug in slugs.items():
        if rel == BROKEN:
            assert status[rel] == "failed"
        elif slug in rendered:  # rendered before the kill: only mastered now, if not published
            assert status[rel] in ("resumed", "unchanged"), (rel, status)
            assert _cached_mixes(site)[slug] == rendered[slug], f"{rel} was rendered again"
        else:
            assert status[rel] == "rendered", (rel, status)
    assert "resumed" in status.values()
    assert not list(site.rglob(".*.partial*"))
    # the same site as a run that was never stopped
    ours, clean = _manifest(site), _manifest(clean_site)
    assert {rel for rel, r in ours.items() if r["status"] == "done"} == \
        {rel for rel, r in clean.items() if r["status"] == "done"}
    for rel, record in clean.items():
        if record["status"] == "done":
            assert ours[rel]["entry"]["audio_sha256"] == record["entry"]["audio_sha256"], rel
            assert ours[rel]["album_targets"] == record["album_targets"], rel
            zips = [(s / PIECES / record["slug"] / "stems.zip").read_bytes()
                    for s in (site, clean_site)]
            assert zips[0] == zips[1], rel
    assert (site / "index.html").read_bytes() == (clean_site / "index.html").read_bytes()


# ---------------------------------------------------------------------------------------------
# the workers' log

def _load_score(path: Path) -> None:
    """A job for a pool process (top-level: it is sent by name)."""
    from pipeline.score.load import load

    load(path)


def test_music21s_warnings_in_a_worker_reach_the_log_not_the_terminal(tmp_path, caplog, capfd):
    # music21 warns of a bar overfull by an odd amount (a tenth of a quarter note here), and
    # of a drum its table lacks (a ride cymbal as the kit's first drum, MIDI 51): the first is
    # said in our words, the second not at all (the drum is played on the file's key)
    overfull = tmp_path / "overfull.musicxml"
    overfull.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<score-partwise version="3.1"><part-list>'
        '<score-part id="P1"><part-name>Flute</part-name></score-part></part-list>'
        '<part id="P1"><measure number="1"><attributes><divisions>10</divisions><time>'
        '<beats>4</beats><beat-type>4</beat-type></time></attributes>'
        '<note><pitch><step>A</step><octave>4</octave></pitch><duration>40</duration>'
        '<type>whole</type></note><note><pitch><step>B</step><octave>4</octave></pitch>'
        '<duration>1</duration><type>64th</type></note></measure><measure number="2"><note>'
        '<pitch><step>C</step><octave>5</octave></pitch><duration>40</duration>'
        '<type>whole</type></note></measure></part></score-partwise>\n', "utf-8")
    drums = tmp_path / "ride-first.musicxml"
    text = (DATA / "drum-kit.musicxml").read_text("utf-8")
    drums.write_text(text.replace("<midi-unpitched>37<", "<midi-unpitched>52<", 1), "utf-8")
    runner = portfolio._LocalRunner(1)
    try:
        with caplog.at_level(logging.WARNING):
            assert sorted(runner.run(_load_score, {"overfull": overfull, "drums": drums})) == \
                [("drums", None, None), ("overfull", None, None)]
    finally:
        runner.close()
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.score.load"] == \
        [f"{overfull}: bar 1 of part 'Flute' holds 4.1 quarter notes where its time signature "
         f"has 4; the next bar starts after 4"]
    err = capfd.readouterr().err
    assert "overfull" not in err and "does not map" not in err  # nothing past the logging


# ---------------------------------------------------------------------------------------------
# the page in a real browser

def _chromium() -> str:
    """Debian's chromium, installed here if missing (as make test-deps does)."""
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True)
        if shutil.which("chromium"):
            return shutil.which("chromium")
    reason = ("THE PAGE WAS NOT TESTED IN A BROWSER: chromium is missing and cannot be installed "
              "here (run 'make test-deps' or 'sudo apt-get install chromium')")
    warnings.warn(reason)
    pytest.skip(reason)


#: Loads index.html in a frame of the same origin and writes what every <audio> reports.
HARNESS = """<!doctype html><meta charset="utf-8"><body>
<iframe id="page" src="index.html" style="width:1000px;height:800px"></iframe>
<pre id="result">waiting</pre>
<script>
document.getElementById("page").onload = async () => {
  const doc = document.getElementById("page").contentDocument;
  const audios = [...doc.querySelectorAll("audio")];
  const durations = await Promise.all(audios.map(a => new Promise(done => {
    if (a.readyState >= 1) return done(a.duration);
    a.addEventListener("loadedmetadata", () => done(a.duration));
    setTimeout(() => done(null), 15000);
  })));
  document.getElementById("result").textContent = JSON.stringify(audios.map((a, i) => ({
    expected: Number(a.dataset.duration), reported: durations[i], src: a.currentSrc})));
};
</script>"""


class _Site(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/harness.html":
            body = HARNESS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


def test_the_page_in_a_browser_plays_every_piece_for_its_duration(cold, tmp_path):
    chromium = _chromium()
    _, site, _, _ = cold
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Site,
                                                                                  directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/harness.html"
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, "--virtual-time-budget=30000",
                              "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    finally:
        server.shutdown()
        server.server_close()
    text = dom[dom.index('<pre id="result">') + len('<pre id="result">'):dom.index("</pre>")]
    players = json.loads(text)
    assert len(players) == 4
    for p in players:
        assert p["src"].endswith(".mp3")  # the first source: every browser plays MP3
        assert p["reported"] == pytest.approx(p["expected"], abs=DURATION_TOLERANCE_S), p
    # opened from disk, on a desktop and a phone: the grouped list (a picture kept out of git)
    for name, size in (("portfolio-desktop.png", "1200,1400"), ("portfolio-phone.png", "390,1600")):
        shot = tmp_path / name
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--window-size={size}",
                        f"--screenshot={shot}", (site / "index.html").as_uri()],
                       capture_output=True, timeout=120)
        assert shot.stat().st_size > 10_000


def test_a_sidecar_copyright_that_is_not_text_is_one_line(tmp_path):
    from pipeline.errors import SidecarError
    from pipeline.settings.sidecar import load_sidecar

    path = tmp_path / "piece.toml"
    path.write_text("copyright = 2025\n", "utf-8")
    with pytest.raises(SidecarError, match=rf"^{path}: 'copyright' = 2025 is not allowed"):
        load_sidecar(path)
    path.write_text('copyright = "  © 2025 Someone  "\n', "utf-8")
    assert load_sidecar(path).copyright == "© 2025 Someone"


# ---------------------------------------------------------------------------------------------
# following the score: a page per piece, its engraving and its timemap

FOLLOW = "pickup-repeat-dc-rit.musicxml"
#: The written measures in the order they are played: a pickup, 1–2, |: 3–4 :| twice, 5 (Fine),
#: 6 (rit., fermata, D.C. al Fine), then from the start without the repeat to the Fine.
FOLLOW_ORDER = [0, 1, 2, 3, 4, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5]
#: The first pitch of each written measure (MIDI numbers): G4, C5, D5, F5, G5, A5, B5.
FOLLOW_PITCH = {0: 67, 1: 72, 2: 74, 3: 77, 4: 79, 5: 81, 6: 83}
ABOUT = ('composer = "A. Composer"\nbio = """Writes for flutes.\n\nLives by the sea."""\n'
         'contact = "a.composer@example.org"\nensemble_order = ["solo", "trio"]\n')


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """(scores folder, site folder) of a portfolio of one piece with a repeat and a D.C., and
    the composer's words."""
    base = tmp_path_factory.mktemp("followed")
    scores = base / "scores"
    scores.mkdir()
    shutil.copy(DATA / FOLLOW, scores / "round-trip.musicxml")
    (scores / "round-trip.toml").write_text('notes = "Out and back again."\n', "utf-8")
    (scores / "portfolio.toml").write_text(ABOUT, "utf-8")
    build_portfolio(scores, base / "site", workers=1)
    return scores, base / "site"


def _timemap(site: Path, slug: str) -> dict:
    return json.loads((site / PIECES / slug / "timemap.json").read_text("utf-8"))


def test_the_timemap_is_the_performance_heard_in_the_audio(followed):
    _, site = followed
    folder = site / PIECES / "round-trip"
    timemap = _timemap(site, "round-trip")
    bars = timemap["bars"]
    assert [b["measure"] for b in bars] == FOLLOW_ORDER
    assert [b["number"] for b in bars] == [str(m) for m in FOLLOW_ORDER]
    lead_in = json.loads((folder / "report.json").read_text("utf-8"))["stems"]["lead_in_s"]
    assert bars[0]["start_s"] == pytest.approx(lead_in, abs=1e-3) and lead_in > 0
    for a, b in zip(bars, bars[1:]):
        assert b["start_s"] == pytest.approx(a["end_s"], abs=1e-6)  # no gaps, no overlaps
    lengths = [b["end_s"] - b["start_s"] for b in bars]
    assert lengths[8] > 1.3 * lengths[7]  # bar 6's rit. and fermata
    # what sounds in the middle of each played bar's first note is that bar's pitch: the
    # timemap is where the master has the music (a 0.15 s window, 20 ms after the bar's start)
    audio, rate = sf.read(str(folder / "master-streaming.wav"), dtype="float64")
    mono = audio.mean(axis=1)
    for bar in bars:
        start = int((bar["start_s"] + 0.02) * rate)
        window = mono[start:start + int(0.15 * rate)] * np.hanning(int(0.15 * rate))
        spectrum = np.abs(np.fft.rfft(window, 1 << 16))
        peak_hz = np.argmax(spectrum) * rate / (1 << 16)
        heard = 69 + 12 * np.log2(peak_hz / 440)
        assert heard == pytest.approx(FOLLOW_PITCH[bar["measure"]], abs=0.5), bar


def test_the_piece_page_has_the_engraved_score_and_the_composers_words(followed):
    _, site = followed
    page = (site / PIECES / "round-trip" / "index.html").read_text("utf-8")
    index = (site / "index.html").read_text("utf-8")
    assert "<p>Out and back again.</p>" in page and ">Out and back again.</p>" in index
    assert '<p class="composer">A. Composer</p>' in index
    assert "<p>Writes for flutes.</p><p>Lives by the sea.</p>" in index
    assert '<a href="mailto:a.composer@example.org">' in index
    assert 'href="pieces/round-trip/index.html"' in index
    pages = re.findall(r'<img src="engraving/(page-\d+\.svg)" width="(\d+)" height="(\d+)" '
                       r'loading="(\w+)"', page)
    assert pages and pages[0][3] == "eager" and all(p[3] == "lazy" for p in pages[1:])
    for name, _, _, _ in pages:
        svg = (site / PIECES / "round-trip" / "engraving" / name).read_text("utf-8")
        assert svg.startswith("<svg") and "bounding-box" not in svg
    data = json.loads(re.search(r'<script type="application/json" id="timemap">(.*?)</script>',
                                page).group(1))
    assert [b[2] for b in data["bars"]] == FOLLOW_ORDER
    assert sorted(map(int, data["boxes"])) == list(range(7))  # every written measure placed
    # the boxes go left to right along the one system
    lefts = [data["boxes"][str(m)][1] for m in range(7)]
    assert lefts == sorted(lefts)
    embed = (site / PIECES / "round-trip" / "embed.html").read_text("utf-8")
    assert "<audio " in embed and 'href="../../assets/site.css"' in embed
    assert (site / "assets" / "site.js").is_file() and (site / "assets" / "site.css").is_file()
    for text in (page, index, embed):  # nothing fetched from elsewhere
        assert not re.search(r'(src|href)="(https?:)?//', text.replace(
            'href="https://www.verovio.org"', ""))


def test_a_piece_whose_sidecar_asks_offers_a_rehearsal_track_per_part(cold):
    _, site, _, _ = cold
    folder = site / PIECES / "duets-caesura-breath"
    page = (folder / "index.html").read_text("utf-8")
    report = json.loads((folder / "report.json").read_text("utf-8"))
    stems = [Path(p["stem"]).stem for p in report["parts"]]
    assert len(stems) >= 2
    for part, stem in zip(report["parts"], stems):
        track = folder / "rehearsal" / f"{stem}.mp3"
        assert track.stat().st_size > 1000
        assert f'href="rehearsal/{stem}.mp3"' in page and f">{part['part']}</a>" in page
    # the others were not asked for theirs, and the cache keeps no mix stems
    assert not (site / PIECES / "solo-single-a4" / "rehearsal").exists()
    assert "Rehearsal tracks" not in (site / PIECES / "solo-single-a4" / "index.html").read_text("utf-8")
    assert not list(site.glob(".cache/*/mix-stems"))


def test_a_midi_piece_has_no_engraving_and_its_page_says_so(cold):
    _, site, _, _ = cold
    page = (site / PIECES / "little-trio" / "index.html").read_text("utf-8")
    assert "written as a MIDI file" in page and "<img src=\"engraving/" not in page
    assert '<audio id="player"' in page
    # its bars are counted from its time signature (a MIDI file has no bar lines)
    timemap = _timemap(site, "little-trio")
    assert [b["number"] for b in timemap["bars"]] == [str(k + 1) for k in range(len(timemap["bars"]))]
    assert timemap["bars"][0]["start_s"] == pytest.approx(timemap["lead_in_s"])


def test_a_changed_programme_note_rewrites_the_pages_and_renders_nothing(cold, tmp_path):
    scores, site = _copy(cold, tmp_path)
    sidecar = scores / "duets" / "caesura-breath.toml"
    sidecar.write_text(sidecar.read_text("utf-8").replace("their pauses", "their rests"), "utf-8")
    before = _audio_files(site)
    page = site / PIECES / "duets-caesura-breath" / "index.html"
    other = site / PIECES / "solo-single-a4" / "index.html"
    other_mtime = other.stat().st_mtime_ns
    events = []
    result = build_portfolio(scores, site, workers=1, progress=events.append)
    assert set(_status(result).values()) == {"unchanged", "failed"}
    assert all(e.total == 0 for e in events)  # nothing rendered, nothing mastered
    assert _audio_files(site) == before
    assert "<p>Two players &amp; their rests.</p>" in page.read_text("utf-8")
    assert ">Two players &amp; their rests.</p>" in (site / "index.html").read_text("utf-8")
    assert other.stat().st_mtime_ns == other_mtime  # a page whose text is the same is left


def test_portfolio_toml_and_notes_mistakes_are_one_line(tmp_path):
    from pipeline.errors import SidecarError
    from pipeline.settings.sidecar import load_sidecar, read_portfolio_settings

    (tmp_path / "portfolio.toml").write_text('ensemble_order = ["solo", "kazoo band"]\n', "utf-8")
    with pytest.raises(SidecarError, match=r"^\S+portfolio.toml: 'ensemble_order' names "
                                           r"'kazoo band' \(allowed: .*solo"):
        read_portfolio_settings(tmp_path)
    (tmp_path / "portfolio.toml").write_text('composer = "X"\nwebsite = "y"\n', "utf-8")
    with pytest.raises(SidecarError, match=r"unknown key 'website' \(allowed: title, composer, "
                                           r"bio, contact, ensemble_order, rehearsal\)$"):
        read_portfolio_settings(tmp_path)
    (tmp_path / "portfolio.toml").write_text("bio = 3\n", "utf-8")
    with pytest.raises(SidecarError, match=r"'bio' = 3 is not allowed"):
        read_portfolio_settings(tmp_path)
    (tmp_path / "portfolio.toml").write_text('rehearsal = "yes"\n', "utf-8")
    with pytest.raises(SidecarError, match=r"'rehearsal' = 'yes' is not allowed \(true or false\)"):
        read_portfolio_settings(tmp_path)
    assert read_portfolio_settings(tmp_path / "nowhere").composer is None
    (tmp_path / "piece.toml").write_text("notes = ['a']\n", "utf-8")
    with pytest.raises(SidecarError, match=r"^\S+piece.toml: 'notes' = \['a'\] is not allowed "
                                           r"\(the programme note in quotes"):
        load_sidecar(tmp_path / "piece.toml")


def test_engraved_measures_are_matched_by_number_when_the_counts_differ():
    from pipeline.portfolio.engrave import EngravedMeasure, Engraving, measure_boxes

    engraving = Engraving(("page-001.svg",), ((100, 100),), tuple(
        EngravedMeasure(n, 1, (k / 10, 0.1, 0.1, 0.1)) for k, n in enumerate("01223")))
    same = measure_boxes(engraving, {0: "0", 1: "1", 2: "2", 3: "2", 4: "3"})
    assert [same[k] is engraving.measures[k] for k in range(5)] == [True] * 5
    # a measure the engraving lacks (written 3 of 6, "X1"): the others found in order
    fewer = measure_boxes(engraving, {0: "0", 1: "1", 2: "X1", 3: "2", 4: "2", 5: "3"})
    assert sorted(fewer) == [0, 1, 3, 4, 5]
    assert [engraving.measures.index(fewer[k]) for k in (3, 4, 5)] == [2, 3, 4]


class _Served(http.server.SimpleHTTPRequestHandler):
    """The site with byte ranges (a browser seeks in audio only where the server sends them,
    as every web host does), ``pages`` served from memory and results POSTed to ``results``."""

    pages: dict[str, str] = {}
    results: list = []

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in self.pages:
            body = self.pages[path].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        wanted = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        file = Path(self.translate_path(path))
        if not wanted or not file.is_file():
            return super().do_GET()
        size = file.stat().st_size
        first = int(wanted.group(1) or 0)
        last = min(int(wanted.group(2)) if wanted.group(2) else size - 1, size - 1)
        with open(file, "rb") as fh:
            fh.seek(first)
            body = fh.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(file)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.results.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _in_browser(site: Path, harness: str, *, timeout_s: float = 90) -> dict:
    """Open ``harness`` (served as /harness.html beside the site) in headless Chromium, in real
    time (media does not play in virtual time), until it POSTs its result."""
    chromium = _chromium()
    handler = type("Handler", (_Served,), {"pages": {"/harness.html": harness}, "results": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, "--window-size=1200,900",
                                "--autoplay-policy=no-user-gesture-required",
                                f"http://127.0.0.1:{server.server_address[1]}/harness.html"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while not handler.results and time.monotonic() < deadline and browser.poll() is None:
            time.sleep(0.1)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        server.shutdown()
        server.server_close()
    assert handler.results, "the page in the browser sent no result"
    result = handler.results[0]
    assert "error" not in result, result.get("error")
    return result


#: Loads a piece's page in a frame; at each time asked for, seeks and reads the highlighted bar;
#: clicks the middle of each engraved bar and reads where the audio went; plays for a moment.
FOLLOW_HARNESS = """<!doctype html><meta charset="utf-8"><body style="margin:0">
<iframe id="page" src="pieces/round-trip/index.html" style="width:1200px;height:800px;border:0">
</iframe><script>
const TIMES = %s;
const frameEl = document.getElementById("page");
const frames = (win) => new Promise(r => win.requestAnimationFrame(() => win.requestAnimationFrame(r)));
const event = (el, name, ms) => new Promise(r => { el.addEventListener(name, r, {once: true}); setTimeout(r, ms); });
const send = (data) => fetch("/result", {method: "POST", body: JSON.stringify(data)});
frameEl.onload = async () => { try {
  const win = frameEl.contentWindow, doc = frameEl.contentDocument;
  const audio = doc.getElementById("player");
  if (audio.readyState < 1) await event(audio, "loadedmetadata", 15000);
  const shown = () => {
    const mark = doc.querySelector(".bar-mark:not([hidden])");
    return mark ? Number(mark.dataset.measure) : null;
  };
  const seen = [];
  for (const t of TIMES) {
    const done = event(audio, "seeked", 5000);
    audio.currentTime = t;
    await done; await frames(win);
    seen.push({t, at: audio.currentTime, measure: shown()});
  }
  const map = JSON.parse(doc.getElementById("timemap").textContent);
  const clicks = [];
  for (const [measure, box] of Object.entries(map.boxes)) {
    const done = event(audio, "seeked", 5000);
    audio.currentTime = 0;
    await done;
    const page = doc.querySelectorAll(".page")[box[0] - 1];
    page.scrollIntoView();
    await frames(win);
    const r = page.getBoundingClientRect();
    const x = r.left + (box[1] + box[3] / 2) * r.width, y = r.top + (box[2] + box[4] / 2) * r.height;
    const seeked = event(audio, "seeked", 5000);
    doc.elementFromPoint(x, y).dispatchEvent(new win.MouseEvent("click",
      {clientX: x, clientY: y, bubbles: true}));
    await seeked;
    clicks.push({measure: Number(measure), time: audio.currentTime, shown: shown()});
  }
  const seekTo = event(audio, "seeked", 5000);
  audio.currentTime = %s;
  await seekTo;
  await audio.play();
  await new Promise(r => setTimeout(r, 1500));
  const playing = {time: audio.currentTime, measure: shown(), paused: audio.paused};
  audio.pause();
  send({seen, clicks, playing});
} catch (e) { send({error: String(e) + " " + e.stack}); } };
</script>"""


def test_the_score_follows_the_audio_in_a_browser(followed):
    _, site = followed
    bars = _timemap(site, "round-trip")["bars"]
    # each played bar at a quarter and at three quarters of its length: both passes of the
    # repeat (bars 3 and 4), and bars 0–5 again after the D.C.
    times = [b["start_s"] + f * (b["end_s"] - b["start_s"]) for b in bars for f in (0.25, 0.75)]
    expected = [b["measure"] for b in bars for _ in (0.25, 0.75)]
    start = bars[4]["start_s"] + 0.2  # bar 4, first pass: playing on goes back to bar 3
    result = _in_browser(site, FOLLOW_HARNESS % (json.dumps(times), start))
    for seen, measure in zip(result["seen"], expected):
        assert seen["at"] == pytest.approx(seen["t"], abs=0.01)
        assert seen["measure"] == measure, seen
    assert len(result["seen"]) == len(expected)
    first_start = {}
    for b in bars:
        first_start.setdefault(b["measure"], b["start_s"])
    assert sorted(c["measure"] for c in result["clicks"]) == sorted(first_start)
    for click in result["clicks"]:  # a click on bar N: the audio at its first start
        assert click["time"] == pytest.approx(first_start[click["measure"]], abs=0.01), click
        assert click["shown"] == click["measure"]
    playing = result["playing"]
    assert not playing["paused"] and playing["time"] > start + 0.5
    heard = max(b["measure"] for b in bars[:6] if b["start_s"] <= playing["time"])
    assert playing["measure"] == [b["measure"] for b in bars if b["start_s"] <= playing["time"]][-1]
    assert heard in (3, 4)


#: Loads the index in a frame and sums its layout shifts once everything has loaded.
SHIFT_HARNESS = """<!doctype html><meta charset="utf-8"><body style="margin:0">
<iframe id="page" src="index.html" style="width:%dpx;height:900px;border:0"></iframe><script>
const frameEl = document.getElementById("page");
frameEl.onload = () => {
  const win = frameEl.contentWindow;
  let total = 0, shifts = [];
  new win.PerformanceObserver(list => { for (const e of list.getEntries()) {
    total += e.value; shifts.push(e.value); } }).observe({type: "layout-shift", buffered: true});
  win.scrollTo(0, win.document.body.scrollHeight);  // the cards further down load too
  setTimeout(() => fetch("/result", {method: "POST", body: JSON.stringify({total, shifts,
    cards: win.document.querySelectorAll("article.card").length})}), 4000);
};
</script>"""


def test_thirty_pieces_load_without_layout_shift(cold, tmp_path):
    from pipeline.portfolio.site import write_site
    from pipeline.settings.sidecar import PortfolioSettings

    _, site, _, _ = cold
    ours = tmp_path / "site"
    records = [r for r in _manifest(site).values() if r["status"] == "done"]
    pieces = []
    for i in range(30):
        record = records[i % len(records)]
        slug = f"{record['slug']}-{i}"
        shutil.copytree(site / PIECES / record["slug"], ours / PIECES / slug)
        pieces.append((slug, {**record["entry"], "title": f"{record['entry']['title']} {i}"}))
    about = PortfolioSettings(title="Thirty", composer="A. Composer", bio="Words.")
    write_site(ours, pieces, pieces_folder=PIECES, about=about,
               notes={slug: "A note. " * (i % 7) for i, (slug, _) in enumerate(pieces)})
    for width in (1200, 390):
        result = _in_browser(ours, SHIFT_HARNESS % width)
        assert result["cards"] == 30
        assert result["total"] < 0.01, result  # "good" is below 0.1
