"""Exact FLOP accounting for decoder-only transformers.

Conventions (stated so they can be checked):
- A multiply-accumulate is 2 FLOPs; ``gemm_flops(m, n, k) = 2 m n k``.
- The attention core (QK^T and AV) is counted over the full s x s score matrix, as PaLM
  (Chowdhery et al. 2022, App. B: 6N + 12 L H Q T per token) and Megatron-LM do for MFU, and as
  torch's FlopCounterMode counts ``scaled_dot_product_attention``; causal kernels skip about half.
- Backward costs twice the forward (two GEMMs per forward GEMM).
- Elementwise work (norms, activations, softmax, residuals, RoPE) is not counted as FLOPs; the
  time model charges it to memory bandwidth instead.
- Embedding lookup is free; the logits projection (2 d V per token) is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from estimator.errors import EstimatorInputError
from estimator.model import ModelSpec

RECOMPUTE = ("none", "selective", "full")


def gemm_flops(m: float, n: float, k: float) -> float:
    """FLOPs of an (m x k) @ (k x n) matrix product."""
    return 2.0 * m * n * k


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward FLOPs by part (plain floats, unit FLOP)."""

    qkv: float = 0.0
    attn_core: float = 0.0
    attn_out: float = 0.0
    mlp: float = 0.0
    router: float = 0.0
    logits: float = 0.0

    @property
    def total(self) -> float:
        """Sum of every part (FLOP)."""
        return self.qkv + self.attn_core + self.attn_out + self.mlp + self.router + self.logits

    @property
    def matmul(self) -> float:
        """FLOPs in weight GEMMs (everything but the attention core)."""
        return self.total - self.attn_core

    def __add__(self, other: FlopBreakdown) -> FlopBreakdown:
        return FlopBreakdown(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def scaled(self, factor: float) -> FlopBreakdown:
        """Every part multiplied by ``factor`` (e.g. 3 for forward + backward)."""
        return FlopBreakdown(*(getattr(self, f.name) * factor for f in fields(self)))

    def to_dict(self) -> dict[str, float]:
        """Parts by name (FLOP), with the total."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"total": self.total}


def _qkv_flops_per_token(s: ModelSpec) -> float:
    d = s.d_model
    if s.is_mla:
        q_out = s.heads * s.qk_head_dim
        q = 2 * (d * s.q_lora_rank + s.q_lora_rank * q_out) if s.q_lora_rank else 2 * d * q_out
        kv = 2 * d * (s.kv_lora_rank + s.qk_rope_head_dim) + 2 * s.kv_lora_rank * s.heads * (s.hd + s.v_dim)
        return q + kv
    rel = 2 * d * d if s.position == "relative" else 0  # Transformer-XL W_R applied to position embeddings
    return 2 * d * (s.heads + 2 * s.kv_heads) * s.hd + rel


def _attn_core_flops(s: ModelSpec, q_tokens: float, kv_tokens: float) -> float:
    """QK^T plus AV for ``q_tokens`` queries each attending to ``kv_tokens`` keys."""
    return 2.0 * q_tokens * kv_tokens * s.heads * (s.qk_head_dim + s.v_dim)


def _mlp_flops_per_token(s: ModelSpec, moe_layer: bool) -> tuple[float, float]:
    """(mlp, router) forward FLOPs per token of one layer."""
    mats = 3 if s.gated_mlp else 2
    if moe_layer:
        active = s.experts_per_token + s.shared_experts
        return 2.0 * mats * s.d_model * s.expert_ffn * active, 2.0 * s.d_model * s.experts
    return 2.0 * mats * s.d_model * s.ffn_dim, 0.0


def block_forward_flops(s: ModelSpec, batch: float, seq: float, moe_layer: bool | None = None) -> FlopBreakdown:
    """Forward FLOPs of one decoder block on ``batch`` sequences of ``seq`` tokens."""
    moe = s.is_moe if moe_layer is None else moe_layer
    tokens = batch * seq
    mlp, router = _mlp_flops_per_token(s, moe)
    return FlopBreakdown(
        qkv=_qkv_flops_per_token(s) * tokens,
        attn_core=_attn_core_flops(s, seq, seq) * batch,
        attn_out=2.0 * s.heads * s.v_dim * s.d_model * tokens,
        mlp=mlp * tokens,
        router=router * tokens,
    )


def logits_flops(s: ModelSpec, tokens: float) -> float:
    """FLOPs of the LM-head GEMM for ``tokens`` tokens: 2 x tokens x d_model x vocab."""
    return 2.0 * s.d_model * s.vocab * tokens


def model_forward_flops(s: ModelSpec, batch: float, seq: float, include_logits: bool = True) -> FlopBreakdown:
    """Forward FLOPs of the whole model on ``batch`` x ``seq`` tokens."""
    dense = block_forward_flops(s, batch, seq, moe_layer=False).scaled(s.layers - s.moe_layers)
    total = dense
    if s.moe_layers:
        total = total + block_forward_flops(s, batch, seq, moe_layer=True).scaled(s.moe_layers)
    if include_logits:
        total = total + FlopBreakdown(logits=logits_flops(s, batch * seq))
    return total


def decode_step_flops(s: ModelSpec, batch: float, context: Any) -> FlopBreakdown:
    """Forward FLOPs to generate one token per sequence against a KV cache of ``context`` tokens."""
    per_layer_dense = _per_token_layer(s, False, context)
    out = per_layer_dense.scaled(batch * (s.layers - s.moe_layers))
    if s.moe_layers:
        out = out + _per_token_layer(s, True, context).scaled(batch * s.moe_layers)
    return out + FlopBreakdown(logits=logits_flops(s, batch))


def _per_token_layer(s: ModelSpec, moe: bool, context: float) -> FlopBreakdown:
    mlp, router = _mlp_flops_per_token(s, moe)
    return FlopBreakdown(qkv=_qkv_flops_per_token(s), attn_core=_attn_core_flops(s, 1, context + 1),
                         attn_out=2.0 * s.heads * s.v_dim * s.d_model, mlp=mlp, router=router)


def forward_flops_per_token(s: ModelSpec, seq: float | None = None) -> FlopBreakdown:
    """Forward FLOPs per training token at sequence length ``seq`` (default the model's)."""
    seq = seq or s.seq_len
    return model_forward_flops(s, 1, seq).scaled(1.0 / seq)


@dataclass(frozen=True)
class TrainingFlops:
    """Training FLOPs. Model FLOPs (fwd + bwd) define MFU; hardware FLOPs add recomputation (HFU)."""

    model_flops: float
    hardware_flops: float
    forward_per_token: FlopBreakdown
    recompute: str

    @property
    def model_flops_per_token(self) -> float:
        """Model FLOPs per training token (forward + backward, no recomputation)."""
        return 3.0 * self.forward_per_token.total


def recompute_forward_fraction(s: ModelSpec, recompute: str, seq: float | None = None) -> float:
    """Extra forward work recomputed in backward, as a fraction of one forward pass.

    none: 0. selective (Korthikanti et al. 2022): the attention core only. full: every block's
    forward again (the logits are not recomputed).
    """
    if recompute not in RECOMPUTE:
        raise EstimatorInputError(f"unknown recompute mode {recompute!r}", f"use one of {', '.join(RECOMPUTE)}")
    fwd = forward_flops_per_token(s, seq)
    if recompute == "none":
        return 0.0
    if recompute == "selective":
        return fwd.attn_core / fwd.total
    return (fwd.total - fwd.logits) / fwd.total


def training_flops(s: ModelSpec, tokens: float, recompute: str = "none", seq: float | None = None) -> TrainingFlops:
    """FLOPs to train on ``tokens`` tokens: 3 x forward (fwd + 2 x bwd), plus recomputation."""
    fwd = forward_flops_per_token(s, seq)
    model = 3.0 * fwd.total * tokens
    extra = recompute_forward_fraction(s, recompute, seq) * fwd.total * tokens
    return TrainingFlops(model_flops=model, hardware_flops=model + extra, forward_per_token=fwd, recompute=recompute)
