"""The figure of `python -m vmp_jax.visualize`, drawn from the numbers of vmp_jax.visualize.panels.

`draw` makes a matplotlib Figure (no pyplot state) of the four panels per time step and the attention curve over a
histogram of D: the PNG grid (columns = time steps) or, animated, one GIF frame (the panels side by side);
`render` turns it into pixels; `image_size` says how many, before anything is drawn. matplotlib is imported only
when drawing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from vmp_jax.visualize.panels import Curve, Panels, curve_title, prompt_image

ROW_LABELS = ("frame $X_{t+1}$", "difference $D_t$", "attention $A_t$", "prompt $P_t$")

# Figure layout in inches. The PNG is a grid (rows = the four kinds of panel, columns = time steps, colourbars
# right of the D and A rows); a GIF frame is a strip (the four panels side by side, colourbars under D and A).
# The curve is on the right of both. The figure's width and height are rounded up to QUANTUM so that, for any
# integer dpi, width * dpi is a whole number and the image is exactly `image_size` pixels (Agg truncates).
PANEL = {"grid": 1.5, "strip": 2.0}  # panel height; width = height * aspect ratio (clipped to [0.5, 3])
GAP = {"grid": 0.08, "strip": 0.15}
LEFT, TOP = 0.35, 0.7
BOTTOM = {"grid": 0.3, "strip": 0.75}
COLORBAR = (0.1, 0.12, 0.5)  # gap before, thickness, room for tick labels after
CURVE = (0.75, 3.4, 0.85)  # room for the y label, width, room for the histogram's axis
QUANTUM = 0.25


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the axes go; `panel(kind, column)` etc. return figure fractions [left, bottom, width, height]."""

    width: float  # figure size, inches
    height: float
    panel_width: float
    num_columns: int  # time steps shown (grid) or 1 (strip)
    strip: bool

    def _rect(self, left: float, bottom: float, width: float, height: float) -> list[float]:
        return [left / self.width, bottom / self.height, width / self.width, height / self.height]

    @property
    def _panel_height(self) -> float:
        return PANEL["strip" if self.strip else "grid"]

    def _cell(self, kind: int, column: int) -> tuple[float, float]:
        """(left, bottom) of a panel, inches."""
        if self.strip:
            return LEFT + kind * (self.panel_width + GAP["strip"]), BOTTOM["strip"]
        return (
            LEFT + column * (self.panel_width + GAP["grid"]),
            BOTTOM["grid"] + (3 - kind) * (PANEL["grid"] + GAP["grid"]),
        )

    def panel(self, kind: int, column: int) -> list[float]:
        return self._rect(*self._cell(kind, column), self.panel_width, self._panel_height)

    def colorbar(self, kind: int) -> list[float]:
        left, bottom = self._cell(kind, self.num_columns - 1)
        if self.strip:
            return self._rect(left, bottom - COLORBAR[0] - COLORBAR[1], self.panel_width, COLORBAR[1])
        return self._rect(left + self.panel_width + COLORBAR[0], bottom, COLORBAR[1], PANEL["grid"])

    def curve(self) -> list[float]:
        panels_right, bottom = self._cell(3 if self.strip else 0, self.num_columns - 1)
        left = panels_right + self.panel_width + CURVE[0] + (0.0 if self.strip else sum(COLORBAR))
        if self.strip:
            return self._rect(left, bottom, CURVE[1], PANEL["strip"])
        grid_height = 4 * PANEL["grid"] + 3 * GAP["grid"]
        height = min(grid_height - 1.0, CURVE[1])  # room for the title above and the x label below
        return self._rect(left, BOTTOM["grid"] + 0.45 + (grid_height - 1.0 - height) / 2, CURVE[1], height)


def layout(frame_size: Sequence[int], num_steps: int, animated: bool = False) -> Layout:
    """The PNG grid of `num_steps` time steps, or (animated) the strip of one GIF frame, for frames (H, W)."""
    style = "strip" if animated else "grid"
    panel_width = PANEL[style] * float(np.clip(frame_size[1] / frame_size[0], 0.5, 3.0))
    columns = 4 if animated else num_steps  # panels side by side
    width = LEFT + columns * (panel_width + GAP[style]) - GAP[style] + sum(CURVE)
    height = TOP + BOTTOM[style] + (PANEL["strip"] if animated else 4 * PANEL["grid"] + 3 * GAP["grid"])
    if not animated:
        width += sum(COLORBAR)
    round_up = lambda inches: float(QUANTUM * np.ceil(inches / QUANTUM))  # noqa: E731
    return Layout(round_up(width), round_up(height), panel_width, 1 if animated else num_steps, animated)


