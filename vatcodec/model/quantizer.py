"""VVQ: multi-scale residual vector quantization of the Gaussian latent (paper section 3.2, Algorithm 1)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import VATConfig


class Phi(nn.Module):
    """VAR's residual convolution after upsampling: blends a conv of the map with the map itself."""

    def __init__(self, channels: int, kernel: int, ratio: float):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.ratio = ratio

    def forward(self, h_BCHW: torch.Tensor) -> torch.Tensor:
        return h_BCHW * (1.0 - self.ratio) + self.conv(h_BCHW) * self.ratio


class MultiScaleVQ(nn.Module):
    """Multi-scale residual VQ over a sqrt(K) x sqrt(K) latent grid with one shared codebook.

    With ``latent_planes=3`` the latent is three such grids (one per triplane axis), quantized side by side at
    every scale: a scale of side s holds 3 s^2 tokens, plane-major.

    Scale s quantizes Down(Z_s) (area down-sampling to its side), and Z_{s+1} = Z_s - Up(x_s), where Up is bicubic
    up-sampling followed by Phi. The dequantized latent of any prefix of n scales is sum_{s<n} Up(x_s), so every
    prefix decodes (progressive bitstream).

    Training-only: `quantize` (straight-through estimator, VQ losses, prefix sampling, dead-code restart).
    Inference: `encode` (latent -> indices per scale) and `decode` (indices -> latent).
    """

    def __init__(self, cfg: VATConfig):
        super().__init__()
        self.scales = tuple(cfg.scales)
        self.grid = cfg.grid
        self.planes = cfg.latent_planes  # square grids per shape; maps are (B * planes, C, H, W) inside
        self.dim = cfg.latent_dim
        self.beta = cfg.commit_beta
        self.prefix_prob = cfg.prefix_prob
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.latent_dim)
        nn.init.normal_(self.codebook.weight, std=0.5)
        self.phis = nn.ModuleList(
            Phi(cfg.latent_dim, cfg.phi_kernel, cfg.phi_ratio) for _ in range(cfg.num_phi)
        )
        # Steps since each code was last used, for restarting dead codes (training only, not saved).
        self.register_buffer("code_age", torch.zeros(cfg.codebook_size), persistent=False)

    # -- shared pieces -------------------------------------------------------------------------------
    def _phi(self, si: int) -> Phi:
        # VAR's partially shared Phi: pick a conv by the scale's relative position in the schedule.
        last = max(len(self.scales) - 1, 1)
        return self.phis[round(si / last * (len(self.phis) - 1))]

    def up(self, si: int, code_BChw: torch.Tensor) -> torch.Tensor:
        """Up(x_s): a scale's code map to the full latent grid."""
        if code_BChw.shape[-1] != self.grid:
            code_BChw = F.interpolate(code_BChw, size=(self.grid, self.grid), mode="bicubic")
        return self._phi(si)(code_BChw)

    def down(self, si: int, rest_BCHW: torch.Tensor) -> torch.Tensor:
        """Down(Z_s): the residual at a scale's side, by area averaging."""
        pn = self.scales[si]
        if pn == self.grid:
            return rest_BCHW
        return F.interpolate(rest_BCHW, size=(pn, pn), mode="area")

    def nearest(self, z_NC: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook entry (L2) for each row."""
        # Float32 even under autocast: a bf16 distance picks other codes than inference does.
        with torch.autocast(z_NC.device.type, enabled=False):
            z_NC, book_VC = z_NC.float(), self.codebook.weight.float()
            dist_NV = (book_VC * book_VC).sum(1)[None, :] - 2.0 * z_NC @ book_VC.T
        return dist_NV.argmin(dim=1)

    def embed(self, idx_BL: torch.Tensor, pn: int) -> torch.Tensor:
        """Code vectors of a scale's indices (B, planes * pn * pn) as a (B * planes, C, pn, pn) map."""
        return self.code_map(self.codebook(idx_BL), pn)

    def code_map(self, codes_BLC: torch.Tensor, pn: int) -> torch.Tensor:
        """A scale's code vectors (B, planes * pn * pn, C), in token order, as a (B * planes, C, pn, pn) map."""
        G = codes_BLC.shape[0] * self.planes
        return codes_BLC.reshape(G, pn, pn, self.dim).permute(0, 3, 1, 2)

    def _to_grid(self, z_BKC: torch.Tensor) -> torch.Tensor:
        G = z_BKC.shape[0] * self.planes
        return z_BKC.reshape(G, -1, self.dim).transpose(1, 2).reshape(G, self.dim, self.grid, self.grid)

    def _to_tokens(self, z_GCHW: torch.Tensor) -> torch.Tensor:
        G, C = z_GCHW.shape[:2]
        return z_GCHW.flatten(2).transpose(1, 2).reshape(G // self.planes, -1, C)  # (B, planes * H * W, C)

    def _residual_scales(self, rest_BCHW: torch.Tensor, num_scales: int | None = None):
        """Algorithm 1's loop: yields (rows_NC, idx_BL, h_BCHW) per scale, with Z_{s+1} = Z_s - Up(x_s)."""
        B = rest_BCHW.shape[0] // self.planes
        for si, pn in enumerate(self.scales[:num_scales]):
            rows_NC = self._to_tokens(self.down(si, rest_BCHW)).reshape(-1, self.dim)  # (B * L, C)
            idx_BL = self.nearest(rows_NC.detach()).view(B, -1)
            h_BCHW = self.up(si, self.embed(idx_BL, pn))
            yield rows_NC, idx_BL, h_BCHW
            rest_BCHW = rest_BCHW - h_BCHW

    # -- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, z_BKC: torch.Tensor, num_scales: int | None = None) -> list[torch.Tensor]:
        """Greedy residual quantization (Algorithm 1). Returns one (B, pn*pn) index tensor per scale."""
        return [idx_BL for _, idx_BL, _ in self._residual_scales(self._to_grid(z_BKC), num_scales)]

    def decode(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Dequantized latent (B, K, C) from the indices of any prefix of the scales."""
        return self.decode_codes([self.codebook(idx_BL) for idx_BL in indices])

    def decode_codes(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Latent (B, K, C) from code vectors (B, L_s, C) per scale of a prefix: `decode` of soft tokens.

        A code vector need not be a codebook row: the context coder's completion fills the tokens a file lacks
        with the prior's expected code (`vatcodec.codec.context`).
        """
        if not 1 <= len(codes) <= len(self.scales):
            raise ValueError(f"need 1..{len(self.scales)} scales, got {len(codes)}")
        zhat_BCHW = 0.0
        for si, codes_BLC in enumerate(codes):
            zhat_BCHW = zhat_BCHW + self.up(si, self.code_map(codes_BLC, self.scales[si]))
        return self._to_tokens(zhat_BCHW)

    # -- next-scale generation (VAR's teacher forcing and its inference chain) ---------------------------
    def next_input(
        self, si: int, zhat_BCHW: torch.Tensor | float, idx_BL: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inference step: adds scale si's codes to the running sum; returns it and scale si+1's input.

        The input of scale si+1 is the running sum Zhat_{<=si} area-downsampled to that scale's side, as
        (B, pn*pn, C); None after the last scale. A float `idx_BL` (B, pn*pn, C) is taken as the code vectors
        themselves (soft tokens: the context coder's completion).
        """
        codes_BLC = idx_BL if idx_BL.is_floating_point() else self.codebook(idx_BL)
        zhat_BCHW = zhat_BCHW + self.up(si, self.code_map(codes_BLC, self.scales[si]))
        if si + 1 == len(self.scales):
            return zhat_BCHW, None
        pn = self.scales[si + 1]
        return zhat_BCHW, self._to_tokens(F.interpolate(zhat_BCHW, size=(pn, pn), mode="area"))

    @torch.no_grad()
    def teacher_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Training inputs of scales 2..S from ground-truth indices, (B, L - 1, C); equal to `next_input`'s."""
        zhat_BCHW: torch.Tensor | float = 0.0
        inputs = []
        for si, idx_BL in enumerate(indices[:-1]):
            zhat_BCHW, next_BLC = self.next_input(si, zhat_BCHW, idx_BL)
            inputs.append(next_BLC)
        return torch.cat(inputs, dim=1)

    # -- training ------------------------------------------------------------------------------------
    def quantize(
        self, z_BKC: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Training pass: straight-through latent, VQ loss, indices, and the number of scales each sample kept.

        With probability `prefix_prob` a sample's decoder input is a random prefix of the scales, so that the
        decoder learns to reconstruct coarse shapes from partial bitstreams.
        """
        B = z_BKC.shape[0]
        z_BCHW = self._to_grid(z_BKC)
        z_nograd = z_BCHW.detach()
        zhat_BCHW = torch.zeros_like(z_nograd)
        prefixes, indices, loss_vq = [], [], 0.0
        for _, idx_BL, h_BCHW in self._residual_scales(z_nograd):
            indices.append(idx_BL)
            zhat_BCHW = zhat_BCHW + h_BCHW
            prefixes.append(zhat_BCHW)
            # Codebook term pulls the codes and Phi toward the latent; commitment pulls the latent to the codes.
            loss_vq = loss_vq + F.mse_loss(zhat_BCHW, z_nograd)
            loss_vq = loss_vq + self.beta * F.mse_loss(zhat_BCHW.detach(), z_BCHW)
        loss_vq = loss_vq / len(self.scales)

        S = len(self.scales)
        keep_B = torch.full((B,), S, dtype=torch.long)
        if self.prefix_prob > 0:
            coin_B = torch.rand(B, generator=generator) < self.prefix_prob
            rand_B = torch.randint(1, S + 1, (B,), generator=generator)
            keep_B = torch.where(coin_B, rand_B, keep_B)
        keep_B = keep_B.to(z_BKC.device)
        keep_G = keep_B.repeat_interleave(self.planes)  # every plane of a shape keeps the same prefix
        chosen_BCHW = torch.stack(prefixes)[keep_G - 1, torch.arange(keep_G.numel(), device=z_BKC.device)]
        # Full streams: straight-through, so the decoder's gradient reaches the encoder's latent. Prefixes are
        # far from z, so passing their gradient to z would bias the encoder; it trains the codebook and Phi
        # for coarse decoding instead.
        full_B1HW = (keep_G == S).view(-1, 1, 1, 1)
        zhat_st_BCHW = torch.where(full_B1HW, z_BCHW + (chosen_BCHW - z_BCHW).detach(), chosen_BCHW)
        if self.training:
            self._age_codes(indices)
        return {
            "zhat": self._to_tokens(zhat_st_BCHW),
            "loss_vq": loss_vq,
            "indices": indices,
            "keep": keep_B,
        }

    @torch.no_grad()
    def _age_codes(self, indices: list[torch.Tensor]) -> None:
        used_V = torch.zeros_like(self.code_age)
        used_V.index_fill_(0, torch.cat([i.flatten() for i in indices]), 1.0)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(used_V)  # a code is alive if any rank used it, so ranks stay in sync
        self.code_age.add_(1.0).mul_((used_V == 0).float())

    @torch.no_grad()
    def restart_dead_codes(
        self, z_BKC: torch.Tensor, max_age: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-only: re-seed codes unused for `max_age` steps with latent vectors of this batch.

        Candidates are the residuals Down(Z_s) at every scale, so dead codes land where the data is. Rank 0's
        choice is broadcast so that every DDP rank keeps an identical codebook. Returns (rows, new values).
        """
        dead_D = (self.code_age >= max_age).nonzero().flatten()
        if dead_D.numel() == 0:
            return dead_D, self.codebook.weight.data[:0]
        cand_NC = torch.cat(
            [rows_NC for rows_NC, _, _ in self._residual_scales(self._to_grid(z_BKC.detach()))]
        )
        pick_D = torch.randint(0, cand_NC.shape[0], (dead_D.numel(),), generator=generator)
        new_DC = cand_NC[pick_D.to(cand_NC.device)]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(new_DC, src=0)
        self.codebook.weight.data[dead_D] = new_DC
        self.code_age[dead_D] = 0
        return dead_D, new_DC
