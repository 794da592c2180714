"""MONAI bundles for every SpineGrade model: find, verify, load and write them.

A bundle is a folder in MONAI's bundle layout::

    <name>/configs/metadata.json   MONAI metadata (version, changelog, monai_version, pytorch_version,
                                   network_data_format, intended_use, ...) plus SpineGrade's fields:
                                   ``sha256`` of models/model.pt and ``network`` {"class", "kwargs"}
    <name>/configs/inference.json  ``network_def`` with a ``_target_``, so MONAI's own tools can build it
    <name>/models/model.pt         a plain state dict
    <name>/docs/README.md          the model card

The network is rebuilt from ``network`` without any code in the bundle, and only from
``monai.networks.nets`` or ``SpineGradeLogic`` (never an arbitrary import or a ``$`` expression),
so a bundle from elsewhere cannot run code. The weights are checked against ``sha256`` *before*
``torch.load`` sees them, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import monai
import numpy as np
import torch
from monai.bundle import ConfigParser, init_bundle

from ..errors import ModelError
from ..resources import models_dir
from ..results.model import ModelInfo

PathLike = Union[str, os.PathLike]

METADATA = Path("configs") / "metadata.json"
INFERENCE = Path("configs") / "inference.json"
WEIGHTS = Path("models") / "model.pt"
MODEL_CARD = Path("docs") / "README.md"

BUNDLE_LICENSE = (
    "Apache License 2.0, as the SpineGrade project (https://www.apache.org/licenses/LICENSE-2.0).\n"
    "The weights were trained by the SpineGrade project; see docs/README.md for the data used.\n"
)

#: module prefixes a bundle's ``network.class`` may name (no arbitrary imports from a bundle)
ALLOWED_NETWORK_MODULES = ("monai.networks.nets", "SpineGradeLogic.")


@dataclass
class LoadedModel:
    """A bundle's network with its weights loaded, in eval mode, plus its metadata."""

    name: str
    path: Path
    network: torch.nn.Module
    metadata: Dict[str, Any]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "0"))

    @property
    def sha256(self) -> str:
        return str(self.metadata["sha256"])

    @property
    def model_info(self) -> ModelInfo:
        """What ``result.json``'s ``models`` list records about this model."""
        return ModelInfo(self.name, self.version, self.sha256)

    @property
    def network_data_format(self) -> Dict[str, Any]:
        return dict(self.metadata.get("network_data_format", {}))


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (weights may be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def env_var_for(name: str) -> str:
    """``SPINEGRADE_<NAME>_BUNDLE`` for a bundle name; a leading ``spinegrade_`` is not repeated.

    Example: ``spinegrade_vertebrae`` and ``vertebrae`` both -> ``SPINEGRADE_VERTEBRAE_BUNDLE``.
    """
    stem = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").upper()
    stem = stem[len("SPINEGRADE_"):] if stem.startswith("SPINEGRADE_") else stem
    return f"SPINEGRADE_{stem}_BUNDLE"


def find_bundle(name: str, path: Optional[PathLike] = None) -> Optional[Path]:
    """Where bundle ``name`` is: an explicit ``path`` > ``$SPINEGRADE_<NAME>_BUNDLE`` > ``models_dir()/name``.

    Args:
        name: the bundle's name, e.g. ``"spinegrade_vertebrae"``.
        path: a bundle folder the user chose; wins over everything else.

    Returns:
        The bundle folder, or ``None`` when no bundle is installed under the default location (the
        pipeline then says "no model yet"). A path the user named explicitly (argument or environment
        variable) that is not a bundle is a :class:`ModelError`: silently falling back would hide a typo.
    """
    for chosen, how in ((path, "the given path"), (os.environ.get(env_var_for(name)), f"${env_var_for(name)}")):
        if chosen:
            p = Path(chosen).expanduser()
            if not (p / METADATA).is_file():
                raise ModelError(f"model bundle '{name}' from {how}: {p} is not a bundle (no {METADATA})")
            return p
    p = models_dir() / name
    return p if (p / METADATA).is_file() else None


def read_metadata(path: PathLike) -> Dict[str, Any]:
    """A bundle's ``configs/metadata.json`` as a dict (a readable ModelError when missing or malformed)."""
    meta_file = Path(path) / METADATA
    if not meta_file.is_file():
        raise ModelError(f"model bundle {path}: {meta_file} is missing")
    try:
        meta = ConfigParser.load_config_file(meta_file)
    except (ValueError, OSError) as e:  # json.JSONDecodeError is a ValueError
        raise ModelError(f"model bundle {path}: {meta_file} is not valid JSON ({e})") from e
    for key in ("version", "sha256", "network"):
        if key not in meta:
            raise ModelError(f"model bundle {path}: {meta_file} has no '{key}'")
    return dict(meta)


def network_class(spec: Mapping[str, Any]) -> type:
    """The class named by a bundle's ``network`` spec: ``"UNet"`` (monai.networks.nets) or a dotted path."""
    cls_name = str(spec.get("class", ""))
    module_name, _, attr = cls_name.rpartition(".")
    module_name = module_name or "monai.networks.nets"
    if not (module_name == "monai.networks.nets" or module_name.startswith(ALLOWED_NETWORK_MODULES)):
        raise ModelError(f"network class '{cls_name}' is not from monai.networks.nets or SpineGradeLogic")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ModelError(f"network class '{cls_name}' not found ({e})") from e
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelError(f"network class '{cls_name}' is not a torch.nn.Module")
    return cls


def build_network(spec: Mapping[str, Any]) -> torch.nn.Module:
    """Instantiate ``spec = {"class": ..., "kwargs": {...}}`` (plain JSON kwargs, nothing evaluated)."""
    cls = network_class(spec)
    try:
        return cls(**dict(spec.get("kwargs", {})))
    except Exception as e:  # a kwarg mismatch: say which network and why
        raise ModelError(f"cannot build network {spec.get('class')}: {e}") from e


def load_bundle(path: PathLike, device: Union[str, torch.device] = "cpu", name: Optional[str] = None) -> LoadedModel:
    """Read, verify and load a bundle.

    Args:
        path: the bundle folder.
        device: where the weights and network go.
        name: the model's name in results; defaults to ``metadata["name"]`` or the folder name.

    Raises:
        ModelError: a missing file, malformed metadata, a SHA-256 mismatch (checked before loading:
            the message names the file, the expected and the actual hash), weights that do not fit.
    """
    path = Path(path)
    meta = read_metadata(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"model bundle {path}: weights file {weights} is missing")
    actual = sha256_file(weights)
    if actual != str(meta["sha256"]).lower():
        raise ModelError(
            f"model bundle {path}: weights file {weights} fails the SHA-256 check "
            f"(expected {meta['sha256']}, got {actual}); the file is corrupt or was replaced"
        )
    device = torch.device(device)
    network = build_network(meta["network"])
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for anything but tensors and containers
        raise ModelError(f"model bundle {path}: cannot load {weights} as a state dict ({e})") from e
    if not isinstance(state, Mapping):
        raise ModelError(f"model bundle {path}: {weights} holds a {type(state).__name__}, not a state dict")
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"model bundle {path}: {weights} does not fit network {meta['network'].get('class')}: {e}") from e
    network.to(device).eval()
    return LoadedModel(name or str(meta.get("name") or path.name), path, network, meta, device)


