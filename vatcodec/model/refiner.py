"""Decoder feedback for the encoder: the latent is decoded at the input's own points, and a transformer corrects it."""

from __future__ import annotations

import torch
from torch import nn

from .config import VATConfig
from .layers import Block, FourierEmbed
from .plane_pool import plane_cells, scatter_mean

# Where the field is read around each input point, along its normal, in units of the unit cube. The labels put
# the surface 1/256 outside the mesh and ramp over 1/128, so +-2/256 brackets it and +-6/256 sees past the ramp.
# Both signs: artist meshes' normals are not consistently outward, so the network must read the pattern itself.
FEEDBACK_OFFSETS = (-6 / 256, -2 / 256, 0.0, 2 / 256, 6 / 256)
LOGIT_SCALE = 4.0  # feedback logits are squashed by tanh(logit / LOGIT_SCALE): a few units carry the signal


class FeedbackRefiner(nn.Module):
    """One correction of the latent mean from what the decoder makes of it at the input surface.

    An amortized encoder cannot see where its latent decodes wrong; refinement at encode time (codec effort 1-3)
    can, but needs an inside/outside oracle of the mesh and tens of decoder passes. This reads the one thing the
    input already tells without an oracle, the decoded logits on and beside the input points, and maps them to a
    latent correction in one pass (iterative amortized inference, Marino et al. 2018, with the decoder frozen)::

        mu (B, K, C) ──decode──> logits at p + a n, a in FEEDBACK_OFFSETS (B, N, 5)
        [Fourier(p, n) ; logits] (B, N, D) ──mean per latent cell──> (B, K, D)
        tokens = Linear(mu) + position + cell means ──cross-attn to points, self-attn x depth──> delta (B, K, C)
        mu + delta

    The output layer starts at zero, so a model grown by a refiner computes exactly what it did before. The
    feedback is read without gradients: the decoder is a fixed measuring device here.
    """

    def __init__(self, cfg: VATConfig):
        super().__init__()
        if cfg.latent_planes != 3:
            raise ValueError("feedback refinement needs the triplane latent (latent_planes=3)")
        D, C = cfg.width, cfg.latent_dim
        self.side, self.num_points, self.iso = cfg.scales[-1], cfg.num_points, cfg.iso_logit
        self.embed = FourierEmbed(cfg.num_freqs, D)
        self.feedback = nn.Linear(len(FEEDBACK_OFFSETS), D)
        self.tokens_in = nn.Linear(C, D)
        self.position_KD = nn.Parameter(torch.randn(cfg.num_latents, D) * 0.02)
        self.read = Block(D, cfg.heads, cross=True)
        self.blocks = nn.ModuleList(Block(D, cfg.heads) for _ in range(cfg.feedback_depth))
        # The zero output layer below already makes the refiner the identity, so growth keeps its blocks' init.
        for block in (self.read, *self.blocks):
            block.grow_as_identity = False
        self.norm = nn.LayerNorm(D)
        self.out = nn.Linear(D, C)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @torch.no_grad()
    def probe(self, decoder, mu_BKC: torch.Tensor, surface_BN6: torch.Tensor) -> torch.Tensor:
        """Decoded logits (minus the surface level) at each point and its normal offsets, squashed: (B, N, 5)."""
        xyz_BN3, normal_BN3 = surface_BN6[..., :3], surface_BN6[..., 3:]
        B, N = xyz_BN3.shape[:2]
        probes_BN3 = torch.cat([xyz_BN3 + a * normal_BN3 for a in FEEDBACK_OFFSETS], dim=1)  # (B, 5N, 3)
        logits_BM = decoder.query(decoder.planes(mu_BKC), probes_BN3) - self.iso
        return torch.tanh(logits_BM.view(B, len(FEEDBACK_OFFSETS), N).transpose(1, 2) / LOGIT_SCALE)

    def forward(self, decoder, mu_BKC: torch.Tensor, surface_BN6: torch.Tensor) -> torch.Tensor:
        """The corrected latent mean (B, K, C), from the encoder's and the pooled input points (B, N, 6)."""
        surface_BN6 = surface_BN6[:, : self.num_points]
        B = mu_BKC.shape[0]
        feedback_BN5 = self.probe(decoder, mu_BKC, surface_BN6)
        points_BND = self.embed(surface_BN6) + self.feedback(feedback_BN5)
        cells_B3N = plane_cells(surface_BN6[..., :3], self.side)
        pooled_NDss = scatter_mean(points_BND, cells_B3N, self.side)  # (B * 3, D, side, side)
        pooled_BKD = pooled_NDss.flatten(2).transpose(1, 2).reshape(B, -1, pooled_NDss.shape[1])
        x_BKD = self.tokens_in(mu_BKC) + self.position_KD + pooled_BKD
        x_BKD = self.read(x_BKD, points_BND)
        for block in self.blocks:
            x_BKD = block(x_BKD)
        return mu_BKC + self.out(self.norm(x_BKD))