def image_size(frame_size: Sequence[int], num_steps: int, dpi: int, animated: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of `num_steps` time steps, or of each GIF frame (animated)."""
    lay = layout(frame_size, num_steps, animated)
    return int(lay.width * dpi), int(lay.height * dpi)


def draw(
    panels: Panels,
    curve: Curve,
    pn: str,
    steps: Sequence[int],
    frame_numbers: Sequence[int],
    title: str,
    dpi: int = 100,
    animated: bool = False,
):
    """A matplotlib Figure (no pyplot state): the PNG grid of time steps `steps` (0-based), or (animated) the GIF
    frame of the single step in `steps`; the curve's histogram is of D over `steps`."""
    from matplotlib.figure import Figure

    steps = list(steps)
    lay = layout(panels.frames.shape[1:3], len(steps), animated)
    fig = Figure(figsize=(lay.width, lay.height), dpi=dpi)
    limit = max(float(np.abs(panels.differences).max()), 1e-3)
    styles = ({}, dict(cmap="RdBu_r", vmin=-limit, vmax=limit), dict(cmap="magma", vmin=0.0, vmax=1.0), {})
    for column, t in enumerate(steps):
        pair = f"t = {t + 1}: frames {frame_numbers[t]}→{frame_numbers[t + 1]}"
        images = (panels.frames[t + 1], panels.differences[t], panels.attention[t], prompt_image(panels.prompts[t]))
        for kind, (image, style) in enumerate(zip(images, styles)):
            ax = fig.add_axes(lay.panel(kind, column))
            shown = ax.imshow(image, interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if animated:
                ax.set_title(ROW_LABELS[kind], fontsize=9)
            elif column == 0:
                ax.set_ylabel(ROW_LABELS[kind], fontsize=9)
            if kind == 0 and not animated:
                ax.set_title(pair, fontsize=8)
            if kind in (1, 2) and column == len(steps) - 1:
                bar = fig.colorbar(
                    shown, cax=fig.add_axes(lay.colorbar(kind)), orientation="horizontal" if animated else "vertical"
                )
                bar.ax.tick_params(labelsize=7)
    if animated:
        title = f"{title}\n{pair} of {len(frame_numbers) - 1}"
    fig.text(0.1 / lay.width, 1.0 - 0.12 / lay.height, title, fontsize=9, va="top")
    draw_curve(fig.add_axes(lay.curve()), curve, pn, panels.differences[steps], len(steps) == 1)
    return fig


def draw_curve(ax, curve: Curve, pn: str, differences: np.ndarray, one_step: bool) -> None:
    """A(D) in front of a histogram of `differences` (log counts, on a second y axis)."""
    hist = ax.twinx()
    counts, edges = np.histogram(differences, bins=80, range=(-1.0, 1.0))
    hist.stairs(counts, edges, fill=True, color="0.85")
    hist.set_yscale("log")
    hist.set_ylim(bottom=0.8)
    hist.set_ylabel(f"pixels with this D, {'this step' if one_step else 'all steps'} (log)", fontsize=8, color="0.4")
    hist.tick_params(labelsize=7, colors="0.4")
    ax.set_zorder(hist.get_zorder() + 1)  # the curve in front of the histogram
    ax.patch.set_visible(False)
    if curve.per_pixel:
        ax.fill_between(curve.d, curve.low, curve.high, color="C1", alpha=0.3, linewidth=0)
    ax.plot(curve.d, curve.mean, color="C1", linewidth=2)
    if "shift_b" in curve.coefficients:
        ax.axvline(curve.coefficients["shift_b"], color="C1", linestyle=":", linewidth=1)
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("signed luma difference D", fontsize=8)
    ax.set_ylabel("attention A", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(curve_title(curve, pn), fontsize=8)


def render(fig) -> np.ndarray:
    """The figure's pixels, (height, width, 3) uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
