"""Shape rasterising shared by the two generators the project draws itself: the embedded `shapes`
dataset (`dra.data.generated.shapes`) and the pocket world (`dra.data.generated.world`).

`draw_shape` draws one shape of radius `r` at (cx, cy) onto a PIL `ImageDraw`; `Geometry` holds the
few proportions in which the two generators differ (each generator's pixels, and the pocket CLIP's
pretraining distribution, depend on them, so each keeps its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import ImageDraw

SHAPES = ("circle", "ring", "square", "diamond", "triangle", "star", "hexagon", "cross", "heart", "arrow", "crescent")


@dataclass(frozen=True)
class Geometry:
    scale: float = 1.2  # square, diamond, triangle, star: circumradius over r
    star_inner: float = 0.45  # the star's inner radius over its outer
    hexagon: float = 1.05  # hexagon circumradius over r
    cross_arm: float = 0.38  # half the cross's arm width over r
    arrow_shaft: float = 0.28  # half the shaft width over r
    arrow_head: float = 0.7  # half the head width over r
    crescent_offset: float = 0.5  # the bite's offset over r


def polygon(n: int, cx: float, cy: float, r: float, angle: float, radii=(1.0,)) -> list[tuple[float, float]]:
    """A regular n-gon (or star, with radii alternating) around (cx, cy), first vertex at `angle`."""
    m = n * len(radii)
    return [
        (
            cx + r * radii[k % len(radii)] * math.cos(angle + 2 * math.pi * k / m),
            cy + r * radii[k % len(radii)] * math.sin(angle + 2 * math.pi * k / m),
        )
        for k in range(m)
    ]


def rotated(points, cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    """`points` (relative to the centre) rotated by `angle` and moved to (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    tilt: float,
    spin: float,
    fill=255,
    geometry: Geometry = Geometry(),
) -> None:
    """One of `SHAPES`: `tilt` turns the shapes whose orientation is part of their name (a square
    stays a square), `spin` the ones that look alike at any angle (hexagon, arrow, crescent's bite)."""
    g = geometry
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=int(0.32 * r))
    elif shape == "square":
        draw.polygon(polygon(4, cx, cy, r * g.scale, math.pi / 4 + tilt), fill=fill)
    elif shape == "diamond":
        draw.polygon(
            rotated([(0, -r * g.scale), (r * 0.7, 0), (0, r * g.scale), (-r * 0.7, 0)], cx, cy, tilt), fill=fill
        )
    elif shape == "triangle":
        draw.polygon(polygon(3, cx, cy + 0.15 * r, r * g.scale, -math.pi / 2 + tilt), fill=fill)
    elif shape == "star":
        draw.polygon(polygon(5, cx, cy, r * g.scale, -math.pi / 2 + tilt, radii=(1.0, g.star_inner)), fill=fill)
    elif shape == "hexagon":
        draw.polygon(polygon(6, cx, cy, r * g.hexagon, spin), fill=fill)
    elif shape == "cross":
        w = g.cross_arm * r
        pts = [
            (-w, -r),
            (w, -r),
            (w, -w),
            (r, -w),
            (r, w),
            (w, w),
            (w, r),
            (-w, r),
            (-w, w),
            (-r, w),
            (-r, -w),
            (-w, -w),
        ]
        draw.polygon(rotated(pts, cx, cy, tilt), fill=fill)
    elif shape == "heart":
        q = 0.52 * r
        draw.ellipse([cx - 2 * q, cy - 0.9 * r, cx, cy - 0.9 * r + 2 * q], fill=fill)
        draw.ellipse([cx, cy - 0.9 * r, cx + 2 * q, cy - 0.9 * r + 2 * q], fill=fill)
        draw.polygon(
            [(cx - 1.95 * q, cy - 0.9 * r + 1.25 * q), (cx + 1.95 * q, cy - 0.9 * r + 1.25 * q), (cx, cy + r)],
            fill=fill,
        )
    elif shape == "arrow":
        a, h = g.arrow_shaft * r, g.arrow_head * r
        pts = [(-r, -a), (0.1 * r, -a), (0.1 * r, -h), (r, 0), (0.1 * r, h), (0.1 * r, a), (-r, a)]
        draw.polygon(rotated(pts, cx, cy, spin), fill=fill)
    elif shape == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        dx, dy = g.crescent_offset * r * math.cos(spin), g.crescent_offset * r * math.sin(spin)
        rr = 0.85 * r
        draw.ellipse([cx + dx - rr, cy + dy - rr, cx + dx + rr, cy + dy + rr], fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")
