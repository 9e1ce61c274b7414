"""Probe for coder 4: decode 6 whole scales plus k tokens of the last, in several orders, the rest zero or expected.

PYTHONPATH=. python benchmarks/cut_probe.py ~/.cache/vatcodec/cache 33 benchmarks/results/cut_probe.jsonl 48,96,144

For each validation mesh (effort-0 tokens of the shipped model): F (tau 0.01, decoded at 128, 10k / 100k samples)
of 6 scales, of 6 scales plus the prior's expected codes for scale 7 ("F6mean"), of all 7, and of 6 scales plus k
tokens of scale 7 chosen in raster order, planes interleaved, by the prior's entropy (highest first), or by an
oracle (largest change to the latent), the other tokens zero or the prior's expected code; with each the ideal
bits of the kept tokens under the prior. One JSON row per mesh. The summary is in docs/benchmarks.md, "Completion".
"""

import json
import math
import sys
from pathlib import Path

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

torch.set_num_threads(1)
D = sys.argv[1]
n = int(sys.argv[2])
out = open(sys.argv[3], "w")
KS = [int(k) for k in sys.argv[4].split(",")] if len(sys.argv) > 4 else [48, 96, 144]
net = get_model(None)
prior = prior_of(net)
gen = prior.gen.float()
cfg = net.cfg
S = len(cfg.scales)
book_VC = net.vq.codebook.weight.detach()


def fscore(unit, ref, zhat_BKC, iso):
    planes = net.decoder.planes(zhat_BKC)
    from vatcodec.model.tokenizer import OccupancyField

    field = OccupancyField(net.decoder, planes, iso)
    v, f = extract_mesh(field, 128)
    if len(f) == 0:
        return 0.0
    m = surface_metrics(
        trimesh.Trimesh(v, f, process=False), unit, n_query=10000, n_ref=100000, ref_index=ref
    )
    return float(m["fscore"])


meshes = [Path(D)] if D.endswith(".obj") else val_meshes(D, n)
for mi, path in enumerate(meshes):
    unit, _ = normalize_mesh(load_mesh(path))
    p, nn_ = sample_surface(unit, cfg.input_points, 0)
    surf = torch.from_numpy(np.concatenate([p, nn_], 1).astype(np.float32))[None]
    with torch.no_grad():
        idx = net.encode(surf)
        tokens_1L = torch.cat(idx, 1)
        inputs = gen.vq.teacher_inputs(gen.split(tokens_1L))
        logits_LV = gen.logits_full(gen.null_cond.reshape(1, -1), inputs)[0].double()
        logp_LV = F.log_softmax(logits_LV, -1)
        off = sum(len(t[0]) for t in idx[:-1])
        lp7 = logp_LV[off:]  # (192, V)
        last = idx[-1][0]
        bits7 = (-lp7[torch.arange(len(last)), last] / math.log(2)).numpy()
        ent7 = (-(lp7.exp() * lp7).sum(1) / math.log(2)).numpy()
        bits_pre = float((-logp_LV[torch.arange(off), tokens_1L[0, :off]]).sum() / math.log(2))
        mean_code = lp7.exp().float() @ book_VC  # (192, C)
        # zhat of first S-1 scales as a grid
        G = net.vq.planes
        zhat6 = 0.0
        for si in range(S - 1):
            zhat6 = zhat6 + net.vq.up(si, net.vq.embed(idx[si], cfg.scales[si]))
        pn = cfg.scales[-1]
        true_code = book_VC[last]  # (192, C)

        def zhat_with(mask, fill, true_code=true_code, pn=pn, zhat6=zhat6):
            codes = torch.where(torch.as_tensor(mask)[:, None], true_code, fill)
            h = net.vq.up(S - 1, net.vq.code_map(codes[None], pn))
            return net.vq._to_tokens(zhat6 + h)

        ref = reference_index(unit, 10000, 100000)
        iso7, iso6 = cfg.iso_at(S), cfg.iso_at(S - 1)
        zero = torch.zeros_like(true_code)
        row = {"mesh": str(path), "bits_pre": bits_pre, "bits7": bits7.tolist()}
        row["F6"] = fscore(unit, ref, net.vq._to_tokens(zhat6), iso6)
        row["F7"] = fscore(unit, ref, zhat_with(np.ones(192, bool), zero), iso7)
        row["F6mean"] = fscore(unit, ref, zhat_with(np.zeros(192, bool), mean_code), iso7)
        Lp = pn * pn
        orders = {
            "raster": np.arange(192),
            "interleave": np.arange(192).reshape(3, Lp).T.reshape(-1),
            "entropy": np.argsort(-ent7, kind="stable"),
            "oracle_mean": np.argsort(-(true_code - mean_code).norm(dim=1).numpy(), kind="stable"),
            "oracle_zero": np.argsort(-true_code.norm(dim=1).numpy(), kind="stable"),
        }
        for name, order in orders.items():
            for k in KS:
                mask = np.zeros(192, bool)
                mask[order[:k]] = True
                for fname, fill in (("zero", zero), ("mean", mean_code)):
                    if name == "oracle_mean" and fname == "zero" or name == "oracle_zero" and fname == "mean":
                        continue
                    row[f"{name}/{fname}/{k}"] = fscore(unit, ref, zhat_with(mask, fill), iso7)
                row[f"{name}/bits/{k}"] = float(bits7[mask].sum())
    out.write(json.dumps(row) + "\n")
    out.flush()
    print(mi, path.name, row["F6"], row["F6mean"], row["F7"], flush=True)
