"""Break a short training run the way users do, and report what survived.

make stress                    # or: PYTHONPATH=tests python -m harness.stress [--keep DIR] [--steps N]

Writes good audio mixed with broken and odd files (``harness.badfiles``) to a temporary
folder, trains the tiny VAE on it in a subprocess, kills it with SIGKILL once between
checkpoints and once in the middle of writing a checkpoint, resumes it each time with
``ckpt_path=last``, and prints: the files skipped, the steps lost per kill (at most one
checkpoint interval) and whether every checkpoint and the bundle still load. The kill
mid-write goes through the trainer's own seam: ``checkpoint_io=`` names
``StallingCheckpointIO``, which stalls between writing a checkpoint and renaming it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from harness.badfiles import write_bad_corpus
from latentaudio.bundle import BundleError, load_bundle
from latentaudio.training.checkpoint import AtomicCheckpointIO

SLOW_SAVE_MARKER = "stress: checkpoint temp file written, sleeping before the rename"
# the folder that holds the ``harness`` package, for the training child to import it from
HARNESS_ROOT = Path(__file__).resolve().parents[1]


class StallingCheckpointIO(AtomicCheckpointIO):
    """Saves that replace an existing checkpoint stall, once the data is written, until killed."""

    def write(self, checkpoint: dict, temporary: Path, path: Path) -> None:
        super().write(checkpoint, temporary, path)
        if path.exists():
            print(f"{SLOW_SAVE_MARKER}: {path.name} at step {checkpoint['global_step']}", flush=True)
            time.sleep(3600)


def training_command(run: Path, root: Path, cache: Path, steps: int, every: int, resume: bool) -> list[str]:
    """A tiny-VAE train-vae run in ``run``, logging every step to csv/metrics.csv."""
    return [
        "model/vae=tiny",
        f"data.root={root}",
        "data.sample_length=2048",
        "data.batch_size=2",
        "data.val_fraction=0.1",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=1000",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        f"callbacks.model_checkpoint.every_n_train_steps={every}",
        "logger=csv",
        "+logger.csv.flush_logs_every_n_steps=1",
        "media.every_n_steps=0",
        f"hydra.run.dir={run}",
        f"paths.cache_dir={cache}",
        *(["ckpt_path=last"] if resume else []),
    ]


def launch(overrides: list[str], slow_save: bool = False, log_path: Path | None = None) -> subprocess.Popen:
    """Start train-vae in a child process (optionally one whose checkpoint saves stall mid-write)."""
    command = [sys.executable, "-m", "latentaudio.apps.train_vae", *overrides]
    if slow_save:
        command.append("+checkpoint_io._target_=harness.stress.StallingCheckpointIO")
    path = os.pathsep.join(p for p in (str(HARNESS_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def checkpoint_step(path: Path) -> int | None:
    """The global step stored in ``path``, or None when there is none yet (or it does not load)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except (OSError, RuntimeError, KeyError, EOFError, ValueError):
        return None


def logged_step(run: Path) -> int:
    """Training steps completed by the current process, from its csv log (it logs step i while doing it)."""
    steps = 0
    for path in run.glob("csv/**/metrics.csv"):
        lines = path.read_text().splitlines()
        if not lines:
            continue
        columns = lines[0].split(",")
        if "step" not in columns or "train/loss" not in columns:
            continue
        step_at, loss_at = columns.index("step"), columns.index("train/loss")
        for line in lines[1:]:
            cells = line.split(",")
            if len(cells) > max(step_at, loss_at) and cells[loss_at] and cells[step_at]:
                steps = max(steps, int(float(cells[step_at])) + 1)
    return steps


def wait_for(condition, process: subprocess.Popen, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            raise RuntimeError(f"the training process exited (code {process.returncode}) before {what}")
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def inspect_checkpoints(run: Path) -> dict[str, int | None]:
    """Every checkpoint (and the bundle) of ``run`` -> its step, or None when it does not load."""
    found = {path.name: checkpoint_step(path) for path in sorted((run / "checkpoints").glob("*.ckpt"))}
    try:
        found["export/ (bundle)"] = int(load_bundle(run / "export", kind="vae").meta["step"])
    except BundleError:
        found["export/ (bundle)"] = None
    return found


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob(".*.tmp-*"))


def _marker_line(log_path: Path) -> str | None:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if SLOW_SAVE_MARKER in line]
    return lines[-1] if lines else None


