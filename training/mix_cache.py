"""A training cache that adds other caches' shapes to a base cache's training split (links, no copies).

    python -m training.mix_cache ~/.cache/vatcodec/cache-mix ~/.cache/vatcodec/cache ~/.cache/vatcodec/cache-proc

The base cache's validation split stays exactly what it was, so runs on the mix validate like runs on the base;
every shape of the extra caches (e.g. `training.procedural` shapes) joins the training split. Shards are linked,
so the mix costs no disk and no preparation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.data import INDEX_NAME


def mix_caches(out: Path, base: Path, extras: list[Path]) -> dict:
    """Writes out/ (shard links + index) and returns its index; raises ValueError on incompatible caches."""
    index = json.loads((base / INDEX_NAME).read_text())
    out.mkdir(parents=True, exist_ok=True)
    if (out / INDEX_NAME).exists() or any(out.glob("*.safetensors")):
        raise ValueError(f"{out} already holds a cache; remove it first")
    shards = {s["shard"] for s in index["shapes"]}
    for shard in shards:
        (out / shard).symlink_to((base / shard).resolve())
    for k, extra in enumerate(extras):
        more = json.loads((extra / INDEX_NAME).read_text())
        for key in ("n_uniform", "surface_points", "near_points"):
            if more.get(key) != index.get(key):
                raise ValueError(f"{extra} has {key} = {more.get(key)}, the base cache {index.get(key)}")
        for s in more["shapes"]:
            if s["split"] not in ("train", "val"):
                continue
            shard = f"extra{k}-{s['shard']}"
            if not (out / shard).exists():
                (out / shard).symlink_to((extra / s["shard"]).resolve())
            index["shapes"].append(
                {**s, "name": f"{extra.name}/{s['name']}", "shard": shard, "split": "train"}
            )
        index["roots"] = [*index.get("roots", []), *more.get("roots", [])]
    splits = [s["split"] for s in index["shapes"]]
    index["counts"] = {**index.get("counts", {}), "train": splits.count("train"), "val": splits.count("val")}
    index["mixed_from"] = [str(base), *map(str, extras)]
    (out / INDEX_NAME).write_text(json.dumps(index))
    return index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("base", type=Path)
    p.add_argument("extras", type=Path, nargs="+")
    a = p.parse_args(argv)
    try:
        index = mix_caches(a.out, a.base, a.extras)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"{a.out}: {index['counts']['train']} training shapes, {index['counts']['val']} validation shapes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
