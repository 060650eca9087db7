"""Crashes lose at most one checkpoint interval: SIGKILL between saves and during a save."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from apps_helpers import compose_app
from harness.badfiles import write_bad_corpus
from harness.stress import (
    HARNESS_ROOT,
    SLOW_SAVE_MARKER,
    StallingCheckpointIO,
    checkpoint_step,
    kill,
    launch,
    logged_step,
    training_command,
    wait_for,
)

from latentaudio.apps.common import build_trainer
from latentaudio.bundle import load_bundle
from latentaudio.data.resumable import ResumableLoader
from latentaudio.files import atomic_write
from latentaudio.training.checkpoint import AtomicCheckpointIO

EVERY = 2


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_resumes_from_the_last_one(tmp_path):
    root, run, cache = tmp_path / "audio", tmp_path / "run", tmp_path / "cache"
    write_bad_corpus(root, good_files=8, seconds=0.5)
    last = run / "checkpoints" / "last.ckpt"
    process = launch(training_command(run, root, cache, 200, EVERY, resume=False), log_path=tmp_path / "log")
    saved = wait_for(lambda: checkpoint_step(last), process, 300, "the first checkpoint")
    wait_for(lambda: logged_step(run) > saved, process, 300, "a step past the checkpoint")
    kill(process)
    assert process.returncode == -signal.SIGKILL
    killed = torch.load(last, weights_only=True)
    kept = killed["global_step"]
    assert 0 < kept and logged_step(run) - kept <= EVERY  # lost at most one interval
    assert killed["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["served"] > 0

    target = kept + 2 * EVERY  # a checkpoint step: last.ckpt is not rewritten at the end of fit
    log = tmp_path / "resumed.log"
    resumed = launch(training_command(run, root, cache, target, EVERY, resume=True), log_path=log)
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"Restored all states from the checkpoint at {last}" in text
    assert "not resumable" not in text  # the data position came back too
    final = torch.load(last, weights_only=True)
    assert final["global_step"] == target
    before, after = killed["optimizer_states"], final["optimizer_states"]
    assert after[0]["state"][0]["step"] == before[0]["state"][0]["step"] + (target - kept)
    assert load_bundle(run / "export", kind="vae").meta["step"] == target


CHILD = textwrap.dedent(
    """
    import os, sys, time
    import torch
    from harness.stress import StallingCheckpointIO
    from latentaudio.bundle import save_bundle
    from latentaudio.files import atomic_write
    from latentaudio.training.checkpoint import AtomicCheckpointIO
    from latentaudio.vae.model import AudioVAE

    folder = sys.argv[1]
    config = dict(channels=1, base_channels=4, channel_mults=[1], strides=[2], latent_dim=2)
    vae = AudioVAE(**config)
    target = {"_target_": "latentaudio.vae.model.AudioVAE", **config}
    AtomicCheckpointIO().save_checkpoint({"global_step": 1, "w": torch.ones(1000)}, folder + "/last.ckpt")
    save_bundle(folder + "/export", "vae", {"vae": vae}, {"vae": target}, {"step": 1})
    if sys.argv[2] == "ckpt":  # the trainer's seam: a CheckpointIO that stalls before its rename
        StallingCheckpointIO().save_checkpoint({"global_step": 2, "w": torch.zeros(1000)}, folder + "/last.ckpt")
    else:
        def stall(source, destination):
            print("stalled", os.path.basename(destination), flush=True)
            time.sleep(3600)

        os.replace = stall  # the bundle's folder is complete when its rename stalls
        save_bundle(folder + "/export", "vae", {"vae": AudioVAE(**config)}, {"vae": target}, {"step": 2})
    """
)


@pytest.mark.parametrize("what", ["ckpt", "bundle"])
def test_a_process_killed_while_saving_leaves_the_previous_file_intact(tmp_path, what):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HARNESS_ROOT), os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), what], stdout=subprocess.PIPE, text=True, env=env
    )
    line = child.stdout.readline()
    assert line.startswith("stalled" if what == "bundle" else SLOW_SAVE_MARKER), line
    kill(child)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 1
    assert load_bundle(tmp_path / "export", kind="vae").meta["step"] == 1  # the hash check passes too
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers  # the half-done save is only in a temporary name...
    # ...which the next save of the same checkpoint clears away
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, tmp_path / "last.ckpt")
    assert not [p for p in tmp_path.glob(".last.ckpt.tmp-*")]


def test_the_training_loader_continues_an_epoch_where_a_checkpoint_left_it():
    dataset = list(range(23))
    uninterrupted = ResumableLoader(dataset, batch_size=4, seed=7, drop_last=True)
    epochs = [[b.tolist() for b in uninterrupted] for _ in range(2)]
    assert sorted(sum(epochs[0], [])) != sum(epochs[0], []) and epochs[0] != epochs[1]

    first = ResumableLoader(dataset, batch_size=4, seed=7, drop_last=True)
    batches = iter(first)
    seen = [next(batches).tolist() for _ in range(3)]
    state = first.state_dict()
    assert state == {"epoch": 0, "served": 3, "seed": 7}

    restarted = ResumableLoader(dataset, batch_size=4, seed=0, drop_last=True)
    restarted.load_state_dict(state)
    rest = [b.tolist() for b in restarted]
    assert seen + rest == epochs[0]  # the same batches, none twice, none missed
    assert [b.tolist() for b in restarted] == epochs[1]


def test_the_stress_harness_swaps_the_trainers_checkpoint_io(tmp_path):
    cfg = compose_app("train_vae", tmp_path, ["+checkpoint_io._target_=harness.stress.StallingCheckpointIO"])
    assert isinstance(build_trainer(cfg, [], []).strategy.checkpoint_io, StallingCheckpointIO)


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_atomic_write_replaces_whole_or_not_at_all(tmp_path, kind):
    def write(path: Path, text: str) -> None:
        if kind == "folder":
            path.mkdir()
            (path / "a").write_text(text)
            (path / "b").write_text(text)
        else:
            path.write_text(text)

    def read(path: Path) -> str:
        return (path / "a").read_text() + (path / "b").read_text() if kind == "folder" else path.read_text()

    target = tmp_path / "target"
    with atomic_write(target) as temporary:
        write(temporary, "old")
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as temporary:
        write(temporary, "new")
        raise OSError("disk full")
    assert read(target) == ("oldold" if kind == "folder" else "old")
    with atomic_write(target) as temporary:
        assert not temporary.exists() and temporary.parent == target.parent
        write(temporary, "new")
    assert read(target) == ("newnew" if kind == "folder" else "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # no temporaries, no old folder
