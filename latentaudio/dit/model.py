"""The stage-two diffusion transformer (DiT) over VAE latent frames, in pure torch.

A stack of pre-norm transformer blocks over (optionally patched) latent frames, with rotary
positions on queries and keys. The diffusion time and the global condition (timing, label)
are embedded, summed into one vector ``c`` and drive adaLN-Zero modulation (shift, scale,
gate) in every block and the final layer; text tokens enter through an optional
cross-attention layer per block. The modulation and the output layer are zero at init, so
the untrained network outputs exactly zero.

    DiT(latent_dim=64, width=1536, depth=24, heads=24, global_cond_dim=1536, cross_attn_dim=768)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

TIMESTEP_FEATURES = ("sinusoidal", "learned")


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)  # (B, N, D)


#################################################################################
#                      Embedding layers for time and positions                  #
#################################################################################


class TimestepEmbedder(nn.Module):
    """Embeds a diffusion time t in [0, 1] as Fourier features followed by an MLP.

    ``features="sinusoidal"``: fixed geometric frequencies (DiT); ``"learned"``: a trained
    frequency per feature pair, cos and sin of 2 pi t f (Stable Audio Open's FourierFeatures).
    """

    def __init__(
        self, width: int, frequency_dim: int = 256, max_period: float = 10000.0, features: str = "sinusoidal"
    ):
        super().__init__()
        if features not in TIMESTEP_FEATURES:
            raise ValueError(f"timestep_features={features!r}: choose one of {', '.join(TIMESTEP_FEATURES)}")
        self.frequency_dim = frequency_dim
        self.max_period = max_period
        self.features = features
        if features == "learned":
            self.frequencies = nn.Parameter(torch.randn(frequency_dim // 2, 1))  # (F/2, 1)
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def sinusoids(self, t: Tensor) -> Tensor:
        half = self.frequency_dim // 2
        exponents = torch.arange(half, device=t.device, dtype=torch.float32) / half
        freqs = torch.exp(-math.log(self.max_period) * exponents)  # (F/2,)
        # Scaled to the 0..1000 range of discrete-step DiTs, where these frequencies were tuned.
        args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, F/2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, F)

    def learned_fourier(self, t: Tensor) -> Tensor:
        args = 2 * math.pi * t.to(self.frequencies.dtype)[:, None] @ self.frequencies.T  # (B, F/2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, F)

    def forward(self, t: Tensor) -> Tensor:
        features = self.learned_fourier(t) if self.features == "learned" else self.sinusoids(t)
        return self.mlp(features)  # (B, D)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding tables for ``head_dim`` channels (the first ones of each head:
    `apply_rotary` leaves the rest as they are)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, seq_len: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        angles = positions[:, None] * self.inv_freq[None]  # (N, Dh/2)
        angles = torch.cat([angles, angles], dim=-1)  # (N, Dh)
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    rotary_dim = cos.shape[-1]
    if rotary_dim < x.shape[-1]:  # rotary on part of each head (GPT-J); the rest passes through
        rotated = apply_rotary(x[..., :rotary_dim], cos, sin)
        return torch.cat([rotated, x[..., rotary_dim:]], dim=-1)  # (B, H, N, Dh)
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, N, Dh/2) each
    rotated = torch.cat([-x2, x1], dim=-1)  # (B, H, N, Dh)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)  # (B, H, N, Dh)


#################################################################################
#                                Attention layers                               #
#################################################################################


def _key_mask(mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """A (B, S) keep-mask as an SDPA mask, plus which rows keep any key at all.

    A row that keeps nothing would give NaN from the softmax; it attends to everything
    instead and its output is zeroed by the returned (B, 1, 1) factor.
    """
    if mask is None:
        return None, None
    mask = mask.bool()
    has_any = mask.any(dim=-1)  # (B,)
    mask = mask | ~has_any[:, None]  # (B, S)
    return mask[:, None, None, :], has_any[:, None, None]  # (B, 1, 1, S), (B, 1, 1)


def _attend(proj: nn.Module, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float) -> Tensor:
    """Scaled dot-product attention over (B, H, N, Dh) heads, merged and projected to (B, N, D).

    Rows whose mask keeps no key come back as zeros rather than NaN."""
    attn_mask, has_any = _key_mask(mask)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)  # (B, H, N, Dh)
    out = proj(rearrange(out, "b h n d -> b n (h d)"))  # (B, N, D)
    return out if has_any is None else out * has_any


class QKNorm(nn.Module):
    """LayerNorm over each head's queries and keys (Q/K LayerNorm), which bounds the attention logits."""

    def __init__(self, head_dim: int):
        super().__init__()
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6)
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6)


