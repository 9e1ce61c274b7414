"""Resumable training state without pickle: optimizer tensors in safetensors, everything else as JSON metadata."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vatcodec.fileio import atomic_output


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], grow: bool = False) -> list[str]:
    """Loads `state` into `model`; with `grow`, the model may hold parameters the state lacks. Returns those.

    A grown model must compute what the smaller one did, so every new part starts as the identity: transformer
    blocks missing from the state are zeroed (`Block.zero_init_`), and other new modules (`LocalRound`) are
    built with a zero output layer. Keys the model does not know and shape changes are errors.
    """
    from vatcodec.model.layers import Block

    result = model.load_state_dict(state, strict=False)
    if not grow and result.missing_keys:
        raise ValueError(
            f"the checkpoint lacks {len(result.missing_keys)} weights of this config "
            f"({result.missing_keys[0]}, ...): pass --grow to add them as the identity"
        )
    if result.unexpected_keys:
        raise ValueError(
            f"the checkpoint has weights this model lacks: {', '.join(result.unexpected_keys[:4])}"
        )
    missing = set(result.missing_keys)
    for name, module in model.named_modules():
        keys = {f"{name}.{k}" for k in module.state_dict()}
        if isinstance(module, Block) and keys & missing and getattr(module, "grow_as_identity", True):
            if not keys <= missing:
                raise ValueError(f"{name} is only partly in the checkpoint: cannot grow it")
            module.zero_init_()
    return sorted(missing)


def save_train_state(path: Path, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Optimizer moments as tensors `opt.<param index>.<name>`, and `state` (step, RNG, ...) as JSON."""
    sd = optimizer.state_dict()
    tensors = {}
    scalars = {}
    for pid, pstate in sd["state"].items():
        for k, v in pstate.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    metadata = {"groups": json.dumps(groups), "scalars": json.dumps(scalars), "state": json.dumps(state)}
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_train_state(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restores the optimizer in place and returns the saved `state` dict."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for key, v in json.loads(meta["scalars"]).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["groups"])})
    return json.loads(meta["state"])
