"""The application icon (resources/icons): a stylised chest radiograph with a heat-map spot.

``python -m cxrviewer.gui.icons`` redraws ``cxrviewer.svg`` and the PNGs with matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from ..core.paths import resources_dir

PNG_SIZES = (256, 64, 32)


def icons_dir() -> Path:
    return resources_dir() / "icons"


def svg_path() -> Path:
    return icons_dir() / "cxrviewer.svg"


def png_path(size: int) -> Path:
    return icons_dir() / f"cxrviewer-{size}.png"


def app_icon():
    """The window icon built from the installed PNGs (an empty QIcon if none is installed)."""
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    icon = QIcon()
    for size in PNG_SIZES:
        if png_path(size).is_file():
            icon.addFile(str(png_path(size)), QSize(size, size))
    return icon


def _lung_paths():
    from matplotlib.path import Path as MPath

    c4 = MPath.CURVE4
    left = MPath(
        [(100, 58), (80, 62), (58, 102), (52, 152), (48, 182), (50, 200), (62, 206), (80, 211), (100, 202),
         (116, 197), (120, 160), (118, 112), (112, 78), (110, 66), (106, 58), (100, 58)],
        [MPath.MOVETO, c4, c4, c4, c4, c4, c4, c4, c4, c4, c4, c4, c4, c4, c4, c4])
    right = MPath(
        [(156, 58), (176, 62), (198, 102), (204, 152), (208, 182), (206, 200), (194, 206), (180, 210), (164, 204),
         (150, 200), (146, 182), (150, 164), (144, 146), (142, 114), (140, 92), (144, 78), (146, 66), (150, 58),
         (156, 58)],
        [MPath.MOVETO, *[c4] * 18])
    return left, right


def draw_icon():
    """A matplotlib Figure of the icon in a 256 x 256 coordinate box (y down)."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, PathPatch
    from matplotlib.path import Path as MPath

    fig = Figure(figsize=(1, 1), dpi=256)
    fig.patch.set_alpha(0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 256)
    ax.set_ylim(256, 0)
    ax.set_axis_off()
    yy, xx = np.mgrid[0:256, 0:256] / 255.0

    # Rounded tile with a diagonal blue gradient.
    tile = FancyBboxPatch((12, 12), 232, 232, boxstyle="round,pad=0,rounding_size=50", fc="none", ec="none")
    ax.add_patch(tile)
    t = np.clip(0.55 * yy + 0.45 * xx, 0, 1)[..., None]
    bg = (1 - t) * np.array([0.15, 0.29, 0.47]) + t * np.array([0.04, 0.08, 0.14])
    ax.imshow(bg, extent=(0, 256, 256, 0), clip_path=tile, interpolation="bilinear", zorder=1)
    ax.add_patch(FancyBboxPatch((12.5, 12.5), 231, 231, boxstyle="round,pad=0,rounding_size=49.5", fc="none",
                                ec=(1, 1, 1, 0.16), lw=0.6, zorder=2))

    left, right = _lung_paths()
    for lung, hot in ((left, True), (right, False)):
        patch = PathPatch(lung, fc="none", ec="none")
        ax.add_patch(patch)
        shade = np.clip(0.25 + 0.55 * np.hypot(xx - 0.5, (yy - 0.55) * 1.2), 0, 1)[..., None]
        lung_rgb = (1 - shade) * np.array([0.13, 0.17, 0.23]) + shade * np.array([0.42, 0.49, 0.58])
        ax.imshow(lung_rgb, extent=(0, 256, 256, 0), clip_path=patch, interpolation="bilinear", zorder=3)
        if hot:
            d2 = ((xx * 255 - 84) ** 2 + (yy * 255 - 146) ** 2) / (2 * 24.0 ** 2)
            heat = np.exp(-d2)
            from matplotlib import colormaps

            rgba = colormaps["jet"](0.12 + 0.88 * heat)
            rgba[..., 3] = np.clip((heat - 0.05) * 1.9, 0, 0.95)
            ax.imshow(rgba, extent=(0, 256, 256, 0), clip_path=patch, interpolation="bilinear", zorder=4)
        for y in (96, 122, 148, 174):
            xs = np.linspace(36, 128, 40) if lung is left else np.linspace(220, 128, 40)
            u = np.abs(xs - 128) / 92
            ys = y - 22 * np.sin(np.pi * (1 - u) * 0.9) * u + 6 * (1 - u)
            (rib,) = ax.plot(xs, ys, color=(0.93, 0.95, 0.98, 0.30), lw=2.4, solid_capstyle="round", zorder=5)
            rib.set_clip_path(patch)
        ax.add_patch(PathPatch(lung, fc="none", ec=(0.85, 0.9, 0.97, 0.35), lw=1.0, zorder=6))

    bone = (0.93, 0.95, 0.98)
    trachea = MPath([(128, 34), (128, 86)], [MPath.MOVETO, MPath.LINETO])
    ax.add_patch(PathPatch(trachea, fc="none", ec=bone, lw=3.6, capstyle="round", zorder=7))
    for sx in (-1, 1):
        branch = MPath([(128, 84), (128 + 6 * sx, 92), (128 + 12 * sx, 96), (128 + 20 * sx, 102)],
                       [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4])
        ax.add_patch(PathPatch(branch, fc="none", ec=bone, lw=3.0, capstyle="round", zorder=7))
    for i, y in enumerate(range(100, 206, 21)):
        ax.add_patch(FancyBboxPatch((121.5, y), 13, 16, boxstyle="round,pad=0,rounding_size=4",
                                    fc=(*bone, 0.9 - 0.08 * i), ec="none", zorder=7))
    dia = MPath([(50, 216), (90, 204), (166, 204), (206, 216)], [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4])
    ax.add_patch(PathPatch(dia, fc="none", ec=(*bone, 0.5), lw=2.2, capstyle="round", zorder=7))
    return fig


def render_icons(sizes=PNG_SIZES) -> list[Path]:
    """Write ``cxrviewer.svg`` and ``cxrviewer-<size>.png`` into the icons folder."""
    icons_dir().mkdir(parents=True, exist_ok=True)
    fig = draw_icon()
    out = [svg_path()]
    fig.savefig(svg_path(), transparent=True, metadata={"Date": None})
    for size in sizes:
        fig.savefig(png_path(size), dpi=size, transparent=True)
        out.append(png_path(size))
    return out


if __name__ == "__main__":
    for p in render_icons():
        print(p)
