"""`vatcodec bench`: runs every codec on a folder of meshes with a resumable cache, then reports, plots, gallery.

Work is one job per (mesh, codec); each finished job appends its rows and parameters to `<out>/rows.jsonl`, so an
interrupted run resumes where it stopped, and a job whose parameters changed (budgets, prefixes, resolution,
encode options) or that failed is redone. Reports and plots are drawn from that file alone.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vatcodec.errors import VatError
from vatcodec.threads import choose_threads

BUDGETS = (256, 512, 1024, 2048, 4096, 8192)
QUICK_BUDGETS = (512, 2048)
BASELINE_CODECS = ("draco", "voxel")
QUICK_MESH_NAMES = ("chair.obj", "table.obj", "torus.obj")
QUICK_PREFIXES = 5  # scale prefixes a quick run measures, whatever the model's number of scales


@dataclass
class BenchOptions:
    """What `vatcodec bench` runs; every field is a CLI flag."""

    folder: str | None = None  # meshes to measure (recursively); None with quick = built-in examples
    out: str = "bench"  # output folder: rows.jsonl cache, results.json, CSVs, plots, gallery
    models: list[str] = field(default_factory=list)  # checkpoints of our codec; empty = the shipped model
    codecs: tuple[str, ...] = ("vat", "draco", "voxel")  # which codecs to run
    budgets: tuple[int, ...] = BUDGETS  # byte budgets of the baselines
    prefixes: tuple[int, ...] = ()  # scale prefixes of our codec; empty = every prefix
    resolution: int = 256  # marching-cubes resolution of our decodes
    occupancy: bool = True  # also measure the tokenizer's Accuracy / IoU / NSA / CS-IoU (prefix mode only)
    jobs: int = 1  # worker processes
    threads: int | None = None  # torch threads per worker; None: vatcodec.threads' policy
    limit: int = 0  # only the first N meshes (sorted by path); 0 = all
    gallery: int = 3  # meshes in the gallery image; 0 = none
    pages: int = 0  # `vatcodec view` pages (pages/<mesh>.html) for the first N gallery meshes
    plots: bool = True  # draw PNG/SVG plots
    quick: bool = False  # smoke run: three small meshes, few rates
    vat_budgets: bool = (
        False  # our codec at the baselines' byte budgets (`encode --max-bytes B`), not at prefixes
    )
    effort: int = (
        0  # budget mode: encoder effort (0-3; 1-3 run with no time limit, so rows do not depend on load)
    )
    level_search: bool | None = None  # budget mode: `encode --level-search` (None: the effort's default)
    tries: int = 1  # budget mode: `encode --tries K`
    also_models: list[str] = field(default_factory=list)  # budget mode: `encode --also-model` (repeatable)

    def encode_options(self) -> dict:
        """Keywords of `codec.encode` that budget mode adds to `max_bytes` (time_limit 0: rows independent of load)."""
        return dict(
            effort=self.effort, time_limit=0 if self.effort else None, level_search=self.level_search,
            tries=self.tries, also_models=tuple(self.also_models),
        )  # fmt: skip

    def vat_suffix(self) -> str:
        """What budget mode adds to our codec's name, so that each set of encode options is its own curve."""
        if not self.vat_budgets:
            return ""
        parts = ["@bytes"] + ([f"effort={self.effort}"] if self.effort else [])
        if self.level_search is not None:
            parts.append("level-search" if self.level_search else "no-level-search")
        parts += [f"tries={self.tries}"] if self.tries > 1 else []
        return ",".join(parts + [f"also={Path(m).stem}" for m in self.also_models])

    def prefixes_for(self, num_scales: int) -> list[int]:
        """The scale prefixes to measure for a model of `num_scales` scales (quick: 5 spread up to the full stream)."""
        if self.prefixes:
            return sorted(n for n in set(self.prefixes) if 1 <= n <= num_scales)
        if self.quick:
            return sorted(
                {max(1, round(num_scales * k / QUICK_PREFIXES)) for k in range(1, QUICK_PREFIXES + 1)}
            )
        return list(range(1, num_scales + 1))


