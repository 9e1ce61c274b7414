"""Generator training data: orbit renders and tokenizer token maps of every mesh, cached in shards.

    python -m training.gen_data /work/corpus/lib --split-index data/cache/index.json --out data/gen
    torchrun --nproc_per_node 2 -m training.gen_data ...        # ranks take every WORLD_SIZE-th mesh
    python -m training.gen_data /work/corpus/lib/katorlegaz --test --out data/gen-test   # evaluation only

Train/val membership comes from the tokenizer cache's index.json, so the generator never sees a shape the
tokenizer held out; the test split (katorlegaz) is only read with --test, whose rows are marked "test" and are
refused by the generator's training loader. Views follow the paper's section 6.1 at a smaller size: an orbit of
--views frames from azimuth 0 in equal steps, one random elevation in [-5, 30] degrees per object, a 33.8 degree
field of view and a camera distance at which the object's bounding sphere fills the frame; white background.
Each view is then passed through `vatcodec.generation.image_input.prepare_image`, exactly as `vatcodec generate`
treats a
user's image. Token maps are the indices that `vatcodec encode` (effort 0, shipped or --model tokenizer) writes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.numpy import load_file, save_file

from training.prepare import find_meshes, stable_hash
from vatcodec import codec
from vatcodec.codec.bitstream import unpack
from vatcodec.errors import VatError
from vatcodec.fileio import atomic_output
from vatcodec.generation.image_input import IMAGE_SIZE, prepare_image
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.views.render import render_views

FOV_DEG = 33.8  # paper section 6.1
ELEVATION_RANGE = (-5.0, 30.0)  # degrees, one draw per object


def views_of(
    unit_mesh, name: str, n_views: int, render_size: int, size: int, seed: int
) -> tuple[np.ndarray, float]:
    """(n_views, size, size, 3) uint8 prepared orbit views of a unit-cube mesh, and its elevation in degrees."""
    rng = np.random.default_rng([seed, stable_hash(name) % 2**32])
    elevation = float(rng.uniform(*ELEVATION_RANGE))
    lo_3, hi_3 = unit_mesh.bounds
    radius = float(np.linalg.norm(hi_3 - lo_3)) / 2.0  # bounding sphere of the (centred) box
    distance = radius / math.sin(math.radians(FOV_DEG) / 2.0)
    azimuths = [360.0 * k / n_views for k in range(n_views)]
    rgba_V = render_views(
        unit_mesh, size=render_size, azimuths_deg=azimuths, elevation_deg=elevation, fov_deg=FOV_DEG,
        distance=distance, alpha=True, supersample=2,
    )  # fmt: skip
    return np.stack([prepare_image(v, size) for v in rgba_V]), elevation


def token_map(unit_or_mesh, net) -> np.ndarray:
    """All scales' indices of the file `vatcodec encode` writes for this mesh, concatenated: (L,) int32."""
    vat = unpack(codec.encode(unit_or_mesh, model=net, coder="raw"))
    return np.concatenate(vat.indices).astype(np.int32)


def select(args) -> list[tuple[str, Path, str]]:
    """(name, path, split) of the meshes this run covers."""
    if args.test:
        return [(n, p, "test") for n, p in find_meshes([args.root], exclude=[])]
    index = json.loads(Path(args.split_index).read_text())
    split_of = {s["name"]: s["split"] for s in index["shapes"]}
    found = find_meshes([args.root], exclude=["katorlegaz"])
    return [(n, p, split_of[n]) for n, p in found if n in split_of]


