"""The score engraved for a piece's page: one SVG per page, drawn by Verovio at build time, and
where each written measure stands on them (so the page can highlight the bar being played).

The only module that touches Verovio (its Python package from PyPI, written for versions
:data:`VEROVIO_VERSIONS`). It is asked for pages in SVG with each element's bounding box; the
staves' boxes give each measure's box, as fractions of its page, and the boxes are then taken
out of the pages (they would double their size). The measures come in the score's order (Verovio
makes one per MusicXML ``<measure>``), so the k-th engraved measure is the written measure k the
performance's timemap names; where the counts differ (a score Verovio reads otherwise) they are
matched by their printed numbers, in order (:func:`measure_boxes`).

An engraving depends on the score file only: the portfolio makes it when it renders a piece, in
the piece's cache, and publishes it with the piece.
"""
from __future__ import annotations

import json
import logging
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from pipeline.files import atomic_path
from pipeline.score.load import MUSICXML_SUFFIXES

log = logging.getLogger(__name__)

#: The Verovio releases this module was written for (its options, its SVG's classes).
VEROVIO_VERSIONS = ((6, 0), (7, 0))
FOLDER = "engraving"
LAYOUT = "layout.json"
FORMAT = 1
#: Page size (Verovio's units, tenths of a mm: A4; a page as high as its music, so a short piece
#: is not a strip on a blank sheet) and the music's scale on it (percent).
OPTIONS = {
    "pageWidth": 2100, "pageHeight": 2970, "scale": 55, "adjustPageHeight": True,
    "breaks": "auto", "footer": "none", "header": "auto", "svgViewBox": True,
    "svgBoundingBoxes": True, "svgFormatRaw": True, "svgRemoveXlink": True,
    "xmlIdChecksum": True,  # the same score gives the same ids, the same files
}
#: How far above and below its staves a measure's box reaches, in fractions of the page's width.
BOX_MARGIN = 0.008
_SVG = "{http://www.w3.org/2000/svg}"
#: A bounding box's group: empty, or holding its rect (and a title), never another group.
_BBOX = re.compile(r'<g id="bbox-[^"]*"[^>]*?/>|<g id="bbox-[^"]*"[^>]*>(?:(?!</?g\b).)*?</g>', re.S)


@dataclass(frozen=True)
class EngravedMeasure:
    """A measure as engraved: its printed number, its page (from 1) and its box on the page
    ``(x, y, width, height)`` as fractions of the page's width and height."""

    number: str
    page: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Engraving:
    """A score's pages (file names in :data:`FOLDER`), each one's size in CSS pixels and its
    measures in the score's order."""

    pages: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each page
    measures: tuple[EngravedMeasure, ...]
    seconds: float = 0.0  # how long Verovio took


def can_engrave(score: Path) -> bool:
    return score.suffix.lower() in MUSICXML_SUFFIXES


def engrave(score: Path, folder: Path) -> Engraving | None:
    """Engrave ``score`` into ``folder/engraving/`` (``page-001.svg`` …, ``layout.json``);
    None for a score that has no engraving (MIDI) or that Verovio cannot read (logged: the
    piece is published without it)."""
    if not can_engrave(score):
        return None
    import verovio

    started = time.perf_counter()
    verovio.enableLog(verovio.LOG_OFF)  # the library never prints
    toolkit = verovio.toolkit()
    version = toolkit.getVersion()
    major_minor = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if not VEROVIO_VERSIONS[0] <= major_minor < VEROVIO_VERSIONS[1]:
        log.warning("verovio %s: written for %s to %s; the engraving may be wrong", version,
                    ".".join(map(str, VEROVIO_VERSIONS[0])), ".".join(map(str, VEROVIO_VERSIONS[1])))
    toolkit.setOptions(OPTIONS)
    if not toolkit.loadFile(str(score)):
        log.warning("%s: Verovio cannot engrave it; its page shows no score", score)
        return None
    out = folder / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    pages, measures, sizes = [], [], []
    for page in range(1, toolkit.getPageCount() + 1):
        svg = toolkit.renderToSVG(page)
        root = ET.fromstring(svg)
        size = _page_size(root)
        sizes.append((round(size[0]), round(size[1])))
        inner = root.find(f"{_SVG}svg")
        scale = _page_size(inner) if inner is not None else size
        margin = next((g for g in root.iter(f"{_SVG}g") if g.get("class") == "page-margin"), None)
        origin = _translation(margin.get("transform", "")) if margin is not None else (0.0, 0.0)
        for g in root.iter(f"{_SVG}g"):
            if g.get("class") == "measure":
                box = _measure_box(g, scale, origin)
                n = toolkit.getElementAttr(g.get("id", "")).get("n", "")
                measures.append(EngravedMeasure(str(n), page, box))
        name = f"page-{page:03d}.svg"
        with atomic_path(out / name) as tmp:
            tmp.write_text(_BBOX.sub("", svg), encoding="utf-8")
        pages.append(name)
    engraving = Engraving(tuple(pages), tuple(sizes), tuple(measures),
                          round(time.perf_counter() - started, 3))
    write_layout(out / LAYOUT, engraving)
    log.info("%s: engraved, %d pages in %.1f s", score.name, len(pages), engraving.seconds)
    return engraving


