"""The public API: what the command line, the portfolio and a program that imports score2audio
call. Each function runs the stages in order (see :mod:`pipeline.run.recipe`).

- :func:`render_score` — a score to ``out/<name>/``: stems, performance.mid, mix, masters, report;
- :func:`render_album` — several scores mastered as one programme;
- :func:`render_to_mix` and :func:`master_mix` — the two halves, for callers that keep the mix
  between them (the portfolio, via :class:`PieceRecord`, :func:`write_record`, :func:`read_record`);
- :func:`perform_to_midi` — the performance alone, as MIDI;
- :func:`master_file` — a mix brought as a file (from a DAW) mastered for presets, with report;
- :func:`meter_file` — an audio file's integrated loudness, loudness range and true peak;
- :func:`rehearsal_tracks` — a piece mixed with its mix stems, a rehearsal track per part.

Pass an :class:`~pipeline.speed.accelerator.Accelerator` to share its background threads and
helper process between calls; without one each call makes its own.
"""
from pipeline.run.piece_record import (PieceRecord, read_album_entries, read_record,
                                       write_album_entries, write_record)
from pipeline.run.recipe import (MixedPiece, MixFileResult, RenderResult, album_entries, album_plan,
                                 master_file, master_mix, meter_file, perform_to_midi,
                                 rehearsal_tracks, render_album, render_score, render_to_mix)

__all__ = ["MixFileResult", "MixedPiece", "PieceRecord", "RenderResult", "album_entries",
           "album_plan", "master_file", "master_mix", "meter_file", "perform_to_midi",
           "read_album_entries", "read_record", "rehearsal_tracks", "render_album", "render_score",
           "render_to_mix",
           "write_album_entries", "write_record"]