def build(args) -> int:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if args.threads:  # 0 leaves torch's setting alone (tests call this in-process)
        torch.set_num_threads(args.threads)
    jobs = select(args)
    if args.limit:
        jobs = jobs[: args.limit]
    mine = jobs[rank::world]
    net = codec.get_model(args.model)
    images, tokens, elevations, names, splits, failed = [], [], [], [], [], {}
    start = time.time()
    with Progress(
        TextColumn(f"rank {rank}/{world}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=rank != 0 or not sys.stderr.isatty(),
    ) as bar:  # fmt: skip
        task = bar.add_task("meshes", total=len(mine))
        for name, path, split in mine:
            try:
                unit, _ = normalize_mesh(load_mesh(path))
                views, elevation = views_of(unit, name, args.views, args.render_size, args.size, args.seed)
                tokens.append(token_map(unit, net))
            except Exception as exc:  # noqa: BLE001 - one bad mesh must not lose the rank's other work
                failed[name] = f"{type(exc).__name__}: {exc}"
            else:
                images.append(views)
                elevations.append(elevation)
                names.append(name)
                splits.append(split)
            bar.advance(task)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "names": json.dumps(names),
        "splits": json.dumps(splits),
        "failed": json.dumps(failed),
        "tokenizer_id": net.model_id.hex() if getattr(net, "model_id", None) else "",
        "schedule": json.dumps(list(net.cfg.schedule)),
        "views": json.dumps(
            {"n": args.views, "fov_deg": FOV_DEG, "elevation": ELEVATION_RANGE, "seed": args.seed}
        ),
        "image_size": str(args.size),
    }
    arrays = {
        "images": np.stack(images)
        if images
        else np.zeros((0, args.views, args.size, args.size, 3), np.uint8),
        "tokens": np.stack(tokens) if tokens else np.zeros((0, sum(net.cfg.schedule)), np.int32),
        "elevation": np.asarray(elevations, dtype=np.float32),
    }
    with atomic_output(
        args.out / f"part-{rank:03d}-of-{world:03d}.safetensors", suffix=".safetensors"
    ) as tmp:
        save_file(arrays, str(tmp), metadata=meta)
    print(
        f"rank {rank}: {len(names)} meshes, {len(failed)} failed, {time.time() - start:.0f} s",
        file=sys.stderr,
    )
    return 0


def load_parts(folder: str | os.PathLike, splits: tuple[str, ...]) -> dict:
    """Every part of a gen_data folder, merged, keeping only rows of the given splits (sorted by name)."""
    folder = Path(folder)
    parts = sorted(folder.glob("part-*-of-*.safetensors"))
    if not parts:
        raise VatError(f"{folder}: no gen_data parts (part-RRR-of-WWW.safetensors)")
    worlds = {p.stem.split("-of-")[1] for p in parts}
    if len(worlds) != 1 or len(parts) != int(worlds.pop()):
        raise VatError(f"{folder}: parts from different or unfinished runs: {[p.name for p in parts]}")
    rows: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    tokenizer_ids, sizes = set(), set()
    for p in parts:
        from safetensors import safe_open

        with safe_open(str(p), "np") as f:
            meta = f.metadata()
        arrays = load_file(str(p))
        tokenizer_ids.add(meta["tokenizer_id"])
        sizes.add(int(meta.get("image_size", arrays["images"].shape[2])))
        for i, (name, split) in enumerate(
            zip(json.loads(meta["names"]), json.loads(meta["splits"]), strict=True)
        ):
            if split in splits:
                rows.append((name, split, arrays["images"][i], arrays["tokens"][i]))
    if not rows:
        raise VatError(f"{folder}: no rows of split {' or '.join(splits)}")
    if len(tokenizer_ids) != 1 or len(sizes) != 1:
        raise VatError(f"{folder}: parts made with different tokenizers or image sizes")
    rows.sort(key=lambda r: r[0])
    return {
        "names": [r[0] for r in rows],
        "splits": [r[1] for r in rows],
        "images": np.stack([r[2] for r in rows]),  # (N, V, S, S, 3) uint8
        "tokens": np.stack([r[3] for r in rows]).astype(np.int64),  # (N, L)
        "tokenizer_id": tokenizer_ids.pop(),
        "image_size": sizes.pop(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="corpus folder (names are relative to it)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split-index", default="data/cache/index.json", help="tokenizer cache index.json")
    parser.add_argument(
        "--test", action="store_true", help="every mesh under root, marked as test (evaluation)"
    )
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--render-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="tokenizer checkpoint (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank (0: torch's default)")
    return build(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