def _page_size(svg: ET.Element) -> tuple[float, float]:
    box = [float(v) for v in (svg.get("viewBox") or "0 0 1 1").split()]
    return box[2], box[3]


def _translation(transform: str) -> tuple[float, float]:
    """The offset of an SVG ``translate(x, y)`` (the page's margin, which the boxes are inside)."""
    m = re.search(r"translate\(\s*([-\d.]+)[\s,]+([-\d.]+)\s*\)", transform)
    return (float(m.group(1)), float(m.group(2))) if m else (0.0, 0.0)


def _measure_box(measure: ET.Element, page: tuple[float, float],
                 origin: tuple[float, float]) -> tuple[float, float, float, float]:
    """The box around a measure's staves, in fractions of the page (``origin``: where the
    boxes' coordinates start on it); (0, 0, 0, 0) when it has none (nothing drawn)."""
    rects = [r for g in measure.iter(f"{_SVG}g") if g.get("class") == "staff bounding-box"
             for r in g.iter(f"{_SVG}rect")]
    rects = [r for r in rects if float(r.get("width", 0)) > 0 and float(r.get("height", 0)) > 0]
    if not rects:
        return (0.0, 0.0, 0.0, 0.0)
    x0 = origin[0] + min(float(r.get("x")) for r in rects)
    y0 = origin[1] + min(float(r.get("y")) for r in rects)
    x1 = origin[0] + max(float(r.get("x")) + float(r.get("width")) for r in rects)
    y1 = origin[1] + max(float(r.get("y")) + float(r.get("height")) for r in rects)
    w, h = page
    top, bottom = max(0.0, (y0 - BOX_MARGIN * w) / h), min(1.0, (y1 + BOX_MARGIN * w) / h)
    return (round(x0 / w, 5), round(top, 5), round((x1 - x0) / w, 5), round(bottom - top, 5))


def measure_boxes(engraving: Engraving, written: dict[int, str]) -> dict[int, EngravedMeasure]:
    """The engraved measure of each written measure (``written``: index → printed number, as
    the timemap has them). By position when the engraving has as many measures as the score
    seems to have, else by printed number, in order (a written measure that cannot be found is
    left out: its bar is played without a highlight)."""
    engraved = engraving.measures
    if written and max(written) < len(engraved) and all(
            engraved[k].number == n for k, n in written.items() if n.isdigit()):
        return {k: engraved[k] for k in written}
    out, at = {}, 0
    for k in sorted(written):
        found = next((j for j in range(at, len(engraved)) if engraved[j].number == written[k]),
                     None)
        if found is not None:
            out[k], at = engraved[found], found + 1
    return out


def write_layout(path: Path, engraving: Engraving) -> None:
    data = {"format": FORMAT, "pages": list(engraving.pages),
            "sizes": [list(size) for size in engraving.sizes], "seconds": engraving.seconds,
            "measures": [[m.number, m.page, *m.box] for m in engraving.measures]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def read_layout(folder: Path) -> Engraving | None:
    """The engraving in ``folder/engraving/`` (None when there is none or it cannot be read)."""
    try:
        data = json.loads((folder / FOLDER / LAYOUT).read_text("utf-8"))
        if data.get("format") != FORMAT:
            return None
        return Engraving(tuple(data["pages"]), tuple((int(w), int(h)) for w, h in data["sizes"]),
                         tuple(EngravedMeasure(str(n), int(p), (x, y, w, h))
                               for n, p, x, y, w, h in data["measures"]),
                         float(data.get("seconds", 0.0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
