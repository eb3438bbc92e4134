"""Point labels that never overlap: each label takes the nearest free spot around its point.

Methods often land on top of each other (several variants of one method, or every method that
failed to forget at the target's corner), and labels drawn at a fixed offset then print over
each other. Here each label tries offsets on growing rings around its point, in display space,
and keeps the first where its text box overlaps no marker, no error bar, no label already
placed, and stays inside the axes; a label moved away from its point gets a thin leader line. A label with no
free spot within the largest ring is left out: the plot's legend names every point anyway.
"""

from __future__ import annotations

from typing import Any

# Ring radii (points) and directions tried, nearest first; right-up is the reading default.
RADII = (4.0, 10.0, 18.0, 28.0, 40.0, 54.0, 70.0)
DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
LEADER_FROM = 10.0  # offsets beyond this radius get a leader line back to the point
LABEL_GID = "point-label"


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def place_labels(ax, points: list[tuple[float, float, str, Any]], renderer,
                 marker_pt: float = 7.0, fontsize: float = 8.0) -> list:
    """Annotate each ``(x, y, text, colour)`` (data coordinates) of ``ax`` without overlaps.

    Call once the axes' limits and position are final (after the figure's layout ran), with
    the renderer the figure will be saved by. Returns the annotations placed (``gid``
    ``"point-label"``); the labels left out are those with no free spot.
    """
    from matplotlib.transforms import Bbox

    px_per_pt = ax.figure.dpi / 72.0
    r = marker_pt * px_per_pt
    xy = [ax.transData.transform((x, y)) for x, y, _, _ in points]
    obstacles = [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in xy]
    # Error bars (the axes' line collections) are obstacles too, as thin boxes per segment.
    pad = 1.5 * px_per_pt
    for coll in ax.collections:
        if type(coll).__name__ != "LineCollection":
            continue
        for seg in coll.get_segments():
            if len(seg):
                d = ax.transData.transform(seg)
                obstacles.append(Bbox.from_extents(d[:, 0].min() - pad, d[:, 1].min() - pad,
                                                   d[:, 0].max() + pad, d[:, 1].max() + pad))
    frame = ax.get_window_extent(renderer)
    placed = []
    for (x, y, text, colour) in points:
        chosen = None
        for radius in RADII:
            for dx, dy in DIRECTIONS:
                norm = (dx * dx + dy * dy) ** 0.5
                offset = (dx * radius / norm, dy * radius / norm)
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                trial = ax.annotate(text, (x, y), xytext=offset, textcoords="offset points",
                                    ha=ha, va=va, fontsize=fontsize, color=colour)
                box = trial.get_window_extent(renderer)
                trial.remove()
                inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                          and box.y1 <= frame.y1)
                if inside and not any(_overlaps(box, o) for o in obstacles):
                    chosen = (offset, ha, va, radius, box)
                    break
            if chosen:
                break
        if chosen is None:
            continue
        offset, ha, va, radius, box = chosen
        arrow = ({"arrowstyle": "-", "color": colour, "lw": 0.6, "shrinkA": 0, "shrinkB": 3}
                 if radius > LEADER_FROM else None)
        ann = ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va,
                          fontsize=fontsize, color=colour, arrowprops=arrow, gid=LABEL_GID)
        ann.set_in_layout(False)  # positions are final: the layout must not move the axes now
        obstacles.append(box)
        placed.append(ann)
    return placed
