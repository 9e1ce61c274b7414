"""Probe for coder 4, part 2: completing several missing scales, and the integer coding order of a cut scale.

PYTHONPATH=. python benchmarks/cut_probe2.py ~/.cache/vatcodec/cache 33 benchmarks/results/cut_probe2.jsonl

For each validation mesh: F of 4 and 5 whole scales, and with each later scale completed by the prior's expected
codes (fed back to the prior as soft tokens, as `ContextPrior.complete` does); and of 6 scales plus k tokens of
scale 7 in the order coder 4 uses (least confident row first), the rest expected codes. As `cut_probe.py`.
"""

import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from training.speedrun import val_meshes
from vatcodec.codec.extract import extract_mesh
from vatcodec.codec.models import get_model, prior_of
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import reference_index, surface_metrics
from vatcodec.geometry.sampling import sample_surface
from vatcodec.model.tokenizer import OccupancyField

torch.set_num_threads(1)
D, n, outp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = open(outp, "w")
net = get_model(None)
gen = prior_of(net).gen.float()
cfg = net.cfg
vq = net.vq
S = len(cfg.scales)
book = vq.codebook.weight.detach()
counts = gen.counts
null = gen.null_cond.reshape(1, -1)


def fs(unit, ref, z, iso):
    f = OccupancyField(net.decoder, net.decoder.planes(z), iso)
    v, fc = extract_mesh(f, 128)
    if len(fc) == 0:
        return 0.0
    return float(
        surface_metrics(
            trimesh.Trimesh(v, fc, process=False), unit, n_query=10000, n_ref=100000, ref_index=ref
        )["fscore"]
    )


def complete(codes, upto):
    """codes: list of (1, L_s, C) code tensors for scales < len(codes); fill scales up to `upto` with prior means.
    Returns list of code tensors for `upto` scales and the logp of the last computed scale."""
    codes = list(codes)
    while True:
        zhat = 0.0
        inputs = []
        for si, c in enumerate(codes):
            zhat = zhat + vq.up(si, vq.code_map(c, cfg.scales[si]))
            if si + 1 < S:
                pn = cfg.scales[si + 1]
                inputs.append(vq._to_tokens(F.interpolate(zhat, size=(pn, pn), mode="area")))
        # pad inputs to the full length with zeros (block-causal: later scales don't affect earlier logits)
        L = sum(counts[1:])
        inp = (
            torch.cat(inputs, 1)
            if inputs
            else torch.zeros(1, 0, cfg.latent_dim if hasattr(cfg, "latent_dim") else book.shape[1])
        )
        inp = torch.cat([inp, torch.zeros(1, L - inp.shape[1], book.shape[1])], 1)
        logp = F.log_softmax(gen.logits_full(null, inp)[0].double(), -1)
        if len(codes) >= upto:
            return codes, logp
        off = sum(counts[: len(codes)])
        p = logp[off : off + counts[len(codes)]].exp().float()
        codes.append((p @ book)[None])


def latent(codes):
    z = 0.0
    for si, c in enumerate(codes):
        z = z + vq.up(si, vq.code_map(c, cfg.scales[si]))
    return vq._to_tokens(z)


for mi, path in enumerate(val_meshes(D, n)):
    unit, _ = normalize_mesh(load_mesh(path))
    p, nn_ = sample_surface(unit, cfg.input_points, 0)
    surf = torch.from_numpy(np.concatenate([p, nn_], 1).astype(np.float32))[None]
    ref = reference_index(unit, 10000, 100000)
    row = {"mesh": str(path)}
    with torch.no_grad():
        idx = net.encode(surf)
        true = [book[t] for t in idx]  # (1, L, C)
        for P in (4, 5):
            row[f"F{P}"] = fs(unit, ref, latent(true[:P]), cfg.iso_at(P))
            c, _ = complete(true[:P], S)
            for m in range(P + 1, S + 1):
                row[f"F{P}+{m}"] = fs(unit, ref, latent(c[:m]), cfg.iso_at(m))
        c, logp = complete(true[:6], 6)
        off = sum(counts[:6])
        lp7 = logp[off:]
        mean7 = lp7.exp().float() @ book
        last = idx[-1][0]
        bits7 = (-lp7[torch.arange(192), last] / math.log(2)).numpy()
        maxp = lp7.max(1).values.numpy()
        order = np.argsort(maxp, kind="stable")  # least confident first
        for k in (48, 96):
            mask = torch.zeros(192, dtype=torch.bool)
            mask[order[:k]] = True
            codes7 = torch.where(mask[:, None], true[6][0], mean7)[None]
            row[f"maxp/mean/{k}"] = fs(unit, ref, latent(true[:6] + [codes7]), cfg.iso_at(S))
            row[f"maxp/bits/{k}"] = float(bits7[mask.numpy()].sum())
    out.write(json.dumps(row) + "\n")
    out.flush()
    print(mi, {k: round(v, 3) for k, v in row.items() if k != "mesh"}, flush=True)
