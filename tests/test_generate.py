"""`vatcodec generate` and its pieces: condition images, the gen_data cache, training, DINOv2 loading, the CLI."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from training.gen_data import load_parts
from training.gen_data import main as gen_data_main
from training.generator import GenTrainArgs, train
from vatcodec import codec
from vatcodec.cli import app
from vatcodec.codec.bitstream import unpack
from vatcodec.errors import VatError
from vatcodec.generation.checkpoint import load_generator, save_generator
from vatcodec.generation.config import GenConfig
from vatcodec.generation.generate import generate
from vatcodec.generation.image_input import ImageError, load_image, prepare_image
from vatcodec.generation.model import NextScaleGenerator
from vatcodec.geometry.mesh_io import load_mesh
from vatcodec.views.render import render

runner = CliRunner()
TINY = {"width": 32, "depth": 1, "heads": 2, "cnn_widths": (8, 16), "image_size": 32}


# --- condition images ---------------------------------------------------------------------------------------


def test_rgba_uses_alpha_and_centres_the_object():
    img = np.zeros((100, 200, 4), np.uint8)  # transparent black background
    img[10:30, 150:190] = (200, 0, 0, 255)  # a red box in the top-right corner
    out = prepare_image(img, size=64, margin=0.0)
    assert out.shape == (64, 64, 3)
    red = (out[..., 0] > 150) & (out[..., 1] < 80)
    rows, cols = np.nonzero(red)
    assert abs(cols.mean() - 31.5) < 1.5 and abs(rows.mean() - 31.5) < 1.5  # centred
    assert cols.max() - cols.min() >= 60  # the longer side fills the frame
    assert (out[~red] > 200).all()  # the rest is white, not the black of the transparent pixels


def test_rgb_background_is_estimated_from_the_border():
    img = np.full((120, 120, 3), (90, 140, 90), np.uint8)  # plain green backdrop
    img[70:110, 20:40] = (20, 20, 160)
    out = prepare_image(img, size=48, margin=0.1)
    blue = out[..., 2] > 120
    assert blue.sum() > 100
    assert (out[~blue].min(axis=-1) > 200).all()  # backdrop replaced by white


def test_opaque_alpha_falls_back_to_the_border_estimate():
    img = np.full((60, 60, 4), 255, np.uint8)
    img[..., :3] = (40, 40, 40)  # a dark backdrop with a fully opaque alpha: a screenshot
    img[20:40, 25:35, :3] = (220, 30, 30)
    out = prepare_image(img, size=32, margin=0.0)
    assert (out[..., 1] > 200).mean() > 0.3  # the backdrop became white around the red object
    assert (out[..., 0] > 180).all()  # no dark pixel is left: the object (red) and white only


def test_plain_image_and_unreadable_file_are_one_line_errors(tmp_path):
    with pytest.raises(ImageError, match="no object"):
        prepare_image(np.full((50, 50, 3), 128, np.uint8))
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageError, match="cannot read image"):
        load_image(bad)
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")


# --- gen_data cache -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two training meshes and one test-split mesh, in a tokenizer-cache-like index."""
    root = tmp_path_factory.mktemp("corpus")
    chair = load_mesh("examples/chair.obj")
    import trimesh

    shapes = (
        ("lib/chair/chair.obj", chair),
        ("lib/box/box.obj", trimesh.creation.box((1, 0.6, 0.4))),
        ("lib/ball/ball.obj", trimesh.creation.icosphere(2)),
    )
    for name, mesh in shapes:
        (root / name).parent.mkdir(parents=True)
        mesh.export(root / name)
    splits = {"lib/box/box.obj": "train", "lib/ball/ball.obj": "train", "lib/chair/chair.obj": "val"}
    index = {"shapes": [{"name": k, "split": v} for k, v in splits.items()]}
    (root / "index.json").write_text(json.dumps(index))
    return root


