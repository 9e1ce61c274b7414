"""Trains the VAT tokenizer: stage 1 without quantization, then stage 2 with VVQ; one process or torchrun/DDP.

python -m training.tokenizer --data data/cache --out runs/vat-s
torchrun --nproc_per_node 2 -m training.tokenizer --data data/cache --out runs/vat-s
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel as DDP

from training.checkpointing import load_train_state, load_weights, save_train_state
from training.data import BatchSampler, ShapeCache, check_pyramid_points, evenly_spaced
from training.targets import load_targets
from vatcodec.geometry.labels import cs_iou, occupancy_metrics, semi_continuous_occupancy
from vatcodec.model.checkpoint import read_checkpoint, save_checkpoint, split_state
from vatcodec.model.config import get_config
from vatcodec.model.tokenizer import VAT


@dataclass
class TrainArgs:
    """Options of a tokenizer training run (also the CLI flags, with dashes)."""

    data: str = "data/cache"  # prepared cache (training.prepare)
    out: str = "runs/vat-s"  # run folder: checkpoints, metrics.jsonl
    config: str = "vat-s"  # named model config
    overrides: str = "{}"  # JSON of config fields to replace, e.g. '{"width": 96}'
    steps: int = 20_000  # total optimizer steps (stage 1 + stage 2); sets the learning-rate schedule
    stop_at: int = 0  # stop (and checkpoint) at this step without changing the schedule; 0 = run to the end
    max_minutes: float = 0.0  # also stop (checkpoint, validate) once training has run this long; 0 = no limit
    stage1_steps: int = 4_000  # steps without quantization before VVQ is switched on
    batch_size: int = 8  # shapes per step per process
    num_queries: int = 4096  # occupancy queries per shape per step (half uniform, half near-surface)
    lr: float = 5e-4  # peak learning rate
    warmup: int = 300  # linear warm-up steps
    min_lr_ratio: float = 0.1  # cosine decays to this fraction of the peak
    weight_decay: float = 0.01  # AdamW weight decay
    ema: float = 0.999  # EMA decay of the weights used for evaluation and release
    clip: float = 1.0  # gradient-norm clipping
    dead_code_age: int = 100  # steps without use before a code is re-seeded from the data
    log_every: int = 20  # steps between metrics.jsonl training rows
    val_every: int = 500  # steps between validations (0 = only at the end)
    ckpt_every: int = 200  # steps between checkpoints
    val_shapes: int = 64  # at most this many validation shapes
    seed: int = 0  # seeds data order, noise and prefix sampling
    threads: int = 0  # torch threads per process (0 = torch's default)
    augment: bool = True  # flips and quarter turns (label-preserving)
    stretch: float = 0.0  # anisotropic scaling: each axis by U(1 - stretch, 1), longest side restored
    split: str = "train"  # which split of the cache to train on
    subset: int = 0  # train on this many evenly spaced shapes of the split (0 = all)
    val_split: str = "val"  # which split to validate on
    init: str = (
        ""  # start a NEW run from this run's weights (model + EMA + codebook), fresh optimizer/schedule
    )
    grow: bool = False  # with init: the config may add parts (blocks, pooling rounds) that start as identity
    targets: str = ""  # fitted latents (training.fit_latents) for mu to regress; needs --no-augment
    w_target: float = 1.0  # weight of the mean squared error between mu and its target
    freeze: str = ""  # comma-separated parts kept as they are: encoder, vq, decoder
    extra: dict = field(default_factory=dict)


def lr_at(step: int, a: TrainArgs) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio of the peak at a.steps."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


@torch.no_grad()
def update_ema(ema: VAT, model: VAT, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        if p.requires_grad:  # a frozen part stays exactly what it was (--freeze)
            e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


@torch.no_grad()
def evaluate(model: VAT, cache: ShapeCache, max_shapes: int, device: torch.device) -> dict:
    """Validation Accuracy, IoU, Near-Surface Accuracy, CS-IoU over scale prefixes, and codebook usage."""
    model.eval()
    n = min(len(cache), max_shapes)
    sampler = BatchSampler(
        cache, batch_size=1, num_points=model.cfg.input_points, num_queries=8192, augment=False
    )
    S = len(model.cfg.scales)
    sums: dict[str, float] = {}
    prefix_iou = np.zeros(S)
    used = [set() for _ in range(S)]
    for i in range(n):
        batch = sampler.collate(np.array([i]), np.random.default_rng([7, i]))
        batch = {k: v.to(device) for k, v in batch.items()}
        surface = torch.cat([batch["surface_points"], batch["surface_normals"]], -1)
        if model.quantize:
            idx = model.encode(surface)
            fields = [model.decode(idx[: s + 1]) for s in range(S)]
            for s, t in enumerate(idx):
                used[s].update(t.flatten().tolist())
        else:
            mu, _ = model.posterior(surface)
            fields = [model.decode_latent(mu)]
        for s, f in enumerate(fields):
            logits_M = f(batch["query_points"])[0]
            m = occupancy_metrics(logits_M, batch["query_occ"][0], batch["query_sdf"][0])
            prefix_iou[s] += m["iou"]
        m.update(_field_stats(model.cfg, logits_M, batch["query_sdf"][0], sampler.num_queries // 2))
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + v
    out = {f"val_{k}": v / n for k, v in sums.items()}
    if model.quantize:
        ious = prefix_iou / n
        out["val_cs_iou"] = cs_iou(ious.tolist())
        out["val_prefix_iou"] = [round(x, 4) for x in ious.tolist()]
        out["codes_used_per_scale"] = [len(u) for u in used]
        out["codebook_usage"] = len(set().union(*used)) / model.cfg.codebook_size
    return out


def _field_stats(cfg, logits_M: torch.Tensor, sdf_M: torch.Tensor, n_uniform: int) -> dict[str, float]:
    """What IoU hides early in training: occupied fractions, BCE against the training labels, logit sizes.

    `logits_M` are the field's (shifted by the iso logit); the first `n_uniform` queries are uniform in the cube.
    """
    raw_M = logits_M + cfg.iso_at(len(cfg.scales))  # the full stream's field
    occ_M = torch.from_numpy(
        semi_continuous_occupancy((sdf_M.cpu().numpy() - cfg.label_dilate), cfg.label_band).astype(np.float32)
    ).to(raw_M)
    bce_M = F.binary_cross_entropy_with_logits(raw_M, occ_M, reduction="none")
    inside = sdf_M < 0
    return {
        "occ_frac_pred": float((logits_M[:n_uniform] > 0).float().mean()),
        "occ_frac_true": float(inside[:n_uniform].float().mean()),
        "bce_uniform": float(bce_M[:n_uniform].mean()),
        "bce_near": float(bce_M[n_uniform:].mean()),
        "logit_inside_median": float(raw_M[inside].median()) if inside.any() else float("nan"),
        "logit_inside_p90": float(raw_M[inside].quantile(0.9)) if inside.any() else float("nan"),
    }


def train(a: TrainArgs) -> dict:
    """Runs (or resumes) a training run and returns the last validation metrics."""
    rank, world, device = setup_distributed()
    if a.max_minutes and world > 1:
        raise ValueError("--max-minutes is for one process: DDP ranks would stop at different steps")
    if a.threads:
        torch.set_num_threads(a.threads)
    console = Console(stderr=True, quiet=rank != 0)
    out = Path(a.out)
    cfg = get_config(a.config, **json.loads(a.overrides))
    torch.manual_seed(a.seed)  # identical initial weights on every rank
    model = VAT(cfg).to(device)
    frozen = _freeze(model, a.freeze)
    if not 0.0 <= a.stretch < 1.0:  # checked before the run folder is written
        raise ValueError(f"--stretch must be in [0, 1), got {a.stretch}")
    if a.targets and (a.augment or a.stretch):
        raise ValueError("--targets are fitted to the unaugmented shapes: pass --no-augment and no --stretch")
    ema = copy.deepcopy(model).eval()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay_params = [p for n, p in trainable if p.ndim >= 2 and "codebook" not in n]
    other_params = [p for n, p in trainable if not (p.ndim >= 2 and "codebook" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay_params, "weight_decay": a.weight_decay},
            {"params": other_params, "weight_decay": 0.0},
        ],
        lr=a.lr,
        betas=(0.9, 0.99),
    )
    step = 0
    gen = torch.Generator().manual_seed(a.seed * 1000 + rank)
    last, state_file = out / "last.safetensors", out / "last.state.safetensors"
    if last.exists() and state_file.exists():
        tensors, _meta = read_checkpoint(last)
        model.load_state_dict(split_state(tensors, "model."))
        ema.load_state_dict(split_state(tensors, "ema."))
        state = load_train_state(state_file, opt)
        step = state["step"]
        saved_step = json.loads(_meta["meta"]).get("step")
        if saved_step != step:
            raise RuntimeError(
                f"{last} is at step {saved_step} but {state_file} at {step}: delete one to resume"
            )
        if "code_age" in state:  # absent in checkpoints written before it was saved
            model.vq.code_age.copy_(torch.tensor(state["code_age"]))
        if rank < len(state["rng"]):
            gen.set_state(torch.tensor(state["rng"][rank], dtype=torch.uint8))
        else:  # saved by fewer ranks (e.g. a one-process run resumed under torchrun): a fresh noise stream
            gen.manual_seed(int(np.random.SeedSequence([a.seed, rank, step]).generate_state(1)[0]))
        saved_world = len(state["rng"])
        console.print(f"resumed from {last} at step {step} (saved by {saved_world} rank(s), now {world})")
        if saved_world != world:  # the schedule counts steps: each step now sees a different number of shapes
            console.print(
                f"the global batch changes from {a.batch_size * saved_world} to {a.batch_size * world}"
            )
    else:
        if a.init:
            # A warm start: the weights continue, the optimizer and the learning-rate schedule start over.
            tensors, _meta = read_checkpoint(a.init)
            # A release checkpoint holds only its EMA weights (as "model."): the EMA starts from them too.
            has_ema = any(k.startswith("ema.") for k in tensors)
            # Frozen parts must be the ones fit_latents and the codec use: a training run's EMA weights.
            own = "ema." if has_ema and frozen else "model."
            new = load_weights(model, split_state(tensors, own), a.grow)
            load_weights(ema, split_state(tensors, "ema." if has_ema else "model."), a.grow)
            grown = f", grown by {len(new)} new tensors that start as the identity" if new else ""
            console.print(f"initialised from {a.init}{grown}")
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "args.json").write_text(json.dumps(dataclasses.asdict(a), indent=1))

    train_cache = evenly_spaced(ShapeCache.load(a.data, a.split), a.subset)
    check_pyramid_points(train_cache, cfg)
    val_cache = ShapeCache.load(a.data, a.val_split) if rank == 0 else None
    sampler = BatchSampler(
        train_cache,
        a.batch_size,
        cfg.input_points,
        a.num_queries,
        a.seed,
        rank,
        world,
        augment=a.augment,
        stretch=a.stretch,
        label_dilate=cfg.label_dilate,
        label_band=cfg.label_band,
    )
    shape_KC = (cfg.num_latents, cfg.latent_dim)
    targets_SKC = load_targets(a.targets, train_cache.names, shape_KC).to(device) if a.targets else None
    console.print(
        f"{cfg.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params"
        f"{', frozen: ' + ', '.join(frozen) if frozen else ''}, "
        f"{len(train_cache)} train shapes, world {world}, device {device}"
    )
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    log = open(out / "metrics.jsonl", "a") if rank == 0 else None
    metrics: dict = {}
    t0, seen = time.time(), 0
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
        disable=rank != 0 or not console.is_terminal,
    )
    with progress:
        task = progress.add_task("train", total=a.steps, completed=step, info="")
        # Stage 1 leaves the quantizer unused: DDP must not wait for its gradients then.
        ddp = DDP(model, find_unused_parameters=a.stage1_steps > step) if world > 1 else model
        end = min(a.steps, a.stop_at) if a.stop_at else a.steps
        while step < end:
            stage2 = step >= a.stage1_steps
            model.quantize = ema.quantize = stage2
            for g in opt.param_groups:
                g["lr"] = lr_at(step, a)
            batch = {k: v.to(device) for k, v in sampler.batch(step).items()}
            model.train()
            with amp:
                res = ddp(batch, gen)
                if targets_SKC is not None:
                    res["loss_target"] = F.mse_loss(res["mu"], targets_SKC[batch["shape_index"]])
                    res["loss"] = res["loss"] + a.w_target * res["loss_target"]
            opt.zero_grad(set_to_none=True)
            res["loss"].backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            if stage2 and "vq" not in frozen:
                dead_D, new_DC = model.vq.restart_dead_codes(res["z"], a.dead_code_age, gen)
                ema.vq.codebook.weight.data[dead_D] = new_DC  # the EMA would only drift toward new codes
            update_ema(ema, model, min(a.ema, (1 + step) / (10 + step)))
            step += 1
            seen += a.batch_size * world
            if a.max_minutes and time.time() - t0 > 60.0 * a.max_minutes:
                end = step  # a fixed-time lease (one GPU run): the checkpoint and validation below still run
            if rank == 0 and (step % a.log_every == 0 or step == end):
                with torch.no_grad():
                    pred = res["logits"].float() > 0
                    tgt = batch["query_occ"] > 0.5
                    iou = ((pred & tgt).sum() / (pred | tgt).sum().clamp(min=1)).item()
                sps = seen / (time.time() - t0)
                row = {
                    "step": step,
                    "stage": 2 if stage2 else 1,
                    "loss": res["loss"].item(),
                    "loss_occ": res["loss_occ"].item(),
                    "loss_vq": float(res["loss_vq"].detach()),
                    "loss_kl": res["loss_kl"].item(),
                    **({"loss_target": res["loss_target"].item()} if "loss_target" in res else {}),
                    "train_iou": iou,
                    "grad_norm": gnorm.item(),
                    "lr": lr_at(step - 1, a),
                    "samples_per_s": sps,
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                info = f"loss {row['loss']:.4f} iou {iou:.3f} {sps:.1f} samples/s"
                progress.update(task, completed=step, info=info)
                if not console.is_terminal:
                    console.print(f"step {step} stage {row['stage']} {info}")
            if step % a.ckpt_every == 0 or step == end:
                _save(out, model, ema, opt, step, gen, world, rank)
            if rank == 0 and ((a.val_every and step % a.val_every == 0) or step == end):
                metrics = {"step": step, **evaluate(ema, val_cache, a.val_shapes, device)}
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                console.print(
                    f"val @ {step}: "
                    + json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)})
                )
    # DDP must leave every rank with the same weights; record each rank's digest so a divergence is visible.
    digests = [_weights_digest(model)]
    if world > 1:
        digests = [None] * world
        dist.all_gather_object(digests, _weights_digest(model))
    if log:
        log.write(json.dumps({"step": step, "rank_weight_digests": digests}) + "\n")
        log.close()
    metrics["rank_weight_digests"] = digests
    return metrics


def _freeze(model: VAT, parts: str) -> list[str]:
    """Stops the gradients of the named parts (encoder, vq, decoder); returns their names."""
    names = [p.strip() for p in parts.split(",") if p.strip()]
    if {"encoder", "decoder"} <= set(names) and model.refiner is None:
        raise ValueError("--freeze: the encoder and the decoder cannot both be frozen (nothing would train)")
    for name in names:
        if name not in ("encoder", "vq", "decoder"):
            raise ValueError(f"--freeze: unknown part {name!r} (choose from encoder, vq, decoder)")
        for q in getattr(model, name).parameters():
            q.requires_grad_(False)
    return names


def _weights_digest(model: VAT) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _save(out: Path, model, ema, opt, step, gen, world, rank) -> None:
    rng = [gen.get_state().tolist()]
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, rng[0])  # each rank's noise generator, so resume is exact
        rng = gathered
    if rank != 0:
        return
    # State first: resume checks that both files name the same step, so a crash between them is caught.
    state = {"step": step, "rng": rng, "code_age": model.vq.code_age.cpu().tolist()}
    save_train_state(out / "last.state.safetensors", opt, state)
    save_checkpoint(out / "last.safetensors", model, ema, meta={"step": step})


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(TrainArgs):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            typ = {"int": int, "float": float, "str": str}[
                f.type if isinstance(f.type, str) else f.type.__name__
            ]
            p.add_argument(flag, type=typ, default=f.default)
    return TrainArgs(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
        if dist.is_initialized():
            # Tear the process group down together: a rank that destroys it while another still uses it can
            # abort at exit ("terminate called without an active exception"), seen once in CI.
            dist.barrier()
    except KeyboardInterrupt:
        print("interrupted; resume with the same command", file=sys.stderr)
        return 130
    except ValueError as e:
        # Bad options, or a checkpoint that does not fit the config: one line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
