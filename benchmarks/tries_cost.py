"""Encode time of effort 0 with and without `--tries`, on one mesh, one thread (two runs each, after a warm-up).

PYTHONPATH=. python benchmarks/tries_cost.py examples/chair.obj > benchmarks/results/tries_cost_chair.json
"""

import json
import sys
import time
import warnings

import torch

from vatcodec import codec

SETTINGS = ({"max_bytes": 256}, {"max_bytes": 256, "tries": 4}, {"tries": 4})

warnings.simplefilter("ignore")
torch.set_num_threads(1)
mesh = sys.argv[1]
net = codec.get_model()
codec.encode(mesh, model=net, max_bytes=256)  # loads the prior and warms the caches
rows = []
for options in SETTINGS:
    seconds = []
    for _ in range(2):
        t = time.perf_counter()
        data = codec.encode(mesh, model=net, **options)
        seconds.append(round(time.perf_counter() - t, 3))
    rows.append({"options": options, "bytes": len(data), "seconds": seconds})
print(json.dumps({"mesh": mesh, "rows": rows}, indent=1))
