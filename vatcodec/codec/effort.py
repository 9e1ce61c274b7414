"""Encoder effort: refine one shape's token indices through the frozen decoder against its own occupancy samples.

Effort 0 is the amortized encoder alone (one pass, `VAT.encode`). Higher levels treat the decoder as fixed and
search the indices that make ITS occupancy field best fit this shape, scored by the training loss (BCE with
logits on semi-continuous occupancy labels) on seeded samples of the shape:

1. latent steps: Adam on the continuous latent z (initialised at the encoder's mu), with the whole multi-scale
   VQ in the loop. The forward pass decodes exactly the quantized prefix being written; the gradient passes
   straight through to z, so z moves until the residual quantizer picks better codes;
2. code steps: Adam on each scale's code vectors, snapped to their nearest codebook entry in the forward pass
   (straight-through again), so every token can change its index without going through the residual chain;
3. index search: coarse to fine over the prefix, each token position tries the codebook entries near its code
   that the loss gradient ranks best, evaluates them exactly and keeps the best if the loss drops.

Every candidate file's loss is measured on the same samples, and the effort-0 indices are the first candidate,
so a higher effort never returns a worse loss than effort 0. The best file after each stage is a checkpoint:
a lower BCE is not always a better surface, so the codec keeps, among effort 0's file and the checkpoints, the
one with the best quick F-score (`fscore_proxy`). Without a deadline the work is a fixed number of steps, so a
given seed always gives the same indices; a deadline stops early with the best indices so far. What each
level buys is measured with `benchmarks/effort.py`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

EFFORT_LEVELS = (0, 1, 2, 3)
SAMPLES_UNIFORM, SAMPLES_NEAR = 8192, 8192  # the training mix; more barely moved F in our runs, at 2x cost
LATENT_LR = 3e-2  # Adam on z; the encoder's mu has std ~0.5 (vat-s). 1e-2 was slower, 1e-1 noisier
CODE_LR = 1e-2  # Adam on code vectors; neighbouring codebook entries lie ~0.1-0.3 apart (vat-s)
SEARCH_NEIGHBOURS = 64  # the search's trust region: first-order estimates hold for the 64 nearest codes
SEARCH_TRIES = 8  # candidates per token position that the search evaluates exactly


@dataclasses.dataclass(frozen=True)
class Plan:
    """The work of one effort level: counts, not seconds, so that the result is reproducible."""

    latent_steps: int
    code_steps: int
    search_evals: int
    samples: int = SAMPLES_UNIFORM  # uniform queries scored per step, and as many near-surface ones

    def scaled(self, share: float) -> Plan:
        """This plan with every step count multiplied by `share` (rounded up), for splitting work between prefixes."""
        return dataclasses.replace(
            self,
            latent_steps=math.ceil(self.latent_steps * share),
            code_steps=math.ceil(self.code_steps * share),
            search_evals=math.ceil(self.search_evals * share),
        )

    @property
    def units(self) -> int:
        """Progress units: one per gradient step, one per batch of search evaluations."""
        return self.latent_steps + self.code_steps + -(-self.search_evals // SEARCH_TRIES)


# Chosen on two blendswap-cc-0 meshes with vat-s, about 0.1 s per step on one busy core (loss of the full file,
# effort 0 -> refined): 30 latent steps 0.572 -> 0.538 / 0.407 -> 0.382 in 3 s; 100 + 50 code steps 0.523 /
# 0.372 in 15 s; 100 + 300 code steps 0.518 / 0.367 in 35 s, which beat 100 + 150 + a 400-evaluation search
# (0.519 / 0.369 in 47 s) and 250 + 100 (0.521 / 0.368). The search is kept short, to the coarsest tokens, where
# one index moves the whole shape and the code steps' small moves may not reach the better code.
# Session 10 tried a cheaper effort 1 (vat-tp2, 1 KB, benchmarks/effort.py): 15 steps over 4096 + 4096 samples
# matched 30 over 8192 + 8192 on 8 validation meshes (F 0.751 vs 0.753, 3.8 s vs 7.3 s), but lost 0.022 +- 0.004
# on the 90 test meshes (0.627 vs 0.649), so effort 1 keeps its 30 steps; `Plan.samples` stays for such trades.
PLANS = {1: Plan(30, 0, 0), 2: Plan(100, 50, 0), 3: Plan(100, 300, 14 * SEARCH_TRIES)}


def level_samples(mesh_unit, seed: int, cfg, effort: int) -> Samples:
    """The samples that effort level `effort` refines against (`encode(seed=seed)`; its plan sets their number)."""
    n = PLANS[effort].samples
    return occupancy_samples(mesh_unit, seed, n, n, cfg)


@dataclasses.dataclass(frozen=True)
class Samples:
    """Labelled query points of one shape in its unit cube: (1, M, 3) points and (1, M) occupancy in [0, 1]."""

    points_1M3: torch.Tensor
    occ_1M: torch.Tensor


def occupancy_samples(
    mesh_unit,
    seed: int = 0,
    n_uniform: int = SAMPLES_UNIFORM,
    n_near: int = SAMPLES_NEAR,
    cfg=None,
) -> Samples:
    """The samples the refinement scores against: uniform and near-surface queries labelled by the oracle.

    Labels are the ones the model was trained on: `cfg`'s label band and dilation (the paper's labels without
    a config). The same mesh and seed always give the same samples (tests recompute the refinement's loss).
    """
    from vatcodec.geometry.sampling import make_sample, semi_continuous_occupancy

    # A seed of its own, so that these queries are independent of the encoder's surface sample (same seed).
    own_seed = int(np.random.SeedSequence([seed, 0xE7]).generate_state(1)[0])
    s = make_sample(mesh_unit, 1, n_uniform, n_near, own_seed)
    occ = s["query_occ"]
    if cfg is not None:
        occ = semi_continuous_occupancy(s["query_sdf"] - cfg.label_dilate, cfg.label_band).astype(np.float32)
    return Samples(torch.from_numpy(s["query_points"])[None], torch.from_numpy(occ)[None])


def latent_loss(net, zhat_BKC: torch.Tensor, samples: Samples) -> torch.Tensor:
    """BCE with logits of the decoded field on the samples, one value per latent in the batch: (B,)."""
    B = zhat_BKC.shape[0]
    logits_BM = net.decoder.query(net.decoder.planes(zhat_BKC), samples.points_1M3.expand(B, -1, -1))
    bce_BM = F.binary_cross_entropy_with_logits(logits_BM, samples.occ_1M.expand(B, -1), reduction="none")
    return bce_BM.mean(dim=1)


def indices_loss(net, idx_L: list, samples: Samples) -> float:
    """The loss of one file's indices (any prefix), the number every refinement decision is checked against."""
    with torch.no_grad():
        idx_1L = [torch.as_tensor(np.asarray(a, dtype=np.int64))[None] for a in idx_L]
        return float(latent_loss(net, net.vq.decode(idx_1L), samples)[0])


@dataclasses.dataclass
class Result:
    """Refined indices of a prefix, their loss and effort 0's on the same samples, and the work done."""

    indices: list[np.ndarray]
    loss: float
    loss0: float
    steps: int = 0
    evals: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    # The best (indices, loss) after each stage that improved on the one before: the lowest loss is not always
    # the best surface (see `fscore_proxy`), so the codec may pick among them.
    checkpoints: list[tuple[list[np.ndarray], float]] = dataclasses.field(default_factory=list)


class _Stop(Exception):
    """The deadline passed: unwind to `refine`, which keeps the best indices found so far."""


class _Search:
    """State shared by the stages: the samples, the best accepted indices and the clock."""

    def __init__(self, net, samples: Samples, n: int, deadline, accept, progress, total: int):
        self.net, self.vq, self.samples, self.n = net, net.vq, samples, n
        self.deadline, self.accept, self.progress = deadline, accept, progress
        self.done, self.total, self.steps, self.evals = 0, max(total, 1), 0, 0
        self.best_idx: list[np.ndarray] = []
        self.best_loss = float("inf")

    def tick(self, units: int = 1) -> None:
        """Counts work, reports progress, and stops the search once the deadline has passed."""
        self.done += units
        if self.progress is not None:
            self.progress(min(self.done / self.total, 1.0))
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _Stop

    def offer(self, idx_L: list[np.ndarray], loss: float) -> bool:
        """Keeps a candidate that lowers the loss and that the caller accepts (e.g. it fits the byte budget)."""
        if loss < self.best_loss and (self.accept is None or self.accept(idx_L)):
            self.best_idx, self.best_loss = [a.copy() for a in idx_L], loss
            return True
        return False

    def losses(self, candidates: list[list[np.ndarray]]) -> list[float]:
        """Exact losses of several index sets, in one batched decoder pass."""
        with torch.no_grad():
            zhat_BKC = torch.cat([self.vq.decode([torch.from_numpy(a)[None] for a in c]) for c in candidates])
            self.evals += len(candidates)
            return latent_loss(self.net, zhat_BKC, self.samples).tolist()

    def latent_steps(self, mu_1KC: torch.Tensor, steps: int) -> None:
        """Adam on z with the VQ of the prefix in the loop; the forward value is exactly that of the file."""
        vq, n = self.vq, self.n
        z_1KC = mu_1KC.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([z_1KC], lr=LATENT_LR)
        for _ in range(steps):
            zq_1CHW, idx_L = 0.0, []
            with torch.no_grad():
                for _, idx_1L, h_1CHW in vq._residual_scales(vq._to_grid(z_1KC), n):
                    zq_1CHW = zq_1CHW + h_1CHW
                    idx_L.append(idx_1L[0].numpy())
            # Adding z - z (zero, exactly) keeps the forward value of the quantized latent bit for bit and
            # passes the gradient straight through to z.
            zhat_1KC = vq._to_tokens(zq_1CHW) + (z_1KC - z_1KC.detach())
            loss = latent_loss(self.net, zhat_1KC, self.samples)[0]
            self.offer(idx_L, loss.item())
            (z_1KC.grad,) = torch.autograd.grad(loss, [z_1KC])  # grads of z only: the model stays frozen
            opt.step()
            self.steps += 1
            self.tick()

    def code_steps(self, steps: int) -> None:
        """Adam on each scale's code vectors, snapped to the nearest codebook entry in the forward pass."""
        vq = self.vq
        book_VC = vq.codebook.weight.detach()
        codes = [book_VC[torch.from_numpy(a)].clone().requires_grad_(True) for a in self.best_idx]
        opt = torch.optim.Adam(codes, lr=CODE_LR)
        for _ in range(steps):
            zhat_1CHW, idx_L = 0.0, []
            for si, code_LC in enumerate(codes):
                pn = vq.scales[si]
                with torch.no_grad():
                    idx = vq.nearest(code_LC)
                idx_L.append(idx.numpy())
                snapped_LC = book_VC[idx] + (code_LC - code_LC.detach())  # straight-through, exact forward
                zhat_1CHW = zhat_1CHW + vq.up(si, vq.code_map(snapped_LC[None], pn))
            loss = latent_loss(self.net, vq._to_tokens(zhat_1CHW), self.samples)[0]
            self.offer(idx_L, loss.item())
            grads = torch.autograd.grad(loss, codes)
            for code_LC, g_LC in zip(codes, grads, strict=True):
                code_LC.grad = g_LC
            opt.step()
            self.steps += 1
            self.tick()

    def _code_map_grad(self, si: int) -> torch.Tensor:
        """Gradient of the loss of the best indices with respect to scale si's code vectors: (L_s, C)."""
        vq = self.vq
        maps = [vq.embed(torch.from_numpy(a)[None], vq.scales[s]) for s, a in enumerate(self.best_idx)]
        maps[si] = maps[si].clone().requires_grad_(True)
        zhat_1CHW = sum(vq.up(s, m) for s, m in enumerate(maps))
        loss = latent_loss(self.net, vq._to_tokens(zhat_1CHW), self.samples)[0]
        (g_1Chw,) = torch.autograd.grad(loss, [maps[si]])
        return vq._to_tokens(g_1Chw)[0]  # (planes * h * w, C), in token order

    def index_search(self, max_evals: int) -> None:
        """Greedy, coarse to fine: per token, the gradient ranks nearby codes; the best exact loss wins."""
        book_VC = self.vq.codebook.weight.detach()
        for si in range(self.n):
            g_LC = self._code_map_grad(si)
            for p in range(len(self.best_idx[si])):
                if self.evals >= max_evals:
                    return
                cur = int(self.best_idx[si][p])
                near_M = torch.cdist(book_VC[cur][None], book_VC)[0].topk(SEARCH_NEIGHBOURS, largest=False)[1]
                near_M = near_M[near_M != cur]
                # First-order change of the loss if this token took each nearby code instead.
                est_M = (book_VC[near_M] - book_VC[cur]) @ g_LC[p]
                tries = near_M[est_M.argsort()[:SEARCH_TRIES]].tolist()
                candidates = []
                for v in tries:
                    idx_L = [a.copy() for a in self.best_idx]
                    idx_L[si][p] = v
                    candidates.append(idx_L)
                losses = self.losses(candidates)
                for k in np.argsort(losses, kind="stable"):
                    if losses[k] >= self.best_loss or self.offer(candidates[k], losses[k]):
                        break  # stop at the best that improves and is accepted
                self.tick()


def refine(
    net,
    samples: Samples,
    mu_1KC: torch.Tensor,
    n: int,
    effort: int,
    *,
    deadline: float | None = None,
    accept: Callable[[list[np.ndarray]], bool] | None = None,
    progress: Callable[[float], None] | None = None,
    share: float = 1.0,
) -> Result:
    """Indices of the first `n` scales that fit this shape's samples at least as well as effort 0's.

    Args:
        net: the VAT; its weights are not changed (only the latent and code vectors get gradients).
        samples: the shape's labelled queries (`occupancy_samples`).
        mu_1KC: the encoder's latent mean (1, K, C).
        n: number of scales of the file being written; the loss is that of this prefix.
        effort: 0..3 (see `PLANS`); 0 returns the encoder's indices.
        deadline: `time.monotonic()` value after which the work stops with the best indices so far.
        accept: a candidate's indices must pass this test to be kept (the codec checks the byte budget here);
            the effort-0 indices must pass it.
        progress: called with the fraction of the planned work done.
        share: do this fraction of the level's planned steps (the codec splits a level between two prefixes).

    Returns:
        The refined indices (one int64 array per scale) and their loss; `loss <= loss0`.
    """
    start = time.monotonic()
    with torch.no_grad():
        idx0_L = [t[0].numpy().astype(np.int64) for t in net.vq.encode(mu_1KC, n)]
    loss0 = indices_loss(net, idx0_L, samples)
    if effort == 0:
        return Result(idx0_L, loss0, loss0)
    plan = PLANS[effort].scaled(share)
    run = _Search(net, samples, n, deadline, accept, progress, plan.units)
    run.best_idx, run.best_loss = idx0_L, loss0  # effort 0 is always a candidate: the guarantee
    stopped, checkpoints = False, []

    def checkpoint() -> None:
        # Every decision so far used one decoder pass per candidate or per batch; the final word is the same
        # measurement as effort 0's, so the guarantee holds bit for bit however batching rounds.
        loss = indices_loss(net, run.best_idx, samples)
        if loss < (checkpoints[-1][1] if checkpoints else loss0):
            checkpoints.append(([a.copy() for a in run.best_idx], loss))

    try:
        run.latent_steps(mu_1KC, plan.latent_steps)
        checkpoint()
        run.code_steps(plan.code_steps)
        checkpoint()
        run.index_search(plan.search_evals)
    except _Stop:
        stopped = True
    checkpoint()
    best_idx, best_loss = checkpoints[-1] if checkpoints else (idx0_L, loss0)
    return Result(
        best_idx, best_loss, loss0, run.steps, run.evals, time.monotonic() - start, stopped, checkpoints
    )


def fscore_proxy(net, idx_L: list, mesh_unit, resolution: int | None = None, level: float = 0.0) -> float:
    """A quick F-score (tau 0.01) of some indices' decoded shape against the unit-cube mesh; 0 if empty.

    One candidate's `QuickScorer` score; `level` shifts the surface by that many logits above the model's level
    for the prefix. Callers that score several candidates against one mesh keep a `QuickScorer`.
    """
    from vatcodec.codec.quick_score import QuickScorer

    return QuickScorer(mesh_unit, resolution)(net, idx_L, level)
