"""Charts drawn by the server as inline SVG: nothing is loaded from anywhere to see them."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 22, 22


def _nice_top(peak: float) -> float:
    """A round upper edge for the y axis: 1, 2 or 5 times a power of ten, at least `peak`."""
    if peak <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= peak:
        step *= 10
    while step > peak * 10:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= peak:
            return step * factor
    return step * 10


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


def chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    unit: str = "",
) -> str:
    """An SVG chart of one or more series (name, colour, values), as bars side by side.

    `x_labels` names each slot (hours); every few are written under the axis.
    """
    slots = max(len(x_labels), 1)
    top = _nice_top(max((v for _, _, values in series for v in values), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot_w = plot_w / slots
    bar_w = max(slot_w * 0.8 / max(len(series), 1), 1.0)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="14" class="title">{escape(title)}</text>',
        _legend(series),
        _axes(top, unit, plot_w, plot_h),
    ]
    for k, (name, colour, values) in enumerate(series):
        for i, value in enumerate(values):
            h = plot_h * value / top
            x = LEFT + i * slot_w + slot_w * 0.1 + k * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{escape(colour)}"><title>{escape(x_labels[i])}: '
                f"{escape(name)} {_fmt(value)}{escape(unit)}</title></rect>"
            )
    step = max(1, slots // 8)
    for i in range(0, slots, step):
        x = LEFT + i * slot_w + slot_w / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" class="tick" text-anchor="middle">'
            f"{escape(x_labels[i])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _axes(top: float, unit: str, plot_w: float, plot_h: float) -> str:
    base = TOP + plot_h
    return (
        f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}" class="axis"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT + plot_w}" y2="{TOP}" class="grid"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" class="tick" text-anchor="end">'
        f"{_fmt(top)}{escape(unit)}</text>"
        f'<text x="{LEFT - 4}" y="{base}" class="tick" text-anchor="end">0</text>'
    )


def _legend(series: Sequence[tuple[str, str, Sequence[float]]]) -> str:
    out, x = [], WIDTH - RIGHT
    for name, colour, _ in reversed(series):
        x -= 8 + 7 * len(name)
        out.append(
            f'<rect x="{x}" y="5" width="10" height="10" fill="{escape(colour)}"/>'
            f'<text x="{x + 14}" y="14" class="tick">{escape(name)}</text>'
        )
        x -= 14
    return "".join(out)
