"""Issue 16's demo study: does a LoRA adapter teach the demo DiT a sound it has never heard?

    make demo && make demo-finetune
    .venv/bin/python -m experiments.finetune.adapt          # writes experiments/finetune/adapt.md

The adapter from ``make demo-finetune`` (marimba, a label the demo DiT does not know, trained on
data/demo-marimba) is applied to the demo DiT at scales 0, 0.5 and 1. A label judge
(``latentaudio.adherence.LabelJudge``, the one ``make evaluate`` uses) is fitted on real clips of
all six labels (the five demo labels and marimba), its accuracy on held-out real clips the ceiling.
A DiT can only make what its VAE can decode, and the demo VAE never heard a marimba either, so a
second judge is fitted on the VAE's reconstructions of the same clips (its ceiling: held-out
reconstructions). For each scale the study reports how often clips asked for marimba are judged
marimba by each, their Frechet distance (MFCC statistics) to real marimba clips beside those of
held-out real clips and of their VAE reconstructions (the floors), and the accuracy of clips asked
for the five old labels (what the adapter costs them).
Scale 0 must equal the DiT without the adapter bit for bit: the study checks it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from experiments.common import parse_arguments

ROOT = Path(__file__).resolve().parents[2]
TABLES = ROOT / "experiments" / "finetune"
USAGE = "python -m experiments.finetune.adapt [vae=...] [dit=...] [adapter=...] [per_label=16] [seed=0]"
DEFAULTS = {
    "vae": "outputs/demo/vae/export",
    "dit": "outputs/demo/dit/export",
    "adapter": "outputs/demo/finetune/export",
    "data": "data/demo",
    "new_data": "data/demo-marimba",
    "new_label": "marimba",
    "per_label": 16,
    "scales": [0.0, 0.5, 1.0],
    "seed": 0,
    "output": "adapt.md",  # under experiments/finetune/
}


def main(argv: list[str]) -> None:
    from latentaudio import metrics
    from latentaudio.adherence import LabelJudge, judge_split, read_real_clips
    from latentaudio.pipeline import Pipeline

    args = parse_arguments(argv, DEFAULTS, USAGE)
    torch.manual_seed(args["seed"])
    plain = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit"])
    adapted = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit"], lora=[ROOT / args["adapter"]])
    name, new, rate = adapted.adapters[0]["name"], args["new_label"], adapted.sample_rate
    old = list(plain.labels)
    if new not in adapted.labels or new in old:
        raise SystemExit(
            f"the adapter should add the label {new!r} to the DiT's {old}; it knows {adapted.labels}"
        )

    names, clips, rows = [], [], []
    for folder in (args["data"], args["new_data"]):
        real = read_real_clips(ROOT / folder, rate)
        names += [f"{Path(folder).name}/{p}" for p in real.paths]  # two folders, one judge split
        clips, rows = clips + real.clips, rows + real.rows
    labels = [str(r.get("label") or "") for r in rows]
    train, held = judge_split(names)
    with torch.inference_mode():
        rebuilt = [adapted.autoencoder.reconstruct(c[None], rate)[0].cpu() for c in clips]
    judges = {}
    for name_, source in (("real", clips), ("vae", rebuilt)):
        judges[name_] = LabelJudge.fit(
            [source[i] for i in train],
            [labels[i] for i in train],
            [source[i] for i in held],
            [labels[i] for i in held],
            rate,
        )
    judge = judges["real"]
    held_verdict = judge.judge([clips[i] for i in held], [labels[i] for i in held], rate)
    vae_verdict = judges["vae"].judge([rebuilt[i] for i in held], [labels[i] for i in held], rate)
    real_new = metrics.mfcc_features([clips[i] for i in train if labels[i] == new], rate)
    held_new = [i for i in held if labels[i] == new]
    floor = metrics.frechet_distance(metrics.mfcc_features([clips[i] for i in held_new], rate), real_new)
    vae_floor = metrics.frechet_distance(
        metrics.mfcc_features([rebuilt[i] for i in held_new], rate), real_new
    )

    settings = dict(seconds=adapted.train_seconds, n=args["per_label"])
    same = (
        plain.generate(label=old[0], seed=args["seed"], **settings)
        == adapted_at(adapted, name, 0.0).generate(label=old[0], seed=args["seed"], **settings)
    ).all()
    lines = [
        "# LoRA adaptation of the demo DiT to an unseen instrument (written by experiments/finetune/adapt.py)",
        "",
        f"Command: `.venv/bin/python -m experiments.finetune.adapt {' '.join(argv)}` after "
        "`make demo` and `make demo-finetune`. Judge: fitted on the training split of "
        f"{len(train)} real clips of {', '.join(judge.labels)}; held-out real clips: {len(held)} "
        f"(accuracy {judge.ceiling:.2f}, on {new} {held_verdict['per_label'].get(new, float('nan')):.2f}); "
        "the VAE-domain judge, fitted on the VAE's reconstructions of the same clips, on held-out "
        f"reconstructions: {judges['vae'].ceiling:.2f}, on {new} {vae_verdict['per_label'].get(new, float('nan')):.2f}. "
        f"{args['per_label']} generated clips per label and scale. FD: Frechet distance on MFCC statistics "
        f"to the training split's real {new} clips; floors: held-out real {new} clips {floor:.1f}, their VAE "
        f"reconstructions {vae_floor:.1f} (the nearest a DiT decoded by this VAE can get).",
        "",
        f"Scale 0 equals the DiT without the adapter bit for bit: {'yes' if bool(same) else 'NO'}.",
        "",
        f"| lora_scale | asked {new}: judged {new} | by the VAE-domain judge | FD to real {new} "
        f"| old labels: accuracy | old labels: judged {new} |",
        "|---|---|---|---|---|---|",
    ]
    for scale in args["scales"]:
        adapted_at(adapted, name, float(scale))
        asked_new = [c for c in adapted.generate(label=new, seed=args["seed"] + 99, **settings)]
        verdict = judge.judge(asked_new, [new] * len(asked_new), rate)
        vae_judged = judges["vae"].judge(asked_new, [new] * len(asked_new), rate)["accuracy"]
        distance = metrics.frechet_distance(metrics.mfcc_features(asked_new, rate), real_new)
        old_clips, old_asked = [], []
        for index, label in enumerate(old):
            old_clips += list(adapted.generate(label=label, seed=args["seed"] + index, **settings))
            old_asked += [label] * args["per_label"]
        old_verdict = judge.judge(old_clips, old_asked, rate)
        false_new = sum(p == new for p in old_verdict["predicted"]) / len(old_clips)
        lines.append(
            f"| {scale:g} | {verdict['accuracy']:.2f} | {vae_judged:.2f} | {distance:.1f} | "
            f"{old_verdict['accuracy']:.2f} | {false_new:.2f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"Real-data ceilings: the judge on held-out real clips, {new} {held_verdict['per_label'].get(new, 0):.2f}, "
        f"the five old labels {sum(held_verdict['per_label'][k] for k in old) / len(old):.2f} (mean per label); "
        f"on their VAE reconstructions, {new} {judge.judge([rebuilt[i] for i in held_new], [new] * len(held_new), rate)['accuracy']:.2f}.",
    ]
    table = TABLES / args["output"]
    table.write_text("\n".join(lines) + "\n")
    print(f"written {table.relative_to(ROOT)}")


def adapted_at(pipeline, name: str, scale: float):
    pipeline.set_adapter_scale(name, scale)
    return pipeline


if __name__ == "__main__":
    main(sys.argv[1:])
