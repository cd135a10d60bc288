"""core.reports.pdf layout: headings stay with their content; emoji print (or are named)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from core.reports.pdf import _Pdf, emoji_font_file


def _pages(doc: _Pdf) -> list[str]:
    reader = PdfReader(io.BytesIO(bytes(doc.pdf.output())))
    return [page.extract_text() for page in reader.pages]


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.0), dpi=50)
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [0, 1])
    out = io.BytesIO()
    fig.savefig(out, format="png")
    png = out.getvalue()
    doc = _Pdf("layout")
    height = doc.image_height(png)
    assert 70 < height < 80  # 180 mm wide at 7.2 x 3.0 inches
    _fill(doc, height - 10)
    doc.heading("Charts", keep=height)
    doc.image(png)
    pages = _pages(doc)
    assert len(pages) == 2 and "Charts" not in pages[0] and "Charts" in pages[1]


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
