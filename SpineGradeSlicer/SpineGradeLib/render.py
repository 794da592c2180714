"""Offscreen screenshots of a result without a GPU or a display: reslice with numpy, draw with PIL.

A screenshot is a plane in RAS (sagittal by default: columns run anterior -> posterior, rows
superior -> inferior, as a sagittal slice view shows it), sampled from the input image, the label
volume and a heatmap, composited into an RGB image, with the disc boxes and the vertebra and level
names drawn on top. The colours are those of the scene (shipped colour table, heat colour map).

The renderer needs no OpenGL, so the same PNGs come out on a headless server, in CI and inside
Slicer. :class:`SliceImage` keeps the mapping from RAS to pixels so tests can check where things are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.results import StudyResult

from . import colortable

LABEL_ALPHA = 0.35
BOX_RGB = (60, 255, 90)
HIGHLIGHT_RGB = (255, 255, 0)
TEXT_RGB = (255, 255, 255)
MIN_HEIGHT_PX = 512


@dataclass
class SlicePlane:
    """``ras = origin + col * pixel_mm * u + row * pixel_mm * v`` for pixel centres (col, row)."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    pixel_mm: float
    width: int
    height: int

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.u, self.v)

    def grid_ras(self) -> np.ndarray:
        cols, rows = np.meshgrid(np.arange(self.width), np.arange(self.height))
        return (self.origin[None, None, :] + (cols[..., None] * self.u + rows[..., None] * self.v) * self.pixel_mm)

    def to_pixel(self, ras: Sequence[float]) -> Tuple[float, float]:
        d = np.asarray(ras, float) - self.origin
        return float(d @ self.u / self.pixel_mm), float(d @ self.v / self.pixel_mm)


def sagittal_plane(geometry: Volume, through_ras: Sequence[float], pixel_mm: Optional[float] = None) -> SlicePlane:
    """The sagittal plane through ``through_ras`` covering the whole volume."""
    u = np.array([0.0, -1.0, 0.0])  # anterior (left of the image) -> posterior
    v = np.array([0.0, 0.0, -1.0])  # superior (top) -> inferior
    pixel_mm = float(pixel_mm or min(geometry.spacing))
    n = geometry.shape
    corners = np.array([[i, j, k] for i in (0, n[0] - 1) for j in (0, n[1] - 1) for k in (0, n[2] - 1)], float)
    ras = geometry.index_to_ras(corners)
    c = np.asarray(through_ras, float)
    us, vs = (ras - c) @ u, (ras - c) @ v
    origin = c + us.min() * u + vs.min() * v
    width = int(np.ceil((us.max() - us.min()) / pixel_mm)) + 1
    height = int(np.ceil((vs.max() - vs.min()) / pixel_mm)) + 1
    return SlicePlane(origin, u, v, pixel_mm, width, height)


