"""The auto-decoder probe learns: free latents and a fresh decoder fit a few shapes, and the row says so."""

import json

from test_training import write_cache

from training import autodecoder


def test_probe_fits_its_shapes_and_appends_a_row(tmp_path):
    write_cache(tmp_path / "cache", n_shapes=2)
    results = tmp_path / "ad.jsonl"
    argv = ["--data", str(tmp_path / "cache"), "--tag", "t", "--config", "vat-tiny", "--shapes", "2"]
    argv += ["--steps", "200", "--batch-size", "2", "--num-queries", "512", "--lr", "3e-3", "--warmup", "10"]
    argv += ["--eval-every", "20", "--f-shapes", "0", "--results", str(results)]
    autodecoder.main(argv)
    (row,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert row["tag"] == "t" and row["steps"] == 200 and row["shapes"] == 2
    first = row["history"][0]
    assert first["step"] == 20
    assert row["fit_iou"] > 0.8 and row["fit_iou"] > first["fit_iou"] + 0.2, (first, row["fit_iou"])
    assert abs(row["occ_frac_pred"] - row["occ_frac_true"]) < 0.05
