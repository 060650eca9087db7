"""Few-step post-training of a trained DiT: progressive distillation (Salimans & Ho 2022) or guidance distillation.

``method="progressive"`` (the default):
A student that starts as a copy of the teacher learns to take, in one deterministic step, the two
steps the teacher takes over the same interval (DDIM for the v objective, Euler for rectified
flow: the same update, re-noising the x0 prediction). Round r's student samples in
``rounds[r]`` steps; the first round's teacher is the trained DiT at ``2 * rounds[0]`` steps with
classifier-free guidance (Meng et al. 2023: the guided teacher is distilled into a conditional
student), each later round's teacher the previous round's student. The student is conditional
only and samples without guidance (``cfg_scale`` 1, half the network calls of a guided step).

The training data are the teacher's own latents' conditions and the real latents noised onto the
student's grid of times, so no sampling of whole trajectories is needed: a student step costs two
teacher calls (guided in round one) and one student step of training.

``method="guidance"``: one round in which the student learns the guided teacher's output at
every time the base trained on (the first stage of Meng et al. 2023), so it samples unguided
with the base's own multistep sampler (DPM-Solver++ on the demo) in ``guidance_steps`` steps:
the teacher's trajectory is kept whole, only the second network call of each step is saved.

Targets (progressive): for a state x_t at time t, the teacher's two steps land on x_u at u = t - 1/N. The one
deterministic step that lands there from x_t predicts ``x0 = (x_u - (s_u / s_t) x_t) / (a_u - s_u
a_t / s_t)`` (a, s: the objective's alpha and sigma); the student is trained on the model output
that denoises x_t to that x0, so the loss is the usual one of the objective (for v: the x0 error
weighted by 1 + SNR, as in the paper).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from latentaudio.dit.diffusion import DiffusionObjective
from latentaudio.dit.lora import load_base_weights
from latentaudio.dit.samplers import DEFAULT_SAMPLERS, SCHEDULE_KEYS, time_grid
from latentaudio.dit.training import DiTTraining

log = logging.getLogger(__name__)
# the deterministic one-step sampler of each objective: the update a distilled student is trained for
STUDENT_SAMPLERS = {"v": "ddim", "rectified_flow": "euler"}
METHODS = ("progressive", "guidance")


class DistillError(ValueError):
    """Distillation settings that cannot work; the message says the fix."""


def check_rounds(rounds, steps_per_round) -> list[int]:
    """``rounds``: decreasing step counts, each half the one before (``[16, 8, 4]``)."""
    rounds = [int(r) for r in rounds or []]
    if not rounds or rounds[-1] < 1 or any(a != 2 * b for a, b in zip(rounds, rounds[1:])):
        raise DistillError(
            f"distill.rounds={rounds}: give the student's steps per round, each half the one before, "
            "e.g. [16, 8, 4] (the first round's teacher takes twice the first count)"
        )
    if int(steps_per_round) < 1:
        raise DistillError(
            f"distill.steps_per_round={steps_per_round}: give a positive number of optimizer steps"
        )
    return rounds


def check_method(method: str, guidance_steps) -> str:
    """``method``: progressive (halving rounds) or guidance (one round; ``guidance_steps`` >= 1)."""
    if method not in METHODS:
        raise DistillError(
            f"distill.method={method!r}: choose progressive (halving rounds, DDIM/Euler student) "
            "or guidance (the guidance distilled in, sampled with the base's own sampler)"
        )
    if method == "guidance" and (guidance_steps is None or int(guidance_steps) < 1):
        raise DistillError(
            f"distill.guidance_steps={guidance_steps}: give the steps the guidance-distilled bundle samples in, e.g. 8"
        )
    return method


def round_counts(distill: dict) -> list[int]:
    """The student's steps per round: ``rounds``, or the one round of guidance distillation."""
    method = check_method(distill.get("method", "progressive"), distill.get("guidance_steps"))
    if distill.get("guidance_times", "all") not in ("all", "grid"):
        raise DistillError(
            f"distill.guidance_times={distill['guidance_times']!r}: choose all (every time) or grid "
            "(only the times the sampler visits in guidance_steps)"
        )
    if method == "guidance":
        check_rounds([1], distill["steps_per_round"])
        return [int(distill["guidance_steps"])]
    return check_rounds(distill["rounds"], distill["steps_per_round"])


def check_distillable(objective_name: str, aligned: bool, where: str) -> None:
    """A DiT can be distilled when its objective has a deterministic sampler and it has no aligned input."""
    if objective_name not in STUDENT_SAMPLERS:
        raise DistillError(f"{where}: objective {objective_name!r} has no deterministic sampler to distill")
    if aligned:
        raise DistillError(
            f"{where} has aligned conditioning (inpaint/enhance); distillation supports plain DiTs for now"
        )


def two_step_target(
    objective: DiffusionObjective, teacher: Callable, x_t: Tensor, t: Tensor, n: int
) -> Tensor:
    """The x0 with which one deterministic step of 1/n from ``x_t`` at ``t`` (B,) lands where
    ``teacher(x, t) -> output`` takes it in two deterministic steps of 1/(2n)."""
    u = (t - 1.0 / n).clamp_min(0.0)
    mid = (t - 0.5 / n).clamp_min(0.0)
    x = x_t
    for start, end in ((t, mid), (mid, u)):
        moved = objective.step(x, objective.denoised(x, teacher(x, start), start), start, end)
        # a time below 1/(2n) (validation's fixed levels) reaches 0 in the first step: no second
        x = torch.where((start > end).view(-1, *[1] * (x.dim() - 1)), moved, x)
    return objective.x0_between(x_t, x, t, u)


