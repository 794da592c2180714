"""Saliency maps for one grading head on one disc crop, and their way back into the input's geometry.

Every method explains one class of one head: the wrapped network :class:`HeadLogProb` outputs that
head's calibrated log-probabilities, and the map shows what raised the chosen class's score.

* ``gradcam``: ``monai.visualize.GradCAM`` on the grading network's last convolutional
  stage (``features.3``, 128 channels at 8 mm; recorded in the bundle as ``gradcam_layer``),
  trilinearly upsampled to the crop and scaled to [0, 1]. One forward and one backward pass.
* ``ig``: Integrated Gradients (captum) from a black crop, ``IG_STEPS`` steps, of the class's
  log-probability less that of the head's healthiest grade (class 0): what makes the crop this grade
  *rather than healthy*. IG's attributions add up to the score's change from black to the crop, and
  the plain log-probability's change holds everything that makes the crop look like a disc at all,
  spread over the bright CSF; the contrast cancels that common part. The positive part of the
  attribution (evidence *for* the class), lightly smoothed (1 voxel Gaussian), scaled to [0, 1].
* ``smoothgrad``: SmoothGrad (captum ``NoiseTunnel`` over plain gradients): the magnitude of the
  class score's gradient, averaged over ``SMOOTHGRAD_SAMPLES`` copies of the crop with Gaussian noise
  of ``SMOOTHGRAD_NOISE`` (a tenth of the normalised intensity range), smoothed by 3 voxels, less its
  median over the crop (the gradient's floor), scaled to [0, 1]. Unlike IG from a black crop it is
  not weighted by the voxel's own intensity, so a dark lesion in bright surroundings (a herniation
  indenting the CSF on T2) is not faded out.
* ``auto`` (the default): per head the method that found the generated lesions best
  (``methods.SIGNAL_HEADS``): IG for signal changes inside bone and disc (Modic, endplate defects,
  Pfirrmann), SmoothGrad for changes of shape and position (herniation, slip, narrowing, stenoses).
* ``occlusion`` (option, slow: a few seconds a map on CPU): ``monai.visualize.OcclusionSensitivity``
  with 12 mm Gaussian-weighted masks overlapping by a quarter; the map
  is how much the class's probability falls when a region is hidden (positive part), scaled to [0, 1].
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
import torch

from ..grading.heads import OUTPUT_SLICES, head_log_probabilities
from .methods import METHODS, resolve_method

# 8 steps (captum's Gauss-Legendre nodes) at half the cost of 16: on 20 generated Modic lesions the
# maps of the IG heads (Modic, endplate, Pfirrmann) correlate 0.99 with 16 steps' (median; lowest
# 0.92), and the Modic map peaks inside the lesion in 19 of the 20 cases (16 steps: 20; model 0.3.0,
# with 0.4.0 18 of 20 at either)
IG_STEPS = 8
# path points / noisy copies per backward pass: on 2 CPU threads a pass over 2 crops (IG) or 4
# (SmoothGrad) is fastest (IG: 0.26 s a map in twos, 0.36 s in eights); the map is the same
IG_BATCH = 2
SMOOTHGRAD_BATCH = 4
SMOOTHGRAD_SAMPLES = 8  # 4, 8 and 16 found the tuning lesions equally well; 8 for some margin
SMOOTHGRAD_SMOOTHING = 3.0  # voxels of the crop (2 x 1 x 1 mm): a herniation's edge, not single voxels
SMOOTHGRAD_NOISE = 0.1  # standard deviation, in normalised crop intensity (99th percentile = 1)

OCCLUSION_MASK = (6, 12, 12)  # crop voxels: 12 mm cubes


class HeadLogProb(torch.nn.Module):
    """The grading network reduced to one head's (temperature-scaled) log-probabilities ``[B, K]``."""

    def __init__(self, network: torch.nn.Module, head: str, temperature: float = 1.0):
        super().__init__()
        self.net, self.head, self.temperature = network, head, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.net(x)[:, OUTPUT_SLICES[self.head]]
        # in float64: a confident class (p = 1 - 1e-9) keeps a non-zero gradient (1 - p) to explain
        return head_log_probabilities(self.head, raw.double(), self.temperature).to(raw.dtype)


class AgainstHealthiest(torch.nn.Module):
    """A :class:`HeadLogProb` turned into ``log p(class) - log p(healthiest grade)`` per class
    (class 0: ``0`` for Pfirrmann 1 and every other head's normal grade)."""

    def __init__(self, model: HeadLogProb):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = self.model(x)
        return logp - logp[:, :1]


def _scale01(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(np.asarray(a, np.float32))
    a = np.clip(a, 0, None)
    top = float(a.max()) if a.size else 0.0
    return a / top if top > 0 else a


def gradcam_map(model: HeadLogProb, x: torch.Tensor, class_idx: int, layer: str = "features.3") -> np.ndarray:
    from monai.visualize import GradCAM

    model.eval()
    # postprocessing: identity. MONAI's default normaliser scales with minv=1, maxv=0, i.e. it turns
    # the map upside down (strongest evidence -> 0); SpineGrade scales to [0, 1] itself
    cam = GradCAM(nn_module=model, target_layers=f"net.{layer}", postprocessing=lambda t: t)
    with torch.enable_grad():
        m = cam(x, class_idx=int(class_idx))
    return _scale01(m[0, 0].detach().cpu().numpy())


class _ImageChannels(torch.nn.Module):
    """``model`` fed the image channels it is given plus the fixed axial presence mask, so that noise
    (SmoothGrad) and the path from black (IG) touch the images only: a noisy or fractional 0/1 mask is
    nothing the network has seen."""

    def __init__(self, model: torch.nn.Module, mask: torch.Tensor):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([images, self.mask.expand(images.shape[0], *self.mask.shape[1:])], 1))


