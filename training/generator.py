"""Trains the image-conditioned next-scale generator on gen_data renders and token maps; one process or DDP.

python -m training.generator --data data/gen --out runs/gen-s
torchrun --nproc_per_node 2 -m training.generator --data data/gen --out runs/gen-s
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from training.checkpointing import load_train_state, save_train_state
from training.gen_data import load_parts
from training.tokenizer import setup_distributed
from vatcodec import codec
from vatcodec.errors import VatError
from vatcodec.generation.checkpoint import read_generator, save_generator
from vatcodec.generation.config import GEN_CONFIGS, GenConfig
from vatcodec.generation.image_input import to_tensor
from vatcodec.generation.model import NextScaleGenerator


@dataclass
class GenTrainArgs:
    """Options of a generator training run (also the CLI flags, with dashes)."""

    data: str = "data/gen"  # training.gen_data folder (train and val rows)
    out: str = "runs/gen-s"  # run folder: last.safetensors, last.state.safetensors, metrics.jsonl
    config: str = "gen-s"  # named generator config
    overrides: str = "{}"  # JSON of GenConfig fields to replace, e.g. '{"depth": 6}'
    tokenizer: str = ""  # tokenizer checkpoint whose tokens the data holds ("" = the shipped one)
    dino: str = ""  # local DINOv2 folder, for image_encoder "dino"
    steps: int = 3000  # total optimizer steps; sets the learning-rate schedule
    stop_at: int = 0  # stop (and checkpoint) here without changing the schedule; 0 = run to the end
    batch_size: int = 16  # shapes per step per process
    lr: float = 1e-3  # peak learning rate
    warmup: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.05  # cosine decays to this fraction of the peak
    weight_decay: float = 0.05  # AdamW weight decay (not on norms, biases and embeddings)
    ema: float = 0.995  # EMA decay of the released weights
    clip: float = 1.0  # gradient-norm clipping
    shift: int = 4  # image augmentation: random shift of up to this many pixels (white fill)
    log_every: int = 20  # steps between metrics.jsonl rows
    val_every: int = 250  # steps between validations
    ckpt_every: int = 100  # steps between checkpoints
    seed: int = 0  # seeds data order, views, shifts and condition dropout
    threads: int = 0  # torch threads per process (0 = torch's default)


def lr_at(step: int, a: GenTrainArgs) -> float:
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = min((step - a.warmup) / max(1, a.steps - a.warmup), 1.0)
    return a.lr * (a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_batch(data: dict, rows: np.ndarray, rng: np.random.Generator, shift: int, view: int | None = None):
    """Images (one random view per shape, randomly shifted) and token maps of some rows."""
    images_NVHW3 = data["images"]
    V, H = images_NVHW3.shape[1], images_NVHW3.shape[2]
    views = rng.integers(0, V, len(rows)) if view is None else np.full(len(rows), view)
    imgs_BHW3 = images_NVHW3[rows, views].copy()
    if shift:
        padded = np.pad(imgs_BHW3, ((0, 0), (shift, shift), (shift, shift), (0, 0)), constant_values=255)
        for b, (dy, dx) in enumerate(rng.integers(0, 2 * shift + 1, (len(rows), 2))):
            imgs_BHW3[b] = padded[b, dy : dy + H, dx : dx + H]
    return {"images": to_tensor(imgs_BHW3), "tokens": torch.from_numpy(data["tokens"][rows])}


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Matrices decay; norms, biases, embeddings, temperatures and the null condition do not.
        is_matrix = p.ndim >= 2 and not any(k in name for k in ("level_embed", "pos_", "null", "log_scale"))
        (decay if is_matrix else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model: NextScaleGenerator, data: dict, device, batch: int = 16) -> dict:
    """Teacher-forced loss and token accuracy (per scale too) on view 0 of every row."""
    model.eval()
    n, loss, acc_S = len(data["names"]), 0.0, 0.0
    for i in range(0, n, batch):
        rows = np.arange(i, min(i + batch, n))
        b = {k: v.to(device) for k, v in make_batch(data, rows, None, 0, view=0).items()}
        out = model(b)
        loss += out["loss"].item() * len(rows)
        acc_S = acc_S + out["acc_per_scale"].cpu().numpy() * len(rows)
    model.train()
    return {"val_loss": loss / n, "val_acc_per_scale": [round(float(a), 4) for a in acc_S / n]}


def train(a: GenTrainArgs) -> dict:
    rank, world, device = setup_distributed()
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    tok = codec.get_model(a.tokenizer or None)
    train_data = load_parts(a.data, ("train",))
    val_data = load_parts(a.data, ("val",))
    tok_id = bytes(codec.model_id_of(tok)).hex()
    if train_data["tokenizer_id"] and train_data["tokenizer_id"] != tok_id:
        raise VatError(f"{a.data} holds tokens of tokenizer {train_data['tokenizer_id']}, not {tok_id}")
    if a.config not in GEN_CONFIGS:
        raise VatError(f"unknown generator config {a.config!r}; known: {', '.join(GEN_CONFIGS)}")
    try:
        cfg = GenConfig.for_tokenizer(tok, **(GEN_CONFIGS[a.config] | json.loads(a.overrides)))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise VatError(f"--overrides {a.overrides}: {exc}") from None
    if train_data["image_size"] != cfg.image_size and cfg.image_encoder == "cnn":
        raise VatError(
            f"{a.data} holds {train_data['image_size']} px images, the config expects {cfg.image_size}"
        )
    if len(train_data["names"]) < a.batch_size * world:
        raise VatError(
            f"{len(train_data['names'])} training shapes cannot fill {world} ranks x batch {a.batch_size}"
        )
    torch.manual_seed(a.seed)
    model = NextScaleGenerator(cfg, copy.deepcopy(tok.vq), a.dino or None).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(param_groups(model, a.weight_decay), lr=a.lr, betas=(0.9, 0.95))
    step = 0
    if (out / "last.safetensors").is_file():
        tensors, meta = read_generator(out / "last.safetensors")
        if json.loads(meta["config"]) != json.loads(cfg.to_json()):
            raise VatError(f"{out}: the saved run has another config; use a new --out")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        step = load_train_state(out / "last.state.safetensors", opt)["step"]
    ddp = DDP(model) if world > 1 else model
    n_train = len(train_data["names"])
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(dataclasses.asdict(a), indent=1))
        n_par = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"generator {cfg.name}: {n_par / 1e6:.2f} M trainable, {n_train} train shapes, world {world}")
    log = open(out / "metrics.jsonl", "a") if rank == 0 else None
    end = a.stop_at or a.steps
    t0, last = time.time(), {}
    model.train()
    while step < end:
        # Data order: a permutation per epoch from (seed, epoch); rank r takes every world-th shape.
        per_epoch = max(1, n_train // (a.batch_size * world))
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng([a.seed, epoch]).permutation(n_train)
        rows = perm[(k * world + rank) * a.batch_size : (k * world + rank + 1) * a.batch_size]
        rng = np.random.default_rng([a.seed, step, rank])
        batch = {k2: v.to(device) for k2, v in make_batch(train_data, rows, rng, a.shift).items()}
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        res = ddp(batch, generator=gen)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(p, 1.0 - a.ema)
        step += 1
        if rank == 0 and (step % a.log_every == 0 or step == end):
            last = {
                "step": step,
                "loss": round(res["loss"].item(), 4),
                "acc": round(res["acc"].item(), 4),
                "gnorm": round(float(gnorm), 3),
                "lr": lr_at(step - 1, a),
                "elapsed_s": round(time.time() - t0, 1),
            }
            log.write(json.dumps(last) + "\n")
            log.flush()
            print(json.dumps(last), flush=True)
        if rank == 0 and (step % a.val_every == 0 or step == end):
            row = {"step": step, **evaluate(ema, val_data, device)}
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
            last.update(row)
        if rank == 0 and (step % a.ckpt_every == 0 or step == end):
            save_generator(out / "last.safetensors", model, tok.cfg, ema=ema, meta={"step": step})
            save_train_state(out / "last.state.safetensors", opt, {"step": step})
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(GenTrainArgs):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    try:
        train(GenTrainArgs(**vars(parser.parse_args(argv))))
    except VatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
