"""The next-scale autoregressive generator: a VAR-style transformer that samples VAT token maps from an image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vatcodec.generation.config import GenConfig
from vatcodec.generation.image_encoder import build_image_encoder
from vatcodec.model.quantizer import MultiScaleVQ


class CachedSelfAttention(nn.Module):
    """Self-attention on unit-normalized queries and keys with a learned per-head temperature (VAR).

    Training passes an additive block-causal bias. At inference, `caching` keeps every step's keys and values,
    so each new scale attends to all earlier scales and to itself without recomputing them.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        # Unit q, k give logits in [-1, 1]; this learned scale (init 4, at most 100) sets the sharpness.
        self.log_scale_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0)))
        self.caching = False
        self.cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x_BLC: torch.Tensor, bias_11LL: torch.Tensor | None = None) -> torch.Tensor:
        B, L, C = x_BLC.shape
        qkv_3BHLc = self.qkv(x_BLC).view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        scale_1H11 = self.log_scale_1H11.clamp(max=math.log(100.0)).exp()
        q_BHLc = F.normalize(qkv_3BHLc[0], dim=-1) * scale_1H11
        k_BHLc, v_BHLc = F.normalize(qkv_3BHLc[1], dim=-1), qkv_3BHLc[2]
        if self.caching:
            if self.cache is not None:
                k_BHLc = torch.cat([self.cache[0], k_BHLc], dim=2)
                v_BHLc = torch.cat([self.cache[1], v_BHLc], dim=2)
            self.cache = (k_BHLc, v_BHLc)
        y_BHLc = F.scaled_dot_product_attention(q_BHLc, k_BHLc, v_BHLc, attn_mask=bias_11LL, scale=1.0)
        return self.out(y_BHLc.transpose(1, 2).reshape(B, L, C))


class AdaLNBlock(nn.Module):
    """Transformer block whose LayerNorms are shifted, scaled and gated by the condition (AdaLN, as in DiT/VAR).

    The modulation starts at zero, so every block begins as the identity.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = CachedSelfAttention(width, heads)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x_BLC: torch.Tensor, cond_BC: torch.Tensor, bias_11LL=None) -> torch.Tensor:
        mod_B16C = self.ada(cond_BC).view(-1, 1, 6, x_BLC.shape[-1])
        shift1, scale1, gate1, shift2, scale2, gate2 = mod_B16C.unbind(2)  # each (B, 1, C)
        x_BLC = x_BLC + gate1 * self.attn(self.norm(x_BLC) * (1 + scale1) + shift1, bias_11LL)
        return x_BLC + gate2 * self.mlp(self.norm(x_BLC) * (1 + scale2) + shift2)


def sample_logits(
    logits_BnV: torch.Tensor,
    top_k: int = 0,
    top_p: float = 1.0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token indices (B, n) from logits: greedy when temperature <= 0 or top_k == 1, else filtered sampling."""
    if temperature <= 0 or top_k == 1:
        return logits_BnV.argmax(dim=-1)
    logits_BnV = logits_BnV.float() / temperature
    V = logits_BnV.shape[-1]
    if 0 < top_k < V:
        kth_Bn1 = logits_BnV.topk(top_k, dim=-1).values[..., -1:]
        logits_BnV = logits_BnV.masked_fill(logits_BnV < kth_Bn1, -math.inf)
    if 0.0 < top_p < 1.0:
        sorted_BnV, order_BnV = logits_BnV.sort(dim=-1, descending=True)
        probs_BnV = sorted_BnV.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass (the first always stays).
        drop_BnV = probs_BnV.cumsum(dim=-1) - probs_BnV > top_p
        logits_BnV = logits_BnV.scatter(-1, order_BnV, sorted_BnV.masked_fill(drop_BnV, -math.inf))
    probs_NV = logits_BnV.softmax(dim=-1).view(-1, V)
    return torch.multinomial(probs_NV, 1, generator=generator).view(logits_BnV.shape[:-1])


