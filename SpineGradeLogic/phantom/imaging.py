"""From the anatomy to the image: bend the straightened map into a 1 mm RAS grid, give each tissue
its signal, and acquire it as a series, sagittal or axial (thick-slice partial volume, in-plane blur,
coil shading and bias field, optional motion ghosts, Rician noise)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter, map_coordinates, uniform_filter1d, zoom

from ..io.volume import LPS_TO_RAS, Volume
from . import tissues as T
from .acquisition import Acquisition, corners_ras
from .canvas import Canvas
from .curve import SpineCurve

RAS_GRID_DIRECTION = np.diag([-1.0, -1.0, 1.0])  # LPS direction of an array indexed [x, y, z] in RAS


@dataclass
class AnatomyGrid:
    """The 1 mm anatomy in patient space: ``packed[x, y, z]`` with its RAS origin."""

    packed: np.ndarray
    origin_ras: np.ndarray

    def volume(self, array: np.ndarray) -> Volume:
        return Volume(array, (1.0, 1.0, 1.0), tuple(LPS_TO_RAS @ self.origin_ras), RAS_GRID_DIRECTION)


def anatomy_box(acq: Acquisition, margin: float = 3.0):
    c = corners_ras(acq.geometry)
    lo = np.floor(c.min(0) - margin)
    hi = np.ceil(c.max(0) + margin)
    return lo, (hi - lo + 1).astype(int)


def warp_to_ras(cv: Canvas, curve: SpineCurve, lo: np.ndarray, shape) -> AnatomyGrid:
    """Nearest-neighbour pull of the straightened map onto a RAS-aligned 1 mm grid at ``lo``."""
    xs = lo[0] + np.arange(shape[0])
    ys = lo[1] + np.arange(shape[1])
    zs = lo[2] + np.arange(shape[2])
    n, s, g = _straighten_fine(curve, ys, zs)
    Nu, Nn, Ns = cv.shape
    itype = np.int32 if cv.P.size < 2 ** 31 else np.int64
    i_n = np.rint(n - cv.n0).astype(itype)
    i_s = np.rint(s - cv.s0).astype(itype)
    ok2 = (i_n >= 0) & (i_n < Nn) & (i_s >= 0) & (i_s < Ns)
    base = np.where(ok2, i_n * itype(Ns) + i_s, 0).astype(itype)
    shift = (-g - curve.x0 - cv.u0).astype(np.float32)
    flat_src = cv.P.ravel()
    out = np.zeros(tuple(shape), np.int16)
    stride = itype(Nn * Ns)
    for x0 in range(0, shape[0], 16):
        x = xs[x0:x0 + 16].astype(np.float32)[:, None, None]
        iu = np.rint(x + shift[None]).astype(itype)
        ok = ok2[None] & (iu >= 0) & (iu < Nu)
        idx = iu * stride + base[None]
        idx[~ok] = 0
        chunk = flat_src.take(idx)
        chunk[~ok] = 0
        out[x0:x0 + 16] = chunk
    return AnatomyGrid(out, lo.astype(float))


def _straighten_fine(curve: SpineCurve, ys: np.ndarray, zs: np.ndarray, step: int = 2):
    """(n, s, g) on the 1 mm (y, z) grid: nearest-curve queries every ``step`` mm, linear in between
    (the map is smooth; only the queries cost)."""
    yc, zc = ys[::step], zs[::step]
    if yc[-1] != ys[-1]:
        yc = np.append(yc, ys[-1])
    if zc[-1] != zs[-1]:
        zc = np.append(zc, zs[-1])
    Y, Z = np.meshgrid(yc, zc, indexing="ij")
    coarse = curve.straighten_plane(Y, Z)
    iy = np.interp(ys, yc, np.arange(len(yc)))
    iz = np.interp(zs, zc, np.arange(len(zc)))
    IY, IZ = np.meshgrid(iy, iz, indexing="ij")
    return [map_coordinates(c, [IY, IZ], order=1, mode="nearest") for c in coarse]


def _resample(vol: Volume, geom: Volume, interp) -> np.ndarray:
    ref = geom.to_sitk()
    out = sitk.Resample(vol.to_sitk(), ref, sitk.Transform(), interp, 0.0)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def _texture_field(rng: np.random.Generator, shape, fine: int = 4, coarse: int = 14) -> np.ndarray:
    """Smooth random field of unit spread: fine grain (marrow, muscle) plus coarse blobs (bowel
    loops, organs), drawn on a ``fine`` mm grid and linearly upsampled once."""
    cshape = tuple(int(np.ceil(s / fine)) + 2 for s in shape)
    f = rng.standard_normal(cshape).astype(np.float32)
    big = rng.standard_normal(tuple(int(np.ceil(s * fine / coarse)) + 2 for s in cshape)).astype(np.float32)
    f = 0.5 * f + 0.85 * zoom(big, [a / b for a, b in zip(cshape, big.shape)], order=1, grid_mode=True,
                              mode="nearest")[: cshape[0], : cshape[1], : cshape[2]]
    img = sitk.GetImageFromArray(np.ascontiguousarray(f.transpose(2, 1, 0)))
    img.SetSpacing((float(fine) / 2,) * 3)  # resampled to a 2 mm grid, then gathered to 1 mm
    half = [int(np.ceil(s / 2)) for s in shape]
    ref = sitk.Image(half, sitk.sitkFloat32)
    out = sitk.GetArrayFromImage(sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0)).transpose(2, 1, 0)
    out /= max(float(f.std()), 1e-6)
    return out[np.ix_(*(np.arange(s) // 2 for s in shape))]


def acquire(grid: AnatomyGrid, acq: Acquisition, lut: np.ndarray, texture: np.ndarray, rng: np.random.Generator,
            config, randomise: bool):
    """The series image and its label and tissue maps, all in ``acq.geometry``."""
    packed = grid.packed
    tissue = packed & T.TISSUE_MASK
    img = lut[packed]
    img *= 1.0 + texture[tissue] * _texture_field(rng, packed.shape)
    np.clip(img, 0, None, out=img)
    geom = acq.geometry
    # partial volume across the thick slices, along the grid axis nearest the slice normal (x for a
    # sagittal series, z for an axial one)
    width = int(round(acq.thickness))
    if width > 1:
        img = uniform_filter1d(img, width, axis=int(np.argmax(np.abs(geom.direction_lps[:, 2]))))
    image = _resample(grid.volume(img.astype(np.float32)), geom, sitk.sitkLinear).astype(np.float32)
    packed_acq = _resample(grid.volume(packed), geom, sitk.sitkNearestNeighbor).astype(np.int16)
    # acquired resolution is coarser than the reconstructed pixels
    sigma = 0.75 / geom.spacing[0]  # ~1.8 mm FWHM: acquired matrices are coarser than the pixels shown
    image = gaussian_filter(image, (sigma, sigma, 0))
    image *= _bias(rng, geom, randomise)
    if rng.random() < config.ghosting_share:
        image = _ghosts(rng, image)
    sd = rng.uniform(*config.noise_sd) * float(np.percentile(image, 99.5) or 1.0)
    noise = rng.standard_normal((2,) + image.shape).astype(np.float32) * sd
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)
    if randomise:
        top = float(np.percentile(image, 99.5)) or 1.0
        image = (image / top).clip(0, None) ** np.exp(rng.normal(0, 0.25))
        image *= rng.uniform(50, 3000)
    else:
        image *= rng.uniform(700, 1500)
    return image.astype(np.float32), T.label_of(packed_acq).astype(np.int16), T.tissue_of(packed_acq).astype(np.int16)


def _bias(rng: np.random.Generator, geom: Volume, randomise: bool) -> np.ndarray:
    """Spine-coil shading (signal falls off away from the back) times a smooth random bias."""
    ni, nj, nk = geom.shape
    a = geom.affine
    i = np.arange(ni, dtype=np.float32)[:, None, None]
    j = np.arange(nj, dtype=np.float32)[None, :, None]
    k = np.arange(nk, dtype=np.float32)[None, None, :]
    y = a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3]
    back = float(y.min())
    coil = np.exp(-(y - back) / rng.uniform(170, 320))
    u, v = (i / max(ni - 1, 1) - 0.5), (j / max(nj - 1, 1) - 0.5)
    c = rng.normal(0, 0.35 if randomise else 0.12, 5)
    bias = np.exp(c[0] * u + c[1] * v + c[2] * u * v + c[3] * u ** 2 + c[4] * v ** 2)
    return (coil * bias).astype(np.float32)


def _ghosts(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Faint shifted copies along the phase-encoding (anterior-posterior, ``i``) axis."""
    out = image.copy()
    n = image.shape[0]
    for _ in range(int(rng.integers(1, 3))):
        shift = int(rng.integers(n // 8, n // 3)) * int(rng.choice([-1, 1]))
        out += rng.uniform(0.03, 0.1) * np.roll(image, shift, axis=0)
    return out
