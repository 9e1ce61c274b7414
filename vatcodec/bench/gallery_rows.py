"""The benchmark's gallery: per mesh, the original, our decodes at three rates, and Draco at the same bytes."""

from __future__ import annotations

from pathlib import Path


def _three_rates(prefixes: list[int]) -> list[int]:
    if len(prefixes) <= 3:
        return prefixes
    return [prefixes[len(prefixes) // 3], prefixes[(2 * len(prefixes)) // 3], prefixes[-1]]


def write_gallery(paths: list[Path], root: Path, out_path: Path, opts, records: list[dict]) -> None:
    """Renders `paths` (at most a few meshes) with the first model of `opts` into one PNG at `out_path`."""
    from vatcodec.baselines import DracoBaseline
    from vatcodec.bench.measure import encode_at_budget, writers_of
    from vatcodec.codec import decode, encode, get_model
    from vatcodec.errors import BudgetError
    from vatcodec.geometry.mesh_io import load_mesh
    from vatcodec.views.gallery import make_gallery

    model = (opts.models or [None])[0]
    net = get_model(model)
    options = opts.encode_options()
    writers = writers_of(net, options)
    prefixes = opts.prefixes_for(len(net.cfg.schedule))
    rows = []
    for p in paths:
        ref = load_mesh(p)
        tiles = [("original", ref)]
        draco = DracoBaseline(ref) if "draco" in opts.codecs else None
        sizes = []
        for n in _three_rates(sorted(set(opts.budgets)) if opts.vat_budgets else prefixes):
            try:
                if opts.vat_budgets:  # what the measured rows encoded: the same budget and options
                    data, _, writer = encode_at_budget(ref, net, n, options, writers)
                    caption = f"VAT <= {n} B: {len(data)} B"
                else:
                    data, writer = encode(ref, model=net, scales=n), net
                    caption = f"VAT {n} scales, {len(data)} B"
            except BudgetError:
                tiles.append((f"VAT <= {n} B: nothing fits", None))
                sizes.append(n)
                continue
            try:
                mesh = decode(data, model=writer, resolution=opts.resolution)
            except Exception:  # noqa: BLE001 - an empty decode shows as a failed tile
                mesh = None
            tiles.append((caption, mesh))
            sizes.append(n if opts.vat_budgets else len(data))  # Draco at the budget, or at our bytes
        for b in sizes if draco else []:
            res = draco.at_budget(b)
            caption = f"Draco <= {b} B: nothing fits" if res is None else f"Draco {res.nbytes} B"
            tiles.append((caption, None if res is None else res.mesh))
        rows.append((p.relative_to(root).as_posix(), tiles))
    make_gallery(rows, out_path)


def write_pages(paths: list[Path], root: Path, out_dir: Path, opts) -> list[Path]:
    """A `vatcodec view` page per mesh (its full token stream, effort 0) in `out_dir`, named by its path."""
    import tempfile

    from vatcodec.codec import encode, get_model
    from vatcodec.views.page import write_view_page

    net = get_model((opts.models or [None])[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in paths:
        name = p.relative_to(root).with_suffix("").as_posix().replace("/", "__")
        with tempfile.TemporaryDirectory() as tmp:
            vat = Path(tmp) / f"{name}.vat"
            vat.write_bytes(encode(p, model=net))
            page = out_dir / f"{name}.html"
            write_view_page(vat, page, original=p, model=net, resolution=min(opts.resolution, 128))
        written.append(page)
    return written
