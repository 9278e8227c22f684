"""Regenerate ../books/physics.pdf from physics.md (run once by hand; not part of the build).

A development tool, not a project dependency:  pip install fpdf2 && python make_pdf.py
The text is set in DejaVu Sans (shipped with matplotlib) so that Greek letters, sub- and superscripts
keep a real text layer. The YAML front matter becomes the PDF information dictionary: /Title, /Subject
and the custom key /AcademicLevel, which the ingest stage reads as declared metadata.
"""
from __future__ import annotations

import datetime
import io
import re
from pathlib import Path

import matplotlib
import pypdf
import yaml
from fpdf import FPDF

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "physics.md"
TARGET = HERE.parent / "books" / "physics.pdf"
FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def blocks(markdown: str):
    """(kind, text) for headings and paragraphs; blank lines separate paragraphs."""
    for block in re.split(r"\n\s*\n", markdown.strip()):
        block = " ".join(line.strip() for line in block.splitlines())
        m = re.match(r"^(#{1,3})\s+(.*)$", block)
        if m:
            yield f"h{len(m.group(1))}", m.group(2)
        else:
            yield "p", block


def render(markdown: str, meta: dict) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(meta["title"])
    pdf.set_subject(meta["subject"])
    pdf.set_creation_date(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))  # reproducible bytes
    pdf.add_page()
    sizes = {"h1": 17, "h2": 14, "h3": 12}
    for kind, text in blocks(markdown):
        if kind == "h2" and pdf.page_no() >= 1 and pdf.get_y() > 40:
            pdf.add_page()               # every chapter starts on a new page
        if kind in sizes:
            pdf.set_font("DejaVu", "B", sizes[kind])
            pdf.multi_cell(0, sizes[kind] * 0.55, text, align="L")
            pdf.ln(2)
        else:
            pdf.set_font("DejaVu", "", 10.5)
            pdf.multi_cell(0, 5.6, text.replace("**", "").replace("*", ""), align="L")
            pdf.ln(2.5)
    return bytes(pdf.output())


def main() -> None:
    raw = SOURCE.read_text(encoding="utf-8")
    _, front, body = raw.split("---\n", 2)
    meta = yaml.safe_load(front)
    data = render(body, meta)
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.add_metadata({"/Title": meta["title"], "/Subject": meta["subject"], "/AcademicLevel": meta["level"]})
    out = io.BytesIO()
    writer.write(out)
    TARGET.write_bytes(out.getvalue())
    print(f"wrote {TARGET} ({len(writer.pages)} pages, {len(out.getvalue())} bytes)")


if __name__ == "__main__":
    main()