def sample(volume: Volume, plane: SlicePlane, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """``volume`` on the plane's pixel grid (``cval`` outside the volume)."""
    ijk = volume.ras_to_index(plane.grid_ras().reshape(-1, 3))
    out = ndimage.map_coordinates(np.asarray(volume.array, dtype=np.float32 if order else volume.array.dtype),
                                  ijk.T, order=order, mode="constant", cval=cval, prefilter=False)
    return out.reshape(plane.height, plane.width)


def grey(values: np.ndarray) -> np.ndarray:
    """Window an MR slice to its 1st-99th percentile, as uint8."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.max() == finite.min():
        return np.zeros(values.shape, np.uint8)
    lo, hi = np.percentile(finite, [1, 99])
    if hi <= lo:
        lo, hi = finite.min(), finite.max()
    return (np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def label_rgb(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Colours and mask of a label slice from the shipped colour table."""
    entries = colortable.entry_by_value()
    rgb = np.zeros(values.shape + (3,), np.uint8)
    mask = np.zeros(values.shape, bool)
    for v in np.unique(values):
        v = int(v)
        if v == 0:
            continue
        m = values == v
        rgb[m] = entries[v].rgb if v in entries else (200, 200, 200)
        mask |= m
    return rgb, mask


def heat_rgb(values: np.ndarray, threshold: float = colortable.SALIENCY_THRESHOLD) -> Tuple[np.ndarray, np.ndarray]:
    lut = colortable.heat_lut(256)
    v = np.clip(np.nan_to_num(values), 0, 1)
    return lut[(v * 255).round().astype(int)], v >= threshold


def blend(base: np.ndarray, over: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    out = base.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * over[mask].astype(np.float32)
    return out.round().astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


@dataclass
class SliceImage:
    """A rendered screenshot and the mapping from RAS to its pixels."""

    image: Image.Image
    plane: SlicePlane
    scale: float  # output pixels per plane pixel
    notes: List[str] = field(default_factory=list)

    def to_pixel(self, ras: Sequence[float]) -> Tuple[int, int]:
        c, r = self.plane.to_pixel(ras)
        return int(round((c + 0.5) * self.scale - 0.5)), int(round((r + 0.5) * self.scale - 0.5))

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.image.save(path)
        return path


def _box_rect(sl: SliceImage, lo: Sequence[float], hi: Sequence[float]):
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    px = np.array([sl.to_pixel(c) for c in corners])
    return px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()


def render_slice(
    plane: SlicePlane,
    result: StudyResult,
    image: Optional[Volume] = None,
    labels: Optional[Volume] = None,
    heatmap: Optional[Volume] = None,
    heat_opacity: float = 0.6,
    highlight: Optional[str] = None,
    title: str = "",
    legend_title: str = "",
) -> SliceImage:
    """Composite the image, labels and a heatmap on ``plane``; draw boxes, names and a legend."""
    notes: List[str] = []
    if image is not None:
        base = grey(sample(image, plane, order=1))
    else:
        base = np.zeros((plane.height, plane.width), np.uint8)
        notes.append("input image not available: drawn on black")
    rgb = np.repeat(base[..., None], 3, axis=2)
    if labels is not None:
        lab = sample(labels, plane, order=0)
        lrgb, lmask = label_rgb(lab)
        rgb = blend(rgb, lrgb, lmask, LABEL_ALPHA)
    if heatmap is not None:
        hrgb, hmask = heat_rgb(sample(heatmap, plane, order=1))
        rgb = blend(rgb, hrgb, hmask, heat_opacity)

    scale = max(1.0, MIN_HEIGHT_PX / plane.height)
    size = (int(round(plane.width * scale)), int(round(plane.height * scale)))
    img = Image.fromarray(rgb, "RGB").resize(size, Image.Resampling.BILINEAR if image is not None else Image.Resampling.NEAREST)
    sl = SliceImage(img, plane, scale, notes)
    draw = ImageDraw.Draw(img)
    font = _font(max(11, size[1] // 40))

    for d in result.discs:
        if d.bbox_mm is None:
            continue
        x0, y0, x1, y1 = _box_rect(sl, d.bbox_mm.min, d.bbox_mm.max)
        on = d.level == highlight
        draw.rectangle([x0, y0, x1, y1], outline=HIGHLIGHT_RGB if on else BOX_RGB, width=3 if on else 2)
        draw.text((x1 + 4, (y0 + y1) / 2), d.level, fill=HIGHLIGHT_RGB if on else BOX_RGB, font=font, anchor="lm",
                  stroke_width=2, stroke_fill=(0, 0, 0))
    for v in result.vertebrae:
        x, y = sl.to_pixel(v.centroid_mm)
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(255, 200, 40))
        draw.text((x - 6, y), v.label, fill=TEXT_RGB, font=font, anchor="rm", stroke_width=2, stroke_fill=(0, 0, 0))
    if title:
        draw.text((6, 6), title, fill=TEXT_RGB, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    if heatmap is not None:
        _legend(draw, size, font, legend_title)
    return sl


def _legend(draw: ImageDraw.ImageDraw, size: Tuple[int, int], font, title: str) -> None:
    """A vertical colour bar at the right edge, 1 at the top."""
    w, h = size
    bar_w, bar_h = max(10, w // 40), h // 3
    x0, y0 = w - bar_w - 30, h - bar_h - 20
    lut = colortable.heat_lut(256)
    for row in range(bar_h):
        t = 1.0 - row / max(1, bar_h - 1)
        draw.line([x0, y0 + row, x0 + bar_w, y0 + row], fill=tuple(int(c) for c in lut[int(round(t * 255))]))
    draw.rectangle([x0, y0, x0 + bar_w, y0 + bar_h], outline=TEXT_RGB)
    draw.text((x0 - 3, y0), "1", fill=TEXT_RGB, font=font, anchor="rt")
    draw.text((x0 - 3, y0 + bar_h), "0", fill=TEXT_RGB, font=font, anchor="rb")
    if title:
        draw.text((x0 + bar_w, y0 - 4), title, fill=TEXT_RGB, font=font, anchor="rb", stroke_width=2, stroke_fill=(0, 0, 0))


def mid_sagittal_point(result: StudyResult, geometry: Volume) -> np.ndarray:
    """Where the mid-sagittal plane goes: the vertebrae's mean R (their mean centroid), else the volume centre."""
    if result.vertebrae:
        return np.mean([v.centroid_mm for v in result.vertebrae], axis=0)
    if result.discs:
        return np.mean([d.center_mm for d in result.discs], axis=0)
    return geometry.index_to_ras((np.asarray(geometry.shape) - 1) / 2.0)


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")


def render_screenshots(
    out_dir: Path,
    result: StudyResult,
    geometry: Volume,
    image: Optional[Volume],
    labels: Optional[Volume],
    heatmaps: Dict[str, Tuple[str, str, str, Volume]],
) -> Dict[str, SliceImage]:
    """Write ``mid_sagittal.png`` and one ``saliency_<level>_<head>_<method>.png`` per heatmap.

    ``heatmaps`` maps a key to (level, head, method, volume). Returns file name -> SliceImage.
    """
    out_dir = Path(out_dir)
    shots: Dict[str, SliceImage] = {}
    plane = sagittal_plane(geometry, mid_sagittal_point(result, geometry))
    sl = render_slice(plane, result, image, labels, title="mid-sagittal: labels and disc boxes")
    shots["mid_sagittal.png"] = sl
    sl.save(out_dir / "mid_sagittal.png")
    for key, (level, head, method, heat) in heatmaps.items():
        disc = result.disc(level)
        centre = disc.center_mm if disc is not None else mid_sagittal_point(result, geometry)
        plane = sagittal_plane(geometry, centre)
        sl = render_slice(plane, result, image, labels=None, heatmap=heat, highlight=level,
                          title=f"{level} {head} ({method})", legend_title=method)
        name = f"saliency_{safe_name(level)}_{safe_name(head)}_{safe_name(method)}.png"
        shots[name] = sl
        sl.save(out_dir / name)
    return shots
