"""The Variational Tokenizer (VAT): encoder + VVQ + triplane decoder behind one codec contract."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VATConfig
from .decoder import TriplaneDecoder
from .encoder import PointEncoder
from .quantizer import MultiScaleVQ
from .refiner import FeedbackRefiner

FAR_BANDS = 4.0  # a query is "far" (for `w_far`) beyond this many label bands from the surface


class OccupancyField:
    """A decoded shape: call it with points (B, M, 3) in the unit cube to get occupancy logits (B, M).

    The logits are shifted by the surface level of the decode (the model's iso logit, or its level for that scale
    prefix), so that > 0 is inside for every model and every prefix.
    """

    def __init__(self, decoder: TriplaneDecoder, planes: list[torch.Tensor], iso_logit: float = 0.0):
        self.decoder = decoder
        self.planes = planes
        self.iso_logit = iso_logit

    @torch.no_grad()
    def __call__(self, points_BM3: torch.Tensor, chunk: int = 262_144) -> torch.Tensor:
        # Points may come from the CPU while the model sits on a GPU; logits go back where the points were.
        device = self.planes[0].device
        parts = [
            self.decoder.query(self.planes, points_BM3[:, i : i + chunk].to(device)).to(points_BM3.device)
            for i in range(0, points_BM3.shape[1], chunk)
        ]
        # The surface sits at the decode's level (chosen on validation, per prefix); callers see 0.
        return torch.cat(parts, dim=1) - self.iso_logit


class VAT(nn.Module):
    """Variational Tokenizer of "3D representation in 512-Byte" (arXiv 2412.02202, section 3.2).

    Data flow::

        surface points (B, N, 6) ──FourierEmbed──> (B, N, D)
              point queries (Q, D) ──cross-attn──┘
        [K latents ; Q queries] ──self-attn x enc_depth──> keep K ──Linear──> mu, logvar (B, K, C_q)
        (feedback_rounds: mu += FeedbackRefiner(decoded logits at the input points), see refiner.py)
        Z0 = mu (+ sigma * eps in training) ──VVQ, scales 1..S──> indices [(B, 1), (B, 4), ..., (B, K)]
        Zhat = sum_s Up(x_s) (B, K, C_q) ──Linear──> (B, K, D)
        triplane tokens (3 r r, D) ──cross-attn + self-attn x dec_depth──> 3 planes ──convs──> mips r, 2r, 4r
        query points (B, M, 3) ──bilinear samples, concat──> MLP ──> occupancy logits (B, M)

    Contract (shared by every tokenizer in this package):
        forward(batch) -> dict of losses and outputs, for training;
        encode(surface_BN6) -> list of index tensors, one per scale;
        decode(indices) -> OccupancyField, for any prefix of the scales.
    """

    def __init__(self, cfg: VATConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = PointEncoder(cfg)
        self.vq = MultiScaleVQ(cfg)
        self.decoder = TriplaneDecoder(cfg)
        self.refiner = FeedbackRefiner(cfg) if cfg.feedback_rounds else None
        # Stage 1 trains without quantization (paper §3.4); training code flips this for stage 2.
        self.quantize = True

    def posterior(self, surface_BN6: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_BKC, logvar_BKC) of the Gaussian latent: the encoder's, its mean corrected by decoder feedback."""
        mu_BKC, logvar_BKC = self.encoder(surface_BN6)
        for _ in range(self.cfg.feedback_rounds):
            mu_BKC = self.refiner(self.decoder, mu_BKC, surface_BN6)
        return mu_BKC, logvar_BKC

    # -- training ------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Training pass on a batch with surface_points, surface_normals, query_points, query_occ."""
        cfg = self.cfg
        surface_BN6 = torch.cat([batch["surface_points"], batch["surface_normals"]], dim=-1)
        mu_BKC, logvar_BKC = self.posterior(surface_BN6)
        eps_BKC = torch.randn(mu_BKC.shape, generator=generator).to(mu_BKC)
        z_BKC = mu_BKC + torch.exp(0.5 * logvar_BKC) * eps_BKC
        loss_kl = 0.5 * (mu_BKC.pow(2) + logvar_BKC.exp() - 1.0 - logvar_BKC).mean()
        out: dict = {"loss_kl": loss_kl, "mu": mu_BKC}
        if self.quantize:
            q = self.vq.quantize(z_BKC, generator=generator)
            zhat_BKC = q["zhat"]
            out.update(loss_vq=q["loss_vq"], indices=q["indices"], keep=q["keep"], z=z_BKC)
        else:
            zhat_BKC = z_BKC
            out["loss_vq"] = torch.zeros((), device=z_BKC.device)
        planes = self.decoder.planes(zhat_BKC)
        logits_BM = self.decoder.query(planes, batch["query_points"])
        if cfg.w_far == 1.0:
            loss_occ = F.binary_cross_entropy_with_logits(logits_BM, batch["query_occ"])
        else:
            # Blobs are wrong far from the surface, where near-surface queries never look.
            far_BM = batch["query_sdf"].abs() > FAR_BANDS * cfg.label_band
            w_BM = torch.where(far_BM, cfg.w_far, 1.0)
            bce_BM = F.binary_cross_entropy_with_logits(logits_BM, batch["query_occ"], reduction="none")
            loss_occ = (w_BM * bce_BM).sum() / w_BM.sum()
        out["loss_occ"] = loss_occ
        out["logits"] = logits_BM
        out["loss"] = cfg.w_occ * loss_occ + cfg.w_vq * out["loss_vq"] + cfg.w_kl * loss_kl
        return out

    # -- codec ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, surface_BN6: torch.Tensor, num_scales: int | None = None) -> list[torch.Tensor]:
        """Surface points with normals (B, N, 6) -> indices per scale; deterministic (uses mu, no noise)."""
        mu_BKC, _ = self.posterior(surface_BN6)
        return self.vq.encode(mu_BKC, num_scales)

    @torch.no_grad()
    def decode(self, indices: list[torch.Tensor]) -> OccupancyField:
        """Indices of any prefix of the scales -> an occupancy field to query (> 0 inside, at that prefix's iso)."""
        zhat_BKC = self.vq.decode(indices)
        return OccupancyField(self.decoder, self.decoder.planes(zhat_BKC), self.cfg.iso_at(len(indices)))

    @torch.no_grad()
    def decode_codes(self, codes: list[torch.Tensor]) -> OccupancyField:
        """Code vectors (B, L_s, C) of any prefix of the scales -> an occupancy field; `decode` of soft tokens.

        The surface is the level of the full stream when every scale is there (a completed stream), else that
        prefix's.
        """
        zhat_BKC = self.vq.decode_codes(codes)
        return OccupancyField(self.decoder, self.decoder.planes(zhat_BKC), self.cfg.iso_at(len(codes)))

    def decode_latent(self, zhat_BKC: torch.Tensor) -> OccupancyField:
        """Occupancy field of a continuous latent (stage-1 models, and latent refinement)."""
        return OccupancyField(self.decoder, self.decoder.planes(zhat_BKC), self.cfg.iso_logit)