def quick_meshes(folder: Path) -> list[Path]:
    """Writes the three small smoke-test meshes (the shipped example chair and two primitives) to `folder`."""
    import shutil

    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    chair = Path(__file__).resolve().parents[2] / "examples" / "chair.obj"
    if not chair.exists():
        raise VatError(f"the quick benchmark needs {chair}, the example mesh of a source checkout")
    shutil.copyfile(chair, folder / QUICK_MESH_NAMES[0])
    top = trimesh.creation.box((1.0, 0.06, 0.6))
    top.apply_translation((0, 0.47, 0))
    legs = [trimesh.creation.box((0.06, 0.9, 0.06)) for _ in range(4)]
    for leg, (x, z) in zip(legs, [(-0.45, -0.25), (0.45, -0.25), (-0.45, 0.25), (0.45, 0.25)], strict=False):
        leg.apply_translation((x, 0.0, z))
    trimesh.util.concatenate([top, *legs]).export(folder / QUICK_MESH_NAMES[1])
    trimesh.creation.torus(0.35, 0.1, major_sections=48, minor_sections=16).export(
        folder / QUICK_MESH_NAMES[2]
    )
    return [folder / n for n in QUICK_MESH_NAMES]


def find_mesh_files(folder: Path, limit: int = 0) -> list[Path]:
    """Mesh files under `folder`, sorted by relative path."""
    from vatcodec.geometry.mesh_io import SUPPORTED_SUFFIXES

    if not folder.is_dir():
        raise VatError(f"{folder} is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not paths:
        raise VatError(f"no mesh files ({', '.join(sorted(SUPPORTED_SUFFIXES))}) under {folder}")
    return paths[:limit] if limit else paths


# --- worker side -----------------------------------------------------------------------------------------


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_job(job: dict) -> dict:
    """One (mesh, codec) job in a worker; failures come back as an error string, never as an exception."""
    from vatcodec.bench import measure
    from vatcodec.codec import get_model

    t = time.perf_counter()
    out = {"mesh": job["mesh"], "codec": job["codec"], "params": job["params"], "rows": [], "occupancy": None}
    out["error"] = None
    try:
        if job["kind"] == "vat":
            net = get_model(job["model"])
            if job["budgets"]:
                out["rows"] = measure.measure_vat_budgets(
                    job["path"],
                    job["mesh"],
                    net,
                    job["codec"],
                    job["budgets"],
                    job["resolution"],
                    job["encode"],
                )
            else:
                out["rows"] = measure.measure_vat(
                    job["path"], job["mesh"], net, job["codec"], job["prefixes"], job["resolution"]
                )
            if job["occupancy"]:
                out["occupancy"] = measure.measure_occupancy(
                    job["path"], job["mesh"], net, job["codec"], job["prefixes"]
                )
        else:
            out["rows"] = measure.measure_baseline(job["path"], job["mesh"], job["codec"], job["budgets"])
    except (VatError, ValueError, ImportError) as exc:
        out["error"] = " ".join(str(exc).split())
    out["seconds"] = time.perf_counter() - t
    return out


# --- driver ----------------------------------------------------------------------------------------------


def _codec_name(model: str | None, opts: BenchOptions) -> str:
    return ("vat" if model is None else "vat:" + Path(model).stem) + opts.vat_suffix()


def _jobs(opts: BenchOptions, paths: list[Path], root: Path, schedules: dict) -> list[dict]:
    jobs = []
    models = opts.models or [None]
    for p in paths:
        name = p.relative_to(root).as_posix()
        for codec in opts.codecs:
            if codec == "vat":
                for m in models:
                    params = dict(
                        prefixes=opts.prefixes_for(schedules[m]),
                        budgets=list(opts.budgets) if opts.vat_budgets else [],
                        encode=opts.encode_options(),
                        resolution=opts.resolution,
                        occupancy=opts.occupancy
                        and not opts.vat_budgets,  # the model's, measured by prefixes
                    )
                    jobs.append(dict(kind="vat", path=str(p), mesh=name, codec=_codec_name(m, opts), model=m,
                                     params=params, **params))  # fmt: skip
            else:
                params = dict(budgets=list(opts.budgets))
                jobs.append(
                    dict(kind="baseline", path=str(p), mesh=name, codec=codec, params=params, **params)
                )
    return jobs


def _latest(records: list[dict]) -> dict[tuple[str, str], dict]:
    """The last record of each (mesh, codec): a job redone after a change of its parameters replaces the old one."""
    return {(r["mesh"], r["codec"]): r for r in records}


def _is_done(record: dict | None, job: dict) -> bool:
    """A cached record stands for `job` when it succeeded with the same parameters (records of caches written
    before parameters were stored are taken as they are)."""
    if record is None or record["error"]:
        return False
    params = record.get("params")
    return params is None or params == json.loads(json.dumps(job["params"]))


def _read_cache(path: Path) -> list[dict]:
    if not path.exists():
        return []
    done = []
    for line in path.read_text().splitlines():
        try:
            done.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by an interrupted run: everything after it is redone
    return done


def run_bench(opts: BenchOptions, progress: bool = True) -> dict:
    """Measures, writes `results.json`, CSVs, plots and the gallery under `opts.out`; returns the results."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vatcodec.bench.report import write_reports

    unknown = set(opts.codecs) - {"vat", *BASELINE_CODECS}
    if unknown:
        raise VatError(f"unknown codec(s) {', '.join(sorted(unknown))} (choose from vat, draco, voxel)")
    if opts.jobs < 1:
        raise VatError(f"jobs must be >= 1, got {opts.jobs}")
    if not opts.vat_budgets and (
        opts.effort or opts.level_search is not None or opts.tries > 1 or opts.also_models
    ):
        raise VatError("--effort, --level-search, --tries and --also-model apply to --vat-budgets only")
    if opts.vat_budgets and opts.prefixes:
        raise VatError("--prefixes and --vat-budgets exclude each other: budget mode measures at --budgets")
    if not 0 <= opts.effort <= 3 or opts.tries < 1:
        raise VatError(f"effort must be 0-3 and tries >= 1, got {opts.effort} and {opts.tries}")
    out = Path(opts.out)
    if opts.quick:
        root = out / "meshes"
        paths = quick_meshes(root)
    else:
        if not opts.folder:
            raise VatError("give a folder of meshes, or --quick for the built-in smoke run")
        root = Path(opts.folder)
        paths = find_mesh_files(root, opts.limit)
    out.mkdir(parents=True, exist_ok=True)
    from vatcodec.codec import get_model

    for m in opts.also_models:  # a bad path fails here, in one line, not in every job
        get_model(m)
    schedules = (
        {m: len(get_model(m).cfg.schedule) for m in (opts.models or [None])} if "vat" in opts.codecs else {}
    )
    cache = out / "rows.jsonl"
    cached = _latest(_read_cache(cache))
    todo = [
        j for j in _jobs(opts, paths, root, schedules) if not _is_done(cached.get((j["mesh"], j["codec"])), j)
    ]
    threads = choose_threads(opts.threads, opts.jobs)
    bar = Progress(
        TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(), disable=not progress,
    )  # fmt: skip
    with bar, open(cache, "a") as f:
        task = bar.add_task("bench", total=len(todo), last="")
        if opts.jobs == 1:
            _init_worker(threads)
            results = map(_run_job, todo)
        else:
            pool = ProcessPoolExecutor(opts.jobs, initializer=_init_worker, initargs=(threads,))
            results = pool.map(_run_job, todo)
        for res in results:
            f.write(json.dumps(res) + "\n")
            f.flush()
            state = f"error: {res['error']}" if res["error"] else f"{res['seconds']:.1f} s"
            bar.update(task, advance=1, last=f"{res['mesh']} {res['codec']} {state}")
        if opts.jobs > 1:
            pool.shutdown()
    records = list(_latest(_read_cache(cache)).values())
    meta = {
        "folder": str(root),
        "options": asdict(opts),
        "meshes": len(paths),
        "date": time.strftime("%Y-%m-%d"),
    }
    results = write_reports(records, out, meta)
    if opts.plots:
        from vatcodec.bench.plot import draw_plots

        draw_plots(out / "results.json", out)
    if opts.gallery and "vat" in opts.codecs:
        from vatcodec.bench.gallery_rows import write_gallery

        write_gallery(paths[: opts.gallery], root, out / "gallery.png", opts, records)
    if opts.pages and "vat" in opts.codecs:
        from vatcodec.bench.gallery_rows import write_pages

        write_pages(paths[: opts.pages], root, out / "pages", opts)
    return results
