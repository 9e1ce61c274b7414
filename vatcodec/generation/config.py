"""Hyperparameters of the image-conditioned next-scale generator as one dataclass, plus named configs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class GenConfig:
    """Sizes of the next-scale autoregressive generator (arXiv 2412.02202, section 3.3 and figure 11).

    The token-map fields (scales, codebook_size, latent_dim) must match the tokenizer whose tokens it predicts;
    `tokenizer_id` names that tokenizer. Saved in every generator checkpoint as JSON.
    """

    name: str = "gen-s"  # a human-readable label, not part of any computation
    tokenizer_id: str = ""  # hex model id of the tokenizer whose token maps this generator predicts
    scales: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)  # the tokenizer's scale sides
    latent_planes: int = 1  # square token grids per scale: the tokenizer's latent_planes
    codebook_size: int = 4096  # the tokenizer's codebook entries: the vocabulary
    latent_dim: int = 16  # the tokenizer's code channels C_q: scale inputs come from its running sum
    width: int = 192  # transformer channels D
    depth: int = 4  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / D
    image_encoder: str = "cnn"  # "cnn" (small, trained with the generator) or "dino" (frozen local DINOv2)
    image_size: int = 96  # side of the condition image for the CNN (DINOv2 resizes to dino_size)
    cnn_widths: tuple[int, ...] = (32, 64, 128, 192)  # channels of the CNN's stride-2 stages
    dino_dim: int = 1024  # hidden size of the DINOv2 model (ViT-L/14: 1024); only for image_encoder="dino"
    dino_size: int = 224  # DINOv2 input side (a multiple of its patch size 14)
    cond_drop: float = 0.1  # chance a training sample's condition is replaced by the null one (for CFG)
    prefix_noise: float = 0.0  # MAR-3D style: std of noise added to teacher inputs in training (0 = off)

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")
        if self.image_encoder not in ("cnn", "dino"):
            raise ValueError(f"image_encoder must be 'cnn' or 'dino', got {self.image_encoder!r}")
        if list(self.scales) != sorted(set(self.scales)):
            raise ValueError(f"scales must increase: {self.scales}")

    @property
    def seq_len(self) -> int:
        """Tokens per shape: the sum of the scales' token counts."""
        return sum(self.latent_planes * s * s for s in self.scales)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        if d["latent_planes"] == 1:
            del d["latent_planes"]  # added later: generators of one-grid tokenizers keep their ids
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenConfig:
        d = json.loads(text)
        for k in ("scales", "cnn_widths"):
            d[k] = tuple(d[k])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def config_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def for_tokenizer(cls, tok, **overrides) -> GenConfig:
        """A config whose token-map fields match a loaded VAT tokenizer."""
        ident = getattr(tok, "model_id", None)
        return cls(
            tokenizer_id=bytes(ident).hex() if ident is not None else "",
            scales=tuple(tok.cfg.scales),
            latent_planes=tok.cfg.latent_planes,
            codebook_size=tok.cfg.codebook_size,
            latent_dim=tok.cfg.latent_dim,
            **overrides,
        )


# Sampling defaults of `vatcodec generate`, chosen on the validation split (README "Generation"), never on the
# test split. They live here, not in generate.py, so the CLI can show them without importing torch.
DEFAULT_CFG = 1.0
DEFAULT_TOP_K = 0
DEFAULT_TOP_P = 1.0
DEFAULT_TEMPERATURE = 0.7

GEN_CONFIGS: dict[str, dict] = {
    "gen-s": {},  # the shipped default: trained on CPU in under an hour
    "gen-tiny": {"name": "gen-tiny", "width": 64, "depth": 2, "heads": 2, "cnn_widths": (16, 32, 64)},
}
