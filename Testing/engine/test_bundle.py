"""Model bundles: round trip, SHA-256 check before loading, weights_only, bundle discovery."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import UNet

from SpineGradeLogic.errors import ModelError
from SpineGradeLogic.models import env_var_for, find_bundle, load_bundle, read_metadata, save_bundle, sha256_file
from SpineGradeLogic.models.bundle import METADATA, WEIGHTS

KWARGS = dict(spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8), strides=(2,), num_res_units=0)


class NotATensor:
    """Any pickled object: ``weights_only=True`` must refuse to unpickle it."""


def _tiny(seed=0):
    torch.manual_seed(seed)
    return UNet(**KWARGS)


@pytest.fixture
def bundle(tmp_path):
    meta = {
        "version": "0.2.0",
        "changelog": {"0.2.0": "test"},
        "intended_use": "tests only",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [16, 16]}},
            "outputs": {"pred": {"type": "image", "num_channels": 3, "channel_def": {"0": "background", "1": "a", "2": "b"}}},
        },
    }
    return save_bundle(tmp_path / "tiny", _tiny(), KWARGS, meta, model_card="# tiny\n")


def test_round_trip_gives_the_same_outputs(bundle):
    loaded = load_bundle(bundle)
    x = torch.rand(1, 1, 16, 16)
    ref = _tiny().eval()
    torch.testing.assert_close(loaded.network(x), ref(x))
    assert not loaded.network.training
    info = loaded.model_info
    assert (info.name, info.version) == ("tiny", "0.2.0")
    assert info.sha256 == sha256_file(bundle / WEIGHTS)
    assert loaded.network_data_format["outputs"]["pred"]["channel_def"]["2"] == "b"


def test_layout_is_a_monai_bundle(bundle):
    meta = read_metadata(bundle)
    for key in ("version", "changelog", "monai_version", "pytorch_version", "network_data_format", "intended_use", "sha256"):
        assert key in meta
    assert meta["network"] == {"class": "UNet", "kwargs": json.loads(json.dumps(KWARGS))}
    # MONAI's own parser can build the network from inference.json
    parser = ConfigParser()
    parser.read_config(bundle / "configs" / "inference.json")
    assert isinstance(parser.get_parsed_content("network_def"), UNet)
    assert (bundle / "docs" / "README.md").read_text() == "# tiny\n"
    assert "Apache License 2.0" in (bundle / "LICENSE").read_text()  # not MONAI's placeholder
    # the weights are a plain state dict of tensors
    state = torch.load(bundle / WEIGHTS, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_tampered_weights_are_refused_before_loading(bundle, monkeypatch):
    w = bundle / WEIGHTS
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    expected = read_metadata(bundle)["sha256"]

    def no_load(*a, **k):  # the check must come before torch.load ever sees the file
        raise AssertionError("torch.load called on weights that fail the hash")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(ModelError) as e:
        load_bundle(bundle)
    msg = str(e.value)
    assert str(w) in msg and expected in msg and sha256_file(w) in msg


def test_missing_files_are_clear_errors(bundle, tmp_path):
    (bundle / WEIGHTS).unlink()
    with pytest.raises(ModelError, match="model.pt is missing"):
        load_bundle(bundle)
    with pytest.raises(ModelError, match="metadata.json is missing"):
        load_bundle(tmp_path / "nowhere")


def test_weights_only_refuses_pickled_objects(bundle):
    w = bundle / WEIGHTS
    torch.save({"x": NotATensor()}, w)
    meta = read_metadata(bundle)
    meta["sha256"] = sha256_file(w)  # even with a matching hash
    (bundle / METADATA).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot load"):
        load_bundle(bundle)


def test_network_class_outside_monai_is_refused(bundle):
    meta = read_metadata(bundle)
    meta["network"] = {"class": "os.system", "kwargs": {}}
    (bundle / METADATA).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="not from monai.networks.nets"):
        load_bundle(bundle)


def test_save_replaces_atomically(bundle):
    old = read_metadata(bundle)["sha256"]
    save_bundle(bundle, _tiny(seed=1), KWARGS, {"version": "0.3.0"})
    meta = read_metadata(bundle)
    assert meta["version"] == "0.3.0" and meta["sha256"] != old
    assert [p.name for p in bundle.parent.iterdir() if p.name.startswith(".")] == []
    load_bundle(bundle)
    with pytest.raises(ModelError, match="exists"):
        save_bundle(bundle, _tiny(), KWARGS, overwrite=False)


def test_find_bundle_order(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEGRADE_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv(env_var_for("tiny"), raising=False)
    assert find_bundle("tiny") is None  # nothing installed: not an error
    save_bundle(tmp_path / "models" / "tiny", _tiny(), KWARGS)
    assert find_bundle("tiny") == tmp_path / "models" / "tiny"
    assert env_var_for("spinegrade_vertebrae") == "SPINEGRADE_VERTEBRAE_BUNDLE"
    monkeypatch.setenv(env_var_for("tiny"), str(bundle))
    assert find_bundle("tiny") == bundle  # env var beats the default folder
    assert find_bundle("tiny", path=tmp_path / "models" / "tiny") == tmp_path / "models" / "tiny"  # explicit wins
    monkeypatch.setenv(env_var_for("tiny"), str(tmp_path / "typo"))
    with pytest.raises(ModelError, match="not a bundle"):
        find_bundle("tiny")


def test_shipped_bundles_verify_and_have_a_model_card():
    """What ships in Resources/Models loads with its SHA-256 checked, with a card and a licence."""
    from SpineGradeLogic.models.bundle import load_bundle
    from SpineGradeLogic.resources import models_dir

    shipped = sorted(p for p in models_dir().glob("*") if (p / "configs" / "metadata.json").is_file())
    assert {p.name for p in shipped} >= {"spinegrade_vertebrae", "spinegrade_grading"}
    for path in shipped:
        model = load_bundle(path)
        assert len(model.sha256) == 64 and model.version
        card = (path / "docs" / "README.md").read_text()
        assert "Not a medical device" in card and "## Training" in card
        assert "Select a license" not in (path / "LICENSE").read_text()
