"""core.reports.pdf layout: headings stay with their content, a chart never straddles a page;
emoji print (or are named)."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from pypdf import PdfReader

from core.analysis.snapshot import SeriesPoint
from core.reports.charts import cumulative_plot
from core.reports.pdf import _embeddable, _Pdf, emoji_font_file, font_files


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


def test_pdf_embeds_each_characters_own_glyph_from_the_prepared_font() -> None:
    """Each document's subset is cut from a copy of DejaVu prepared once per process (no layout
    tables, no glyph names): read back with fontTools, every character's outline and advance
    in the embedded subset are the original file's."""
    from fontTools import ttLib

    text = "Zulu ∞ ≤ 42 — Größe Кнопка, 3 m² Ω"  # ² and Ω: DejaVu names them its own way
    doc = _Pdf("glyphs", emoji_font=None)
    doc.para(text)
    data = bytes(doc.pdf.output())
    (font,) = PdfReader(io.BytesIO(data)).pages[0]["/Resources"]["/Font"].values()
    descriptor = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"]
    subset = ttLib.TTFont(io.BytesIO(descriptor.get_object()["/FontFile2"].get_object()
                                      .get_data()))
    original = ttLib.TTFont(font_files()[""])
    for ch in set(text) - {" "}:
        mine = subset.getBestCmap()[ord(ch)]
        theirs = original.getBestCmap()[ord(ch)]
        assert subset["hmtx"][mine] == original["hmtx"][theirs], ch
        coordinates = subset["glyf"][mine].getCoordinates(subset["glyf"])[0]
        assert list(coordinates) == list(
            original["glyf"][theirs].getCoordinates(original["glyf"])[0]), ch


def test_pdf_prepared_font_keeps_every_glyph_and_drops_what_the_subset_drops() -> None:
    from fontTools import ttLib

    for path in font_files().values():
        data, glyph_order = _embeddable(path)
        assert _embeddable(path)[0] is data  # once per process
        original = ttLib.TTFont(path, lazy=True)
        prepared = ttLib.TTFont(io.BytesIO(data), lazy=True)
        prepared.setGlyphOrder(list(glyph_order))
        assert list(glyph_order) == original.getGlyphOrder()
        assert not {"GDEF", "GPOS", "GSUB", "kern"} & set(prepared.keys())
        assert prepared.reader["glyf"] == original.reader["glyf"]  # outlines byte for byte
        assert prepared["hmtx"].metrics == original["hmtx"].metrics
        assert prepared.getBestCmap() == original.getBestCmap()


WRAPPED = [
    "Sample ratio mismatch: sequential Dirichlet-multinomial test (Lindon & Malek 2022) on the "
    "running daily assignment counts, anytime-valid so it may be read every day; flagged at "
    "p < 0.001.",
    "a  double  spaced   text " * 12,
    "line one\nline two is here\n\nafter a blank line",
    "x" * 300,
    "word " + "y" * 250 + " tail",
    "",
    "   leading spaces and trailing   ",
    "Gift wrap 🎁 at checkout, shipped 🚀 with no regressions ✓ " * 4,
]


@pytest.mark.parametrize("indent", [0.0, 4.0])
@pytest.mark.parametrize("text", WRAPPED)
def test_pdf_lines_break_where_fpdf2s_multi_cell_does(text: str, indent: float) -> None:
    """The report's own line breaking (linear) against fpdf2's (quadratic): the same lines."""
    doc = _Pdf("wrap")
    pdf = doc.pdf
    pdf.set_font("DejaVu", "", 9.5)
    shown = doc.printable(text)
    pdf.set_x(pdf.l_margin + indent)
    expected = pdf.multi_cell(0, 4, shown, dry_run=True, output="LINES")
    assert doc.wrap(shown, pdf.w - pdf.r_margin - pdf.get_x() - 2 * pdf.c_margin) == expected
    assert len(expected) > 1 or len(text) < 100
    top = pdf.get_y()
    doc.lines(text, 4)
    assert pdf.get_y() == pytest.approx(top + 4 * len(expected))
    assert pdf.get_x() == pdf.l_margin
    assert "".join(_pages(doc)[0].split()) == "".join(shown.split())  # every character printed
