"""Decoder query throughput against the number of points per field call (the extractor's `batch`).

    PYTHONPATH=. python benchmarks/query_batch.py [--threads 1] [--points 524288]

The shipped model's field for the example chair, evaluated at the same random points in chunks of each size;
microseconds per point, and whether every chunking gives the same logits. Rows: results/query_batch.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vatcodec.codec.bitstream import unpack
from vatcodec.codec.models import get_model, tables_of

RESULTS = Path(__file__).parent / "results" / "query_batch.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vat", default="tests/golden/chair-vat-s.vat")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--points", type=int, default=524_288)
    p.add_argument("--sizes", default="8192,32768,65536,131072,262144")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net = get_model()
    vat = unpack(Path(a.vat).read_bytes(), tables=tables_of(net))
    idx = [torch.from_numpy(np.asarray(x, dtype=np.int64))[None] for x in vat.indices]
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(1, a.points, 3, generator=g) - 0.5
    rows = []
    with torch.inference_mode():
        field = net.decode(idx)
        ref = field(pts)
        for b in map(int, a.sizes.split(",")):
            field(pts[:, :b])  # warm-up
            t = time.perf_counter()
            out = torch.cat([field(pts[:, i : i + b]) for i in range(0, a.points, b)], 1)
            dt = time.perf_counter() - t
            row = {"batch": b, "threads": a.threads, "us_per_point": dt / a.points * 1e6}
            row.update(same_logits=bool(torch.equal(out, ref)), when=time.strftime("%Y-%m-%d %H:%M"))
            rows.append(row)
            print(json.dumps(rows[-1]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
