"""The speedrun trains for its budget, scores the result and appends one complete row; its errors are one line."""

import json

from test_training import write_cache

from training import speedrun


def test_smoke_run_appends_a_scored_row(tmp_path):
    write_cache(tmp_path / "cache", n_shapes=2)
    results = tmp_path / "speedrun.jsonl"
    argv = ["--data", str(tmp_path / "cache"), "--tag", "smoke", "--out", str(tmp_path / "run")]
    argv += ["--config", "vat-tiny", "--minutes", "0.05", "--batch-size", "2", "--num-queries", "512"]
    argv += ["--warmup", "2", "--f-shapes", "0", "--results", str(results)]
    assert speedrun.main(argv) == 0
    (row,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert row["tag"] == "smoke" and row["config"] == "vat-tiny" and row["steps"] >= 2
    assert row["stage1_steps"] == round(0.3 * row["steps"])
    for key in ("val_accuracy", "val_iou", "val_near_surface_accuracy", "val_cs_iou", "val_occ_frac_pred"):
        assert 0.0 <= row[key] <= 1.0, key
    assert row["iso_logit"] in speedrun.ISO_CANDIDATES and row["samples_per_s"] > 0
    assert len(row["val_prefix_iou"]) == 4  # vat-tiny's scales
    ckpt = str(tmp_path / "run" / "last.safetensors")
    argv = ["--data", str(tmp_path / "cache"), "--tag", "again", "--eval-only", ckpt, "--f-shapes", "0"]
    assert speedrun.main([*argv, "--results", str(results)]) == 0
    again = json.loads(results.read_text().splitlines()[-1])
    assert (
        again["eval_only"] == ckpt and again["val_iou"] == row["val_iou"]
    )  # the same weights score the same


def test_an_existing_run_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.safetensors").write_bytes(b"")
    code = speedrun.main(["--data", str(tmp_path), "--tag", "x", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "already holds a run" in err[0]


def test_bad_overrides_are_one_line(tmp_path, capsys):
    code = speedrun.main(
        [
            "--data",
            str(tmp_path),
            "--tag",
            "x",
            "--out",
            str(tmp_path / "r"),
            "--overrides",
            '{"plane_block": "x"}',
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
