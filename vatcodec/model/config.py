"""Hyperparameters of the VAT tokenizer as one dataclass, plus the named configs we ship and test."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VATConfig:
    """Sizes of the Variational Tokenizer (arXiv 2412.02202, sections 3.2 and 6.2).

    Saved in every checkpoint as JSON; its hash and the decoder weights form the model id in the bitstream.
    """

    name: str = "vat-s"  # a human-readable label, not part of any computation
    # encoder
    num_points: int = 2048  # surface points the encoder pools and its queries read (paper: 80k)
    num_freqs: int = 8  # Fourier frequencies per coordinate in the point embedding
    num_point_queries: int = 256  # learnable queries that cross-attend to the points (paper: 3072)
    width: int = 128  # transformer channel width D (paper: 768)
    heads: int = 4  # attention heads in every attention layer
    enc_depth: int = 4  # self-attention layers over [latents ; point queries] (paper: 12)
    num_latents: int = (
        256  # K latent tokens kept after in-context compression; latent_planes squares (paper: 1024)
    )
    latent_planes: int = (
        1  # square latent grids: 1 (the paper's) or 3 (one per triplane axis, see docs/tokenizer.md)
    )
    scatter_res: int = 32  # latent_planes=3: side of the planes the encoder averages point features onto
    # latent_planes=3: ConvONet local-pooling rounds (points read their 3 cells, then the planes are pooled again)
    pool_rounds: int = 0
    # latent_planes=3: side of a finer pooling whose strided-down features join the scatter_res planes (0: none)
    fine_res: int = 0
    # MAR-3D's pyramid encoder: per entry n, the latents cross-attend to the first n input points (zero-initialised,
    # growable); the reads' outputs are summed before self-attention, and the input holds max(num_points, n) points
    pyramid: tuple[int, ...] = ()
    # rounds of decoder feedback: the latent is decoded at the input points and corrected (`refiner.py`; 0 = none)
    feedback_rounds: int = 0
    feedback_depth: int = 2  # self-attention blocks of the feedback refiner
    # VVQ
    latent_dim: int = 16  # C_q, channels of the Gaussian latent and of the codebook (paper: 16)
    codebook_size: int = 4096  # entries of the single codebook shared by all scales (paper: 16384)
    scales: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)  # side of each scale's token grid
    phi_kernel: int = 3  # kernel of VAR's residual conv Phi after upsampling
    phi_ratio: float = 0.5  # blend of Phi's conv output with its input (VAR's quant_resi)
    num_phi: int = 4  # partially shared Phi convs, chosen by scale position as in VAR
    # decoder
    dec_depth: int = 4  # self-attention layers over the triplane tokens (paper: 12)
    plane_res: int = 8  # side of each plane's token grid before upsampling
    plane_up: int = 4  # conv doublings after the tokens; the finest plane is plane_res * 2**plane_up
    plane_channels: int = 16  # channels of each mip level that the query MLP samples
    mlp_hidden: int = 64  # hidden width of the occupancy MLP
    plane_block: str = (
        "conv"  # plane up-sampler per doubling: "conv" (one 3x3 conv) or "res" (+ a residual block)
    )
    plane_min_channels: int = 16  # channel floor of every plane level (the finest levels sit at this floor)
    plane_refine: int = 0  # residual blocks after each plane doubling, zero-initialised (growable)
    point_queries: str = (
        "learned"  # encoder queries: "learned" parameters or "fps" (farthest points, 3DShape2VecSet)
    )
    out_bias: float = 0.0  # initial bias of the occupancy logit (the empty prior: about -1 for our query mix)
    iso_logit: float = 0.0  # logit of the decoded surface; the field reports logit - iso_logit (> 0 inside)
    # iso logit of the prefixes of 1, 2, ... scales shorter than the full stream; () = iso_logit for all
    prefix_iso: tuple[float, ...] = ()
    # labels (paper section 6.3.1, with a dilation of our own)
    label_band: float = 1.0 / 128  # s of the semi-continuous occupancy label
    label_dilate: float = 0.0  # training labels use sdf - label_dilate: thin sheets get a fully inside core
    # loss weights (paper section 6.3.2)
    w_occ: float = 1.0  # BCE on the semi-continuous occupancy
    w_far: float = 1.0  # relative BCE weight of queries more than 4 label bands from the surface
    w_vq: float = 0.2  # codebook + commitment MSE
    w_kl: float = 1e-4  # KL of the Gaussian latent against N(0, I)
    commit_beta: float = 0.25  # relative weight of the commitment part inside the VQ MSE
    prefix_prob: float = 0.25  # chance a training sample decodes from a random scale prefix (progressive)
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # free-form notes, not hashed

    def __post_init__(self):
        # Canonical tuples: JSON and callers give lists (and ints), and both fields join the model id.
        object.__setattr__(self, "scales", tuple(self.scales))
        object.__setattr__(self, "prefix_iso", tuple(float(x) for x in self.prefix_iso))
        object.__setattr__(self, "pyramid", tuple(int(n) for n in self.pyramid))
        if any(n < 1 for n in self.pyramid):
            raise ValueError(f"pyramid levels are point counts >= 1, got {self.pyramid}")
        if self.latent_planes not in (1, 3):
            raise ValueError(f"latent_planes must be 1 or 3, got {self.latent_planes}")
        per_plane, rest = divmod(self.num_latents, self.latent_planes)
        side = math.isqrt(per_plane)
        if rest or side * side != per_plane:
            raise ValueError(f"num_latents must be {self.latent_planes} squares, got {self.num_latents}")
        if self.scales[-1] != side or list(self.scales) != sorted(set(self.scales)):
            raise ValueError(f"scales must increase and end at the latent grid's side {side}: {self.scales}")
        if self.latent_planes == 3:
            # The latent grid of each axis is that plane's token grid: no cross-attention, cell (i, j) -> (i, j).
            if self.plane_res != side:
                raise ValueError(f"latent_planes=3 needs plane_res == the latent side {side}")
            down = self.scatter_res // side
            if self.scatter_res % side or down & (down - 1):
                raise ValueError("scatter_res must be the latent side times a power of two")
        if self.fine_res:
            up = self.fine_res // self.scatter_res
            if self.latent_planes != 3 or self.fine_res % self.scatter_res or up < 2 or up & (up - 1):
                raise ValueError(
                    "fine_res needs latent_planes=3 and must be scatter_res times a power of two >= 2"
                )
        if self.feedback_rounds and self.latent_planes != 3:
            raise ValueError("feedback_rounds reads the triplane latent's cells: it needs latent_planes=3")
        if self.pool_rounds and self.latent_planes != 3:
            raise ValueError("pool_rounds pools onto the triplane latent's planes: it needs latent_planes=3")
        if len(self.prefix_iso) >= len(self.scales):
            raise ValueError("prefix_iso covers the shorter prefixes only: the full stream uses iso_logit")
        if len(self.scales) < self.num_phi:
            raise ValueError(f"need at least num_phi={self.num_phi} scales, or some Phi convs never train")
        if self.plane_up < 2:
            raise ValueError("plane_up must be >= 2: the decoder samples three mip levels")
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")
        if self.plane_block not in ("conv", "res"):
            raise ValueError(f"plane_block must be 'conv' or 'res', got {self.plane_block!r}")
        if self.point_queries not in ("learned", "fps"):
            raise ValueError(f"point_queries must be 'learned' or 'fps', got {self.point_queries!r}")
        if self.num_point_queries < (1 if self.latent_planes == 1 else 0):
            raise ValueError(
                "num_point_queries must be >= 1: with one latent grid, only the queries read the points"
            )
        if self.point_queries == "fps" and self.num_point_queries > self.num_points:
            raise ValueError("fps point queries need num_point_queries <= num_points")

    @property
    def input_points(self) -> int:
        """Surface points per shape the encoder takes: the pooled ones first, the pyramid's finer levels after."""
        return max((self.num_points, *self.pyramid))

    @property
    def grid(self) -> int:
        """Side of the square latent grid."""
        return self.scales[-1]

    @property
    def schedule(self) -> tuple[int, ...]:
        """Token count per scale, as written in the bitstream (every latent plane holds s x s tokens)."""
        return tuple(self.latent_planes * s * s for s in self.scales)

    def iso_at(self, num_scales: int) -> float:
        """The surface logit of a decode from the first `num_scales` scales.

        A coarse prefix decodes a blurred field whose logits sit lower than the full stream's (training sees
        prefixes only part of the time), so one level can leave it empty; levels chosen on validation fix that.
        """
        if not 1 <= num_scales <= len(self.scales):
            raise ValueError(f"a decode uses 1 to {len(self.scales)} scales, not {num_scales}")
        return self.prefix_iso[num_scales - 1] if num_scales <= len(self.prefix_iso) else self.iso_logit

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VATConfig:
        d = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def decode_json(self) -> str:
        """The fields that decoding depends on, as canonical JSON (part of the model id).

        Fields added after the first release join only when they differ from their default, so the ids of
        models trained before them (and the files those models wrote) stay valid.
        """
        d = json.loads(self.to_json())
        out = {k: d[k] for k in DECODE_FIELDS}
        defaults = json.loads(VATConfig().to_json())
        out.update({k: d[k] for k in LATER_DECODE_FIELDS if d[k] != defaults[k]})
        return json.dumps(out, sort_keys=True)


