"""Sweeps: each training job leaves ``metrics.json`` in its run folder; at the end of a multirun
one table of what differed between the jobs and how each ended, as ``summary.md`` and
``summary.csv`` in the sweep folder.

Reading files rather than job return values works with every launcher, submitit's included
(there the jobs run on other machines), and with a sweep summarized again later:
``python -m latentaudio.training.sweep outputs/train_vae/multirun/<date_time>``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def write_final_metrics(output_dir: str | Path, trainer, objective: str) -> Path | None:
    """The run's final logged metrics and the value the app returns (rank zero only)."""
    if not trainer.is_global_zero:
        return None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if value.numel() == 1}
    record = {
        "objective": objective,
        "value": metrics.get(objective),
        "step": trainer.global_step,
        "metrics": metrics,
    }
    path = Path(output_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path


def _overrides(job_dir: Path) -> dict[str, str]:
    """The job's command-line overrides (Hydra's .hydra/overrides.yaml), as key -> value."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    pairs = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        pairs[key.lstrip("+~")] = value
    return pairs


def collect_jobs(sweep_dir: str | Path) -> list[dict]:
    """One row per job folder: job number, the overrides that differ between jobs, final metrics."""
    jobs = []
    for job_dir in sorted(Path(sweep_dir).iterdir(), key=lambda p: (len(p.name), p.name)):
        if not job_dir.is_dir() or not (job_dir / ".hydra").is_dir():
            continue
        metrics_path = job_dir / METRICS_FILE
        record = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        jobs.append({"job": job_dir.name, "overrides": _overrides(job_dir), "record": record})
    keys = list(dict.fromkeys(k for job in jobs for k in job["overrides"]))
    varying = [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1]
    rows = []
    for job in jobs:
        record = job["record"]
        row = {"job": job["job"]}
        row.update({key: job["overrides"].get(key, "") for key in varying})
        if not record:
            row["status"] = "no metrics (failed or still running)"
        else:
            row["status"] = "done"
            row["step"] = record.get("step")
            row[record["objective"]] = record.get("value")
            row.update(
                {k: v for k, v in sorted(record["metrics"].items()) if k.startswith("val/") and k not in row}
            )
        rows.append(row)
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def write_summary(sweep_dir: str | Path) -> str:
    """Write summary.md and summary.csv in the sweep folder; returns the markdown table."""
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    table = "\n".join(lines)
    (sweep_dir / "summary.md").write_text(f"# Sweep {sweep_dir.name}\n\n{table}\n")
    with (sweep_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: _cell(row.get(c)) for c in columns} for row in rows)
    return table


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml): the sweep's table once every job has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        table = write_summary(sweep_dir)
        print(f"\nsweep summary ({sweep_dir / 'summary.md'}):\n{table}", flush=True)


if __name__ == "__main__":
    print(write_summary(sys.argv[1]))
