"""What the quality and selection reports share: the JSON cleaner, number formatting and the
inline SVG charts of their self-contained HTML pages.

Charts are plain ``<svg>`` elements meant to sit inside an HTML page: no script, no namespace URL,
no external reference, so a report opens offline and names no web address.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

MUTED = "#59636e"


def json_safe(value):
    """NaN and infinities -> None, tuples -> lists (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fmt_number(x: float | None, digits: int = 3, *, missing: str = "n/a") -> str:
    """``x`` with ``digits`` significant digits (``g``: scientific when very small or large);
    ``missing`` for None; ``nan``, ``inf`` and ``-inf`` as such."""
    if x is None:
        return missing
    return f"{x:.{digits}g}"


def esc(value) -> str:
    """``value`` as HTML text (quotes escaped too, so it may sit in an attribute)."""
    return html.escape(str(value), quote=True)


def clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, the last an ellipsis when it was longer."""
    return text if len(text) <= n else text[: n - 1] + "…"


def bar_chart(
    items: Sequence[tuple[str, float | None, str]],
    *,
    title: str = "",
    errors: dict[str, float] | None = None,
    value_text: Callable[[float], str] = fmt_number,
    width: int = 520,
) -> str:
    """Horizontal bars, one per (label, value, css colour), each followed by ``value_text(value)``;
    negative values extend left of zero, ``errors`` draws a +-error whisker per label. Items
    without a finite value are left out; no item left, no chart (empty string)."""
    items = [(n, v, c) for n, v, c in items if v is not None and math.isfinite(v)]
    if not items:
        return ""
    bar_h, left, right = 16, 150, 90
    head = 22 if title else 4
    height = head + 6 + bar_h * len(items)
    lo = min(0.0, min(v for _, v, _ in items))
    hi = max(0.0, max(v + (errors or {}).get(n, 0.0) for n, v, _ in items))
    span = (hi - lo) or 1.0

    def xpos(v: float) -> float:
        return left + (v - lo) / span * (width - left - right)

    parts = [f'<svg width="{width}" height="{height}" font-size="11" role="img" aria-label="{esc(title or "bars")}">']
    if title:
        parts.append(f'<text x="0" y="14" font-weight="600">{esc(title)}</text>')
    zero = xpos(0.0)
    for i, (name, value, colour) in enumerate(items):
        y = head + i * bar_h
        x0, x1 = sorted((zero, xpos(value)))
        parts.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{esc(clip(name, 22))}</text>')
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 0.5):.1f}" height="{bar_h - 4}" '
            f'fill="{colour}"><title>{esc(name)}: {fmt_number(value, 4)}</title></rect>'
        )
        err = (errors or {}).get(name)
        if err:
            parts.append(
                f'<line x1="{xpos(value - err):.1f}" x2="{xpos(value + err):.1f}" y1="{y + 8}" '
                f'y2="{y + 8}" stroke="#333"/>'
            )
        parts.append(f'<text x="{max(x1, zero) + 4:.1f}" y="{y + 11}" fill="{MUTED}">{esc(value_text(value))}</text>')
    parts.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{head - 2}" y2="{height}" stroke="#999"/>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None], str]],
    *,
    width: int = 560,
    height: int = 200,
    rotate: bool = False,
    percent: bool = False,
) -> str:
    """Vertical bars: one group per label, one bar per (name, values, css colour) series; with
    ``percent`` the values are shares shown as percentages, with ``rotate`` the labels slant."""
    n = max(len(labels), 1)
    top = max([v for _, values, _ in series for v in values if v is not None] + [0]) or 1.0
    bottom_pad = 70 if rotate else 20
    plot_h = height - bottom_pad - 10
    left = 44
    slot = (width - left - 6) / n
    bar = slot * 0.8 / max(len(series), 1)
    out = [f'<svg width="{width}" height="{height}" font-size="10">']
    for frac in (0, 0.5, 1):
        y = 10 + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        label = f"{100 * top * frac:.3g}%" if percent else fmt_number(top * frac)
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" fill="{MUTED}">{label}</text>')
    for i, lab in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, (name, values, color) in enumerate(series):
            v = values[i] if i < len(values) and values[i] is not None else 0
            h = plot_h * v / top
            out.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{10 + plot_h - h:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{esc(lab)}: {esc(name)} '
                f"{(100 * v if percent else v):.4g}{'%' if percent else ''}</title></rect>"
            )
        tx = left + i * slot + slot / 2
        ty = 10 + plot_h + 12
        text = esc(clip(str(lab), 18))
        if rotate:
            out.append(
                f'<text x="{tx:.1f}" y="{ty:.1f}" transform="rotate(45 {tx:.1f} {ty:.1f})" fill="{MUTED}">{text}</text>'
            )
        else:
            out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="middle" fill="{MUTED}">{text}</text>')
    out.append("</svg>")
    return "".join(out)


def cdf_chart(grids: Sequence[tuple[Sequence[float], str, float]], *, width: int = 420, height: int = 200) -> str:
    """Cumulative distributions drawn from quantile grids, one line per (grid, css colour,
    stroke width); the grids are equally spaced quantiles, lowest first."""
    lo = min(min(g) for g, _, _ in grids)
    hi = max(max(g) for g, _, _ in grids)
    span = (hi - lo) or 1.0
    left, bottom = 40, 24
    plot_w, plot_h = width - left - 8, height - bottom - 8

    def path(grid: Sequence[float]) -> str:
        n = len(grid)
        step = max(1, n // 250)  # 250 points are plenty for the eye
        pts = []
        for k in list(range(0, n, step)) + [n - 1]:
            x = left + plot_w * (grid[k] - lo) / span
            y = 8 + plot_h * (1 - (k + 0.5) / n)
            pts.append(f"{x:.1f},{y:.1f}")
        return " ".join(pts)

    out = [
        f'<svg width="{width}" height="{height}" font-size="10">',
        f'<rect x="{left}" y="8" width="{plot_w}" height="{plot_h}" fill="none" stroke="#eaeef2"/>',
    ]
    for grid, colour, stroke in grids:
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{stroke}" points="{path(grid)}"/>')
    out += [
        f'<text x="{left}" y="{height - 6}" fill="{MUTED}">{fmt_number(lo)}</text>',
        f'<text x="{width - 8}" y="{height - 6}" text-anchor="end" fill="{MUTED}">{fmt_number(hi)}</text>',
        f'<text x="{left - 4}" y="12" text-anchor="end" fill="{MUTED}">1</text>',
        f'<text x="{left - 4}" y="{8 + plot_h}" text-anchor="end" fill="{MUTED}">0</text></svg>',
    ]
    return "".join(out)


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], *, cell: int = 18) -> str:
    """Correlation heatmap of ``names`` x ``names``: blue negative, red positive, white zero, grey missing."""
    if not names:
        return ""
    n = len(names)
    left, top = 150, 150
    size_w, size_h = left + n * cell + 10, top + n * cell + 10
    parts = [f'<svg width="{size_w}" height="{size_h}" font-size="11" role="img" aria-label="correlation heatmap">']
    for i, name in enumerate(names):
        parts.append(
            f'<text x="{left - 4}" y="{top + i * cell + cell * 0.7:.1f}" text-anchor="end">{esc(clip(name, 22))}</text>'
        )
        x = left + i * cell + cell * 0.7
        parts.append(f'<text transform="translate({x:.1f},{top - 4}) rotate(-60)">{esc(clip(name, 22))}</text>')
    for i in range(n):
        for j in range(n):
            v = matrix[i][j]
            if v is None or not math.isfinite(v):
                colour = "#ddd"
            else:
                t = max(-1.0, min(1.0, v))
                if t >= 0:
                    colour = f"rgb(255,{int(255 * (1 - t))},{int(255 * (1 - t))})"
                else:
                    colour = f"rgb({int(255 * (1 + t))},{int(255 * (1 + t))},255)"
            parts.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{colour}"><title>{esc(names[i])} / {esc(names[j])}: {fmt_number(v)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)
