"""Low-rank adapters (LoRA) on a trained DiT: add, train, save, load at a scale, merge.

The adapter layers are Hugging Face ``peft``'s (``inject_adapter_in_model`` works on plain
``nn.Module``s): its LoRA, rsLoRA and DoRA linears, with several adapters per layer, each at
its own scale. What is ours: which layers an adapter may target (named groups, not free
regular expressions, so a bundle cannot ask for anything else), the label tables grown by an
adapter's new labels, and the adapter bundle (only the adapter's tensors, its settings and
the hash of the DiT bundle it was trained on).

    spec = AdapterSpec(rank=16, targets=["attention", "mlp"], labels=["marimba"])
    prepare_training(denoiser, spec, base_labels=5)     # the base frozen, the adapter trainable
    save_adapter("export", denoiser, spec, base_hash, meta)
    add_adapter(denoiser, load_bundle("export", kind="lora"), "a0", scale=0.8, base_labels=5)
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from latentaudio.bundle import Bundle, BundleError, save_bundle

# The layer groups an adapter may target, as patterns over the DiT's module names.
TARGETS = {
    "attention": r"blocks\.\d+\.attn\.(qkv|proj)",
    "cross_attention": r"blocks\.\d+\.cross_attn\.(q|kv|proj)",
    "mlp": r"blocks\.\d+\.mlp\.(0|3|proj|out)",  # GELU's two layers, or SwiGLU's
    # the conditioning projections: adaLN modulation of every block and the final layer,
    # and the embedders of the global condition and the diffusion time
    "conditioning": r"((blocks\.\d+|final_layer)\.adaln_modulation\.1|global_embedder\.(0|2)|t_embedder\.mlp\.(0|2))",
}
TRAINING_ADAPTER = "adapter"
MAX_RANK = 4096
LABEL_TABLES = ("label", "label_token")  # the conditioner's tables that new labels grow
NEW_ROWS = "new_rows"


class AdapterError(ValueError):
    """An adapter that does not fit its base, or settings that cannot work; the message says the fix."""


@dataclass
class AdapterSpec:
    """What an adapter is: its rank and scaling, the layers it adapts, and the labels it adds.

    ``alpha`` scales the update by ``alpha / rank`` (``alpha / sqrt(rank)`` with ``rslora``);
    ``dora`` learns a magnitude per output as well (DoRA); ``labels`` are label names the base
    does not know, each given a new embedding trained with the adapter.
    """

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["attention", "cross_attention", "mlp"])
    rslora: bool = False
    dora: bool = False
    labels: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: dict, where: str) -> AdapterSpec:
        """A spec from plain values (a Hydra node or an adapter bundle's config), checked."""
        unknown = set(config) - set(cls.__dataclass_fields__)
        if unknown:
            raise AdapterError(
                f"{where}: unknown adapter settings {sorted(unknown)} (known: {', '.join(cls.__dataclass_fields__)})"
            )
        spec = cls(**{k: (list(v) if isinstance(v, list | tuple) else v) for k, v in config.items()})
        spec.check(where)
        return spec

    def check(self, where: str) -> None:
        if not isinstance(self.rank, int) or not 1 <= self.rank <= MAX_RANK:
            raise AdapterError(
                f"{where}: rank={self.rank!r}: give a whole number from 1 to {MAX_RANK} (16 is typical)"
            )
        if not isinstance(self.alpha, int | float) or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise AdapterError(f"{where}: alpha={self.alpha!r}: give a positive number (usually the rank)")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise AdapterError(f"{where}: dropout={self.dropout!r}: give a number in [0, 1)")
        unknown = [t for t in self.targets if t not in TARGETS]
        if not self.targets or unknown:
            raise AdapterError(
                f"{where}: targets={self.targets!r}: choose one or more of {', '.join(TARGETS)}"
            )
        if not all(isinstance(name, str) and name for name in self.labels) or len(set(self.labels)) < len(
            self.labels
        ):
            raise AdapterError(f"{where}: labels={self.labels!r}: give distinct, non-empty label names")

    def pattern(self) -> str:
        return "|".join(f"({TARGETS[name]})" for name in self.targets)


def _peft_config(spec: AdapterSpec):
    from peft import LoraConfig

    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.pattern(),  # a string: matched in full against each module name
        use_rslora=spec.rslora,
        use_dora=spec.dora,
    )


def _lora_layers(module: nn.Module) -> list[nn.Module]:
    from peft.tuners.lora import LoraLayer

    return [m for m in module.modules() if isinstance(m, LoraLayer)]