def _images_only(model: torch.nn.Module, x: torch.Tensor):
    """``(images, forward)``: the input's image channels and a model that takes just those (the axial
    presence mask of a 3-channel input held fixed), so attribution methods perturb images only."""
    if x.shape[1] > 2:  # sagittal, axial T2, axial presence mask
        return x[:, :2], _ImageChannels(model, x[:, 2:])
    return x, model


def integrated_gradients_map(model: HeadLogProb, x: torch.Tensor, class_idx: int, steps: int = IG_STEPS,
                             against_healthiest: bool = True) -> np.ndarray:
    """IG of ``class_idx``'s log-probability, less the healthiest grade's unless ``against_healthiest``
    is off or the class is that grade (then its plain log-probability)."""
    from captum.attr import IntegratedGradients
    from scipy.ndimage import gaussian_filter

    model.eval()
    # the contrast found more generated Modic lesions: with 0.5.0 the map peaked inside 46 of 50 on
    # the tuning seeds (300000-300029, 320000-320019) against 44 of 50 for the plain score
    scored = AgainstHealthiest(model) if against_healthiest and int(class_idx) != 0 else model
    images, forward = _images_only(scored, x)
    with torch.enable_grad():
        attr = IntegratedGradients(forward).attribute(images, baselines=torch.zeros_like(images), target=int(class_idx),
                                                      n_steps=steps, internal_batch_size=min(IG_BATCH, steps))
    # the image channels' attributions summed (sagittal, and axial T2 on the same grid where the model
    # reads it); the axial presence mask stays as it is along the path: it is not evidence
    a = np.clip(attr[0].sum(0).detach().cpu().numpy(), 0, None)
    return _scale01(gaussian_filter(a, 1.0))


def smoothgrad_map(model: HeadLogProb, x: torch.Tensor, class_idx: int, samples: int = SMOOTHGRAD_SAMPLES,
                   noise: float = SMOOTHGRAD_NOISE, seed: int = 0) -> np.ndarray:
    from captum.attr import NoiseTunnel, Saliency
    from scipy.ndimage import gaussian_filter

    model.eval()
    images, forward = _images_only(model, x)
    # a fixed seed: the same crop gives the same map on every run
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.enable_grad():
            attr = NoiseTunnel(Saliency(forward)).attribute(images, nt_type="smoothgrad", nt_samples=samples,
                                                            nt_samples_batch_size=min(SMOOTHGRAD_BATCH, samples), stdevs=noise,
                                                            target=int(class_idx), abs=True)
    finally:
        torch.random.set_rng_state(gen_state)
    a = gaussian_filter(attr[0].sum(0).detach().cpu().numpy(), SMOOTHGRAD_SMOOTHING)
    # gradient magnitudes have a floor everywhere in the crop; without removing it (its median) the
    # whole crop would light up above the display threshold
    return _scale01(a - np.median(a))


def occlusion_map(model: HeadLogProb, x: torch.Tensor, class_idx: int, mask_size: Sequence[int] = OCCLUSION_MASK) -> np.ndarray:
    from monai.visualize import OcclusionSensitivity

    model.eval()
    occ = OcclusionSensitivity(nn_module=model, mask_size=list(mask_size), n_batch=32, verbose=False, overlap=0.25,
                               activate=lambda t: torch.exp(t))
    with torch.no_grad(), warnings.catch_warnings():
        # MONAI's occlusion indexes tensors with lists, which torch warns about four times a map; the
        # result is unchanged (test_saliency checks that the map still peaks at the planted feature)
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing",
                                category=UserWarning)
        base = float(torch.exp(model(x))[0, int(class_idx)])
        omap, _ = occ(x)
    drop = base - omap[0, int(class_idx)].cpu().numpy()  # omap: [B, classes, *spatial]
    return _scale01(drop)


def saliency_map(method: str, network: torch.nn.Module, x: torch.Tensor, head: str, class_idx: int,
                 temperature: float = 1.0, gradcam_layer: str = "features.3") -> np.ndarray:
    """One map ``[24, 80, 64]`` in [0, 1] on the crop grid for ``head``'s class ``class_idx``.

    ``x`` is one normalised crop ``[1, C, 24, 80, 64]`` (``Grader.input_tensor``).
    """
    model = HeadLogProb(network, head, temperature)
    method = resolve_method(method, head)
    if method == "gradcam":
        return gradcam_map(model, x, class_idx, gradcam_layer)
    if method == "ig":
        return integrated_gradients_map(model, x, class_idx)
    if method == "smoothgrad":
        return smoothgrad_map(model, x, class_idx)
    if method == "occlusion":
        return occlusion_map(model, x, class_idx)
    raise ValueError(f"unknown saliency method {method!r}: use one of {', '.join(METHODS)}")


def map_to_input(heatmap: np.ndarray, crop, reference):
    """A crop-grid map resampled into ``reference``'s geometry (a :class:`Volume`, float32 in [0, 1])."""
    from ..discs.crop import heatmap_to_input
    from ..results.folder import normalised_heatmap

    return normalised_heatmap(heatmap_to_input(heatmap, crop, reference))


def heads_for_level(probs: dict, mode: str, heads: Optional[Sequence[str]] = None) -> list:
    """Which heads get a map at one level: ``"default"`` the most abnormal one, ``"all"`` every
    requested head, ``"none"`` none."""
    from ..grading.heads import most_abnormal_head

    if mode == "none":
        return []
    if mode == "all":
        return [h for h in (heads or probs) if h in probs]
    if mode == "default":
        return [most_abnormal_head(probs, heads)]
    raise ValueError(f"unknown saliency mode {mode!r}: use default, all or none")
