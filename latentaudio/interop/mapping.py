"""Renaming a state dict between another format's layout and ours, by a table of key templates.

A `Rule` pairs a key template of theirs with one of ours, e.g.
``Rule("{part:encoder|decoder}.layers.{i}.weight_g", "{part}.{i}.parametrizations.weight.original0")``:
``{name}`` stands for a number, ``{name:a|b}`` for one of the words listed. The same table reads
both ways, so import and export cannot drift apart. `translate` refuses a key that no rule (or
more than one) matches, two keys landing on one, and, given the keys the target must hold, any it
would leave unset or any of the wrong shape: nothing is dropped or left at its initial value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

# Reshapes between their layout and ours: name -> (theirs to ours, ours to theirs).
RESHAPES = {
    # a per-channel vector (C,) in theirs, broadcastable (1, C, 1) in ours
    "channel_vector": (lambda t: t.reshape(1, -1, 1), lambda t: t.reshape(-1)),
}
_FIELD = re.compile(r"\{(\w+)(?::([\w|]+))?\}")


class MappingError(ValueError):
    """A state dict the table does not account for; the message names the keys."""


@dataclass(frozen=True)
class Rule:
    theirs: str
    ours: str
    reshape: str | None = None  # a key of RESHAPES


def _pattern(template: str) -> re.Pattern:
    parts, end = [], 0
    for field in _FIELD.finditer(template):
        parts.append(re.escape(template[end : field.start()]))
        parts.append(f"(?P<{field[1]}>{field[2] or r'[0-9]+'})")
        end = field.end()
    parts.append(re.escape(template[end:]))
    return re.compile("".join(parts))


def _fill(template: str, values: dict[str, str]) -> str:
    return _FIELD.sub(lambda field: values[field[1]], template)


def _matches(key: str, patterns: list[tuple[re.Pattern, Rule]]) -> list[tuple[re.Match, Rule]]:
    return [(match, rule) for pattern, rule in patterns if (match := pattern.fullmatch(key))]


def _renamed(match: re.Match, rule: Rule, to_ours: bool) -> str:
    return _fill(rule.ours if to_ours else rule.theirs, match.groupdict())


def _listed(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def translate(
    state: dict[str, torch.Tensor],
    rules: Iterable[Rule],
    to_ours: bool,
    expected: dict[str, tuple[int, ...]] | None = None,
    what: str = "the checkpoint",
) -> dict[str, torch.Tensor]:
    """``state`` renamed (and reshaped) into the other layout, every key accounted for.

    ``to_ours``: their keys to ours (import), else ours to theirs (export). ``expected``: the
    target's keys and shapes; when given, the result must hold exactly those.
    """
    rules = list(rules)
    sources = [(_pattern(r.theirs if to_ours else r.ours), r) for r in rules]
    targets = [(_pattern(r.ours if to_ours else r.theirs), r) for r in rules]
    result: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmatched, ambiguous = [], []
    for key, tensor in state.items():
        hits = _matches(key, sources)
        if len(hits) != 1:
            (unmatched if not hits else ambiguous).append(key)
            continue
        match, rule = hits[0]
        target = _renamed(match, rule, to_ours)
        if target in result:
            raise MappingError(f"{what}: {origin[target]} and {key} both map to {target}")
        if rule.reshape is not None:
            tensor = RESHAPES[rule.reshape][0 if to_ours else 1](tensor)
        result[target], origin[target] = tensor, key
    if ambiguous:  # a bug of the table, not of the file
        raise MappingError(f"{what}: more than one mapping rule matches {_listed(ambiguous)}")
    problems = []
    if unmatched:
        problems.append(f"{len(unmatched)} tensors that no mapping rule covers ({_listed(unmatched)})")
    if expected is not None:
        missing, extra = expected.keys() - result.keys(), result.keys() - expected.keys()
        wrong = [
            f"{origin[k]} {tuple(result[k].shape)} vs {k} {expected[k]}"
            for k in sorted(expected.keys() & result.keys())
            if tuple(result[k].shape) != tuple(expected[k])
        ]
        if missing:
            # named as the source would name them, where the table says
            names = [
                _renamed(*hits[0], not to_ours) if len(hits := _matches(key, targets)) == 1 else key
                for key in missing
            ]
            problems.append(f"{len(missing)} tensors the model needs and {what} lacks ({_listed(names)})")
        if extra:
            problems.append(
                f"{len(extra)} tensors the model does not have ({_listed(origin[k] for k in extra)})"
            )
        if wrong:
            problems.append(f"{len(wrong)} tensors of another shape ({'; '.join(wrong[:3])})")
    if problems:
        raise MappingError(f"cannot map {what}: {'; '.join(problems)}")
    return result
