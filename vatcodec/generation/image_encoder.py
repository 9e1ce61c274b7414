"""Image encoders that turn a condition image into the generator's condition vector (B, D)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vatcodec.errors import VatError
from vatcodec.generation.config import GenConfig


class CNNImageEncoder(nn.Module):
    """A small CNN trained from scratch with the generator: stride-2 conv stages, mean pool, linear.

    Input: images (B, 3, H, W) in [-1, 1] (`vatcodec.generation.image_input.to_tensor`). Output: (B, D).
    """

    def __init__(self, cfg: GenConfig):
        super().__init__()
        layers, c_in = [], 3
        for c_out in cfg.cnn_widths:
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out),
                nn.SiLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out),
                nn.SiLU(),
            ]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * c_in, cfg.width)

    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        feat_BCHW = self.net(images_B3HW)
        # Mean and max pooling: the mean says how much of the frame is filled, the max which parts exist.
        pooled_B2C = torch.cat([feat_BCHW.mean(dim=(2, 3)), feat_BCHW.amax(dim=(2, 3))], dim=1)
        return self.proj(pooled_B2C)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DinoImageEncoder(nn.Module):
    """A frozen DINOv2 (the paper's condition encoder) loaded from a local folder, and a trained projection.

    The folder holds a Hugging Face `transformers` DINOv2 model (`config.json` + weights), for example one the
    user saved with `save_pretrained`; nothing is downloaded. The CLS token of the last layer is projected to D.
    The DINOv2 weights are not stored in generator checkpoints: pass the same folder when loading.
    """

    def __init__(self, cfg: GenConfig, path: str | os.PathLike | None):
        super().__init__()
        self.size = cfg.dino_size
        self.proj = nn.Linear(cfg.dino_dim, cfg.width)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = [load_dino(path, cfg.dino_dim)]  # a list keeps it out of state_dict and parameters()

    def _apply(self, fn, recurse=True):
        self.backbone[0]._apply(fn)  # follow .to(device) / .half() like a submodule would
        return super()._apply(fn, recurse)

    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        x = (images_B3HW + 1.0) / 2.0  # back to [0, 1]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        with torch.no_grad():
            hidden_BLC = self.backbone[0](pixel_values=(x - self.mean) / self.std).last_hidden_state
        return self.proj(hidden_BLC[:, 0])


def load_dino(path: str | os.PathLike | None, dim: int) -> nn.Module:
    """A frozen DINOv2 from a local folder; a VatError when it is missing, unreadable or of another width."""
    if path is None:
        raise VatError("this generator uses DINOv2: pass the folder of a local DINOv2 model (--dino PATH)")
    if not (Path(path) / "config.json").is_file():
        raise VatError(f"no DINOv2 model in {path} (expected config.json and weights from save_pretrained)")
    try:
        from transformers import AutoModel
    except ImportError:
        raise VatError('DINOv2 needs the transformers package: pip install "vatcodec[dino]"') from None
    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise VatError(f"cannot load DINOv2 from {path}: {exc}") from None
    hidden = getattr(model.config, "hidden_size", None)
    if hidden != dim:
        raise VatError(f"DINOv2 in {path} has hidden size {hidden}, the generator expects {dim}")
    model.eval().requires_grad_(False)
    return model


def build_image_encoder(cfg: GenConfig, dino_path: str | os.PathLike | None = None) -> nn.Module:
    if cfg.image_encoder == "dino":
        return DinoImageEncoder(cfg, dino_path)
    return CNNImageEncoder(cfg)
