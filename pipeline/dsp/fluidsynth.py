"""A thin ctypes layer over libfluidsynth (found through pyfluidsynth). Below the stages: the
render plays its synths and the assign stage probes the soundfonts' presets with one.

pyfluidsynth only wraps 16-bit interleaved output; the render stage needs
``fluid_synth_process`` with one float stereo pair per MIDI channel, so the few C functions the
pipeline uses are declared here on the same library.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import io
import logging
import threading
from pathlib import Path

import numpy as np

from pipeline.errors import RenderError, SoundfontError

log = logging.getLogger(__name__)

FLUID_FAILED = -1
CHANNEL_TYPE_MELODIC = 0
CHANNEL_TYPE_DRUM = 1
#: FluidSynth renders in blocks of this many frames; events take effect on a block boundary.
FLUID_BLOCK_FRAMES = 64
DRUM_BANK = 128
INSTALL_HINT = ("install FluidSynth: 'sudo apt-get install libfluidsynth3' (Debian/Ubuntu), "
                "'brew install fluid-synth' (macOS), 'sudo dnf install fluidsynth-libs' (Fedora)")

#: one lock per preset: FluidSynth shares decoded samples between the synths of a process
#: (its sample cache), but two synths selecting a compressed preset at once both decode it
#: (0.8 s of CPU for MuseScore General's pizzicato strings); the second now waits and finds it
_PRESET_LOCKS: collections.defaultdict = collections.defaultdict(threading.Lock)
_PRESET_LOCKS_GUARD = threading.Lock()

_LOG_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@_LOG_FUNC
def _fluid_log(level: int, message: bytes, _data) -> None:
    # FluidSynth's own messages go to logging, never straight to the terminal
    text = message.decode("utf-8", "replace") if message else ""
    log.log(logging.WARNING if level <= 1 else logging.DEBUG, "fluidsynth: %s", text)


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The FluidSynth C library with the prototypes the pipeline uses."""
    # pyfluidsynth prints where it found the library when the environment has CI set (1.4):
    # its words go to the debug log, never to the composer's console
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            import fluidsynth  # pyfluidsynth: finds the library on every platform
    except (ImportError, OSError) as exc:
        raise RenderError(f"the FluidSynth library was not found; {INSTALL_HINT}") from exc
    if said := printed.getvalue().strip():
        log.debug("pyfluidsynth: %s", said)
    # the path pyfluidsynth found, its module attribute ``lib`` in 1.3.3–1.4
    # (pyproject.toml: pyfluidsynth>=1.3.3,<2)
    lib = ctypes.CDLL(fluidsynth.lib)
    vp, ip, cp, dp, fpp = (ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_double,
                           ctypes.c_void_p)
    protos = {
        "new_fluid_settings": (vp, []),
        "delete_fluid_settings": (None, [vp]),
        "fluid_settings_setint": (ip, [vp, cp, ip]),
        "fluid_settings_setnum": (ip, [vp, cp, dp]),
        "new_fluid_synth": (vp, [vp]),
        "delete_fluid_synth": (None, [vp]),
        "fluid_synth_sfload": (ip, [vp, cp, ip]),
        "fluid_synth_get_sfont_by_id": (vp, [vp, ip]),
        "fluid_sfont_get_preset": (vp, [vp, ip, ip]),
        "fluid_preset_get_name": (cp, [vp]),
        "fluid_synth_program_select": (ip, [vp, ip, ip, ip, ip]),
        "fluid_synth_set_channel_type": (ip, [vp, ip, ip]),
        "fluid_synth_noteon": (ip, [vp, ip, ip, ip]),
        "fluid_synth_noteoff": (ip, [vp, ip, ip]),
        "fluid_synth_cc": (ip, [vp, ip, ip, ip]),
        "fluid_synth_pitch_bend": (ip, [vp, ip, ip]),
        "fluid_synth_get_active_voice_count": (ip, [vp]),
        "fluid_synth_process": (ip, [vp, ip, ip, fpp, ip, fpp]),
        "fluid_set_log_function": (vp, [ip, _LOG_FUNC, vp]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    for level in range(5):  # PANIC, ERR, WARN, INFO, DBG
        lib.fluid_set_log_function(level, _fluid_log, None)
    return lib


class Synth:
    """One FluidSynth instance rendering ``channels`` MIDI channels to separate stereo pairs.

    Reverb and chorus are off: stems are dry.
    """

    def __init__(self, *, sample_rate: int, channels: int = 16, polyphony: int = 1024):
        self.lib = library()
        self.channels = channels
        self.sample_rate = sample_rate
        self.settings = self.lib.new_fluid_settings()
        midi_channels = max(16, -(-channels // 16) * 16)
        self.midi_channels = midi_channels
        for key, value in (("synth.audio-groups", channels), ("synth.audio-channels", channels),
                           ("synth.midi-channels", midi_channels), ("synth.polyphony", polyphony),
                           ("synth.reverb.active", 0), ("synth.chorus.active", 0),
                           ("synth.dynamic-sample-loading", 1), ("synth.cpu-cores", 1)):
            self.lib.fluid_settings_setint(self.settings, key.encode(), value)
        self.lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(sample_rate))
        self.lib.fluid_settings_setnum(self.settings, b"synth.gain", 0.2)
        self.synth = self.lib.new_fluid_synth(self.settings)
        if not self.synth:
            raise RenderError("FluidSynth could not create a synthesizer")
        self.soundfonts: dict[Path, int] = {}
        self.buffer: np.ndarray | None = None

    def close(self) -> None:
        if self.synth:
            self.lib.delete_fluid_synth(self.synth)
            self.lib.delete_fluid_settings(self.settings)
            self.synth = None

    def __enter__(self) -> "Synth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load_soundfont(self, path: Path) -> int:
        if path not in self.soundfonts:
            sfid = self.lib.fluid_synth_sfload(self.synth, str(path).encode(), 0)
            if sfid == FLUID_FAILED:
                raise SoundfontError(f"{path}: FluidSynth could not load this soundfont")
            self.soundfonts[path] = sfid
        return self.soundfonts[path]

    def preset_name(self, path: Path, bank: int, program: int) -> str | None:
        """The preset's name, or ``None`` when the soundfont lacks it."""
        sfont = self.lib.fluid_synth_get_sfont_by_id(self.synth, self.load_soundfont(path))
        preset = self.lib.fluid_sfont_get_preset(sfont, bank, program) if sfont else None
        if not preset:
            return None
        name = self.lib.fluid_preset_get_name(preset)
        return name.decode("utf-8", "replace").strip() if name else ""

    def select(self, channel: int, path: Path, bank: int, program: int, *, drum: bool) -> None:
        self.lib.fluid_synth_set_channel_type(self.synth, channel,
                                              CHANNEL_TYPE_DRUM if drum else CHANNEL_TYPE_MELODIC)
        sfid = self.load_soundfont(path)
        with _PRESET_LOCKS_GUARD:
            lock = _PRESET_LOCKS[(path, bank, program)]
        with lock:
            failed = self.lib.fluid_synth_program_select(self.synth, channel, sfid, bank,
                                                         program) == FLUID_FAILED
        if failed:
            raise SoundfontError(f"{path}: has no preset bank {bank} program {program}")

    def noteon(self, channel: int, pitch: int, velocity: int) -> None:
        self.lib.fluid_synth_noteon(self.synth, channel, pitch, velocity)

    def noteoff(self, channel: int, pitch: int) -> None:
        self.lib.fluid_synth_noteoff(self.synth, channel, pitch)

    def cc(self, channel: int, number: int, value: int) -> None:
        self.lib.fluid_synth_cc(self.synth, channel, number, value)

    def pitch_bend(self, channel: int, value: int) -> None:
        self.lib.fluid_synth_pitch_bend(self.synth, channel, value + 8192)

    def active_voices(self) -> int:
        return self.lib.fluid_synth_get_active_voice_count(self.synth)

    def silence(self, scratch: np.ndarray, max_s: float = 1.0) -> None:
        """Stop every voice of every channel and run until none is left (at most ``max_s``),
        rendering into ``scratch`` (as :meth:`process_into`'s ``out``): "all sound off" still
        lets a voice fade for a few blocks, which would sound under the next note played."""
        for channel in range(self.channels):
            self.cc(channel, 120, 0)
        step = min(scratch.shape[1], 1024)
        for _ in range(int(max_s * self.sample_rate) // step):
            if self.active_voices() == 0:
                return
            self.process_into(scratch, 0, step)

    def process_into(self, out: np.ndarray, start: int, frames: int) -> None:
        """Add ``frames`` frames of every channel into ``out[:, start:start+frames]``.

        ``out`` is float32, C-contiguous, shaped ``(2 * channels, n)``; row ``2c`` and ``2c+1``
        receive MIDI channel ``c``'s left and right.
        """
        if frames <= 0:
            return
        if out is not self.buffer:
            self.buffer = out
            self._base = (np.arange(out.shape[0], dtype=np.uint64) * np.uint64(out.strides[0])
                          + np.uint64(out.ctypes.data))
        ptrs = self._base + np.uint64(start * out.strides[1])
        err = self.lib.fluid_synth_process(self.synth, frames, 0, None, out.shape[0],
                                           ptrs.ctypes.data)
        if err != 0:
            raise RenderError("FluidSynth failed while rendering")
