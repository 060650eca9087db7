"""Issue 18's quality-at-equal-steps study: the distilled demo DiT against its teacher.

    make distill ARGS="dit=outputs/demo/dit/export vae=outputs/demo/vae/export data.root=data/demo \\
        hydra.run.dir=outputs/demo/distill"
    .venv/bin/python -m experiments.fewstep.run              # writes experiments/fewstep/table_distill.md

Every row is ``make evaluate`` on the first 64 demo clips (64 generated, 8 per label for the label
judge): FD on MFCC statistics (with the real-vs-real and VAE floors), label accuracy (with the
judge's ceiling on held-out real clips) and the realtime factor of generation. The teacher is the
demo DiT with its own sampler and guidance; ``teacher_N`` the same network cut to N steps (what
distillation has to beat), ``distilled_N`` the round of the distillation that samples in N steps,
unguided, with the bundle's own settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from experiments.common import adherence_row, evaluate_dit, parse_arguments

ROOT = Path(__file__).resolve().parents[2]
TABLES = ROOT / "experiments" / "fewstep"  # table_<run folder name>.md
RUNS = ROOT / "experiments" / "fewstep" / "runs.jsonl"
DEFAULTS = {
    "vae": "outputs/demo/vae/export",
    "teacher": "outputs/demo/dit/export",
    "run": "outputs/demo/distill",
    "reuse_teacher": False,
    "per_label": 8,  # clips per label for the label judge (8: about 0.03 a clip over five labels)
    "only": "",  # comma-separated row names (teacher_50,distilled_8); empty: all
    "seed": 0,  # evaluate's seed= (which noise each generated clip starts from)
}
# reuse_teacher=true: the teacher rows from runs.jsonl (same teacher weights and clips per label);
# only the students are evaluated


def configurations(teacher: str, run: Path) -> dict[str, tuple[Path, list[str]]]:
    rounds = {int(p.name.removesuffix("steps")): p for p in (run / "rounds").glob("*steps")}
    final = json.loads((run / "export" / "meta.json").read_text())["sampling"]["steps"]
    rounds[final] = run / "export"
    out = {"teacher_50": (ROOT / teacher, ["generation.steps=50"])}
    for steps in (8, 4, 2, 1):
        out[f"teacher_{steps}"] = (ROOT / teacher, [f"generation.steps={steps}"])
    for steps in (8, 4, 2, 1):
        if steps in rounds:
            out[f"distilled_{steps}"] = (rounds[steps], [])
        elif steps < min(rounds):  # the fewest-step student, asked for fewer
            out[f"distilled_{steps}"] = (rounds[min(rounds)], [f"generation.steps={steps}"])
    return out


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    run = ROOT / args["run"]
    rows, done = [], {}
    teacher_hash = json.loads((ROOT / args["teacher"] / "meta.json").read_text())["hash"]
    if args["reuse_teacher"] and RUNS.exists():
        for line in RUNS.read_text().splitlines():
            row = json.loads(line)
            same = (row.get("dit_hash"), row.get("clips_per_label"), row.get("seed", 0)) == (
                teacher_hash,
                args["per_label"],
                args["seed"],
            )
            if row["name"].startswith("teacher_") and same:
                done[row["name"]] = row  # the latest of each
    wanted = [n for n in str(args["only"]).split(",") if n]
    extra = [f"adherence.per_label={args['per_label']}", f"seed={args['seed']}"]
    for name, (dit, overrides) in configurations(args["teacher"], run).items():
        if wanted and name not in wanted:
            continue
        if name in done:
            rows.append(done[name])
            continue
        folder = run / "eval" / (name if not args["seed"] else f"{name}_seed{args['seed']}")
        metrics = evaluate_dit(folder, args["vae"], dit, overrides + extra)
        row = {
            "name": name,
            "dit": str(Path(dit).relative_to(ROOT)),
            "dit_hash": metrics["dit_hash"],
            "run": args["run"],
            "clips_per_label": args["per_label"],
            "seed": args["seed"],
            "overrides": overrides,
            "realtime_factor": metrics["generation"].get("realtime_factor"),
            "steps": metrics["generation"].get("steps"),
            **adherence_row(metrics),
        }
        rows.append(row)
        with open(RUNS, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    teacher = rows[0]
    lines = [
        "# Few-step generation: the distilled demo DiT against its teacher (written by experiments/fewstep/run.py)",
        "",
        f"Command: `.venv/bin/python -m experiments.fewstep.run {' '.join(argv)}` after the `make distill` "
        f"in its docstring. 64 demo clips, 64 generated; label accuracy over {args['per_label']} clips per label. "
        f"Floors: FD MFCC real vs real {teacher['fd_mfcc_real_floor']:.1f}, VAE reconstructions "
        f"{teacher['fd_mfcc_vae_floor']:.1f}; label judge on held-out real clips {teacher['label_ceiling']:.2f}, "
        f"on their VAE reconstructions {teacher['label_vae_ceiling']:.2f}.",
        "",
        "| model | FD MFCC | vs teacher_50 | label accuracy | vs teacher_50 | realtime factor |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['fd_mfcc']:.1f} | {r['fd_mfcc'] / teacher['fd_mfcc']:.2f}x | "
            f"{r['label_accuracy']:.2f} | {r['label_accuracy'] / max(teacher['label_accuracy'], 1e-9):.2f}x | "
            f"{r['realtime_factor']:.1f} |"
        )
    suffix = "" if args["per_label"] == DEFAULTS["per_label"] else f"_{args['per_label']}_per_label"
    suffix += f"_seed{args['seed']}" if args["seed"] else ""
    table = TABLES / f"table_{run.name}{suffix}.md"
    table.write_text("\n".join(lines) + "\n")
    print(f"written {table.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
