"""Decoded F-score of validation meshes (8 unless N is given) at given iso logits, for choosing a surface level.

PYTHONPATH=. python benchmarks/fscore_at_iso.py CKPT ~/.cache/vatcodec/cache 0,0.5,1.0 [N] \
    >> benchmarks/results/fscore_at_iso.jsonl
"""

import dataclasses
import json
import sys

import numpy as np
import torch

from training.speedrun import decoded_fscores, val_meshes
from vatcodec.model.checkpoint import load_model

torch.set_num_threads(1)
net = load_model(sys.argv[1]).eval()
meshes = val_meshes(sys.argv[2], int(sys.argv[4]) if len(sys.argv) > 4 else 8)
for iso in map(float, sys.argv[3].split(",")):
    net.cfg = dataclasses.replace(net.cfg, iso_logit=iso)
    f = decoded_fscores(net, meshes, 128)
    row = {
        "ckpt": sys.argv[1],
        "iso": iso,
        "meshes": len(meshes),
        "f_mean": round(float(np.mean(f)), 4),
        "f": [round(x, 3) for x in f],
    }
    print(json.dumps(row), flush=True)
