"""The report laid out as a PDF with fpdf2: title block, summary, learnings, risk flags, results,
charts, appendix. The charts are drawn with fpdf2's vector primitives (lines, polygons, circles,
text) from the geometry :mod:`core.reports.charts` computes: no image, no plotting library.

Text is set in DejaVu Sans, bundled with matplotlib, so any Unicode name renders without system
fonts; emoji, which DejaVu lacks, fall back to Noto Color Emoji (Debian's
``fonts-noto-color-emoji``, installed by ``scripts/ensure-fonts.sh`` and the Dockerfile). A
character neither font has — any emoji when that font is not installed — prints as its Unicode
name in brackets (🎁 → "[wrapped present]") rather than vanishing.

:func:`render_pdf` turns a :class:`~core.reports.content.ReportContent` into bytes;
:func:`build_report_pdf` assembles and renders one experiment's report without storing it.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

from core import format as fmt
from core.analysis.snapshot import ResultsSnapshot
from core.analysis.verdict import STATE_LABELS, plan_notes, readout_note, variance_notes
from core.reports.charts import (
    PT,
    TICK_GAP,
    TICK_SIZE,
    CumulativePlot,
    ForestPlot,
    Frame,
    Text,
    Tick,
    cumulative_plot,
    forest_plot,
)
from core.reports.content import ReportContent, assemble_report
from core.reports.risks import correction_name

if TYPE_CHECKING:
    from fpdf import FPDF
    from fpdf.fonts import TTFFont


@lru_cache
def font_files() -> dict[str, Path]:
    """The DejaVu font files matplotlib ships, by fpdf2 style ("", "B", "I"): found from the
    package's location, never imported (``import matplotlib`` alone costs 0.1 s cold)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib is not installed: the PDF reports take their DejaVu "
                           "fonts from it (requirements.txt)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    return {"": folder / "DejaVuSans.ttf", "B": folder / "DejaVuSans-Bold.ttf",
            "I": folder / "DejaVuSans-Oblique.ttf"}


EMOJI_FONT_FILES = (Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),)
"""Where Debian's ``fonts-noto-color-emoji`` puts its font (fpdf2 draws its CBDT bitmaps)."""


def emoji_font_file() -> Path | None:
    """The installed emoji font, or None (emoji then print as their names)."""
    return next((path for path in EMOJI_FONT_FILES if path.is_file()), None)


@lru_cache(maxsize=8)
def _parsed_font(path: Path, family: str, style: str) -> TTFFont:
    """fpdf2's reading of a font file (its widths, code points and glyph ids), once per
    process: reading DejaVu's three files again for every report cost more than the rest of
    the layout (issue 25)."""
    from fpdf import FPDF
    from fpdf.fonts import TTFFont

    scratch = FPDF()
    scratch.add_font(family, style, str(path))
    font = scratch.fonts[f"{family.lower()}{style}"]
    assert isinstance(font, TTFFont)
    return font


def add_font(pdf: FPDF, family: str, style: str, path: Path) -> None:
    """``pdf.add_font(family, style, path)`` from the process's parse of the file: what fpdf2
    reads from the file is shared (it never changes), what a document changes is its own — the
    font's number in the document, the glyphs it uses (its subset) and the fontTools font,
    which writing the PDF subsets in place: opened lazily from :func:`_embeddable`'s bytes
    (fpdf2 2.8's ``TTFFont``)."""
    from copy import copy
    from io import BytesIO

    from fontTools import ttLib
    from fpdf.fonts import SubsetMap

    font = copy(_parsed_font(path, family, style))
    font.i = len(pdf.fonts) + 1
    data, glyph_order = _embeddable(path)
    font.ttfont = ttLib.TTFont(BytesIO(data), recalcTimestamp=False, lazy=True)
    font.ttfont.setGlyphOrder(list(glyph_order))
    font._hbfont = None
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font.subset = SubsetMap(font)
    pdf.fonts[font.fontkey] = font


