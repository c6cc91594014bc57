"""The certificate of completion: one A4 landscape page as a PDF (fpdf2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Certificate:
    """What the certificate states."""

    name: str
    email: str
    course: str
    cohort: str
    started: date
    finished: date
    lessons: int
    confirmed: int
    checks_right: int
    checks: int


def certificate_pdf(cert: Certificate) -> bytes:
    """The certificate as PDF bytes; text outside Latin-1 is written with a close ASCII form."""
    from fpdf import FPDF  # loaded only when a certificate is made

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title(f"Certificate of completion: {_latin(cert.course)}")
    pdf.set_author("drip")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_draw_color(4, 120, 87)
    pdf.set_line_width(1.2)
    pdf.rect(12, 12, 273, 186)
    pdf.set_line_width(0.4)
    pdf.rect(16, 16, 265, 178)
    pdf.set_text_color(17, 24, 39)
    pdf.set_font("Helvetica", "B", 30)
    pdf.set_y(38)
    pdf.cell(0, 14, "Certificate of completion", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 14)
    pdf.ln(6)
    pdf.cell(0, 8, "This certifies that", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 24)
    pdf.ln(2)
    pdf.cell(0, 14, _latin(cert.name or cert.email), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 14)
    pdf.ln(2)
    pdf.cell(0, 8, "completed the course", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 10, _latin(cert.course), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 12)
    pdf.ln(6)
    lines = [
        f"{cert.started:%d %B %Y} to {cert.finished:%d %B %Y}",
        f"{cert.lessons} lessons received, {cert.confirmed} confirmed, "
        f"{cert.checks_right} of {cert.checks} checks answered right",
        f"Cohort: {_latin(cert.cohort)}",
    ]
    for line in lines:
        pdf.cell(0, 7, line, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(176)
    pdf.set_font("Helvetica", "", 9)
    pdf.set_text_color(75, 85, 99)
    pdf.cell(0, 6, f"Issued by drip on {cert.finished:%d %B %Y}", align="C")
    return bytes(pdf.output())


def _latin(text: str) -> str:
    """Text the core PDF fonts can show: Latin-1 kept, typographic marks simplified."""
    simple = {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."}
    text = "".join(simple.get(c, c) for c in text)
    return text.encode("latin-1", "replace").decode("latin-1")
