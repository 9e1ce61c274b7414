"""Triplane latent seeds: point features averaged onto the three axis planes, then strided down to the latent grid."""

from __future__ import annotations

import torch
from torch import nn

from .config import VATConfig
from .decoder import PLANE_AXES  # (width, height) coordinates of each plane, as the decoder samples them


def plane_cells(xyz_BN3: torch.Tensor, res: int) -> torch.Tensor:
    """Flat cell index (B, 3, N) of each point on each plane's res x res grid, row-major (height, width)."""
    ij_BN3 = ((xyz_BN3 + 0.5) * res).floor().long().clamp(0, res - 1)
    return torch.stack([ij_BN3[..., h] * res + ij_BN3[..., w] for w, h in PLANE_AXES], dim=1)


def scatter_mean(feat_BNC: torch.Tensor, cells_B3N: torch.Tensor, res: int) -> torch.Tensor:
    """Mean of the features of the points in each plane cell, (B * 3, C, res, res); empty cells are zero."""
    B, N, C = feat_BNC.shape
    base_B3 = (torch.arange(B * 3, device=feat_BNC.device) * res * res).view(B, 3, 1)
    flat_L = (cells_B3N + base_B3).flatten()  # (B * 3 * N,)
    src_LC = feat_BNC[:, None].expand(B, 3, N, C).reshape(-1, C)
    sums_GC = feat_BNC.new_zeros(B * 3 * res * res, C).index_add_(0, flat_L, src_LC)
    count_G = feat_BNC.new_zeros(B * 3 * res * res).index_add_(0, flat_L, feat_BNC.new_ones(flat_L.shape))
    mean_GC = sums_GC / count_G.clamp(min=1.0)[:, None]
    return mean_GC.view(B * 3, res, res, C).permute(0, 3, 1, 2)


def gather_cells(planes_NCrr: torch.Tensor, cells_B3N: torch.Tensor) -> torch.Tensor:
    """Each point's features in its cell of each of the three planes, concatenated: (B, N, 3 * C)."""
    N3, C = planes_NCrr.shape[:2]
    B, _, N = cells_B3N.shape
    flat_NCL = planes_NCrr.flatten(2)
    got_NCM = flat_NCL.gather(2, cells_B3N.reshape(N3, 1, N).expand(-1, C, -1))  # (B * 3, C, N)
    return got_NCM.view(B, 3, C, N).permute(0, 3, 1, 2).reshape(B, N, 3 * C)


class LocalRound(nn.Module):
    """One ConvONet local-pooling round: a point's feature is updated from the pooled features of its three cells.

    A column of the cube projects onto one plane cell, so its mean mixes every surface along it (a seat and the
    floor under it); reading the other two planes' cells tells a point which of those surfaces it is on. The
    output layer starts at zero, so a round starts as the identity and a trained model can grow one (`--grow`).
    """

    def __init__(self, c: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * c, 2 * c), nn.SiLU(), nn.Linear(2 * c, c))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(
        self, feat_BNC: torch.Tensor, planes_NCrr: torch.Tensor, cells_B3N: torch.Tensor
    ) -> torch.Tensor:
        return feat_BNC + self.mlp(torch.cat([feat_BNC, gather_cells(planes_NCrr, cells_B3N)], dim=-1))


class FinePool(nn.Module):
    """A finer pooling for the planes: point features averaged onto `fine_res` planes, strided down to `res`.

    At 32 px a plane cell averages a 1/32-wide column, so sub-cell positions survive only in the averaged
    Fourier features; this branch pools the same features at a finer side and adds what its convolutions make of
    them. Its output conv starts at zero: a trained model grows it (`--grow`) and computes what it did.
    """

    def __init__(self, c: int, fine_res: int, res: int):
        super().__init__()
        self.res = fine_res
        layers = [nn.Conv2d(c, c, 3, padding=1), nn.SiLU()]
        while res < fine_res:
            layers += [nn.Conv2d(c, c, 4, stride=2, padding=1), nn.SiLU()]
            fine_res //= 2
        self.convs = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feat_BNC: torch.Tensor, xyz_BN3: torch.Tensor) -> torch.Tensor:
        """(B * 3, C, res, res) to add to the coarse planes."""
        planes_NCff = scatter_mean(feat_BNC, plane_cells(xyz_BN3, self.res), self.res)
        return self.out(self.convs(planes_NCff))


class PlanePool(nn.Module):
    """ConvONet-style seeds for a triplane latent (`latent_planes=3`).

    Each embedded surface point goes through a small MLP; the results are averaged into the cells of three
    `scatter_res`-sided axis planes, and stride-2 convolutions bring each plane down to the latent grid. Cell (i, j)
    of plane p then summarises the surface that projects there, which is the decoder's plane token (p, i, j): the
    encoder starts with a latent that already has the decoder's layout, instead of learning one.
    """

    def __init__(self, cfg: VATConfig):
        super().__init__()
        D, side = cfg.width, cfg.scales[-1]
        self.res = cfg.scatter_res
        c = D // 2
        self.point_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, c))
        self.rounds = nn.ModuleList(LocalRound(c) for _ in range(cfg.pool_rounds))
        self.fine = FinePool(c, cfg.fine_res, self.res) if cfg.fine_res else None
        downs, res = [], self.res
        while res > side:
            c_out = min(D, 2 * c)
            downs += [
                nn.Conv2d(c, c, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(c, c_out, 4, stride=2, padding=1),
                nn.SiLU(),
            ]
            c, res = c_out, res // 2
        self.downs = nn.Sequential(*downs)
        self.out = nn.Conv2d(c, D, 1)

    def forward(self, points_BND: torch.Tensor, xyz_BN3: torch.Tensor) -> torch.Tensor:
        """Seed tokens (B, 3 * side * side, D), ordered plane, row, column."""
        B = points_BND.shape[0]
        cells_B3N = plane_cells(xyz_BN3, self.res)
        feat_BNC = self.point_mlp(points_BND)
        planes_NCrr = scatter_mean(feat_BNC, cells_B3N, self.res)
        for local in self.rounds:
            feat_BNC = local(feat_BNC, planes_NCrr, cells_B3N)
            planes_NCrr = scatter_mean(feat_BNC, cells_B3N, self.res)
        if self.fine is not None:
            planes_NCrr = planes_NCrr + self.fine(feat_BNC, xyz_BN3)
        seeds_NDss = self.out(self.downs(planes_NCrr))
        return seeds_NDss.flatten(2).transpose(1, 2).reshape(B, -1, seeds_NDss.shape[1])