_DROPPED_TABLES = ("GDEF", "GPOS", "GSUB", "kern", "MATH", "FFTM")
"""Tables fpdf2 leaves out of the subset it embeds (``kern`` too, where ``GPOS`` exists)."""
_CMAPS = ((3, 1), (3, 10))
"""The Windows Unicode cmaps (BMP, full repertoire): DejaVu's other three repeat them."""


@lru_cache(maxsize=8)
def _embeddable(path: Path) -> tuple[bytes, tuple[str, ...]]:
    """A font file as writing a PDF needs it, prepared once per process, and its glyph order:
    what every document's subset is cut from. Without the tables fpdf2 drops from the subset
    anyway (fontTools still decompiled DejaVu's layout tables before dropping them), with only
    the Windows cmaps, and without glyph names (``post`` format 3, as the subset is written:
    each document gets the glyph order from here instead of decoding 6,000 names again)."""
    from io import BytesIO

    from fontTools import ttLib

    font = ttLib.TTFont(path, recalcTimestamp=False, lazy=True)
    glyph_order = tuple(font.getGlyphOrder())
    for tag in _DROPPED_TABLES:
        if tag in font:
            del font[tag]
    cmap = font["cmap"]
    cmap.tables = [t for t in cmap.tables if (t.platformID, t.platEncID) in _CMAPS]
    font["post"].formatType = 3.0
    out = BytesIO()
    font.save(out)
    return out.getvalue(), glyph_order


def _cmap(pdf: FPDF, key: str) -> dict[int, str]:
    """The code points a loaded TrueType font has a glyph for."""
    from fpdf.fonts import TTFFont

    font = pdf.fonts[key]
    assert isinstance(font, TTFFont)
    return font.cmap


