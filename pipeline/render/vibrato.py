"""Vibrato on long notes, where a voice's samples are straight and the style wants it.

Some samples carry their own vibrato (on MuseScore General a violin's, a flute's, a choir's),
others are recorded straight (a trumpet, a clarinet, a solo "oohs" voice). Which styles add one,
how deep, how fast and how soon is a data table (``data/vibrato.toml``): a sax player's, a
singer's, a jazz trumpeter's; never a piano's, a harp's, plucked strings' or percussion's. A
preset's own vibrato is measured once (a sustained note's pitch, tracked every 10 ms, at the
part's middle register; kept beside the other voice measurements): a preset that already swings
``carried_cents`` either side keeps its own.

The vibrato is the channel's pitch wheel (FluidSynth's default range, ±2 semitones), swinging
``depth_cents`` either side at ``rate_hz``, from ``onset_ms`` after the note is heard, growing
to its depth over ``grow_ms``; back to the centre as the note ends. A part that bends its own
pitch (a MIDI file's pitch wheel) is left alone.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pipeline.dsp.fluidsynth import Synth
from pipeline.files import read_cache, write_cache
from pipeline.errors import PipelineError
from pipeline.model import Performance, VibratoApplied, Voice
from pipeline.render import voice_cache
from pipeline.render.attack import Timing
from pipeline.render.preset_holder import PresetHolder
from pipeline.settings.instruments import FAMILIES
from pipeline.settings.validation import number, package_toml

WHERE = "data/vibrato.toml"
CACHE_VERSION = 1
STEP_S = 0.01            # the pitch wheel is moved this often
BEND_PER_CENT = 8192 / 200.0  # FluidSynth's wheel spans ±2 semitones by default
MEASURE_S = 2.0          # the sustained note whose pitch is tracked …
SETTLE_S = 0.3           # … after its attack
FRAME_S = 0.04           # pitch-tracking window


@dataclass(frozen=True)
class Style:
    name: str
    families: tuple[str, ...]
    instruments: tuple[str, ...]   # empty: every instrument of the families
    ensembles: tuple[str, ...]     # empty: in every ensemble
    depth_cents: float
    rate_hz: float
    onset_ms: float
    grow_ms: float
    min_note_s: float

    def wanted(self, voice: Voice, ensemble: str) -> bool:
        return (voice.family in self.families
                and (not self.instruments or voice.instrument in self.instruments)
                and (not self.ensembles or ensemble in self.ensembles))


@dataclass(frozen=True)
class Table:
    carried_cents: float
    styles: tuple[Style, ...]


@dataclass(frozen=True)
class PartVibrato:
    """A part's pitch-wheel moves (stem seconds, wheel value −8192…8191) and what was decided:
    ``style`` added, or the preset's own ``carried_cents``."""

    times_s: np.ndarray
    values: np.ndarray
    style: Style | None = None
    carried_cents: float | None = None

    def summary(self) -> VibratoApplied | None:
        s = self.style
        if s is not None:
            return VibratoApplied(added=s.name, depth_cents=s.depth_cents, rate_hz=s.rate_hz)
        if self.carried_cents is not None:
            return VibratoApplied(own_cents=round(self.carried_cents, 1))
        return None


@functools.lru_cache(maxsize=1)
def load_table() -> Table:
    """Read and check ``data/vibrato.toml``."""
    data = package_toml(WHERE)
    styles = []
    for name, t in data.get("styles", {}).items():
        where = f"{WHERE} [styles.{name}]"
        families = tuple(t.get("families", ()))
        if not families or any(f not in FAMILIES for f in families):
            raise PipelineError(f"{where}: 'families' must list families (of: {', '.join(FAMILIES)})")
        styles.append(Style(
            name, families, tuple(t.get("instruments", ())), tuple(t.get("ensembles", ())),
            depth_cents=number(t, "depth_cents", where, PipelineError, 1.0, 50.0),
            rate_hz=number(t, "rate_hz", where, PipelineError, 3.0, 8.0),
            onset_ms=number(t, "onset_ms", where, PipelineError, 0.0, 2000.0),
            grow_ms=number(t, "grow_ms", where, PipelineError, 0.0, 3000.0),
            min_note_s=number(t, "min_note_s", where, PipelineError, 0.1, 10.0)))
    return Table(number(data, "carried_cents", WHERE, PipelineError, 0.0, 100.0), tuple(styles))


def plan(performance: Performance, voices: tuple[Voice, ...], timing: Timing, *,
         ensemble: str, sample_rate: int) -> tuple[PartVibrato, ...]:
    """Each part's vibrato (see the module): none, its preset's own, or one the table adds."""
    table = load_table()
    out = []
    candidates = {}
    for i, (track, voice) in enumerate(zip(performance.tracks, voices)):
        style = next((s for s in table.styles if s.wanted(voice, ensemble)), None)
        bends_own = any(c.kind == "pitchwheel" for c in track.controls)
        if style is not None and track.notes and not bends_own and voice.preset_name:
            candidates[i] = style
    own = _own_vibrato({i: (voices[i], _register(performance.tracks[i].notes))
                        for i in candidates}, sample_rate)
    for i, (track, part) in enumerate(zip(performance.tracks, timing.parts)):
        style = candidates.get(i)
        if style is None:
            out.append(PartVibrato(np.zeros(0), np.zeros(0, dtype=np.int64)))
        elif own[i] >= table.carried_cents:
            out.append(PartVibrato(np.zeros(0), np.zeros(0, dtype=np.int64),
                                   carried_cents=own[i]))
        else:
            heard = part.on_s + part.shift_s  # written starts, in the stem's time
            times, values = wheel(heard, part.off_s, style)
            out.append(PartVibrato(times, values, style=style, carried_cents=own[i]))
    return tuple(out)


