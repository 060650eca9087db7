"""Nothing is unpickled: a crafted bundle or checkpoint cannot run code (the metadata escape test is in tests/data)."""

import ast
import os
import pickle
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
import yaml
from apps_helpers import compose_app
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.strategies import DDPStrategy, FSDPStrategy

import latentaudio
from latentaudio.apps.common import ConfigError, build_trainer
from latentaudio.bundle import BundleError, load_bundle, save_bundle
from latentaudio.pipeline import Pipeline
from latentaudio.training.checkpoint import AtomicCheckpointIO, SafeFSDPStrategy, loads_weights_only

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


class RunsCode:
    """Pickles to a call of ``os.system``: what a crafted checkpoint would carry."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "global_step": 1, "payload": RunsCode(f"touch {marker}")}, path)
    return path


def test_an_fsdp_resume_from_a_crafted_checkpoint_runs_nothing(tmp_path):
    """The strategy trainer=fsdp builds loads the checkpoint itself (not through the CheckpointIO)."""
    strategy = hydra.utils.instantiate(
        compose_app("train_diffusion", tmp_path, ["trainer=fsdp"]).trainer.strategy
    )
    strategy.model = torch.nn.Linear(1, 1)  # what the strategy holds once fit has set it up
    strategy._lightning_module = pl.LightningModule()
    marker = tmp_path / "pwned"
    checkpoint = crafted_checkpoint(tmp_path / "last.ckpt", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        strategy.load_checkpoint(checkpoint)
    assert not marker.exists()


def test_every_resume_path_loads_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = crafted_checkpoint(tmp_path / "last.ckpt", marker)
    with pytest.raises(pickle.UnpicklingError):  # single device and DDP: even when asked for a full unpickle
        AtomicCheckpointIO().load_checkpoint(checkpoint, weights_only=False)
    assert not marker.exists()
    assert loads_weights_only(SafeFSDPStrategy())
    assert loads_weights_only(DDPStrategy(checkpoint_io=AtomicCheckpointIO()))
    assert not loads_weights_only(FSDPStrategy())  # Lightning's own loader unpickles fully
    assert not loads_weights_only(DDPStrategy(checkpoint_io=TorchCheckpointIO()))

    cfg = compose_app(
        "train_vae",
        tmp_path,
        ["+checkpoint_io._target_=" + TorchCheckpointIO.__module__ + ".TorchCheckpointIO"],
    )
    with pytest.raises(ConfigError, match="subclass it"):
        build_trainer(cfg, [], [])
