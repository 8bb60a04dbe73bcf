"""The public API (pipeline.run): the two halves a portfolio uses, the record it keeps between
them, and what a library caller is left with afterwards."""
from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np

from conftest import DATA, read
from pipeline.output.export import read_mix
from pipeline.output.piece_report import as_json
from pipeline.run import (master_mix, read_album_entries, read_record, render_score,
                          render_to_mix, write_album_entries, write_record)
from pipeline.run.recipe import MixedPiece, album_entries
from pipeline.settings.config import load_preset
from pipeline.settings.sidecar import choose
from pipeline.settings.soundfonts import find_soundfont
from pipeline.output.export import PieceFolder

SCORE = DATA / "two-players-together.musicxml"


def _mixed(out_root):
    settings = choose(None)
    return render_to_mix(SCORE, out_root=out_root, settings=settings,
                         soundfont=find_soundfont(None), sample_rate=48000)


def test_a_mastered_record_read_back_sounds_as_the_piece_it_was_kept_from(tmp_path):
    """The portfolio's cache: a piece rendered to its mix, its record written as JSON and read
    back with mix.wav, masters to the very master the piece itself gives from mix.wav (as an
    album's second pass masters it), and reports the same."""
    piece = _mixed(tmp_path / "cache")
    piece.wait_written()
    write_record(tmp_path / "piece.json", piece.record)
    record = read_record(tmp_path / "piece.json")
    assert record == piece.record  # nothing lost on the way through JSON
    mix_audio = read_mix(piece.folder.work)  # (the last master uses its mix up)
    kept = MixedPiece(record, record.mix(mix_audio.copy()),
                      PieceFolder(tmp_path / "kept", "piece"))
    result = master_mix(kept, [load_preset("streaming")])
    piece.mix = replace(piece.mix, audio=mix_audio)
    straight = master_mix(piece, [load_preset("streaming")])
    a, _ = read(straight.folder / "master.wav")
    b, _ = read(result.folder / "master.wav")
    assert np.array_equal(a, b)
    one, two = as_json(straight.report), as_json(result.report)
    for r in (one, two):
        r.pop("timings_s")
    assert one == two
    assert json.loads((result.folder / "report.json").read_text("utf-8"))["masters"][0][
        "integrated_lufs"] == result.report.masters[0].integrated_lufs


def test_an_albums_measurements_survive_the_cache(tmp_path):
    piece = _mixed(tmp_path)
    presets = [load_preset("streaming"), load_preset("cd")]
    entries = album_entries(piece, presets)
    write_album_entries(tmp_path / "album.json", entries)
    again = read_album_entries(tmp_path / "album.json")
    assert again.keys() == entries.keys()
    for name, (piece_name, prep, relative) in entries.items():
        name2, prep2, relative2 = again[name]
        assert (name2, relative2) == (piece_name, relative)
        assert prep2.preset == prep.preset and prep2.lufs == prep.lufs
        assert prep2.steps.dtype == prep.steps.dtype and np.array_equal(prep2.steps, prep.steps)
    piece.folder.discard()


def test_a_library_call_leaves_no_threads_or_helpers_behind(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    render_score(SCORE, out_root=tmp_path)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == []


def test_the_page_and_the_json_time_every_stage(tmp_path):
    result = render_score(SCORE, out_root=tmp_path)
    page = (result.folder / "report.html").read_text("utf-8")
    stages = json.loads((result.folder / "report.json").read_text("utf-8"))["timings_s"]
    for stage in ("load", "render", "mix", "master"):
        assert f"{stage} " in page.split("Time per stage:")[1] and stage in stages
    assert "report" in stages  # the page is written within the report stage it cannot time