# What turns indices into occupancy: the model id hashes these, so renaming a config, changing loss weights or
# re-training the encoder keeps existing files decodable.
DECODE_FIELDS = (
    "num_latents",
    "latent_dim",
    "codebook_size",
    "scales",
    "phi_kernel",
    "phi_ratio",
    "num_phi",
    "width",
    "heads",
    "dec_depth",
    "plane_res",
    "plane_up",
    "plane_channels",
    "mlp_hidden",
)
LATER_DECODE_FIELDS = (
    "plane_block",
    "plane_min_channels",
    "iso_logit",
    "latent_planes",
    "prefix_iso",
    "plane_refine",
)

# A triplane latent (session 6): pooled point features seed three 8 x 8 latent planes, read cell by cell by the
# decoder; 465 tokens in 7 scales, 2.5x cheaper per training step than vat-s (docs/tokenizer.md).
_VAT_TP = VATConfig(
    name="vat-tp", latent_planes=3, num_latents=192, scales=(1, 2, 3, 4, 5, 6, 8), num_point_queries=0
)

CONFIGS: dict[str, VATConfig] = {
    # Our default: sized for CPU training and CPU decoding (see README "Choosing vat-s").
    "vat-s": VATConfig(),
    "vat-tp": _VAT_TP,
    # vat-tp with a bigger encoder (session 8): two more blocks and one ConvONet local-pooling round, grown from a
    # trained vat-tp by `training.tokenizer --grow`; the decoder's design is vat-tp's (docs/tokenizer.md).
    "vat-tp2": dataclasses.replace(_VAT_TP, name="vat-tp2", enc_depth=6, pool_rounds=1, prefix_prob=0.5),
    # The paper's sizes: for users with GPUs.
    "vat-l": VATConfig(
        name="vat-l",
        num_points=80_000,
        num_freqs=8,
        num_point_queries=3072,
        width=768,
        heads=12,
        enc_depth=12,
        num_latents=1024,
        latent_dim=16,
        codebook_size=16384,
        scales=(1, 2, 3, 4, 5, 6, 8, 10, 13, 14, 24, 32),
        dec_depth=12,
        plane_res=32,
        plane_up=3,
        plane_channels=32,
        mlp_hidden=128,
    ),
    # A few-second model for tests.
    "vat-tiny": VATConfig(
        name="vat-tiny",
        num_points=512,
        num_freqs=6,
        num_point_queries=64,
        width=64,
        heads=4,
        enc_depth=1,
        num_latents=16,
        latent_dim=8,
        codebook_size=256,
        scales=(1, 2, 3, 4),
        dec_depth=1,
        plane_res=8,
        plane_up=2,
        plane_channels=8,
        mlp_hidden=32,
    ),
}


def get_config(config_name: str, /, **overrides) -> VATConfig:
    """A named config, optionally with some fields replaced (including `name`)."""
    if config_name not in CONFIGS:
        raise KeyError(f"unknown config {config_name!r}; known: {', '.join(CONFIGS)}")
    return dataclasses.replace(CONFIGS[config_name], **overrides)
