"""Server-side inline SVG charts for the status page (no JavaScript library needed)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 160
HEIGHT = 36


def bars(series: Sequence[int], labels: Sequence[str], title: str) -> Markup:
    """A small bar chart of ``series`` (one bar per label) as accessible inline SVG.

    The SVG has ``role="img"`` and an ``aria-label`` reading every value, and each bar a
    ``<title>`` (hover / long-press), so the numbers are never conveyed by shape alone.
    """
    n = max(1, len(series))
    peak = max([*series, 1])
    gap = 2
    width = (WIDTH - gap * (n - 1)) / n
    reading = ", ".join(f"{label}: {value}" for label, value in zip(labels, series, strict=False))
    parts = [
        f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT + 2}" width="{WIDTH}" '
        f'height="{HEIGHT + 2}" role="img" aria-label="{escape(title)}: {escape(reading)}">'
    ]
    for i, (label, value) in enumerate(zip(labels, series, strict=False)):
        h = 0 if value == 0 else max(2.0, HEIGHT * value / peak)
        x = i * (width + gap)
        parts.append(
            f'<rect x="{x:.1f}" y="{HEIGHT - h:.1f}" width="{width:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
    parts.append(f'<line x1="0" y1="{HEIGHT + 1}" x2="{WIDTH}" y2="{HEIGHT + 1}" class="axis"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # labels are escaped above, the rest are numbers  # nosec B704