def inject(denoiser: nn.Module, spec: AdapterSpec, name: str) -> None:
    """Add adapter ``name`` (zero update: LoRA's B starts at zero) to the DiT's target layers."""
    from peft import inject_adapter_in_model

    dit = denoiser.dit
    present = {n for n, _ in dit.named_modules() if re.fullmatch(spec.pattern(), n)}
    if not present:
        raise AdapterError(
            f"no layer of this DiT matches the adapter targets {spec.targets} (a DiT without "
            "cross-attention has no cross_attention layers): choose among attention, mlp, conditioning"
        )
    with warnings.catch_warnings():  # peft warns that a second adapter is a second adapter
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(_peft_config(spec), dit, adapter_name=name)
    _activate_all(denoiser)


def _activate_all(denoiser: nn.Module) -> None:
    """Every adapter of a layer takes part (peft activates only the newest one by default)."""
    for layer in _lora_layers(denoiser):
        layer.set_adapter(list(layer.lora_A.keys()))


def set_scale(denoiser: nn.Module, name: str, scale: float) -> None:
    """Scale adapter ``name``'s update by ``scale`` (1: as trained; 0: off, the base exactly)."""
    if not math.isfinite(scale):
        raise AdapterError(f"adapter scale {scale}: give a finite number (1: as trained, 0: off)")
    for layer in _lora_layers(denoiser):
        layer.set_scale(name, scale)
        # an adapter at scale 0 is left out, so with every scale at 0 the output is the base's bit for bit
        active = [a for a in layer.lora_A.keys() if layer.scaling[a] != 0]
        layer.enable_adapters(bool(active))
        if active:
            layer.set_adapter(active)


# --------------------------------------------------------------------------------------
# New labels: rows added to the conditioner's label tables
# --------------------------------------------------------------------------------------


def grow_label_tables(conditioner: nn.Module, count: int) -> None:
    """Add ``count`` labels after the known ones (the null label stays the last row).

    New rows start at the mean of the known labels: a new sound starts as "some known one".
    """
    for table_name in LABEL_TABLES:
        table = getattr(conditioner, table_name, None)
        if table is None or count == 0:
            continue
        old = table.embedding.weight.data  # (N + 1, D)
        known, null = old[:-1], old[-1:]
        new = known.mean(dim=0, keepdim=True).expand(count, -1)  # (count, D)
        embedding = nn.Embedding(old.shape[0] + count, old.shape[1], device=old.device, dtype=old.dtype)
        embedding.weight.data.copy_(torch.cat([known, new, null]))
        table.embedding = embedding
        table.num_labels += count


class GrownEmbedding(nn.Module):
    """A label table whose known rows (and null row) are frozen and whose new rows train.

    Two parameters, not one with a masked gradient, so no optimizer setting (weight decay, say)
    can move the known rows.
    """

    def __init__(self, table: nn.Embedding, first: int, count: int):
        super().__init__()
        weight = table.weight.detach()
        self.known = nn.Parameter(weight[:first].clone(), requires_grad=False)  # (first, D)
        self.new = nn.Parameter(weight[first : first + count].clone())  # (count, D)
        self.rest = nn.Parameter(weight[first + count :].clone(), requires_grad=False)  # (1, D): null

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.known, self.new, self.rest])  # (N + 1, D)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight)


def prepare_training(denoiser: nn.Module, spec: AdapterSpec, base_labels: int) -> None:
    """Freeze the base, add the training adapter and the new labels' rows, trainable."""
    denoiser.requires_grad_(False)
    inject(denoiser, spec, TRAINING_ADAPTER)  # peft marks only the adapter trainable
    if spec.labels:
        if denoiser.conditioner.label is None:
            raise AdapterError(
                f"the data has labels the base DiT does not know ({', '.join(spec.labels)}), but the base was "
                "trained without labels: remove the label column, or fine-tune a DiT trained with labels"
            )
        grow_label_tables(denoiser.conditioner, len(spec.labels))
        for table_name in LABEL_TABLES:
            table = getattr(denoiser.conditioner, table_name, None)
            if table is not None:
                table.embedding = GrownEmbedding(table.embedding, base_labels, len(spec.labels))