def stress(workdir: Path, steps: int = 24, every: int = 4, timeout: float = 300.0) -> dict:
    root, run, cache = workdir / "audio", workdir / "run", workdir / "cache"
    log_path = workdir / "training.log"
    corpus = write_bad_corpus(root, good_files=12, seconds=0.5)
    last = run / "checkpoints" / "last.ckpt"
    report: dict = {"corpus": corpus, "kills": []}

    # 1. kill between checkpoints: after the first checkpoint and a step or two more
    process = launch(training_command(run, root, cache, steps, every, resume=False), log_path=log_path)
    saved = wait_for(lambda: checkpoint_step(last), process, timeout, "the first checkpoint")
    reached = wait_for(
        lambda: logged_step(run) > saved + 1 and logged_step(run), process, timeout, "more steps"
    )
    kill(process)
    reached = max(reached, logged_step(run))
    kept = checkpoint_step(last)
    report["kills"].append(
        {
            "when": "between checkpoints",
            "reached": reached,
            "kept": kept,
            "checkpoints": inspect_checkpoints(run),
        }
    )

    # 2. resume, and kill in the middle of writing the next checkpoint
    before = checkpoint_step(last)
    process = launch(
        training_command(run, root, cache, steps, every, resume=True), slow_save=True, log_path=log_path
    )
    marker = wait_for(lambda: _marker_line(log_path), process, timeout, "a save")
    reached = int(marker.rsplit(" ", 1)[-1])  # the step being saved when the process died
    kill(process)
    report["kills"].append(
        {
            "when": "while writing a checkpoint",
            "reached": reached,
            "kept": checkpoint_step(last),
            "resumed_from": before,
            "checkpoints": inspect_checkpoints(run),
            "temporary_files": leftovers(run),
        }
    )

    # 3. resume to the end
    process = launch(training_command(run, root, cache, steps, every, resume=True), log_path=log_path)
    code = process.wait(timeout=timeout)
    final = torch.load(last, map_location="cpu", weights_only=True)
    report.update(
        exit_code=code,
        final_step=int(final["global_step"]),
        optimizer_steps=int(final["optimizer_states"][0]["state"][0]["step"]),
        checkpoints=inspect_checkpoints(run),
        not_resumable_warning="not resumable" in log_path.read_text(errors="replace"),
        log=log_path,
    )
    return report


def print_report(report: dict, steps: int, every: int) -> bool:
    corpus = report["corpus"]
    print(
        f"corpus: {len(corpus.usable)} usable files ({len(corpus.odd)} odd ones converted), "
        f"{len(corpus.unusable)} broken ones:"
    )
    for path, what in corpus.unusable.items():
        print(f"  skipped {path} ({what})")
    healthy = True
    for number, kill_report in enumerate(report["kills"], 1):
        lost = kill_report["reached"] - (kill_report["kept"] or 0)
        intact = all(step is not None for step in kill_report["checkpoints"].values())
        healthy &= intact and kill_report["kept"] is not None and lost <= every
        print(
            f"kill {number} ({kill_report['when']}): reached step {kill_report['reached']}, last.ckpt at step "
            f"{kill_report['kept']}, {lost} steps lost (checkpoint interval {every}); "
            f"checkpoints {'intact' if intact else 'DAMAGED'}: {kill_report['checkpoints']}"
        )
        if "temporary_files" in kill_report:
            healthy &= kill_report["kept"] == kill_report["resumed_from"]
            print(
                f"  the interrupted save left {kill_report['temporary_files'] or 'no'} temporary file(s); "
                f"last.ckpt still holds step {kill_report['kept']}"
            )
    finished = report["exit_code"] == 0 and report["final_step"] == steps == report["optimizer_steps"]
    healthy &= finished and all(step is not None for step in report["checkpoints"].values())
    print(
        f"final run: exit code {report['exit_code']}, step {report['final_step']} of {steps}, "
        f"{report['optimizer_steps']} optimizer steps in total (no step counted twice); "
        f"checkpoints: {report['checkpoints']}"
    )
    print(f"dataloader resumable (no Lightning warning): {not report['not_resumable_warning']}")
    print("STRESS OK" if healthy else "STRESS FAILED")
    return healthy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--every", type=int, default=4, help="checkpoint interval in steps")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="latentaudio-stress-"))
    if args.keep and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        healthy = print_report(stress(workdir, args.steps, args.every), args.steps, args.every)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"run folder, corpus and training log kept in {workdir}")
    print(f"({time.monotonic() - start:.0f} s)")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