class NextScaleGenerator(nn.Module):
    """Image-conditioned next-scale prediction of VAT token maps (arXiv 2412.02202, section 3.3; VAR).

    Sequence of one shape (L = sum of pn^2 tokens)::

        image (B, 3, H, W) ──image encoder──> cond (B, D)  ── start token, and AdaLN condition of every block
        input of scale 1: cond;  input of scale s > 1: Down_s(Zhat_{<s}) (B, pn_s^2, C_q) ──Linear──> D
        + position embedding (L, D) + scale embedding (S, D)
        ──AdaLN blocks (block-causal: scale s sees scales <= s)──> AdaLN head ──> logits (B, L, V)

    Zhat_{<s} is the tokenizer's own running sum of up-sampled codes (`MultiScaleVQ.next_input`), held here as a
    frozen copy of its VVQ, so training inputs and the sampling chain are the same computation.

    Training: `forward(batch)` with teacher forcing. Inference: `sample(images)` with a KV cache, classifier-free
    guidance growing linearly over the scales, and top-k / top-p / temperature sampling.
    """

    def __init__(self, cfg: GenConfig, vq: MultiScaleVQ, dino_path=None):
        super().__init__()
        if (
            tuple(vq.scales) != tuple(cfg.scales)
            or vq.dim != cfg.latent_dim
            or vq.planes != cfg.latent_planes
        ):
            raise ValueError(
                "the VVQ does not match the generator config (scales, latent_dim or latent_planes)"
            )
        self.cfg = cfg
        D, S = cfg.width, len(cfg.scales)
        self.counts = [cfg.latent_planes * pn * pn for pn in cfg.scales]
        self.vq = vq.eval().requires_grad_(False)
        self.image_encoder = build_image_encoder(cfg, dino_path)
        self.null_cond = nn.Parameter(torch.randn(1, D) * 0.02)  # the dropped condition, for CFG
        self.word_embed = nn.Linear(cfg.latent_dim, D)
        self.pos_1LD = nn.Parameter(torch.randn(1, cfg.seq_len, D) * 0.02)
        self.level_embed = nn.Embedding(S, D)
        nn.init.normal_(self.level_embed.weight, std=0.02)
        self.blocks = nn.ModuleList(AdaLNBlock(D, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.head_norm = nn.LayerNorm(D, elementwise_affine=False)
        self.head_ada = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.head = nn.Linear(D, cfg.codebook_size)
        level_L = torch.repeat_interleave(torch.arange(S), torch.tensor(self.counts))
        self.register_buffer("level_L", level_L, persistent=False)
        bias_LL = torch.where(level_L[None, :] <= level_L[:, None], 0.0, -math.inf)
        self.register_buffer("bias_11LL", bias_LL[None, None], persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vq.eval()  # frozen: never in training mode (it would age codes)
        return self

    # -- shared pieces -------------------------------------------------------------------------------
    def condition(self, images_B3HW: torch.Tensor, drop_B: torch.Tensor | None = None) -> torch.Tensor:
        """Condition vectors (B, D); rows where drop_B is True get the null condition."""
        cond_BD = self.image_encoder(images_B3HW)
        if drop_B is not None:
            cond_BD = torch.where(drop_B[:, None], self.null_cond.to(cond_BD.dtype), cond_BD)
        return cond_BD

    def _head(self, h_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        shift_B1C, scale_B1C = self.head_ada(cond_BD)[:, None].chunk(2, dim=-1)
        return self.head(self.head_norm(h_BLC) * (1 + scale_B1C) + shift_B1C)

    def split(self, tokens_BL: torch.Tensor) -> list[torch.Tensor]:
        """A (B, L) token sequence as one (B, pn*pn) tensor per scale."""
        return list(tokens_BL.split(self.counts, dim=1))

    # -- training ------------------------------------------------------------------------------------
    def logits_full(self, cond_BD: torch.Tensor, inputs_BlC: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) of every scale in one block-causal pass."""
        # The first scale's tokens (one per latent plane) all start from the condition; positions tell them apart.
        start_BnD = cond_BD[:, None].expand(-1, self.counts[0], -1)
        x_BLD = torch.cat([start_BnD, self.word_embed(inputs_BlC)], dim=1)
        x_BLD = x_BLD + self.pos_1LD + self.level_embed(self.level_L)
        for block in self.blocks:
            x_BLD = block(x_BLD, cond_BD, self.bias_11LL.to(x_BLD.dtype))
        return self._head(x_BLD, cond_BD)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """Training pass on a batch with `images` (B, 3, H, W) and `tokens` (B, L): cross-entropy and accuracy."""
        tokens_BL = batch["tokens"]
        B = tokens_BL.shape[0]
        drop_B = None
        if (
            self.training
        ):  # even at cond_drop 0, so null_cond stays in the graph (DDP needs every parameter used)
            drop_B = (torch.rand(B, generator=generator) < self.cfg.cond_drop).to(tokens_BL.device)
        cond_BD = self.condition(batch["images"], drop_B)
        inputs_BlC = self.vq.teacher_inputs(self.split(tokens_BL))  # (B, L - counts[0], C_q)
        if self.training and self.cfg.prefix_noise > 0:
            noise = torch.randn(inputs_BlC.shape, generator=generator).to(inputs_BlC)
            inputs_BlC = inputs_BlC + self.cfg.prefix_noise * noise
        logits_BLV = self.logits_full(cond_BD, inputs_BlC)
        loss = F.cross_entropy(logits_BLV.flatten(0, 1).float(), tokens_BL.flatten())
        with torch.no_grad():
            correct_BL = (logits_BLV.argmax(-1) == tokens_BL).float()
            acc_S = torch.stack([c.mean() for c in correct_BL.split(self.counts, dim=1)])
        return {"loss": loss, "logits": logits_BLV, "acc": correct_BL.mean(), "acc_per_scale": acc_S}

    # -- inference -----------------------------------------------------------------------------------
    def _set_caching(self, on: bool) -> None:
        for block in self.blocks:
            block.attn.caching, block.attn.cache = on, None

    @torch.no_grad()
    def sample(
        self,
        cond_BD: torch.Tensor,
        cfg_scale: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        force: list[torch.Tensor] | None = None,
        pick=None,
    ) -> dict[str, list[torch.Tensor]]:
        """Samples token maps scale by scale with a KV cache.

        Args:
            cond_BD: condition vectors from `condition(images)`.
            cfg_scale: classifier-free guidance w; scale s uses t = w * s / (S - 1) and logits
                (1 + t) * cond - t * null, so guidance grows linearly from none at the first scale.
            top_k, top_p, temperature: filters of `sample_logits` (top_k 1 or temperature 0: greedy).
            generator: the random source (on the model's device), for reproducible samples.
            force: use these indices instead of sampling (teacher forcing through the cached path; tests).
            pick: `pick(si, logits_BnV) -> idx_Bn` chooses each scale's indices instead of sampling, seeing that
                scale's logits first (the context coder decodes them from its payload, `vatcodec.codec.context`).

        Returns:
            {"indices": one (B, pn*pn) tensor per scale, "logits": the (guided) logits of each scale}.
        """
        B, S = cond_BD.shape[0], len(self.cfg.scales)
        guided = cfg_scale > 0
        cond2_BD = torch.cat([cond_BD, self.null_cond.expand(B, -1).to(cond_BD)]) if guided else cond_BD
        n0 = self.counts[0]
        x_BnD = cond2_BD[:, None] + self.pos_1LD[:, :n0] + self.level_embed.weight[0]
        zhat_BCHW: torch.Tensor | float = 0.0
        indices, all_logits, start = [], [], 0
        self._set_caching(True)
        try:
            for si in range(S):
                h_BnD = x_BnD
                for block in self.blocks:
                    h_BnD = block(h_BnD, cond2_BD)
                logits_BnV = self._head(h_BnD, cond2_BD)
                if logits_BnV.dtype in (torch.float16, torch.bfloat16):
                    logits_BnV = logits_BnV.float()  # float64 stays: the context coder needs its precision
                if guided:
                    t = cfg_scale * si / max(S - 1, 1)
                    logits_BnV = (1 + t) * logits_BnV[:B] - t * logits_BnV[B:]
                if force is not None:
                    idx_Bn = force[si]
                elif pick is not None:
                    idx_Bn = pick(si, logits_BnV)
                else:
                    idx_Bn = sample_logits(logits_BnV, top_k, top_p, temperature, generator)
                indices.append(idx_Bn)
                all_logits.append(logits_BnV)
                zhat_BCHW, next_BnC = self.vq.next_input(si, zhat_BCHW, idx_Bn)
                if next_BnC is None:
                    break
                start += self.counts[si]
                n = self.counts[si + 1]
                x_BnD = self.word_embed(next_BnC) + self.pos_1LD[:, start : start + n]
                x_BnD = x_BnD + self.level_embed.weight[si + 1]
                if guided:
                    x_BnD = torch.cat([x_BnD, x_BnD])
        finally:
            self._set_caching(False)
        return {"indices": indices, "logits": all_logits}
