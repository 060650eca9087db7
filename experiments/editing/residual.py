"""Residual regeneration (issue 19): keep the signal processing's output and add only what the
model changes, so that the VAE's own reconstruction error cancels out.

    .venv/bin/python -m experiments.editing.residual                       # the bundles of `make demo`
    .venv/bin/python -m experiments.editing.residual edits=tempo:0.8 strengths=0.2

The edited clip ``x`` (phase vocoder for pitch and tempo, resampling for speed) regenerated at
strength t is ``decode(vary(encode(x), t))``: its distance to real audio is bounded by the VAE's
(``spread.py``: on 20 sets of clips the VAE's reconstructions sit at FD mel 11 where the clips
sit at 6 and the vocoder's edits at 7-9). The residual
form is ``x + decode(vary(encode(x), t)) - decode(encode(x))``: at t = 0 exactly ``x``, and for
t > 0 ``x`` plus the model's change alone. If the DiT's change moved the clip towards real audio,
this would carry that gain without the VAE's loss. Rows: the transform alone, regenerated, and
residual, measured as ``run.py`` measures (same clips, references and columns). Writes
``residual.md`` beside this script.
"""

from __future__ import annotations

import sys
import time

from experiments.common import parse_arguments
from experiments.editing.run import DEFAULTS as STUDY
from experiments.editing.run import HERE, edit, load_study, measure, table

DEFAULTS = {
    **STUDY,
    "edits": "tempo:0.8,pitch:3,speed:1.25",
    "strengths": "0.2,0.4",
}


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    pipe, held_out, clips, labels, reference, reference_vae = load_study(args)
    rate, unpitched = pipe.sample_rate, set(str(args["unpitched"]).split(","))
    start, rows = time.perf_counter(), []

    def row(name: str, strength, edited, mode: str, amount: float) -> None:
        rows.append({"edit": name, "strength": strength})
        rows[-1].update(
            measure(edited, clips, labels, mode, amount, rate, reference, reference_vae, unpitched)
        )
        print(table(rows[-1:])[-1], flush=True)

    for item in str(args["edits"]).split(","):
        mode, amount = item.split(":")
        amount = float(amount)
        stretch = "vocoder" if mode in ("pitch", "tempo") else ""
        name = f"{mode} {amount:g}" + (f" ({stretch})" if stretch else " (resampling)")
        alone = edit(pipe, clips, labels, mode, amount, 0.0, stretch, args)
        through_vae = edit(pipe, clips, labels, mode, amount, "vae", stretch, args)
        row(name, 0, alone, mode, amount)
        for strength in [float(s) for s in str(args["strengths"]).split(",")]:
            regenerated = edit(pipe, clips, labels, mode, amount, strength, stretch, args)
            row(name, f"{strength:g}, regenerated", regenerated, mode, amount)
            row(name, f"{strength:g}, residual", alone + regenerated - through_vae, mode, amount)
    wall = time.perf_counter() - start
    lines = [
        "# Residual regeneration against regeneration and the transform alone (written by residual.py)",
        "",
        f"`{' '.join(['python -m experiments.editing.residual', *argv])}`"
        f" on {time.strftime('%Y-%m-%d')}, {wall:.0f} s; {len(held_out)} held-out clips, "
        f"VAE {pipe.autoencoder.hash}, DiT {pipe.bundle.hash}. Columns as in [table.md](table.md).",
        "",
        *table(rows),
        "",
    ]
    (HERE / "residual.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'residual.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
