"""core.reports.pdf layout: headings stay with their content, a chart never straddles a page;
emoji print (or are named)."""

from __future__ import annotations

import io
from datetime import date, timedelta

from pypdf import PdfReader

from core.analysis.snapshot import SeriesPoint
from core.reports.charts import cumulative_plot
from core.reports.pdf import _Pdf, emoji_font_file


def _pages(doc: _Pdf) -> list[str]:
    reader = PdfReader(io.BytesIO(bytes(doc.pdf.output())))
    return [page.extract_text() for page in reader.pages]


def _point(day: date) -> SeriesPoint:
    return SeriesPoint(day=day, metric="checkout_conversion", treatment="treatment",
                       control_n=1000, treatment_n=1000, diff=None, diff_ci_low=None,
                       diff_ci_high=None, lift=0.05, lift_ci_low=-0.02, lift_ci_high=0.12,
                       p_value=0.2, sequential=False)


def _fill(doc: _Pdf, leave_mm: float) -> None:
    while doc.space_left() > leave_mm + 6:
        doc.para("Filler line to push the next heading towards the bottom of the page.")


def test_pdf_heading_near_the_bottom_moves_to_the_next_page() -> None:
    doc = _Pdf("layout")
    _fill(doc, 30)  # 30-36 mm left: room for the heading, not for the 40 mm that must follow
    doc.heading("Results", keep=40)
    doc.para("The content that belongs under the heading.")
    pages = _pages(doc)
    assert len(pages) == 2
    assert "Results" not in pages[0]
    assert pages[1].lstrip().startswith("Results")


def test_pdf_heading_stays_when_its_content_fits() -> None:
    doc = _Pdf("layout")
    _fill(doc, 60)
    doc.heading("Results", keep=25)
    doc.para("The content that belongs under the heading.")
    pages = _pages(doc)
    assert len(pages) == 1 and "Results" in pages[0]


def test_pdf_chart_that_does_not_fit_starts_a_page_with_its_heading() -> None:
    doc = _Pdf("layout")
    days = [date(2026, 12, 1) + timedelta(days=i) for i in range(5)]
    plot = cumulative_plot([_point(d) for d in days], "checkout_conversion", 0.05,
                           doc.text_width, width=doc.pdf.epw)
    assert plot is not None and 70 < plot.height < 90
    _fill(doc, plot.height - 10)
    doc.heading("Charts", keep=plot.height)
    doc.cumulative_plot(plot)
    doc.para("Below the chart.")
    pages = _pages(doc)
    assert len(pages) == 2 and "Charts" not in pages[0]
    assert "Charts" in pages[1] and "Cumulative lift of checkout_conversion" in pages[1]
    assert pages[1].rstrip().endswith("Below the chart.")


def test_pdf_chart_at_the_bottom_of_a_page_moves_whole_to_the_next() -> None:
    """A chart drawn without a heading still never straddles a page break."""
    doc = _Pdf("layout")
    plot = cumulative_plot([_point(date(2026, 12, 1))], "checkout_conversion", 0.05,
                           doc.text_width, width=doc.pdf.epw)
    assert plot is not None
    _fill(doc, plot.height - 10)
    doc.cumulative_plot(plot)
    pages = _pages(doc)
    assert len(pages) == 2 and "2026-12-01" not in pages[0] and "2026-12-01" in pages[1]
    assert doc.pdf.get_y() == doc.pdf.t_margin + plot.height + 2


def test_pdf_prints_emoji_with_the_installed_emoji_font() -> None:
    font = emoji_font_file()
    assert font is not None, "fonts-noto-color-emoji is missing: run scripts/ensure-fonts.sh"
    doc = _Pdf("emoji")
    doc.heading("Gift wrap 🎁 at checkout")
    doc.para("Shipped 🚀 − no regressions ✓")
    data = bytes(doc.pdf.output())
    text = _pages(doc)[0]
    assert "Gift wrap 🎁 at checkout" in text and "Shipped 🚀 − no regressions ✓" in text
    kinds = {str(f.get_object().get("/Subtype")) for page in PdfReader(io.BytesIO(data)).pages
             for f in page["/Resources"]["/Font"].values()}
    assert "/Type3" in kinds, kinds  # the colour emoji, drawn from the font's bitmaps


def test_pdf_without_an_emoji_font_names_each_emoji_instead_of_dropping_it() -> None:
    doc = _Pdf("emoji", emoji_font=None)
    doc.heading("Gift wrap 🎁 at checkout")
    doc.table([("Name", "Value"), ("Idea", "Rocket 🚀 − ✓")], widths=(40, 60))
    text = _pages(doc)[0]
    assert "Gift wrap [wrapped present] at checkout" in text
    assert "Rocket [rocket] − ✓" in text  # what DejaVu has stays as it is


def test_pdf_loads_the_emoji_font_only_for_a_text_that_needs_it() -> None:
    """Parsing the 11 MB emoji font and fpdf2's fallback look-ups cost every report (issue 25);
    a report whose every character DejaVu has loads only DejaVu."""
    assert emoji_font_file() is not None, "run scripts/ensure-fonts.sh"
    doc = _Pdf("plain")
    doc.heading("Checkout − lift +4.1% ✓ [−0.5%, +8.7%]")
    assert "emoji" not in doc.pdf.fonts and not doc.pdf._fallback_font_ids
    doc.para("Gift wrap 🎁")
    assert "emoji" in doc.pdf.fonts
    assert "Gift wrap 🎁" in _pages(doc)[0]


def test_pdf_documents_share_the_parsed_fonts_but_each_embeds_its_own_glyphs() -> None:
    """DejaVu is read once per process (issue 25): each document still writes a font subset of
    its own characters, so a later document's text is whole and an earlier one's unchanged."""
    first = _Pdf("first", emoji_font=None)
    first.para("Alpha bravo ✓")
    first_bytes = bytes(first.pdf.output())
    second = _Pdf("second", emoji_font=None)
    second.heading("Zulu yankee xray − ∞")
    second.para("Quebec ≤ 42")
    assert first.pdf.fonts["dejavu"] is not second.pdf.fonts["dejavu"]
    assert first.pdf.fonts["dejavu"].cw is second.pdf.fonts["dejavu"].cw  # read once
    text = _pages(second)[0]
    assert "Zulu yankee xray − ∞" in text and "Quebec ≤ 42" in text
    again = PdfReader(io.BytesIO(first_bytes)).pages[0].extract_text()
    assert "Alpha bravo ✓" in again
    third = _Pdf("third", emoji_font=None)
    third.para("Alpha bravo ✓")
    assert bytes(third.pdf.output()).count(b"/FontFile2") == first_bytes.count(b"/FontFile2")
