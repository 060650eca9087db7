"""Text encoders for the DiT's cross-attention tokens (``Conditioner(text=...)``).

- :class:`ByteTextEncoder`: UTF-8 bytes into a small transformer trained with the DiT; needs
  nothing extra and no download.
- :class:`T5TextEncoder`: a pretrained T5 from a local folder, through ``transformers``.

Both map ``list[str]`` to ``(tokens (B, S, dim), mask (B, S) bool)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentaudio.dit.model import RotaryEmbedding, SelfAttention


class TextBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim)
        )

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), rope, mask)  # (B, S, D)
        return x + self.mlp(self.norm2(x))  # (B, S, D)


class ByteTextEncoder(nn.Module):
    """An offline text encoder trained with the DiT: UTF-8 bytes into a small transformer.

    Token ids: 0 padding, 1 start, 2 end, 3 + byte. A caption becomes
    [start, bytes..., end], truncated to ``max_length`` tokens; a batch is padded to its
    longest caption. ``forward(list[str]) -> (tokens (B, S, dim), mask (B, S) bool)``.
    """

    PAD, BOS, EOS, BYTE_OFFSET = 0, 1, 2, 3
    VOCAB_SIZE = 256 + 3

    def __init__(self, dim: int, depth: int = 2, heads: int = 4, max_length: int = 128):
        super().__init__()
        if max_length < 2:
            raise ValueError("max_length must leave room for the start and end tokens")
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim {dim} must split into {heads} heads of even size")
        self.dim = dim
        self.max_length = max_length
        self.embedding = nn.Embedding(self.VOCAB_SIZE, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.rotary = RotaryEmbedding(dim // heads)
        self.blocks = nn.ModuleList([TextBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def tokenize(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Token ids (B, S) long and mask (B, S) bool on the encoder's device."""
        rows = []
        for text in texts:
            data = text.encode("utf-8")[: self.max_length - 2]
            rows.append([self.BOS, *(self.BYTE_OFFSET + b for b in data), self.EOS])
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), self.PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        ids = ids.to(self.embedding.weight.device)
        return ids, ids != self.PAD

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        ids, mask = self.tokenize(texts)
        x = self.embedding(ids)  # (B, S, D)
        rope = self.rotary(ids.shape[1])
        for block in self.blocks:
            x = block(x, rope, mask)  # (B, S, D)
        x = self.norm(x) * mask[..., None]  # (B, S, D)
        return x, mask


class T5TextEncoder(nn.Module):
    """A pretrained T5 encoder loaded from a local folder (no download) through `transformers`.

    ``path`` holds a saved T5 (``config.json``, weights) and its tokenizer, as written by
    ``save_pretrained``. Frozen (the default), it stays in eval mode without gradients.
    ``forward(list[str]) -> (tokens (B, S, dim), mask (B, S) bool)``, dim = the model's d_model.
    ``padding``: "longest" (to the batch's longest caption) or "max_length" (always
    ``max_length`` tokens, as Stable Audio Open was trained).
    """

    def __init__(self, path: str, max_length: int = 128, frozen: bool = True, padding: str = "longest"):
        super().__init__()
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError as error:
            raise ImportError(
                "T5TextEncoder needs the `transformers` package: pip install transformers "
                "(or use text='bytes', which needs nothing extra)"
            ) from error
        self.path = str(path)
        self.max_length = max_length
        self.frozen = frozen
        self.padding = padding
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        # safetensors only: a pickled pytorch_model.bin could run code when loaded
        self.model = T5EncoderModel.from_pretrained(self.path, local_files_only=True, use_safetensors=True)
        self.dim = self.model.config.d_model
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> T5TextEncoder:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # no dropout in a frozen encoder
        return self

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        device = next(self.model.parameters()).device
        encoded = self.tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        ids, mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device).bool()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, S, D)
        return tokens.float() * mask[..., None], mask