class DistillTraining(DiTTraining):
    """``DiTTraining`` whose target comes from a teacher (its two steps, or its guided output); the
    step, guard, checkpoints, data and export are the DiT's own.

    ``distill``: ``{"base_path", "base_hash", "method", "rounds": [16, 8, 4], "guidance_steps",
    "guidance_times", "steps_per_round", "cfg_scale", "cfg_rescale"}`` (the teacher's guidance in
    round one).
    """

    def __init__(self, *args, distill: dict, **kwargs):
        self.distill = dict(distill)  # before DiTTraining's init, which calls start_from_base
        super().__init__(*args, **kwargs)
        self.teacher = copy.deepcopy(self.denoiser).eval().requires_grad_(False)
        self.register_buffer(
            "teacher_round", torch.tensor(0, dtype=torch.long)
        )  # whose student the teacher is
        self._exporting_round: int | None = None

    def start_from_base(self) -> None:
        """The student starts as the teacher: the base DiT's weights (EMA included)."""
        self.method = self.distill.get("method", "progressive")
        self.rounds = round_counts(self.distill)
        check_distillable(self.objective.name, bool(self.aligned), self.distill["base_path"])
        load_base_weights(self.denoiser, self.distill["base_path"], self.distill["base_hash"])

    # ------------------------------------------------------------------ rounds
    def round_at(self, step: int) -> int:
        return min(step // int(self.distill["steps_per_round"]), len(self.rounds) - 1)

    @property
    def student_steps(self) -> int:
        return self.rounds[self.round_at(self.global_step)]

    def sampling_settings(self) -> dict:
        """How the student samples: the bundle records it, so ``make generate`` needs no flags."""
        if self.method == "guidance":  # the base's sampler and schedule, unguided
            base = super().sampling_settings()
            sampler = base.get("sampler") or DEFAULT_SAMPLERS[self.objective.name]
            return {**base, "sampler": sampler, "steps": self.student_steps, "cfg_scale": 1.0}
        return {
            "sampler": STUDENT_SAMPLERS[self.objective.name],
            "steps": self._exporting_round or self.student_steps,
            "cfg_scale": 1.0,
        }

    def sampler_times(self) -> Tensor:
        """The times at which the base's sampler calls the network in ``student_steps`` steps."""
        base = super().sampling_settings()
        schedule = {"schedule": "linear", **{k: base[k] for k in SCHEDULE_KEYS if k in base}}
        return torch.tensor(time_grid(self.objective, steps=self.student_steps, **schedule)[:-1])

    def extra_meta(self) -> dict:
        return {
            "distilled_from": self.distill["base_hash"],
            "distill_method": self.method,
            "distill_rounds": self.rounds,
        }

    def on_train_batch_start(self, batch, batch_index) -> None:
        wanted = self.round_at(self.global_step)
        if wanted != int(self.teacher_round):  # a new round: its teacher is the last round's student
            previous = self.rounds[int(self.teacher_round)]
            self.export_round(previous)
            self.teacher.load_state_dict(self.inference_network().state_dict())
            self.teacher_round.fill_(wanted)
            log.info(
                "distillation round %d: %d steps, from the %d-step student",
                wanted + 1,
                self.rounds[wanted],
                previous,
            )

    def export_round(self, steps: int) -> None:
        """Each finished round's student as its own bundle, ``<run>/rounds/<steps>steps``."""
        if self.trainer.is_global_zero:
            folder = Path(self.trainer.default_root_dir) / "rounds" / f"{steps}steps"
            self._exporting_round = steps
            try:
                self.export(folder)
            finally:
                self._exporting_round = None

    # ------------------------------------------------------------------ the target
    def training_noise(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Times on the student's grid (1/N, ..., 1) and noise; for guidance distillation, the base's times."""
        if self.method == "guidance":
            if self.distill.get("guidance_times", "all") == "all":
                return super().training_noise(latents)
            times = self.sampler_times().to(latents.device)
            pick = torch.randint(len(times), (latents.shape[0],), device=latents.device)
            return times[pick], torch.randn_like(latents)
        n = self.student_steps
        i = torch.randint(1, n + 1, (latents.shape[0],), device=latents.device)
        return i.float() / n, torch.randn_like(latents)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        # the student is conditional only: no condition dropout (guidance is distilled in)
        self.denoiser.conditioner.eval()
        return self

    @torch.no_grad()
    def teacher_output(self, batch: dict, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model output the student is trained on at x_t: the guided teacher's own (guidance),
        or the one whose single step lands where the teacher's two steps go (progressive; guided
        in round one)."""
        first_round = int(self.teacher_round) == 0
        scale = float(self.distill.get("cfg_scale", 1.0)) if first_round else 1.0
        rescale = float(self.distill.get("cfg_rescale", 0.0)) if first_round else 0.0

        def teacher(x, time):
            return self.teacher.guided(x, time, batch, scale, rescale).float()

        if self.method == "guidance":
            return teacher(x_t, t)
        return self.objective.output_for(
            x_t, two_step_target(self.objective, teacher, x_t, t, self.student_steps), t
        )

    def diffusion_loss(self, batch: dict, t: torch.Tensor, noise: torch.Tensor, network=None, generator=None):
        network = network or self.denoiser
        x0 = self.normalize(batch["latents"])  # (B, D, T)
        x_t = self.objective.noisy(x0, noise, t)
        conditions = {k: v for k, v in batch.items() if k != "latents"}
        target = self.teacher_output(conditions, x_t, t)
        out = network(x_t, t, batch)
        return self.objective.loss(out, target, t, mask=batch.get("padding_mask"))
