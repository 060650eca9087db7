"""Nothing is unpickled, and a crafted bundle cannot run code (the metadata escape test is in tests/data)."""

import ast
from pathlib import Path

import pytest
import yaml

import latentaudio
from latentaudio.bundle import BundleError, load_bundle, save_bundle
from latentaudio.pipeline import Pipeline

from .helpers import tiny_vae_bundle

PACKAGE = Path(latentaudio.__file__).parent


def calls_in_package():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                yield path.relative_to(PACKAGE), node


def test_no_torch_load_without_weights_only_and_no_pickle():
    unsafe, pickles = [], []
    for path, call in calls_in_package():
        name = ast.unparse(call.func)
        if name == "torch.load":
            flags = {k.arg: k.value for k in call.keywords}
            weights_only = flags.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                unsafe.append(f"{path}:{call.lineno}")
        if name.split(".")[-1] in ("loads", "load") and name.split(".")[0] in (
            "pickle",
            "dill",
            "cloudpickle",
        ):
            pickles.append(f"{path}:{call.lineno}")
    assert unsafe == [] and pickles == []
    assert not any("import pickle" in p.read_text() for p in PACKAGE.rglob("*.py"))


@pytest.fixture
def dit_bundle(tmp_path):
    digest = tiny_vae_bundle(tmp_path / "vae")
    network = load_bundle(tmp_path / "vae").build("vae")
    directory = tmp_path / "dit"
    save_bundle(directory, "dit", {"dit": network}, {"dit": {"_target_": "x"}}, {"vae_hash": digest})
    return tmp_path / "vae", directory


def test_a_malicious_dit_config_cannot_run_code(dit_bundle, tmp_path):
    vae, dit = dit_bundle
    marker = tmp_path / "pwned"
    attacks = [
        # a _target_ naming a function that runs a command
        {"dit": {"_target_": "os.system", "command": f"touch {marker}"}, "conditioner": {}},
        {"dit": {"_target_": "subprocess.run", "args": ["touch", str(marker)]}, "conditioner": {}},
        # one of our modules, but not an allowed class
        {"dit": {"_target_": "latentaudio.apps.common.save_resolved_config", "cfg": {}}, "conditioner": {}},
    ]
    for attack in attacks:
        (dit / "config.yaml").write_text(yaml.safe_dump(attack))
        with pytest.raises(BundleError, match="refusing to build"):
            Pipeline.from_bundles(vae, dit)
    # a YAML tag that would call a function when loaded with an unsafe loader
    (dit / "config.yaml").write_text(f"dit: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(BundleError, match="unreadable"):
        load_bundle(dit, kind="dit")
    assert not marker.exists()


def test_a_dit_bundle_cannot_point_the_pipeline_at_a_local_folder_or_ask_for_absurd_sizes(tmp_path):
    from latentaudio.dit.conditioning import Conditioner
    from latentaudio.dit.model import DiT

    vae = tmp_path / "vae"
    digest = tiny_vae_bundle(vae)
    conditioner = {"_target_": "latentaudio.dit.conditioning.Conditioner", "global_dim": 8, "num_labels": 2}
    dit = {"_target_": "latentaudio.dit.model.DiT", "latent_dim": 3, "width": 8, "depth": 1, "heads": 2}
    dit["global_cond_dim"] = 8  # the conditioner's global_dim, as training sets it
    components = {
        "dit": DiT(**{k: v for k, v in dit.items() if k != "_target_"}),
        "conditioner": Conditioner(8, num_labels=2),
    }
    directory = tmp_path / "dit"
    save_bundle(directory, "dit", components, {"dit": dit, "conditioner": conditioner}, {"vae_hash": digest})
    attacks = {
        "conditioner.text_path": {
            "conditioner": {**conditioner, "text": "t5", "cross_dim": 8, "text_path": "/"}
        },
        "dit.depth": {"conditioner": conditioner, "dit": {**dit, "depth": 10**8}},
    }
    for key, attack in attacks.items():
        (directory / "config.yaml").write_text(yaml.safe_dump({"dit": dit, **attack}))
        with pytest.raises(BundleError, match=rf"{key}="):
            Pipeline.from_bundles(vae, directory)
