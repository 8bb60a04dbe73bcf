"""What the orchestrator checks before and around the slow work: the options, the piece's
settings against its template, the performance's length, the disk, and what a failed write
means in one line."""
from __future__ import annotations

import errno
import logging
import shutil
from dataclasses import replace
from pathlib import Path

from pipeline.errors import (OutputError, PipelineError, PresetError, ScoreError,
                             SidecarError, TemplateError)
from pipeline.model import Performance
from pipeline.score.humanize import DEFAULT_SEED
from pipeline.score.humanize import check as check_humanize
from pipeline.settings.config import Preset, Template, load_preset, load_template
from pipeline.settings.sidecar import PieceSettings

log = logging.getLogger(__name__)

#: A write that failed with this little space left failed because the disk is full.
NEARLY_FULL_BYTES = 64 << 20


def checked_seed(humanize: float, seed: int | None) -> int:
    """The seed to humanize with, after checking both options (one-line errors)."""
    seed = DEFAULT_SEED if seed is None else seed
    check_humanize(humanize, seed)
    return seed


def check_options(ensemble: str | None, presets, swing: float | None) -> list[Preset]:
    """Check every option before the slow work, so a typo fails at once; the presets."""
    if swing is not None and not 0.0 <= swing <= 4.0:
        raise PipelineError(f"--swing {swing:g}: give a ratio from 1 (straight) to 4, e.g. 2 for "
                            f"a triplet feel")
    if ensemble:
        load_template(ensemble)
    preset_objs = [load_preset(p) for p in presets]
    if not preset_objs:
        raise PresetError("no preset given (see 'score2audio presets')")
    return preset_objs


def check_duration(performance: Performance, max_duration_s: float) -> None:
    """Refuse a performance longer than ``max_duration_s`` seconds."""
    if performance.duration_s > max_duration_s:
        raise ScoreError(f"{performance.source}: the performance lasts "
                         f"{_clock(performance.duration_s)}, longer than the limit of "
                         f"{_clock(max_duration_s)} (a stray note or a broken tempo?); allow it "
                         f"with --max-duration SECONDS")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def check_space(out_root: Path, performance: Performance, sample_rate: int, *,
                mix_stems: bool) -> None:
    """Refuse at once when the stems and the mix will not fit, rather than an hour into the
    render: the dry stems, (``mix_stems``) the mix stems and the mix's working file (the mix
    and master work in it) are float32 stereo (8 bytes a frame)."""
    frames = (performance.duration_s + 2.0) * sample_rate  # + release tails
    needed = int((len(performance.tracks) * (2 if mix_stems else 1) + 1) * frames * 8)
    free = shutil.disk_usage(out_root).free
    if needed > free:
        raise OutputError(f"{out_root}: not enough free space (the stems and the mix need "
                          f"about {needed / 2**20:.0f} MB, {free / 2**20:.0f} MB are free)")


def write_failure(out_root: Path, exc: BaseException) -> OutputError | None:
    """One clear line for a write to the output folder that failed part-way (None: ``exc``
    is no such failure). libsndfile reports a full disk only as 'System error', so the cause
    is looked up: a disk with less than :data:`NEARLY_FULL_BYTES` left (measured before the
    partial files are removed; a file that failed may already be), or a file-size limit."""
    if not _is_write_failure(exc):
        return None
    import resource

    free = shutil.disk_usage(out_root).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    errno_ = getattr(exc, "errno", None)
    if errno_ in (errno.ENOSPC, errno.EDQUOT) or free < NEARLY_FULL_BYTES:
        why = f"the disk is full ({free / 2**20:.1f} MB free)"
    elif errno_ == errno.EFBIG or limit != resource.RLIM_INFINITY:
        why = f"a file reached the size limit of {limit / 2**20:.1f} MB (ulimit -f)"
    else:
        why = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"{out_root}: the render could not be written: {why}; no partial files "
                       f"were left")


def _is_write_failure(exc: BaseException | None) -> bool:
    import soundfile

    if isinstance(exc, soundfile.LibsndfileError):
        return True
    if isinstance(exc, OutputError):  # atomic_path's, which names a file in the hidden folder
        return _is_write_failure(exc.__cause__)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
                                                      errno.EROFS, errno.EIO)


def part_settings(settings: PieceSettings, performance: Performance) -> tuple | None:
    """Each track's sidecar settings, or None when the piece has no sidecar."""
    if settings.sidecar is None:
        return None
    return settings.sidecar.for_tracks([t.name for t in performance.tracks])


def seat_layout(template: Template, settings: PieceSettings) -> PieceSettings:
    """The settings with a layout ``template`` has: an unknown one is a one-line error naming
    where it was asked for, except a sidecar's layout for the sidecar's ensemble when the
    command line chose another ensemble (it is dropped, with a warning)."""
    if not settings.layout or settings.layout in template.layout_names:
        return settings
    origin = settings.origin
    choices = f"choose one of: {', '.join(template.layout_names)}"
    if origin["layout"] == "sidecar" and origin["ensemble"] == "option" and \
            settings.sidecar.ensemble not in (None, template.name):
        log.warning("%s: layout '%s' is for %s; %s has no such layout, so it is seated as "
                    "standard (%s)", settings.sidecar.path, settings.layout,
                    settings.sidecar.ensemble, template.name, choices)
        return replace(settings, layout=None, origin={**origin, "layout": "default"})
    if origin["layout"] == "sidecar":
        raise SidecarError(f"{settings.sidecar.path}: 'layout' = '{settings.layout}': the "
                           f"{template.name} template has no such layout ({choices})")
    raise TemplateError(f"--layout {settings.layout}: the {template.name} template has no such "
                        f"layout ({choices})")


def origin(settings: PieceSettings, key: str) -> str:
    """Where a setting came from: option, sidecar, or (ensemble) detected / (others) default."""
    found = settings.origin.get(key, "default")
    return "detected" if key == "ensemble" and found == "default" else found
