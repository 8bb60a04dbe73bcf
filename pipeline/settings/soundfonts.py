"""Finding soundfonts: ``--soundfont``, ``$SOUNDFONT``, the project's ``soundfonts/`` folder,
then the system's folders. MuseScore General (SF3) first, FluidR3 GM as the fallback."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.errors import SoundfontError

log = logging.getLogger(__name__)

PREFERRED = ("MuseScore_General.sf3", "MuseScore_General.sf2", "FluidR3_GM.sf2", "FluidR3_GM.sf3",
             "default-GM.sf2", "default-GM.sf3", "GeneralUser GS.sf2")
SYSTEM_FOLDERS = (
    "/usr/share/sounds/sf3", "/usr/share/sounds/sf2", "/usr/share/soundfonts",
    "/usr/local/share/soundfonts", "/opt/homebrew/share/soundfonts",
    "/usr/local/share/fluidsynth", "/opt/homebrew/share/fluidsynth",
    "~/Library/Audio/Sounds/Banks", "~/.local/share/soundfonts",
)
PROJECT_FOLDER = Path(__file__).resolve().parents[2] / "soundfonts"
INSTALL_HINT = ("install one with 'sudo apt-get install musescore-general-soundfont fluid-soundfont-gm' "
                "(Debian/Ubuntu), or pass --soundfont PATH / set SOUNDFONT")


def check_soundfont(path: Path, origin: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise SoundfontError(f"{path}: soundfont not found (from {origin})")
    if path.is_dir():
        raise SoundfontError(f"{path}: is a folder, not a soundfont (from {origin})")
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise SoundfontError(f"{path}: not a SoundFont file (.sf2 or .sf3) (from {origin})")
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
        size = path.stat().st_size
    except OSError as exc:
        raise SoundfontError(f"{path}: soundfont cannot be read ({exc.strerror})") from exc
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundfontError(f"{path}: not a valid SoundFont file (no RIFF sfbk header)")
    declared = int.from_bytes(head[4:8], "little") + 8
    if size < declared:  # FluidSynth would print its own errors and fail; say it in one line
        raise SoundfontError(f"{path}: the soundfont is truncated ({size} of {declared} bytes); "
                             f"copy or download it again")
    return path.resolve()


def candidates() -> list[Path]:
    """Soundfonts found in the project folder and the system folders, best first."""
    found: list[Path] = []
    folders = [PROJECT_FOLDER] + [Path(f).expanduser() for f in SYSTEM_FOLDERS]
    for folder in folders:
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".sf2", ".sf3") and p.exists())
        rank = {name.lower(): i for i, name in enumerate(PREFERRED)}
        files.sort(key=lambda p: rank.get(p.name.lower(), len(rank)))
        found.extend(p.resolve() for p in files)
    unique: list[Path] = []
    for p in found:
        if p not in unique:
            unique.append(p)
    return unique


def find_soundfont(explicit: str | Path | None = None) -> Path:
    """The soundfont to use: an explicit path, ``$SOUNDFONT``, else the best one installed."""
    if explicit:
        return check_soundfont(Path(explicit), "--soundfont")
    env = os.environ.get("SOUNDFONT")
    if env:
        return check_soundfont(Path(env), "$SOUNDFONT")
    for path in candidates():
        try:
            return check_soundfont(path, "search")
        except SoundfontError as exc:
            log.warning("skipping a broken soundfont: %s", exc)
    raise SoundfontError(f"no soundfont found; {INSTALL_HINT}")


def fallback_soundfont(primary: Path) -> Path | None:
    """A General MIDI soundfont other than ``primary``, for programs it lacks."""
    for path in candidates():
        if path != primary:
            try:
                return check_soundfont(path, "search")
            except SoundfontError:
                continue
    return None
