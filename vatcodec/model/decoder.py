"""VAT triplane decoder: dequantized latent -> three mip-mapped feature planes -> occupancy logits (§3.2, §6.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VATConfig
from .layers import Block

# Which two coordinates index each plane: XY, YZ, XZ.
PLANE_AXES = ((0, 1), (1, 2), (0, 2))


class UpBlock(nn.Module):
    """Doubles a plane's resolution: nearest up-sampling then a 3x3 conv (avoids transposed-conv checkerboards)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv(F.interpolate(x_NCHW, scale_factor=2.0, mode="nearest")))


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """A residual block (GroupNorm, SiLU, 3x3 conv, twice) whose last conv starts at zero: the identity at first.

    The zero start (TRELLIS's structure VAE) means stacking blocks does not slow the early phase, and a trained
    model can grow them (`--grow`) and still compute what it did; the normalization lets a higher learning rate
    through.
    """

    def __init__(self, c: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c), c)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c), c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        r_NCHW = self.conv1(F.silu(self.norm1(x_NCHW)))
        return x_NCHW + self.conv2(F.silu(self.norm2(r_NCHW)))


class ResUpBlock(nn.Module):
    """UpBlock (without its SiLU) followed by a ResBlock."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Conv2d(cin, cout, 3, padding=1)
        self.res = ResBlock(cout)

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        return self.res(self.up(F.interpolate(x_NCHW, scale_factor=2.0, mode="nearest")))


class TriplaneDecoder(nn.Module):
    """Learnable triplane tokens cross-attend to the latent, self-attend, and become three mip levels per plane.

    `planes(zhat)` runs once per shape (the heavy part); `query(planes, points)` is a small MLP on bilinear samples
    and runs for as many points as marching cubes needs.
    """

    def __init__(self, cfg: VATConfig):
        super().__init__()
        D, r, Ct = cfg.width, cfg.plane_res, cfg.plane_channels
        self.r = r
        self.latent_in = nn.Linear(cfg.latent_dim, D)
        self.latent_pos_KD = nn.Parameter(torch.randn(cfg.num_latents, D) * 0.02)
        # A triplane latent is already laid out as the plane tokens: no learned read-out, cell (p, i, j) feeds
        # token (p, i, j). The paper's token latent is read by plane tokens through cross-attention.
        self.direct = cfg.latent_planes == 3
        if not self.direct:
            self.plane_tokens_TD = nn.Parameter(torch.randn(3 * r * r, D) * 0.02)
            self.read = Block(D, cfg.heads, cross=True)
        self.blocks = nn.ModuleList(Block(D, cfg.heads) for _ in range(cfg.dec_depth))
        self.norm = nn.LayerNorm(D)
        # Conv up-sampling doubles the planes `plane_up` times; the MLP samples the last three resolutions as
        # mip levels (paper: r, r/2, r/4 of the finest). The finest plane must resolve thin parts: at 32 px
        # (1/32 of the cube) chair legs and sheets blur away (vat-s: val IoU 0.07 after 500 steps).
        floor = max(Ct, cfg.plane_min_channels)
        chans = [
            max(floor, D // 2**i) for i in range(cfg.plane_up + 1)
        ]  # channels per resolution, coarse first
        self.stem = nn.Conv2d(D, chans[0], 1)
        up_block = ResUpBlock if cfg.plane_block == "res" else UpBlock
        self.ups = nn.ModuleList(up_block(chans[i], chans[i + 1]) for i in range(cfg.plane_up))
        # Residual blocks after each doubling (session 14): they start as the identity, so a trained decoder can
        # grow them and learn sharper planes from where it was, instead of from scratch.
        self.refine = nn.ModuleList(
            nn.Sequential(*(ResBlock(c) for _ in range(cfg.plane_refine))) for c in chans[1:]
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, Ct, 1) for c in chans[-3:])
        self.mlp = nn.Sequential(
            nn.Linear(3 * 3 * Ct, cfg.mlp_hidden),
            nn.SiLU(),
            nn.Linear(cfg.mlp_hidden, cfg.mlp_hidden),
            nn.SiLU(),
            nn.Linear(cfg.mlp_hidden, 1),
        )
        nn.init.constant_(self.mlp[-1].bias, cfg.out_bias)

    def planes(self, zhat_BKC: torch.Tensor) -> list[torch.Tensor]:
        """Three mip levels, each (B * 3, Ct, res, res) with the planes XY, YZ, XZ stacked per shape."""
        B = zhat_BKC.shape[0]
        ctx_BKD = self.latent_in(zhat_BKC) + self.latent_pos_KD
        if self.direct:
            x_BTD = ctx_BKD
        else:
            x_BTD = self.read(self.plane_tokens_TD.expand(B, -1, -1), ctx_BKD)
        for block in self.blocks:
            x_BTD = block(x_BTD)
        x_BTD = self.norm(x_BTD)
        D = x_BTD.shape[-1]
        x_NDrr = x_BTD.view(B * 3, self.r, self.r, D).permute(0, 3, 1, 2)  # (B * 3, D, r, r)
        feats = [self.stem(x_NDrr)]
        for up, refine in zip(self.ups, self.refine, strict=True):
            feats.append(refine(up(feats[-1])))
        return [head(f) for head, f in zip(self.heads, feats[-3:], strict=True)]

    def query(self, planes: list[torch.Tensor], points_BM3: torch.Tensor) -> torch.Tensor:
        """Occupancy logits (B, M) at points in the unit cube [-0.5, 0.5]^3."""
        if not torch.is_grad_enabled():
            return self._query_inference(planes, points_BM3)
        B, M, _ = points_BM3.shape
        grid_N1M2 = _plane_grid(points_BM3)
        feats = []
        for level_NCrr in planes:
            s_NC1M = F.grid_sample(
                level_NCrr, grid_N1M2, mode="bilinear", padding_mode="border", align_corners=False
            )
            feats.append(s_NC1M.view(B, 3, -1, M))  # (B, 3, Ct, M)
        feat_BMF = torch.cat(feats, dim=2).flatten(1, 2).transpose(1, 2)  # (B, M, 3 * 3 * Ct)
        return self.mlp(feat_BMF).squeeze(-1)

    def _query_inference(self, planes: list[torch.Tensor], points_BM3: torch.Tensor) -> torch.Tensor:
        """`query` without autograd, bit-identical and a little faster on the CPU (6% in a side-by-side timing).

        The samples go straight into a contiguous (B, M, plane, level, Ct) tensor, in the feature order of the
        training path, so the first linear layer reads contiguous rows; SiLU works in place.
        """
        B, M, _ = points_BM3.shape
        grid_N1M2 = _plane_grid(points_BM3)
        Ct = planes[0].shape[1]
        feat_BM3LC = torch.empty(B, M, 3, len(planes), Ct, dtype=planes[0].dtype, device=planes[0].device)
        for lvl, level_NCrr in enumerate(planes):
            s_NC1M = F.grid_sample(
                level_NCrr, grid_N1M2, mode="bilinear", padding_mode="border", align_corners=False
            )
            feat_BM3LC[:, :, :, lvl, :] = s_NC1M.view(B, 3, Ct, M).permute(0, 3, 1, 2)
        lin0, _, lin1, _, lin2 = self.mlp
        h_BMH = F.silu(lin0(feat_BM3LC.view(B, M, -1)), inplace=True)
        h_BMH = F.silu(lin1(h_BMH), inplace=True)
        return lin2(h_BMH).squeeze(-1)


def _plane_grid(points_BM3: torch.Tensor) -> torch.Tensor:
    """grid_sample coordinates (B * 3, 1, M, 2) of points on the XY, YZ and XZ planes."""
    B, M, _ = points_BM3.shape
    # grid_sample wants coordinates in [-1, 1]; the cube's faces map to the planes' outer pixel edges.
    uv_B3M2 = torch.stack([points_BM3[..., list(ax)] for ax in PLANE_AXES], dim=1) * 2.0
    return uv_B3M2.reshape(B * 3, 1, M, 2)