def wheel(heard_s: np.ndarray, end_s: np.ndarray, style: Style) -> tuple[np.ndarray, np.ndarray]:
    """The pitch-wheel moves for notes heard from ``heard_s`` and ending at ``end_s``: a sine
    of ``style``'s rate, from its onset, growing to its depth, on every note long enough; the
    wheel back at the centre as each ends (a later note's vibrato takes over from an earlier
    one's that it overlaps)."""
    times, values = [], []
    onset, grow = style.onset_ms / 1000.0, max(style.grow_ms / 1000.0, 1e-9)
    order = np.argsort(heard_s, kind="stable")
    for k, i in enumerate(order):
        start, end = heard_s[i] + onset, end_s[i]
        if end - heard_s[i] < style.min_note_s or end - start < 2 * STEP_S:
            continue
        if k + 1 < len(order):  # its vibrato stops where the next note's sound starts
            end = min(end, heard_s[order[k + 1]])
        t = np.arange(start, end, STEP_S)
        if t.size == 0:
            continue
        depth = style.depth_cents * np.clip((t - start) / grow, 0.0, 1.0)
        cents = depth * np.sin(2 * np.pi * style.rate_hz * (t - start))
        times.extend([*t, end])
        values.extend([*np.rint(cents * BEND_PER_CENT).astype(np.int64), 0])
    return np.asarray(times, dtype=np.float64), np.clip(np.asarray(values, dtype=np.int64),
                                                        -8192, 8191)


def _register(notes) -> int:
    return int(round(float(np.median([n.pitch for n in notes]))))


def _own_vibrato(wanted: dict[int, tuple[Voice, int]], sample_rate: int) -> dict[int, float]:
    """How far (cents, either side) each voice's own pitch swings on a sustained note at its
    part's register; measured once and cached."""
    path = voice_cache.cache_file("vibrato.json")
    cache = read_cache(path)
    keys = {i: f"v{CACHE_VERSION}|{voice_cache.voice_key(v)}|{pitch}|{sample_rate}"
            for i, (v, pitch) in wanted.items()}
    missing = {k: wanted[i] for i, k in keys.items() if k not in cache}
    if missing:
        frames = int(MEASURE_S * sample_rate)
        out = np.zeros((2, frames), dtype=np.float32)
        with PresetHolder(sample_rate) as holder, Synth(sample_rate=sample_rate,
                                                         channels=1) as synth:
            holder.hold([(v, v.program) for v, _ in missing.values()])
            for key, (voice, pitch) in missing.items():
                synth.select(0, voice.soundfont, voice.bank, voice.program,
                             drum=voice.is_percussion)
                out[:] = 0.0
                synth.noteon(0, pitch, 80)
                synth.process_into(out, 0, frames)
                cents = pitch_cents(out.mean(axis=0)[int(SETTLE_S * sample_rate):],
                                    sample_rate, pitch)
                cache[key] = round(swing_cents(cents), 2)
                synth.silence(out)
        write_cache(path, cache, "vibrato")
    return {i: float(cache[k]) for i, k in keys.items()}


def pitch_cents(x: np.ndarray, sample_rate: int, midi: int) -> np.ndarray:
    """The pitch of ``x`` (mono) every ``STEP_S`` in cents from MIDI note ``midi``: the
    autocorrelation's peak within a semitone of its period, interpolated."""
    x = np.asarray(x, dtype=np.float64)
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    n, hop = int(FRAME_S * sample_rate), int(STEP_S * sample_rate)
    lo = max(2, int(sample_rate / (f0 * 2 ** (1 / 12))) - 1)
    hi = int(sample_rate / (f0 * 2 ** (-1 / 12))) + 2
    starts = np.arange(0, x.size - n - hi, hop)
    if starts.size == 0:
        return np.zeros(0)
    idx = starts[:, None] + np.arange(n)[None, :]
    frames = x[idx]
    r = np.stack([(frames * x[idx + lag]).sum(axis=1) for lag in range(lo, hi + 1)], axis=1)
    k = np.clip(np.argmax(r[:, 1:-1], axis=1) + 1, 1, r.shape[1] - 2)
    rows = np.arange(r.shape[0])
    y0, y1, y2 = r[rows, k - 1], r[rows, k], r[rows, k + 1]
    curve = y0 - 2 * y1 + y2
    shift = np.where(curve != 0, 0.5 * (y0 - y2) / np.where(curve != 0, curve, 1), 0.0)
    lag = lo + k + shift
    return 1200 * np.log2(sample_rate / lag / f0)


def swing_cents(cents: np.ndarray) -> float:
    """How far a pitch curve swings either side of its middle (a sine's amplitude: √2 × its
    standard deviation)."""
    return float(np.sqrt(2) * np.std(cents - np.median(cents))) if cents.size else 0.0


def rate_hz(cents: np.ndarray) -> float:
    """The strongest swing rate of a pitch curve (every ``STEP_S``), 3–9 Hz."""
    c = cents - cents.mean()
    spectrum = np.abs(np.fft.rfft(c * np.hanning(c.size), 8192))
    freqs = np.fft.rfftfreq(8192, STEP_S)
    band = (freqs > 3) & (freqs < 9)
    return float(freqs[band][np.argmax(spectrum[band])])