class _Pdf:
    """A thin layout helper over fpdf2: headings, wrapped paragraphs, bullets, tables. Every text
    goes through :meth:`printable`, so no character is silently dropped."""

    def __init__(self, title: str, *,
                 emoji_font: Path | None | Literal["installed"] = "installed") -> None:
        from fpdf import FPDF

        pdf = FPDF(orientation="P", unit="mm", format="A4")
        for style, path in font_files().items():
            add_font(pdf, "DejaVu", style, path)
        self.covered: set[int] = set(_cmap(pdf, "dejavu"))
        # The emoji font (11 MB) is loaded at the first character DejaVu lacks: a report
        # without one pays neither its parsing nor fpdf2's per-character fallback look-ups.
        self._emoji_font = emoji_font_file() if emoji_font == "installed" else emoji_font
        pdf.set_margins(15, 15, 15)
        pdf.set_auto_page_break(True, margin=15)
        pdf.set_title(title)
        pdf.alias_nb_pages()
        self.pdf = pdf
        pdf.add_page()

    def printable(self, text: str) -> str:
        """``text`` with every character no loaded font has replaced by its Unicode name in
        brackets ("[wrapped present]"); invisible format and combining marks without a glyph
        (an emoji's variation selector) are left out."""
        if all(ord(ch) in self.covered or ch.isspace() for ch in text):
            return text
        if self._emoji_font is not None:
            self.pdf.add_font("Emoji", "", str(self._emoji_font))
            # one style: bold and italic text borrow it (exact_match=False)
            self.pdf.set_fallback_fonts(["Emoji"], exact_match=False)
            self.covered |= set(_cmap(self.pdf, "emoji"))
            self._emoji_font = None
            return self.printable(text)
        out = []
        for ch in text:
            if ord(ch) in self.covered or ch.isspace():
                out.append(ch)
            elif unicodedata.category(ch) not in ("Mn", "Me", "Cf", "Cc"):
                out.append(f"[{unicodedata.name(ch, f'U+{ord(ch):04X}').lower()}]")
        return "".join(out)

    def space_left(self) -> float:
        """Millimetres left above the bottom margin of the current page."""
        return self.pdf.page_break_trigger - self.pdf.get_y()

    def heading(self, text: str, size: float = 13, keep: float = 25) -> None:
        """A bold heading, moved to the next page unless ``keep`` mm of what follows fit too,
        so a heading never ends a page without its content."""
        pdf = self.pdf
        if self.space_left() < size * 0.5 + 3 + keep:
            pdf.add_page()
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", size)
        self.lines(text, size * 0.5)
        pdf.ln(1)

    def para(self, text: str, size: float = 9.5, style: str = "") -> None:
        self.pdf.set_font("DejaVu", style, size)
        self.lines(text, size * 0.48)
        self.pdf.ln(1)

    def bullet(self, label: str, text: str, size: float = 9.5) -> None:
        pdf = self.pdf
        pdf.set_font("DejaVu", "B", size)
        self.lines(f"• {label}", size * 0.48)
        pdf.set_font("DejaVu", "", size)
        pdf.set_x(pdf.l_margin + 4)
        self.lines(text, size * 0.48)
        pdf.ln(0.8)

    def lines(self, text: str, height: float) -> None:
        """``text`` (through :meth:`printable`) in the current font, wrapped between the cursor
        and the right margin, one cell of ``height`` mm per line; then the cursor at the left
        margin below it. What ``multi_cell(0, height, text, align="L")`` prints, without fpdf2's
        line breaking, which measures the whole line again for every character it adds
        (quadratic in the line's length: a third of a report's layout)."""
        from fpdf.enums import XPos, YPos

        pdf = self.pdf
        x = pdf.get_x()
        width = pdf.w - pdf.r_margin - x
        for line in self.wrap(self.printable(text), width - 2 * pdf.c_margin):
            pdf.set_x(x)
            pdf.cell(width, height, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def wrap(self, text: str, width: float) -> list[str]:
        """``text`` broken into lines no wider than ``width`` mm in the current font: at
        spaces (the space at a break dropped) and newlines, a word longer than a line cut
        between characters."""
        measure = self.pdf.get_string_width
        space = measure(" ")
        lines: list[str] = []
        for paragraph in text.split("\n"):
            words: list[str] = []
            used = 0.0
            for word in paragraph.split(" "):
                wide = measure(word) if word else 0.0
                if words and used + space + wide > width + 1e-9:
                    lines.append(" ".join(words))
                    words, used = [], 0.0
                if words:
                    words.append(word)
                    used += space + wide
                    continue
                while wide > width + 1e-9 and len(word) > 1:
                    cut = 1
                    while cut < len(word) and measure(word[:cut + 1]) <= width + 1e-9:
                        cut += 1
                    lines.append(word[:cut])
                    word = word[cut:]
                    wide = measure(word)
                words, used = [word], wide
            lines.append(" ".join(words))
        return lines

    def table(self, rows: Sequence[Sequence[str]], widths: Sequence[float],
              size: float = 7.5) -> None:
        from fpdf.fonts import FontFace

        self.pdf.set_font("DejaVu", "", size)
        with self.pdf.table(col_widths=tuple(widths), text_align="LEFT", line_height=size * 0.5,
                            headings_style=FontFace(emphasis="BOLD", fill_color=(235, 238, 241)),
                            width=sum(widths), align="LEFT") as table:
            for row in rows:
                cells = table.row()
                for value in row:
                    cells.cell(self.printable(value))
        self.pdf.ln(2)

    def text_width(self, text: str, size: float) -> float:
        """The width in mm of ``text`` set in DejaVu at ``size`` points (the charts'
        :data:`~core.reports.charts.Measure`)."""
        self.pdf.set_font("DejaVu", "", size)
        return self.pdf.get_string_width(self.printable(text))

    # ---- charts: the geometry of core.reports.charts drawn with fpdf2's vector primitives

    def forest_plot(self, plot: ForestPlot) -> None:
        """Draws a forest plot at the cursor (on the next page if it does not fit)."""
        pdf = self.pdf
        x0, y0 = self._chart_origin(plot.height)
        frame = plot.frame
        with self._drawing():
            self._grid(x0, y0, frame, x_ticks=plot.x_ticks)
            self._zero_line(x0 + plot.zero, y0 + frame.top, x0 + plot.zero, y0 + frame.bottom)
            for row in plot.rows:
                y = y0 + row.y
                pdf.set_draw_color(row.colour)
                pdf.set_fill_color(row.colour)
                pdf.set_line_width(0.6)
                pdf.line(x0 + row.low, y, x0 + row.high, y)
                if row.arrow_low:
                    self._arrow(x0 + frame.left, y, -1)
                if row.arrow_high:
                    self._arrow(x0 + frame.right, y, 1)
                pdf.circle(x0 + row.estimate, y, 1.0, style="F")
                lead = TICK_SIZE * PT * 0.62
                self._text(x0, y0, Text(plot.label_right, row.y - lead, row.label[0], TICK_SIZE,
                                        align="R"))
                self._text(x0, y0, Text(plot.label_right, row.y + lead, row.label[1], TICK_SIZE,
                                        align="R"))
            self._frame(x0, y0, frame, x_ticks=plot.x_ticks)
            for text in plot.texts:
                self._text(x0, y0, text)
        pdf.set_y(y0 + plot.height + 2)

    def cumulative_plot(self, plot: CumulativePlot) -> None:
        """Draws the cumulative lift chart at the cursor (on the next page if it does not
        fit)."""
        pdf = self.pdf
        x0, y0 = self._chart_origin(plot.height)
        frame = plot.frame
        with self._drawing():
            self._grid(x0, y0, frame, x_ticks=plot.x_ticks, y_ticks=plot.y_ticks)
            for series in plot.series:  # the bands first, so no band covers a line
                pdf.set_fill_color(series.colour)
                with pdf.local_context(fill_opacity=0.15):
                    for band in series.bands:
                        pdf.polygon([(x0 + x, y0 + y) for x, y in band], style="F")
            self._zero_line(x0 + frame.left, y0 + plot.zero, x0 + frame.right, y0 + plot.zero)
            for series in plot.series:
                pdf.set_draw_color(series.colour)
                pdf.set_fill_color(series.colour)
                line = [(x0 + x, y0 + y) for x, y in series.line]
                for bar in series.bars:
                    pdf.set_line_width(0.6)
                    x, y = x0 + bar.x, y0 + bar.y
                    for end in (bar.low, bar.high):
                        if end is not None:
                            pdf.line(x, y, x, y0 + end)
                            pdf.line(x - 1.5, y0 + end, x + 1.5, y0 + end)
                pdf.set_line_width(0.35)
                if len(line) > 1:
                    pdf.polyline(line)
                for x, y in line:
                    pdf.circle(x, y, 1.1 if series.bars else 0.5, style="F")
            for entry in plot.legend:
                x, y = x0 + entry.x, y0 + entry.y
                pdf.set_draw_color(entry.colour)
                pdf.set_fill_color(entry.colour)
                pdf.set_line_width(0.35)
                pdf.line(x, y, x + 5, y)
                pdf.circle(x + 2.5, y, 0.5, style="F")
                self._text(x0, y0, Text(entry.x + 6, entry.y, entry.name, TICK_SIZE, align="L"))
            self._frame(x0, y0, frame, x_ticks=plot.x_ticks, y_ticks=plot.y_ticks)
            for text in plot.texts:
                self._text(x0, y0, text)
        pdf.set_y(y0 + plot.height + 2)

    def _chart_origin(self, height: float) -> tuple[float, float]:
        """The chart's top-left corner: the cursor, or the next page's top when ``height`` mm
        do not fit above the bottom margin."""
        if self.space_left() < height:
            self.pdf.add_page()
        return self.pdf.l_margin, self.pdf.get_y()

    @contextmanager
    def _drawing(self) -> Iterator[None]:
        """Around drawing a chart: no automatic page break for a label near the bottom (the
        chart was placed where it fits); colours, line width and dash restored after (a PDF
        graphics state of its own)."""
        pdf = self.pdf
        auto = pdf.auto_page_break
        pdf.set_auto_page_break(False, margin=pdf.b_margin)
        try:
            with pdf.local_context():
                yield
        finally:
            pdf.set_auto_page_break(auto, margin=pdf.b_margin)

    def _grid(self, x0: float, y0: float, frame: Frame, *, x_ticks: Sequence[Tick] = (),
              y_ticks: Sequence[Tick] = ()) -> None:
        pdf = self.pdf
        pdf.set_draw_color(_GRID)
        pdf.set_line_width(0.15)
        for tick in x_ticks:
            pdf.line(x0 + tick.at, y0 + frame.top, x0 + tick.at, y0 + frame.bottom)
        for tick in y_ticks:
            pdf.line(x0 + frame.left, y0 + tick.at, x0 + frame.right, y0 + tick.at)

    def _zero_line(self, x1: float, y1: float, x2: float, y2: float) -> None:
        pdf = self.pdf
        pdf.set_draw_color(_INK)
        pdf.set_line_width(0.25)
        pdf.set_dash_pattern(dash=1.2, gap=0.9)
        pdf.line(x1, y1, x2, y2)
        pdf.set_dash_pattern()

    def _frame(self, x0: float, y0: float, frame: Frame, *, x_ticks: Sequence[Tick] = (),
               y_ticks: Sequence[Tick] = ()) -> None:
        """The plot's border, its tick marks and their labels."""
        pdf = self.pdf
        pdf.set_draw_color(_INK)
        pdf.set_line_width(0.2)
        pdf.rect(x0 + frame.left, y0 + frame.top, frame.right - frame.left,
                 frame.bottom - frame.top)
        tick_h = TICK_SIZE * PT
        for tick in x_ticks:
            x = x0 + tick.at
            pdf.line(x, y0 + frame.bottom, x, y0 + frame.bottom + 1.0)
            self._text(x0, y0, Text(tick.at, frame.bottom + TICK_GAP + tick_h * 0.6, tick.label,
                                    TICK_SIZE))
        for tick in y_ticks:
            y = y0 + tick.at
            pdf.line(x0 + frame.left - 1.0, y, x0 + frame.left, y)
            self._text(x0, y0, Text(frame.left - TICK_GAP, tick.at, tick.label, TICK_SIZE,
                                    align="R"))

    def _arrow(self, x: float, y: float, direction: int) -> None:
        """An arrow head at the axis edge ``x``, pointing out (``direction`` -1 left, 1 right):
        the interval goes on."""
        self.pdf.polygon([(x + 1.4 * direction, y), (x - 1.4 * direction, y - 1.3),
                          (x - 1.4 * direction, y + 1.3)], style="F")

    def _text(self, x0: float, y0: float, text: Text) -> None:
        """A chart label (through :meth:`printable`), offset by the chart's corner."""
        pdf = self.pdf
        pdf.set_font("DejaVu", text.style, text.size)
        pdf.set_text_color(_INK)
        shown = self.printable(text.text)
        width = pdf.get_string_width(shown) + 2 * pdf.c_margin
        height = text.size * PT
        x, y = x0 + text.x, y0 + text.y
        left = {"L": x - pdf.c_margin, "C": x - width / 2, "R": x - width + pdf.c_margin}[
            text.align]
        if text.rotated:  # text(), not cell(): set_x reads a negative x from the right edge
            with pdf.rotation(90, x, y):
                pdf.text(x - width / 2 + pdf.c_margin, y + height * 0.36, shown)
        else:
            pdf.set_xy(left, y - height / 2)
            pdf.cell(width, height, shown, align="C")


_INK = "#24292f"
"""Frames, zero lines and chart text."""
_GRID = "#d0d7de"


def _bayesian_table(doc: _Pdf, snapshot: ResultsSnapshot) -> None:
    """The Bayesian readout beside the frequentist table (the plan's prior on the relative
    lift, flat by default)."""
    readouts = [(r, r.bayesian) for r in snapshot.comparisons if r.bayesian is not None]
    if not readouts:
        return
    level = fmt.percent(1 - snapshot.alpha, 4, trim=True)
    doc.heading("Bayesian readout", size=10.5, keep=20)
    rows = [("Metric (role)", "Variant vs control", "Chance to beat control",
             "Expected loss if shipped", f"{level} credible interval", "Prior")]
    for r, b in readouts:
        prior = ("flat" if b.prior == "flat" else
                 f"normal({fmt.signed_percent(b.prior_mean)}, sd {fmt.percent(b.prior_sd)})")
        rows.append((f"{r.metric} ({r.role})", f"{r.treatment} vs {r.control}",
                     fmt.percent(b.chance_to_beat_control), fmt.percent(b.expected_loss_ship, 2),
                     fmt.interval(b.ci_low, b.ci_high), prior))
    doc.table(rows, widths=(34, 30, 28, 30, 34, 24))
    doc.para("Posterior of the relative lift from its estimate and standard error (normal "
             "approximation); the chance to beat control and the expected loss respect each "
             "metric's direction. Beside the frequentist result, not instead of it: the "
             "decision above is the frequentist one, as pre-registered. The readout reads the "
             "data as one look, unadjusted, so it can disagree with the decision; where it "
             "does, the reason follows.", size=7.5, style="I")
    for r, _b in readouts:
        note = readout_note(r, snapshot)
        if note:
            doc.para(f"{r.metric} ({r.treatment} vs {r.control}): {note}", size=7.5)


def _segment_tables(doc: _Pdf, content: ReportContent, snapshot: ResultsSnapshot) -> None:
    """Per dimension, the primary metric in each slice: exploratory, corrected, never decisive."""
    primary = content.experiment.primary_metric
    for seg in content.segments:
        rows_of = [c for c in seg.comparisons if c.metric == primary]
        if not rows_of:
            continue
        doc.heading(f"Segments by {seg.dimension} (exploratory)", size=10.5, keep=25)
        doc.para(seg.exploratory, size=8, style="I")
        rows = [("Slice", "Variant", "Control", "Treatment", "Difference",
                 fmt.ci_label(seg.alpha), "Lift", f"{correction_name(seg.correction)} p")]
        for c in rows_of:
            if c.blocked:
                diff = ci = lift = p = "withheld (SRM)"
            else:
                diff = fmt.signed_number(c.diff) if c.kind != "binomial" else (
                    fmt.signed_percent(c.diff, 2).replace("%", " pp"))
                fmt_bound = (fmt.signed_number if c.kind != "binomial" else
                             (lambda x: fmt.signed_percent(x, 2).replace("%", " pp")))
                ci = fmt.interval(c.diff_ci_low, c.diff_ci_high, fmt_bound)
                lift, p = fmt.signed_percent(c.lift), fmt.pvalue(c.adjusted_p_value)
            rows.append((c.value, c.treatment,
                         f"{fmt.metric_value(c.kind, c.control_mean)} (n={fmt.count(c.control_n)})",
                         f"{fmt.metric_value(c.kind, c.treatment_mean)} "
                         f"(n={fmt.count(c.treatment_n)})", diff, ci, lift, p))
        doc.table(rows, widths=(22, 19, 26, 26, 19, 36, 16, 16))


def _scan_table(doc: _Pdf, content: ReportContent) -> None:
    """The automatic segment scan's slices worth a look: never a ship decision."""
    scan = content.scan
    if scan is None or not scan.tested:
        return
    doc.heading("Worth a look: automatic segment scan (not a ship decision)", size=10.5,
                keep=25)
    doc.para(scan.note + f" {scan.tested} slice comparisons, each slice's effect against the "
             "effect in the rest of the experiment.", size=8, style="I")
    look = scan.worth_a_look
    if not look:
        doc.para("No slice's effect differs from the rest's after the correction.", size=8)
        return

    def shown(kind: str, x: float | None) -> str:
        return (fmt.signed_percent(x, 2).replace("%", " pp") if kind == "binomial"
                else fmt.signed_number(x))

    rows = [("Slice", "Metric", "Variant", "In slice", "In the rest", "Slice - rest",
             fmt.ci_label(scan.alpha), "Holm p")]
    for f in look:
        rows.append((f"{f.dimension} = {f.value}", f.metric, f.treatment,
                     shown(f.kind, f.slice_effect), shown(f.kind, f.rest_effect),
                     shown(f.kind, f.difference),
                     fmt.interval(f.ci_low, f.ci_high, lambda x, k=f.kind: shown(k, x)),
                     fmt.pvalue(f.adjusted_p_value)))
    doc.table(rows, widths=(28, 33, 18, 17, 17, 17, 34, 16))


def render_pdf(content: ReportContent, *, charts: bool = True) -> bytes:
    """The report as PDF bytes (``charts=False`` leaves the two charts out)."""
    exp = content.experiment
    doc = _Pdf(f"Experiment report: {exp.name}")
    pdf = doc.pdf
    pdf.set_author(content.generated_by)
    pdf.set_creator("ExperimentOS")
    pdf.set_creation_date(content.generated_at)

    # ---- title block
    doc.heading(exp.name, size=17)
    doc.para(
        f"Owner: {exp.owner} · Status: {exp.status} · Mode: {exp.analysis_mode}\n"
        f"Planned: {fmt.day(exp.planned_start)} to {fmt.day(exp.planned_end)} · Actual: "
        f"{fmt.day(exp.actual_start)} to "
        f"{fmt.day(exp.actual_end) if exp.actual_end else 'ongoing'}\n"
        f"Generated {fmt.timestamp(content.generated_at)} by {content.generated_by}",
        size=9, style="I")

    # ---- executive summary
    doc.heading("Executive summary")
    doc.para(content.tested)
    for sentence in content.primary_sentences:
        doc.para(sentence)
    doc.para(f"Recommendation: {content.recommendation_text}", style="B")
    doc.para(content.decision_text)

    # ---- learnings (what the team wrote down when it completed the experiment)
    if exp.learnings.strip() or exp.status == "completed":
        doc.heading("Learnings", keep=12)
        doc.para(exp.learnings.strip() or "No learnings were recorded when it was completed "
                 "(an editor can add them in the Registry).")

    # ---- risk flags
    doc.heading("Risk flags")
    flags = content.flags
    if not flags:
        doc.para("No risk flag was raised by the automatic checks.")
    for check in flags:
        doc.bullet(f"⚠ {check.title}", check.explanation)
    others = [c for c in content.checks if c.status != "flagged"]
    if others:
        doc.para("Checks without a flag:", size=8.5, style="B")
        for check in others:
            status = "passed" if check.status == "passed" else "not checked"
            doc.para(f"{check.title} ({status}): {check.explanation}", size=8)

    # ---- results
    snapshot = content.snapshot
    doc.heading("Results")
    if snapshot is None:
        doc.para("No metric data has been loaded yet: there are no results to show.")
    else:
        rows = [("Metric (role)", "Variant vs control", "Control", "Treatment", "Lift",
                 fmt.ci_label(snapshot.alpha, snapshot.analysis_mode == "sequential"), "Adj. p",
                 "State")]
        blocked = snapshot.srm is not None and snapshot.srm.flagged
        for r in snapshot.comparisons:
            if blocked or r.decision_state == "srm_untrustworthy":
                lift = ci = p = "withheld"
            else:
                lift, p = fmt.signed_percent(r.lift), fmt.pvalue(r.adjusted_p_value)
                ci = (fmt.interval(r.lift_ci_low, r.lift_ci_high,
                                   open_ends=r.alternative != "two-sided")
                      if r.lift is not None else fmt.MISSING)
            rows.append((f"{r.metric} ({r.role})", f"{r.treatment} vs {r.control}",
                         f"{fmt.metric_value(r.kind, r.control_mean)} (n={fmt.count(r.control_n)})",
                         f"{fmt.metric_value(r.kind, r.treatment_mean)} "
                         f"(n={fmt.count(r.treatment_n)})",
                         lift, ci, p, STATE_LABELS.get(r.decision_state, r.decision_state)))
        doc.table(rows, widths=(30, 27, 22, 22, 15, 27, 15, 22))
        for note in plan_notes(snapshot):
            doc.para(f"Plan: {note}", size=8)
        capped = {r.metric: r.capping for r in snapshot.comparisons if r.capping}
        for metric, capping in capped.items():
            doc.para(f"{metric}: per-unit values {capping} before the sums (the plan's "
                     "capping, frozen at launch).", size=8)
        reductions = variance_notes(snapshot)
        if reductions and not blocked:
            doc.para("Variance reduction: " + "; ".join(reductions) + ".", size=8)
        units = ", ".join(f"{v.name} {v.units:,}" for v in snapshot.variants)
        doc.para(f"Units: {units}. Data through {fmt.timestamp(snapshot.data_through)}.", size=8)
        if blocked:
            doc.para("Sample ratio mismatch: every lift, interval and p-value is withheld, and "
                     "so are the charts, until the assignment is fixed.", size=8, style="B")
        else:
            _bayesian_table(doc, snapshot)
            _segment_tables(doc, content, snapshot)
            _scan_table(doc, content)
        if charts and not blocked:
            forest = forest_plot(snapshot, doc.text_width, width=pdf.epw)
            doc.heading("Charts", size=11, keep=forest.height if forest else 25)
            if forest:
                doc.forest_plot(forest)
                doc.para("Green: a significant improvement; red: a significant harm (or a "
                         "guardrail breach); grey: inconclusive (not significant or too early). "
                         "Each metric's own direction decides what improves.", size=7.5,
                         style="I")
            cumulative = cumulative_plot(
                content.series, exp.primary_metric or "", snapshot.alpha, doc.text_width,
                one_sided=any(c.alternative != "two-sided" for c in snapshot.comparisons
                              if c.metric == exp.primary_metric), width=pdf.epw)
            if cumulative:
                doc.cumulative_plot(cumulative)
                if snapshot.analysis_mode != "sequential":
                    doc.para("Fixed-horizon intervals are valid only once the planned sample is "
                             "reached; earlier days show the trend, not a result.", size=7.5,
                             style="I")
            elif forest is None:
                doc.para("Not enough data for charts yet.")

    # ---- appendix
    doc.heading("Appendix: plan, methods, data", keep=50)
    doc.heading("Analysis plan", size=10.5)
    frozen = (f"frozen at launch {fmt.timestamp(exp.plan_frozen_at)}" if exp.is_frozen
              else "not frozen")
    plan = [
        ("Hypothesis", exp.hypothesis or "—"),
        ("Target segment", exp.target_segment or "—"),
        ("Primary metric", exp.primary_metric or "—"),
        ("Guardrail metrics", ", ".join(exp.guardrail_metrics) or "—"),
        ("Secondary metrics", ", ".join(exp.secondary_metrics) or "—"),
        ("Variants", ", ".join(f"{v.name} {fmt.percent(v.weight, 0)}" for v in exp.variants)
         or "—"),
        ("Planned sample", f"{exp.planned_sample_size:,} units per variant"
         if exp.planned_sample_size else "—"),
        ("MDE", f"{fmt.percent(exp.mde)} relative" if exp.mde else "—"),
        ("Alpha / power", f"{exp.alpha:g} / {exp.power:g}"),
        ("Analysis mode", f"{exp.analysis_mode}; correction {correction_name(exp.correction)}"),
        ("Plan status", frozen),
    ]
    doc.table([("Item", "Value"), *plan], widths=(40, 140), size=8.5)
    if content.deviations:
        doc.heading("Plan deviations", size=10.5)
        for d in content.deviations:
            changes = "; ".join(f"{k}: {v[0]!r} → {v[1]!r}" for k, v in d.changes.items())
            doc.para(f"{fmt.timestamp(d.at)} by {d.actor}: {changes}. Reason: {d.reason or '—'}",
                     size=8.5)
    doc.heading("Methods", size=10.5)
    for line in content.methods:
        doc.para(line, size=8.5)
    doc.heading("Data sources and freshness", size=10.5)
    for line in content.data_sources:
        doc.para(line, size=8.5)
    return bytes(pdf.output())


def build_report_pdf(
    session: Session, *, experiment_id: int, generated_by: str, now: datetime | None = None,
    charts: bool = True,
) -> bytes:
    """The PDF report of one experiment, not stored (see :func:`generate_report`)."""
    content = assemble_report(session, experiment_id=experiment_id, generated_by=generated_by,
                              now=now)
    return render_pdf(content, charts=charts)

