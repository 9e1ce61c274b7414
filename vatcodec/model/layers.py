"""Transformer building blocks shared by the VAT encoder and decoder: attention, MLP, Fourier embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FourierEmbed(nn.Module):
    """Embeds surface points (xyz + normal) with sin/cos Fourier features of the position.

    Args:
        num_freqs: frequencies per coordinate, pi * 2**k for k < num_freqs (3DShape2VecSet style).
        width: output channels.
    """

    def __init__(self, num_freqs: int, width: int):
        super().__init__()
        freqs = math.pi * (2.0 ** torch.arange(num_freqs, dtype=torch.float32))
        self.register_buffer("freqs", freqs, persistent=False)
        in_dim = 3 + 3 + 2 * 3 * num_freqs
        self.proj = nn.Linear(in_dim, width)

    def forward(self, points_BN6: torch.Tensor) -> torch.Tensor:
        xyz_BN3, normal_BN3 = points_BN6[..., :3], points_BN6[..., 3:]
        angles_BNF = (xyz_BN3[..., None] * self.freqs).flatten(-2)  # (B, N, 3 * F)
        feat_BNI = torch.cat([xyz_BN3, normal_BN3, angles_BNF.sin(), angles_BNF.cos()], dim=-1)
        return self.proj(feat_BNI)


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None, cross-attention otherwise."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x_BLC: torch.Tensor, context_BSC: torch.Tensor | None = None) -> torch.Tensor:
        B, L, C = x_BLC.shape
        ctx_BSC = x_BLC if context_BSC is None else context_BSC
        S = ctx_BSC.shape[1]
        q_BHLc = self.q(x_BLC).view(B, L, self.heads, C // self.heads).transpose(1, 2)
        kv_2BHSc = self.kv(ctx_BSC).view(B, S, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y_BHLc = F.scaled_dot_product_attention(q_BHLc, kv_2BHSc[0], kv_2BHSc[1])
        return self.out(y_BHLc.transpose(1, 2).reshape(B, L, C))


class MLP(nn.Module):
    def __init__(self, width: int, ratio: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(width, ratio * width)
        self.fc2 = nn.Linear(ratio * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: (cross- or self-) attention, then MLP, each with a residual."""

    def __init__(self, width: int, heads: int, cross: bool = False):
        super().__init__()
        self.cross = cross
        self.norm1 = nn.LayerNorm(width)
        self.norm_ctx = nn.LayerNorm(width) if cross else None
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width)

    @torch.no_grad()
    def zero_init_(self) -> None:
        """Zeroes both residual branches' output layers: the block becomes the identity.

        A model grown by new blocks (training's `--grow`) then computes exactly what the model it grew from did.
        """
        for layer in (self.attn.out, self.mlp.fc2):
            layer.weight.zero_()
            layer.bias.zero_()

    def forward(self, x_BLC: torch.Tensor, context_BSC: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.norm_ctx(context_BSC) if self.cross else None
        x_BLC = x_BLC + self.attn(self.norm1(x_BLC), ctx)
        return x_BLC + self.mlp(self.norm2(x_BLC))
