"""Probe: how much would an encoder gain by writing each file with whichever of two tokenizers decodes it better?

A .vat file names its model, so an encoder holding two models could encode with both and keep the file with the
better quick F-score against the input (as `--tries` does for surface samplings). This scores each mesh's effort-0
full stream under both models with the quick F, picks, and reads the benchmark F of the pick from two effort.py
row files of the same meshes (so the pick is judged by the protocol's F, not by the score that chose it).

PYTHONPATH=. python benchmarks/model_choice_probe.py <corpus>/katorlegaz \
    benchmarks/results/context-katorlegaz/rows.jsonl vatcodec/weights/vat-tp2.safetensors \
    benchmarks/results/s16-9000-katorlegaz/rows.jsonl training/checkpoints/s16-scratch-9000.safetensors \
    > benchmarks/results/model_choice_probe.jsonl
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.compare_rows import load_rows, select
from vatcodec import codec
from vatcodec.codec.quick_score import QuickScorer
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="the folder effort.py ran on (its rows name meshes under it)")
    ap.add_argument("rows_a", type=Path)
    ap.add_argument("model_a")
    ap.add_argument("rows_b", type=Path)
    ap.add_argument("model_b")
    ap.add_argument("--rate", default="bytes:1024")
    args = ap.parse_args()
    torch.set_num_threads(1)
    nets = [codec.get_model(args.model_a), codec.get_model(args.model_b)]
    fs = [select(load_rows(p), 0, args.rate, "fscore") for p in (args.rows_a, args.rows_b)]
    picked, a, b = [], [], []
    for mesh in sorted(set(fs[0]) & set(fs[1])):
        ref = load_mesh(args.root / mesh)
        score = QuickScorer(normalize_mesh(ref)[0])
        quick = []
        for net in nets:
            vat = codec.unpack_for(codec.encode(ref, model=net), net)
            quick.append(score(net, vat.indices))
        pick = int(quick[1] > quick[0])
        picked.append(fs[pick][mesh])
        a.append(fs[0][mesh])
        b.append(fs[1][mesh])
        row = {
            "mesh": mesh,
            "quick": [round(q, 4) for q in quick],
            "f": [fs[0][mesh], fs[1][mesh]],
            "pick": pick,
        }
        print(json.dumps(row), flush=True)
    d = np.array(picked) - np.array(a)
    summary = {
        "meshes": len(a),
        "f_a": float(np.mean(a)),
        "f_b": float(np.mean(b)),
        "f_picked": float(np.mean(picked)),
        "f_oracle": float(np.maximum(a, b).mean()),
        "gain_over_a": float(d.mean()),
        "stderr": float(d.std(ddof=1) / np.sqrt(len(d))),
    }
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