def network_spec(network: torch.nn.Module, kwargs: Mapping[str, Any], cls: Optional[str] = None) -> Dict[str, Any]:
    """The ``network`` entry for a network built as ``type(network)(**kwargs)``."""
    t = type(network)
    if cls is None:
        cls = t.__name__ if t.__module__.startswith("monai.networks.nets") else f"{t.__module__}.{t.__name__}"
    return {"class": cls, "kwargs": _jsonable(dict(kwargs))}


def default_metadata(name: str, version: str = "0.1.0") -> Dict[str, Any]:
    """MONAI's metadata skeleton with the versions of this environment filled in."""
    return {
        "name": name,
        "version": version,
        "changelog": {version: "initial version"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {},
        "task": "",
        "description": "",
        "authors": "SpineGrade developers",
        "copyright": "Copyright (c) SpineGrade developers",
        "intended_use": "",
        "network_data_format": {"inputs": {}, "outputs": {}},
    }


def save_bundle(
    path: PathLike,
    network: torch.nn.Module,
    network_kwargs: Mapping[str, Any],
    metadata: Optional[Mapping[str, Any]] = None,
    model_card: Optional[str] = None,
    network_class_name: Optional[str] = None,
    overwrite: bool = True,
) -> Path:
    """Write ``network`` as a bundle at ``path``, atomically, recording the weights' SHA-256.

    Args:
        path: the bundle folder to (re)create.
        network: the trained network; its ``state_dict()`` is saved.
        network_kwargs: the keyword arguments that rebuild it (``type(network)(**network_kwargs)``).
        metadata: MONAI metadata fields (version, changelog, network_data_format, intended_use, ...);
            merged over :func:`default_metadata`. ``sha256`` and ``network`` are filled in here.
        model_card: markdown for ``docs/README.md``.
        network_class_name: override the class recorded (default: the network's own class).
        overwrite: replace an existing bundle at ``path``; otherwise a ModelError.

    The bundle is built in a temporary folder beside ``path`` (MONAI's ``init_bundle`` lays it out)
    and renamed into place, so a reader never sees half a bundle.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ModelError(f"model bundle {path} exists already")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = default_metadata(path.name)
    meta.update(dict(metadata or {}))
    spec = network_spec(network, network_kwargs, network_class_name)
    build_network(spec)  # fail now, not at load time, if the kwargs do not rebuild the network
    tmp_parent = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_parent / path.name
    try:
        network_def = {"_target_": spec["class"] if "." in spec["class"] else f"monai.networks.nets.{spec['class']}", **spec["kwargs"]}
        init_bundle(tmp, metadata_str={}, inference_str={"network_def": network_def})
        (tmp / "LICENSE").write_text(BUNDLE_LICENSE)  # init_bundle leaves a placeholder
        # CPU tensors only: the file then loads anywhere and hashes the same whatever device trained it
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, tmp / WEIGHTS)
        meta["sha256"] = sha256_file(tmp / WEIGHTS)
        meta["network"] = spec
        ConfigParser.export_config_file(_jsonable(meta), str(tmp / METADATA), indent=2)
        (tmp / MODEL_CARD).write_text(model_card or f"# {path.name}\n\n{meta.get('description', '')}\n")
        if path.exists():  # swap: old out of the way first, then the new one in, then drop the old
            old = tmp_parent / (path.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)
    return path


def _jsonable(obj: Any) -> Any:
    """Tuples -> lists, numpy scalars -> Python, so metadata round-trips through JSON unchanged."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise ModelError(f"bundle metadata value {obj!r} ({type(obj).__name__}) cannot be written as JSON")


__all__ = [
    "LoadedModel",
    "load_bundle",
    "save_bundle",
    "find_bundle",
    "read_metadata",
    "build_network",
    "network_spec",
    "default_metadata",
    "sha256_file",
    "env_var_for",
]
