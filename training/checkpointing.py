"""Resumable training state without pickle: optimizer tensors in safetensors, everything else as JSON metadata."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vatcodec.fileio import atomic_output


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
