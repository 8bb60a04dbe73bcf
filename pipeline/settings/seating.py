"""Seating: where each player sits on the template's stage (pan −1…+1, depth 0 front…1 back).

A template lists seats (``[[seat]]``: the phrases of the part or instrument names that sit
there, a pan, a depth) and, for chamber ensembles, rules per instrumentation (``[[rule]]``: a
string quartet is violin, violin, viola, cello from left to right). A part takes the seat whose
phrase is the longest found in its name or its instrument's name, else a seat for its family;
several players of one seat share it in score order. Anything left unmatched is spread in
score order across the stage (chamber ensembles) or across its centre (large ensembles).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from pipeline.settings import instruments

#: The section bus a family plays into unless its seat names one.
FAMILY_BUS = {"strings": "strings", "woodwinds": "woodwinds", "saxes": "saxes", "brass": "brass",
              "keyboards": "rhythm", "plucked": "rhythm", "percussion": "percussion",
              "voices": "voices"}
BUSES = tuple(sorted(set(FAMILY_BUS.values())))
FALLBACK_DEPTH = 0.5  # an unmatched player in a large ensemble: mid-stage


@dataclass(frozen=True)
class Seat:
    """A place on the stage for one kind of player."""

    name: str
    match: tuple[str, ...]       # lower-case phrases looked for in part/instrument names
    families: tuple[str, ...]    # or: any player of these families (weaker than a phrase)
    pan: float
    depth: float
    spread: float = 0.0          # several players of this seat spread over this width
    pans: tuple[float, ...] = ()  # or: explicit places for the 1st, 2nd… player, in score order
    gain_db: float = 0.0         # section offset
    bus: str | None = None
    gains_db: tuple[float, ...] = ()  # or per player in score order, e.g. the lead voice up


@dataclass(frozen=True)
class Rule:
    """A chamber instrumentation with its own seating (e.g. string quartet)."""

    name: str
    instruments: tuple[str, ...]  # canonical instrument-map names, left to right
    pans: tuple[float, ...]
    depths: tuple[float, ...]


@dataclass(frozen=True)
class Depth:
    """What sitting at the back (depth 1) does compared with the front row (depth 0)."""

    level_db: float      # quieter
    send_db: float       # more of it in the room
    predelay_ms: float   # the room's reflections follow the direct sound sooner
    damping_hz: float    # the air takes the highs: low-pass corner at the back


#: A template's [depth] where it says nothing.
DEFAULT_DEPTH = Depth(level_db=-4.0, send_db=5.0, predelay_ms=10.0, damping_hz=8000.0)


@dataclass(frozen=True)
class Placement:
    """Where one part sits and which section it plays in."""

    part: str
    instrument: str
    pan: float
    depth: float
    gain_db: float
    bus: str
    seat: str


ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}


def player_number(part: str) -> float | None:
    """The 1, 2… in 'Violin 2', 'Violin II', '2nd Violin' (None when the name has none); a
    solo or principal player leads the section (0) and a brass band's repiano cornet sits
    between the solo and 2nd cornets (1.5)."""
    text = instruments._normalise(part)
    if re.search(r"(?<![a-z])(solo|principal)(?![a-z])", text):
        return 0
    if re.search(r"(?<![a-z])(repiano|ripieno)(?![a-z])", text):
        return 1.5
    m = re.search(r"(?<![a-z0-9])(\d+)(?:st|nd|rd|th)?(?![a-z0-9])", text)
    if m:
        return int(m.group(1))
    m = re.search(r"(?<![a-z0-9])(viii|vii|vi|iv|v|iii|ii|i)(?![a-z0-9])", text)
    return ROMAN[m.group(1)] if m else None


def _ordered(members: list[int], parts: list[str]) -> list[int]:
    """Players of one seat in the order of their numbers (then score order)."""
    def number(i: int) -> float:
        n = player_number(parts[i])
        return 10 ** 6 if n is None else n
    return sorted(members, key=lambda i: (number(i), i))


def _found(phrase: str, text: str) -> bool:
    return re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", text) is not None


def _seat_for(texts: tuple[str, ...], family: str, seats: tuple[Seat, ...]) -> Seat | None:
    """The seat with the longest phrase in the first text that has one (the part's own name
    before its instrument's: 'Euphonium' is not seated as the map's 'Baritone Horn')."""
    for text in texts:
        best, best_len = None, 0
        for seat in seats:
            for phrase in seat.match:
                if len(phrase) > best_len and _found(phrase, text):
                    best, best_len = seat, len(phrase)
        if best is not None:
            return best
    return next((s for s in seats if family in s.families), None)


def _spread(seat: Seat, count: int) -> list[float]:
    if seat.pans and count <= len(seat.pans):
        return list(seat.pans[:count])
    if count == 1:  # (a seat with pans has returned above)
        return [seat.pan]
    if seat.pans:  # more players than places: spread over the places' width
        lo, hi = min(seat.pans), max(seat.pans)
    else:
        lo, hi = seat.pan - seat.spread / 2, seat.pan + seat.spread / 2
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def score_order(count: int, width: float) -> list[float]:
    """Pan positions spreading ``count`` players evenly, first part on the left."""
    if count <= 1:
        return [0.0] * count
    return [float(width * (-1.0 + 2.0 * i / (count - 1))) for i in range(count)]


def place(parts: list[str], names: list[str], families: list[str], *, seats: tuple[Seat, ...],
          rules: tuple[Rule, ...], stage_width: float, chamber_depth: float,
          section_db: dict[str, float]) -> list[Placement]:
    """Seat every part (one entry per part, in score order).

    ``parts`` are the part names, ``names`` the instrument-map names the assign stage decided
    (:attr:`pipeline.model.Voice.instrument`, '' when unknown) and ``families`` the instrument
    families, all in score order; ``section_db`` is each bus's level.
    """
    buses = [FAMILY_BUS.get(f, "rhythm") for f in families]
    out: list[Placement | None] = [None] * len(parts)
    rule = next((r for r in rules if Counter(r.instruments) == Counter(names)), None)
    if rule is not None:
        free = {name: [i for i, n in enumerate(rule.instruments) if n == name] for name in set(names)}
        for i in _ordered(list(range(len(parts))), parts):
            name = names[i]
            j = free[name].pop(0)  # players of one instrument take its places in number order
            out[i] = Placement(parts[i], name, rule.pans[j], rule.depths[j],
                               section_db.get(buses[i], 0.0), buses[i], rule.name)
        return out  # type: ignore[return-value]
    chosen = [_seat_for((instruments._normalise(p), f" {n.lower()} "), fam, seats)
              for p, n, fam in zip(parts, names, families)]
    by_seat: dict[str, list[int]] = {}
    for i, seat in enumerate(chosen):
        if seat is not None:
            by_seat.setdefault(seat.name, []).append(i)
    for members in by_seat.values():
        members = _ordered(members, parts)
        seat = chosen[members[0]]
        for k, (i, pan) in enumerate(zip(members, _spread(seat, len(members)))):
            bus = seat.bus or buses[i]
            own = seat.gains_db[k] if k < len(seat.gains_db) else seat.gain_db
            out[i] = Placement(parts[i], names[i], max(-1.0, min(1.0, pan)), seat.depth,
                               own + section_db.get(bus, 0.0), bus, seat.name)
    loose = [i for i, p in enumerate(out) if p is None]
    # chamber ensembles spread across the whole stage; big ones keep strays near the centre
    width, depth = (stage_width, chamber_depth) if not seats else (stage_width / 2, FALLBACK_DEPTH)
    for i, pan in zip(loose, score_order(len(loose), width)):
        out[i] = Placement(parts[i], names[i], pan, depth, section_db.get(buses[i], 0.0), buses[i],
                           "score order")
    return out  # type: ignore[return-value]
