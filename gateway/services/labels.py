"""Return labels: a printable PDF (reportlab) with the RMA number as Code 128 and QR.

The label is 100 mm x 150 mm (the common 4x6 inch thermal format): return address, RMA
number in large text, a Code 128 barcode and a QR code both encoding exactly the RMA
number (what the station's scanner reads), the order reference and the customer.
"""

from __future__ import annotations

import io

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode import code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from gateway.models import Rma

PAGE_W_MM = 100.0
PAGE_H_MM = 150.0
QUIET_MM = 6.0


def render_label(rma: Rma, return_address: str) -> bytes:
    """Return the PDF bytes of ``rma``'s return label.

    Args:
        rma: the RMA (number, order reference, customer).
        return_address: lines separated by newlines (or a literal ``\\n``).
    """
    buf = io.BytesIO()
    width, height = PAGE_W_MM * mm, PAGE_H_MM * mm
    pdf = canvas.Canvas(buf, pagesize=(width, height))
    pdf.setTitle(f"Return label {rma.number}")
    pdf.setAuthor("returns-sorter")
    left = 8 * mm
    y = height - 12 * mm
    pdf.setFont("Helvetica-Bold", 10)
    pdf.drawString(left, y, "RETURN TO")
    pdf.setFont("Helvetica", 10)
    for line in return_address.replace("\\n", "\n").splitlines()[:6]:
        y -= 5 * mm
        pdf.drawString(left, y, line)
    y -= 12 * mm
    pdf.setFont("Helvetica-Bold", 20)
    pdf.drawString(left, y, rma.number)
    y -= 6 * mm
    pdf.setFont("Helvetica", 9)
    pdf.drawString(left, y, f"Order {rma.order_ref}")
    if rma.customer:
        pdf.drawString(left + 45 * mm, y, f"Customer {rma.customer}"[:40])

    barcode = code128.Code128(
        rma.number, barWidth=0.42 * mm, barHeight=22 * mm, quiet=True, lquiet=QUIET_MM * mm
    )
    y -= 28 * mm
    barcode.drawOn(pdf, (width - barcode.width) / 2, y)

    qr_size = 42 * mm
    qr = QrCodeWidget(rma.number, barLevel="M")
    x0, y0, x1, y1 = qr.getBounds()
    drawing = Drawing(
        qr_size, qr_size, transform=[qr_size / (x1 - x0), 0, 0, qr_size / (y1 - y0), 0, 0]
    )
    drawing.add(qr)
    renderPDF.draw(drawing, pdf, (width - qr_size) / 2, 10 * mm)
    pdf.showPage()
    pdf.save()
    return buf.getvalue()