def trainable_count(denoiser: nn.Module, spec: AdapterSpec) -> int:
    """Values the adapter trains: its LoRA tensors and its new label rows."""
    lora = sum(t.numel() for t in adapter_state(denoiser, TRAINING_ADAPTER).values())
    rows = sum(
        len(spec.labels) * table.embedding.weight.shape[1]
        for table in (getattr(denoiser.conditioner, n, None) for n in LABEL_TABLES)
        if table is not None
    )
    return lora + rows


# --------------------------------------------------------------------------------------
# Adapter tensors and bundles
# --------------------------------------------------------------------------------------


def adapter_state(denoiser: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Adapter ``name``'s tensors, keyed without the adapter's name (``blocks.0.attn.qkv.lora_A.weight``)."""
    marker = re.compile(rf"^(.*\.lora_[A-Za-z_]+)\.{re.escape(name)}\.(.*)$")
    state = {}
    for key, value in denoiser.dit.state_dict().items():
        match = marker.match(key)
        if match:
            state[f"{match.group(1)}.{match.group(2)}"] = value
    return state


def label_rows(denoiser: nn.Module, first: int, count: int) -> dict[str, torch.Tensor]:
    rows = {}
    for table_name in LABEL_TABLES:
        table = getattr(denoiser.conditioner, table_name, None)
        if table is not None and count:
            rows[f"conditioner.{table_name}.{NEW_ROWS}"] = table.embedding.weight[first : first + count]
    return rows


def save_adapter(directory, denoiser: nn.Module, spec: AdapterSpec, base_labels: int, meta: dict) -> str:
    """Write an adapter bundle (kind ``lora``): its tensors, its settings, the base's hash in ``meta``."""

    tensors = {
        **{f"dit.{k}": v for k, v in adapter_state(denoiser, TRAINING_ADAPTER).items()},
        **label_rows(denoiser, base_labels, len(spec.labels)),
    }
    return save_bundle(
        directory,
        kind="lora",
        components={"adapter": tensors},
        configs={"lora": asdict(spec)},
        meta={**meta, "labels": list(spec.labels)},
    )


def pair_scales(paths: list, scales: list[float] | float) -> list[tuple[str, float]]:
    """``[(path, scale), ...]`` from adapter paths and one scale for all, or one per adapter."""
    scales = list(scales) if isinstance(scales, list | tuple) else [scales]
    if len(scales) == 1:
        scales = scales * len(paths)
    if len(scales) != len(paths):
        raise AdapterError(
            f"{len(paths)} adapters but {len(scales)} scales: give one scale, or one per adapter"
        )
    return [(str(path), float(scale)) for path, scale in zip(paths, scales, strict=True)]


def check_base(adapter: Bundle, base_hash: str) -> None:
    """Refuse an adapter trained on another DiT than ``base_hash``, naming both."""
    trained_on = adapter.meta.get("base_hash")
    if trained_on != base_hash:
        raise AdapterError(
            f"the adapter {adapter.path} was trained on the DiT bundle {trained_on}, but the DiT here is "
            f"{base_hash}: load it on the DiT bundle {trained_on} (or fine-tune a new adapter on this one)"
        )


def add_adapter(
    denoiser: nn.Module, adapter: Bundle, name: str, scale: float, base_hash: str, known_labels: list[str]
) -> list[str]:
    """Load an adapter bundle into ``denoiser`` as ``name`` at ``scale``; returns the labels it adds.

    ``known_labels`` are the labels the network knows so far (the base's and earlier adapters'):
    the adapter's new label rows go after them.
    """
    check_base(adapter, base_hash)
    table = denoiser.conditioner.label
    if table is not None and table.num_labels != len(known_labels):
        raise AdapterError(
            f"the DiT's label table holds {table.num_labels} labels, but {len(known_labels)} were named"
        )
    spec = AdapterSpec.from_config(adapter.config.get("lora") or {}, f"{adapter.path}/config.yaml")
    clash = sorted(set(spec.labels) & set(known_labels))
    if clash:
        raise AdapterError(
            f"the adapter {adapter.path} adds the labels {clash}, which the model already knows "
            "(from the base or another adapter): load one of the adapters that define them"
        )
    stored = adapter.state("adapter.dit")
    inject(denoiser, spec, name)
    expected = set(adapter_state(denoiser, name))
    if set(stored) != expected:
        missing, extra = sorted(expected - set(stored)), sorted(set(stored) - expected)
        raise BundleError(
            f"{adapter.path}: the adapter's tensors do not fit its settings on this DiT "
            f"({len(missing)} missing, e.g. {missing[:1]}; {len(extra)} unknown, e.g. {extra[:1]}): re-export it"
        )
    marker = re.compile(r"^(.*\.lora_[A-Za-z_]+)\.(.*)$")
    named = {marker.sub(rf"\1.{name}.\2", key): value for key, value in stored.items()}
    current = denoiser.dit.state_dict()
    for key, value in named.items():
        if current[key].shape != value.shape:
            raise BundleError(
                f"{adapter.path}: {key} has shape {tuple(value.shape)}, the DiT needs {tuple(current[key].shape)}"
            )
    denoiser.dit.load_state_dict(named, strict=False)
    if spec.labels:
        if denoiser.conditioner.label is None:
            raise AdapterError(
                f"the adapter {adapter.path} adds labels, but this DiT has no label conditioning"
            )
        first = len(known_labels)
        grow_label_tables(denoiser.conditioner, len(spec.labels))
        for table_name in LABEL_TABLES:
            table = getattr(denoiser.conditioner, table_name, None)
            if table is None:
                continue
            rows = adapter.tensors.get(f"adapter.conditioner.{table_name}.{NEW_ROWS}")
            if rows is None or tuple(rows.shape) != (len(spec.labels), table.embedding.weight.shape[1]):
                raise BundleError(
                    f"{adapter.path}: the rows of its new labels for {table_name} are missing or misshapen"
                )
            with torch.no_grad():
                table.embedding.weight[first : first + len(spec.labels)] = rows.to(table.embedding.weight)
    set_scale(denoiser, name, scale)
    denoiser.requires_grad_(False)
    return list(spec.labels)


def merge(denoiser: nn.Module) -> None:
    """Fold every adapter, at its scale, into the weights it adapts, leaving plain ``nn.Linear`` layers."""
    from peft.tuners.lora import LoraLayer

    for module in list(denoiser.dit.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoraLayer):
                active = [a for a in child.lora_A.keys() if child.scaling[a] != 0]
                if active:
                    child.merge(adapter_names=active)
                setattr(module, child_name, child.get_base_layer())


def load_base_weights(denoiser: nn.Module, path: str, expected_hash: str) -> None:
    """Load the DiT bundle at ``path`` into ``denoiser`` (built from that bundle's config).

    A bundle whose weights changed since fine-tuning began (re-exported by its training run) is
    refused: the adapter would be trained, and later loaded, on another base.
    """
    from latentaudio.bundle import load_bundle

    base = load_bundle(path, kind="dit")
    if base.hash != expected_hash:
        raise AdapterError(
            f"the base DiT {path} is now {base.hash}, but fine-tuning began on {expected_hash}: it was "
            f"re-exported since; copy the DiT bundle {expected_hash} to a folder no run writes to and pass dit= that"
        )
    for component in ("dit", "conditioner"):
        getattr(denoiser, component).load_state_dict(base.state(component), strict=True)


def merge_into_bundle(base_path: str, adapters: list[tuple[str, float]], output: str) -> str:
    """Write a plain DiT bundle at ``output``: the base with ``adapters`` (each at its scale) merged in.

    Returns the new bundle's hash; its ``meta.json`` names the base and the adapters it holds.
    """
    from latentaudio.bundle import load_bundle
    from latentaudio.dit.denoiser import Denoiser

    if not adapters:
        raise AdapterError("merging needs at least one adapter: lora=<adapter bundle>")
    base = load_bundle(base_path, kind="dit")
    denoiser = Denoiser(base.build("dit"), base.build("conditioner"))
    labels, applied = list(base.meta.get("labels") or []), []
    for index, (path, scale) in enumerate(adapters):
        adapter = load_bundle(path, kind="lora")
        labels += add_adapter(denoiser, adapter, f"adapter{index}", float(scale), base.hash, labels)
        applied.append({"path": str(path), "hash": adapter.hash, "scale": float(scale)})
    merge(denoiser)
    configs = {**base.config}
    if base.config["conditioner"].get("num_labels"):
        configs["conditioner"] = {**base.config["conditioner"], "num_labels": len(labels)}
    written = {"hash", "kind", "format", "latentaudio_version"}  # save_bundle writes these afresh
    meta = {key: value for key, value in base.meta.items() if key not in written}
    meta["labels"] = labels
    meta["conditioning"] = configs["conditioner"]
    meta["merged"] = {"base_hash": base.hash, "adapters": applied}
    components = {"dit": denoiser.dit, "conditioner": denoiser.conditioner}
    return save_bundle(output, "dit", components, configs, meta)