class SelfAttention(nn.Module):
    def __init__(
        self, width: int, heads: int, dropout: float = 0.0, bias: bool = True, qk_norm: bool = False
    ):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)
        self.qk_norm = QKNorm(width // heads) if qk_norm else None

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, mask: Tensor | None = None
    ) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        if self.qk_norm is not None:
            q, k = self.qk_norm.q_norm(q), self.qk_norm.k_norm(k)  # (B, H, N, Dh)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)  # (B, H, N, Dh)
        return _attend(self.proj, q, k, v, mask, self.dropout if self.training else 0.0)  # (B, N, D)


class CrossAttention(nn.Module):
    """Queries from the latent tokens, keys and values from the context tokens; with ``kv_heads``
    below ``heads``, each key/value head serves ``heads // kv_heads`` query heads (grouped)."""

    def __init__(
        self,
        width: int,
        context_dim: int,
        heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        qk_norm: bool = False,
        kv_heads: int | None = None,
    ):
        super().__init__()
        kv_heads = kv_heads or heads
        if heads % kv_heads:
            raise ValueError(f"cross_kv_heads={kv_heads} does not divide heads={heads}")
        self.heads = heads
        self.kv_heads = kv_heads
        self.dropout = dropout
        self.q = nn.Linear(width, width, bias=bias)
        self.kv = nn.Linear(context_dim, 2 * kv_heads * (width // heads), bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)
        self.qk_norm = QKNorm(width // heads) if qk_norm else None

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads)  # (B, H, N, Dh)
        k, v = rearrange(self.kv(context), "b s (two h d) -> two b h s d", two=2, h=self.kv_heads)
        if self.qk_norm is not None:
            q, k = self.qk_norm.q_norm(q), self.qk_norm.k_norm(k)
        if self.kv_heads != self.heads:
            group = self.heads // self.kv_heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, S, Dh)
        return _attend(self.proj, q, k, v, mask, self.dropout if self.training else 0.0)  # (B, N, D)


#################################################################################
#                                 Feed-forward                                  #
#################################################################################

FEED_FORWARDS = ("gelu", "swiglu")
GLOBAL_COND_MODES = ("adaln", "prepend")


class SwiGLU(nn.Module):
    """value * silu(gate), both from one projection, then back to the width: the feed-forward of
    Stable Audio Open's DiT (stable-audio-tools' FeedForward with its default glu=True)."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(width, 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)  # (B, N, H) each
        return self.out(self.dropout(value * F.silu(gate)))  # (B, N, D)


def make_feed_forward(kind: str, width: int, hidden: int, dropout: float) -> nn.Module:
    if kind == "gelu":
        return nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
        )
    if kind == "swiglu":
        return SwiGLU(width, hidden, dropout)
    raise ValueError(f"feed_forward={kind!r}: choose one of {', '.join(FEED_FORWARDS)}")


#################################################################################
#                                 Core DiT model                                #
#################################################################################


class DiTBlock(nn.Module):
    """Self-attention, optional cross-attention and an MLP, with adaLN-Zero conditioning.

    ``modulated=False`` (global conditioning prepended as a token instead): plain pre-norm
    residual branches with affine LayerNorms, as in Stable Audio Open.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float,
        cross_attn_dim: int,
        dropout: float,
        feed_forward_kind: str = "gelu",
        modulated: bool = True,
        bias: bool = True,
        qk_norm: bool = False,
        cross_kv_heads: int | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.modulated = modulated
        self.norm1 = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=not modulated, bias=bias)
        self.attn = SelfAttention(width, heads, dropout, bias, qk_norm)
        if cross_attn_dim > 0:
            # Not gated by c: the text path is the same at every noise level.
            self.norm_cross = nn.LayerNorm(width, eps=norm_eps, bias=bias)
            self.cross_attn = CrossAttention(
                width, cross_attn_dim, heads, dropout, bias, qk_norm, cross_kv_heads
            )
        else:
            self.cross_attn = None
        self.norm2 = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=not modulated, bias=bias)
        self.mlp = make_feed_forward(feed_forward_kind, width, int(width * mlp_ratio), dropout)
        if modulated:
            self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        rope: tuple[Tensor, Tensor],
        cross_cond: Tensor | None = None,
        cross_mask: Tensor | None = None,
    ) -> Tensor:
        if not self.modulated:
            x = x + self.attn(self.norm1(x), rope)  # (B, N, D)
            if self.cross_attn is not None:
                x = x + self.cross_attn(self.norm_cross(x), cross_cond, cross_mask)  # (B, N, D)
            return x + self.mlp(self.norm2(x))  # (B, N, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaln_modulation(c).chunk(
            6, dim=-1
        )
        x = x + gate_msa.unsqueeze(1) * self.attn(
            modulate(self.norm1(x), shift_msa, scale_msa), rope
        )  # (B, N, D)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.norm_cross(x), cross_cond, cross_mask)  # (B, N, D)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (B, N, D)
        return x


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a projection; ``modulated=False``: the projection alone."""

    def __init__(self, width: int, out_dim: int, modulated: bool = True, bias: bool = True):
        super().__init__()
        self.modulated = modulated
        self.linear = nn.Linear(width, out_dim, bias=bias)
        if modulated:
            self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        if not self.modulated:
            return self.linear(x)  # (B, N, P * C)
        shift, scale = self.adaln_modulation(c).chunk(2, dim=-1)  # (B, D) each
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, N, P * C)


def _embedder(in_dim: int, width: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, width, bias=bias), nn.SiLU(), nn.Linear(width, width, bias=bias))


class DiT(nn.Module):
    """Diffusion transformer over latent frames.

    Args:
        latent_dim: channels of the latents (the VAE's latent_dim); also the output channels.
        width, depth, heads, mlp_ratio: transformer size; ``width % heads == 0``, even head dim.
        patch_size: latent frames per token; T need not be a multiple (padded, then trimmed).
        global_cond_dim: size of ``global_cond`` (0: none); it is added to the time embedding.
        cross_attn_dim: size of the ``cross_cond`` tokens (0: no cross-attention layers).
        aligned_cond_channels: extra input channels concatenated to ``x`` frame by frame
            (inpainting / enhancement: masked latents and the mask).
        dropout: dropout in attention and MLPs.
        checkpoint_blocks: activation checkpointing in training: every k-th transformer block
            (True or 1: all of them; False or 0: none) keeps only its input and recomputes the
            rest in the backward pass. Same outputs and gradients, less memory, more compute.
        feed_forward: "gelu" (two linear layers around a GELU) or "swiglu" (`SwiGLU`, as in
            Stable Audio Open).

    The options below describe Stable Audio Open's DiTs (``conf/model/dit/sao_open_*.yaml``);
    their defaults are this DiT's own design.
        global_cond_mode: "adaln" (time + global condition drive adaLN-Zero in every block and
            the final layer) or "prepend" (they form one token in front of the latent tokens; the
            blocks are plain pre-norm, the final layer a projection without norm).
        rotary_dim: channels of each head that rotary positions rotate (None: all of them).
        qk_norm: LayerNorm over each head's queries and keys, in self- and cross-attention.
        bias: biases in the attention projections, the input and output projections and the
            global and cross condition embedders (the time embedder and the MLPs keep theirs);
            without them the LayerNorms have no bias either.
        io_convs: a 1x1 convolution with a residual around it on the input channels before the
            transformer and on the output after it (zero at init: the identity).
        timestep_features: "sinusoidal" (fixed frequencies) or "learned" (trained frequencies).
        cross_embed_dim: >0: the cross-attention tokens first pass an MLP (Linear, SiLU, Linear)
            to this size, which the attention then reads; 0: they are read as they come.
        cross_kv_heads: key/value heads of cross-attention (None: ``heads``); fewer are shared by
            groups of query heads.
        norm_eps: the epsilon of the blocks' LayerNorms.
    """

    def __init__(
        self,
        latent_dim: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        patch_size: int = 1,
        global_cond_dim: int = 0,
        cross_attn_dim: int = 0,
        aligned_cond_channels: int = 0,
        dropout: float = 0.0,
        checkpoint_blocks: bool | int = False,
        feed_forward: str = "gelu",
        global_cond_mode: str = "adaln",
        rotary_dim: int | None = None,
        qk_norm: bool = False,
        bias: bool = True,
        io_convs: bool = False,
        timestep_features: str = "sinusoidal",
        cross_embed_dim: int = 0,
        cross_kv_heads: int | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if feed_forward not in FEED_FORWARDS:
            raise ValueError(f"feed_forward={feed_forward!r}: choose one of {', '.join(FEED_FORWARDS)}")
        if global_cond_mode not in GLOBAL_COND_MODES:
            raise ValueError(
                f"global_cond_mode={global_cond_mode!r}: choose one of {', '.join(GLOBAL_COND_MODES)}"
            )
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        head_dim = width // heads
        if rotary_dim is not None and not (0 < rotary_dim <= head_dim and rotary_dim % 2 == 0):
            raise ValueError(
                f"rotary_dim={rotary_dim}: give an even number up to the head dimension {head_dim}"
            )
        if int(checkpoint_blocks) < 0:
            raise ValueError(f"checkpoint_blocks={checkpoint_blocks}: give false, true or every k-th block")
        self.latent_dim = latent_dim
        self.width = width
        self.depth = depth
        self.heads = heads
        self.mlp_ratio = mlp_ratio
        self.patch_size = patch_size
        self.global_cond_dim = global_cond_dim
        self.cross_attn_dim = cross_attn_dim
        self.aligned_cond_channels = aligned_cond_channels
        self.checkpoint_every = int(checkpoint_blocks)
        self.feed_forward = feed_forward
        self.prepend = global_cond_mode == "prepend"
        self.cross_embed_dim = cross_embed_dim

        in_channels = latent_dim + aligned_cond_channels
        self.input_conv = nn.Conv1d(in_channels, in_channels, 1, bias=False) if io_convs else None
        self.output_conv = nn.Conv1d(latent_dim, latent_dim, 1, bias=False) if io_convs else None
        self.x_embedder = nn.Linear(patch_size * in_channels, width, bias=bias)
        self.t_embedder = TimestepEmbedder(width, features=timestep_features)
        self.global_embedder = _embedder(global_cond_dim, width, bias) if global_cond_dim > 0 else None
        self.cross_embedder = None
        context_dim = cross_attn_dim
        if cross_attn_dim > 0 and cross_embed_dim > 0:
            self.cross_embedder = _embedder(cross_attn_dim, cross_embed_dim, bias)
            context_dim = cross_embed_dim
        self.rotary = RotaryEmbedding(rotary_dim or head_dim)
        self.blocks = nn.ModuleList(
            [
                DiTBlock(
                    width,
                    heads,
                    mlp_ratio,
                    context_dim,
                    dropout,
                    feed_forward,
                    modulated=not self.prepend,
                    bias=bias,
                    qk_norm=qk_norm,
                    cross_kv_heads=cross_kv_heads,
                    norm_eps=norm_eps,
                )
                for _ in range(depth)
            ]
        )
        self.final_layer = FinalLayer(width, patch_size * latent_dim, modulated=not self.prepend, bias=bias)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for embedder in (self.t_embedder.mlp, self.global_embedder, self.cross_embedder):
            if embedder is not None:
                nn.init.normal_(embedder[0].weight, std=0.02)
                nn.init.normal_(embedder[2].weight, std=0.02)
        for conv in (self.input_conv, self.output_conv):
            if conv is not None:
                nn.init.zeros_(conv.weight)  # the residual conv starts as the identity
        # adaLN-Zero (or, unmodulated, zeroed branch outputs): every residual branch starts
        # closed and the output starts at zero.
        for block in self.blocks:
            if block.modulated:
                nn.init.zeros_(block.adaln_modulation[-1].weight)
                nn.init.zeros_(block.adaln_modulation[-1].bias)
            else:
                branches = [
                    block.attn.proj,
                    block.mlp[-1] if isinstance(block.mlp, nn.Sequential) else block.mlp.out,
                ]
                if block.cross_attn is not None:
                    branches.append(block.cross_attn.proj)
                for linear in branches:
                    nn.init.zeros_(linear.weight)
        if self.final_layer.modulated:
            nn.init.zeros_(self.final_layer.adaln_modulation[-1].weight)
            nn.init.zeros_(self.final_layer.adaln_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        if self.final_layer.linear.bias is not None:
            nn.init.zeros_(self.final_layer.linear.bias)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        global_cond: Tensor | None = None,
        cross_cond: Tensor | None = None,
        cross_mask: Tensor | None = None,
        aligned_cond: Tensor | None = None,
    ) -> Tensor:
        """x (B, latent_dim, T), t (B,) in [0, 1] -> model output (B, latent_dim, T), x's dtype.

        global_cond (B, global_cond_dim); cross_cond (B, S, cross_attn_dim) with cross_mask
        (B, S) bool, True = attend; aligned_cond (B, aligned_cond_channels, T).
        """
        self._check_conditions(global_cond, cross_cond, aligned_cond)
        num_frames = x.shape[-1]
        h = x if aligned_cond is None else torch.cat([x, aligned_cond.to(x.dtype)], dim=1)  # (B, C + A, T)
        if self.input_conv is not None:
            h = h + self.input_conv(h)  # (B, C + A, T)
        pad = -num_frames % self.patch_size
        h = F.pad(h, (0, pad))  # (B, C + A, T')
        h = rearrange(h, "b c (n p) -> b n (p c)", p=self.patch_size)  # (B, N, P * (C + A))
        h = self.x_embedder(h)  # (B, N, D)

        c = self.t_embedder(t.to(x.device).expand(x.shape[0]))  # (B, D)
        if self.global_embedder is not None:
            c = c + self.global_embedder(global_cond)  # (B, D)
        if self.cross_embedder is not None:
            cross_cond = self.cross_embedder(cross_cond)  # (B, S, E)
        if self.prepend:
            h = torch.cat([c[:, None].to(h.dtype), h], dim=1)  # (B, 1 + N, D)
        rope = self.rotary(h.shape[1])  # (N, Dh) each

        recompute = self.checkpoint_every > 0 and self.training and torch.is_grad_enabled()
        for index, block in enumerate(self.blocks):
            if recompute and index % self.checkpoint_every == 0:
                # non-reentrant: works with torch.compile and inputs that need no gradient
                h = checkpoint(block, h, c, rope, cross_cond, cross_mask, use_reentrant=False)  # (B, N, D)
            else:
                h = block(h, c, rope, cross_cond, cross_mask)  # (B, N, D)
        if self.prepend:
            h = h[:, 1:]  # (B, N, D)
        h = self.final_layer(h, c)  # (B, N, P * C)
        out = rearrange(h, "b n (p c) -> b c (n p)", p=self.patch_size)  # (B, C, T')
        out = out[..., :num_frames]  # (B, C, T)
        if self.output_conv is not None:
            out = out + self.output_conv(out)  # (B, C, T)
        return out.to(x.dtype)

    def _check_conditions(self, global_cond, cross_cond, aligned_cond) -> None:
        for name, value, size in (
            ("global_cond", global_cond, self.global_cond_dim),
            ("cross_cond", cross_cond, self.cross_attn_dim),
            ("aligned_cond", aligned_cond, self.aligned_cond_channels),
        ):
            if size > 0 and value is None:
                raise ValueError(f"this DiT was built with {name} of size {size}, but none was given")
            if size == 0 and value is not None:
                raise ValueError(f"this DiT was built without {name}, but one was given")

    def flops(self, num_frames: int, cross_tokens: int = 0) -> float:
        """Forward FLOPs (2 per multiply-add, matmuls only) for one item of ``num_frames`` frames.

        Ignores norms, activations and the per-item embedders (under 1% at any real size).
        Training costs about 3x this (forward plus backward).
        """
        n = math.ceil(num_frames / self.patch_size)
        d, hidden = self.width, int(self.width * self.mlp_ratio)
        mlp_matrices = 3 if self.feed_forward == "swiglu" else 2  # SwiGLU projects to value and gate
        per_block = n * (3 * d * d + d * d + mlp_matrices * d * hidden)  # qkv, out projection, MLP
        per_block += 2 * n * n * d  # scores and weighted values
        if self.cross_attn_dim > 0:
            per_block += n * 2 * d * d + cross_tokens * 2 * self.cross_attn_dim * d  # q, out; k, v
            per_block += 2 * n * cross_tokens * d
        in_out = n * self.patch_size * (self.latent_dim + self.aligned_cond_channels) * d
        in_out += n * d * self.patch_size * self.latent_dim
        return 2.0 * (self.depth * per_block + in_out)