def test_gen_data_shards_by_rank_and_merges(corpus, tmp_path, monkeypatch):
    out = tmp_path / "gen"
    for rank in (0, 1):  # what two torchrun ranks do: each writes its own part
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        args = [str(corpus), "--out", str(out), "--split-index", str(corpus / "index.json"), "--views", "2"]
        assert gen_data_main(args + ["--render-size", "48", "--size", "32", "--threads", "0"]) == 0
    data = load_parts(out, ("train", "val"))
    assert data["names"] == ["lib/ball/ball.obj", "lib/box/box.obj", "lib/chair/chair.obj"]
    tokens = sum(codec.get_model().cfg.schedule)
    assert data["images"].shape == (3, 2, 32, 32, 3) and data["tokens"].shape == (3, tokens)
    chair_file = codec.encode("examples/chair.obj", coder="raw")
    assert np.array_equal(data["tokens"][2], np.concatenate(unpack(chair_file).indices))  # what encode writes
    assert load_parts(out, ("train",))["names"] == ["lib/ball/ball.obj", "lib/box/box.obj"]
    with pytest.raises(VatError, match="no rows"):
        load_parts(out, ("test",))
    (out / "part-001-of-002.safetensors").unlink()
    with pytest.raises(VatError, match="unfinished"):
        load_parts(out, ("train",))


# --- training -----------------------------------------------------------------------------------------------


def test_training_runs_resumes_and_learns(corpus, tmp_path):
    data = tmp_path / "gen"
    args = [str(corpus), "--out", str(data), "--split-index", str(corpus / "index.json"), "--views", "2"]
    gen_data_main(args + ["--render-size", "48", "--size", "32", "--threads", "0"])
    a = GenTrainArgs(
        data=str(data), out=str(tmp_path / "run"), config="gen-tiny", overrides=json.dumps(TINY), steps=40,
        stop_at=20, batch_size=2, lr=3e-3, warmup=5, log_every=10, val_every=20, ckpt_every=20, threads=0,
    )  # fmt: skip
    first = train(a)
    second = train(GenTrainArgs(**{**a.__dict__, "stop_at": 0}))  # resumes from step 20
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == [10, 20, 30, 40]
    assert second["loss"] < first["loss"] < 8.0  # ln(4096) = 8.3 at the start
    resumed = load_generator(tmp_path / "run" / "last.safetensors", use_ema=False)
    assert resumed.cfg.tokenizer_id == bytes(codec.model_id_of(codec.get_model())).hex()
    # Resuming is exact: the same 40 steps in one go give the same weights.
    train(GenTrainArgs(**{**a.__dict__, "stop_at": 0, "out": str(tmp_path / "straight")}))
    straight = load_generator(tmp_path / "straight" / "last.safetensors", use_ema=False)
    for (k, x), y in zip(resumed.state_dict().items(), straight.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, msg=k)


def test_training_bad_options_are_errors(corpus, tmp_path):
    data = tmp_path / "gen"
    args = [str(corpus), "--out", str(data), "--split-index", str(corpus / "index.json"), "--views", "2"]
    gen_data_main(args + ["--render-size", "48", "--size", "32", "--threads", "0"])
    base = GenTrainArgs(
        data=str(data), out=str(tmp_path / "run"), config="gen-tiny", overrides=json.dumps(TINY)
    )
    for change, message in (
        ({"config": "nope"}, "unknown generator config"),
        ({"overrides": "{bad json"}, "--overrides"),
        ({"overrides": json.dumps(TINY | {"image_size": 48})}, "32 px images"),
        ({"batch_size": 5}, "cannot fill"),
    ):
        with pytest.raises(VatError, match=message):
            train(GenTrainArgs(**{**base.__dict__, **change}))


def test_training_with_two_ranks(corpus, tmp_path):
    data = tmp_path / "gen"
    args = [str(corpus), "--out", str(data), "--split-index", str(corpus / "index.json"), "--views", "2"]
    gen_data_main(args + ["--render-size", "48", "--size", "32", "--threads", "0"])
    # --standalone: a free port, since pytest-xdist runs tests side by side
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.generator", "--data", str(data), "--out", str(tmp_path / "run"),
           "--config", "gen-tiny", "--overrides",
           json.dumps(TINY), "--steps", "4", "--batch-size", "1", "--val-every", "4", "--threads", "1",
           "--log-every", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "world 2" in done.stdout
    losses = [
        json.loads(line)["loss"]
        for line in done.stdout.splitlines()
        if line.startswith('{"step"') and '"loss":' in line
    ]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert load_generator(tmp_path / "run" / "last.safetensors").cfg.width == 32


# --- DINOv2 option --------------------------------------------------------------------------------------------


