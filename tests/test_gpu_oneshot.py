"""training/gpu_oneshot.sh runs end to end on the CPU with a tiny model: a GPU lease must not be where it fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import tiny_model
from test_training import write_cache

from vatcodec.model.checkpoint import load_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_the_one_shot_gpu_script_trains_and_exports_on_the_cpu(tmp_path):
    write_cache(tmp_path / "cache", n_shapes=2)
    save_checkpoint(tmp_path / "init.safetensors", tiny_model(0))
    out = tmp_path / "out"
    env = dict(
        os.environ,
        OUT=str(out),
        DATA=str(tmp_path / "cache"),
        INIT=str(tmp_path / "init.safetensors"),
        CONFIG="vat-tiny",
        STEPS="3",
        BATCH="2",
        MINUTES="1",
        PY=sys.executable,
    )
    run = subprocess.run(
        ["bash", "training/gpu_oneshot.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val_iou" in r for r in rows) and max(r.get("step", 0) for r in rows) == 3
    assert load_model(out / "vat-tiny-gpu.safetensors").cfg.name == "vat-tiny"
    assert (out / "env.txt").read_text().startswith("torch")
    # Without its inputs it stops at once, in one line.
    bad = subprocess.run(
        ["bash", "training/gpu_oneshot.sh"], cwd=ROOT, env={**env, "DATA": str(tmp_path / "none")},
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no packed cache")