def test_dino_encoder_loads_a_local_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=28,
        patch_size=14,
    )
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(tmp_path / "dino")
    tok = codec.get_model()
    cfg = GenConfig.for_tokenizer(tok, **TINY, image_encoder="dino", dino_dim=32, dino_size=28)
    gen = NextScaleGenerator(cfg, copy.deepcopy(tok.vq), dino_path=tmp_path / "dino")
    images = torch.rand(2, 3, 40, 40) * 2 - 1
    cond_BD = gen.condition(images)
    assert cond_BD.shape == (2, 32)
    assert not torch.allclose(cond_BD[0], cond_BD[1])  # the image reaches the condition
    assert not any(k.startswith("image_encoder.backbone") for k in gen.state_dict())  # DINOv2 is not saved
    save_generator(tmp_path / "g.safetensors", gen, tok.cfg)
    back = load_generator(tmp_path / "g.safetensors", dino_path=tmp_path / "dino")
    torch.testing.assert_close(back.condition(images), cond_BD)
    with pytest.raises(VatError, match="DINOv2"):
        load_generator(tmp_path / "g.safetensors")
    with pytest.raises(VatError, match="hidden size"):
        GenConfig.for_tokenizer(tok, **TINY, image_encoder="dino", dino_dim=64)  # fine as a config ...
        NextScaleGenerator(GenConfig.for_tokenizer(tok, **TINY, image_encoder="dino", dino_dim=64),
                           copy.deepcopy(tok.vq), dino_path=tmp_path / "dino")  # fmt: skip


# --- the command --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen_ckpt(tmp_path_factory):
    """An untrained generator for the shipped tokenizer: its samples are random but valid token maps."""
    tok = codec.get_model()
    torch.manual_seed(0)
    gen = NextScaleGenerator(GenConfig.for_tokenizer(tok, **TINY), copy.deepcopy(tok.vq))
    path = tmp_path_factory.mktemp("gen") / "gen.safetensors"
    save_generator(path, gen, tok.cfg)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("img")
    img = render(load_mesh("examples/chair.obj"), size=96, background=(200, 200, 210))
    Image.fromarray(img).save(folder / "chair.png")
    return folder / "chair.png"


def test_generate_writes_decodable_files_deterministically(gen_ckpt, photo, tmp_path):
    out = tmp_path / "s.vat"
    args = ["generate", "--image", str(photo), "-o", str(out), "-n", "2", "--generator", str(gen_ckpt)]
    result = runner.invoke(app, args + ["--seed", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    files = [tmp_path / "s-0.vat", tmp_path / "s-1.vat"]
    assert all(f.is_file() for f in files) and not out.exists()
    for f in files:
        tok = codec.get_model()  # the generator's tokenizer (the fixture builds it for the shipped one)
        vat = unpack(f.read_bytes(), tables=tok.entropy_freq_SK)
        assert vat.num_scales == len(tok.cfg.schedule)
        assert vat.model_id == codec.model_id_of(tok)[: len(vat.model_id)]
    again = generate([photo], model=str(gen_ckpt), num_samples=2, seed=3, device="cpu")
    assert again == [f.read_bytes() for f in files]
    other = generate([photo], model=str(gen_ckpt), num_samples=2, seed=4, device="cpu")
    assert other != again
    decoded = runner.invoke(app, ["decode", str(files[0]), "-o", str(tmp_path / "m.obj"), "-r", "32"])
    assert decoded.exit_code in (0, 2), decoded.output  # a random sample may decode to nothing: then one line
    assert decoded.exit_code == 0 or decoded.output.count("\n") == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "cuda"], "no CUDA" if not torch.cuda.is_available() else None),
        (["-n", "0"], "num-samples"),
        (["--top-p", "0"], "top-p"),
        (["--mesh", "x.xyz"], "--mesh"),
        (["--mesh", "x.obj", "-r", "4"], "resolution"),
    ],
)
def test_generate_bad_options_are_one_line_errors(gen_ckpt, photo, tmp_path, extra, message):
    if message is None:
        pytest.skip("a GPU is present")
    out = tmp_path / "s.vat"
    result = runner.invoke(
        app, ["generate", "-i", str(photo), "-o", str(out), "--generator", str(gen_ckpt), *extra]
    )
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_generate_bad_image_leaves_nothing(gen_ckpt, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(blank)
    result = runner.invoke(
        app, ["generate", "-i", str(blank), "-o", str(tmp_path / "s.vat"), "--generator", str(gen_ckpt)]
    )
    assert result.exit_code == 2 and "no object" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png"]
