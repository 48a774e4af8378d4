"""Memory per GPU: weights, gradients, optimizer states and activations.

Sources:
- Mixed-precision Adam holds 2 (bf16 weights) + 2 (bf16 grads) + 12 (fp32 master, m, v) bytes per
  parameter; ZeRO-1/2/3 shard the 12, then the grads, then the weights over data-parallel ranks
  (Rajbhandari et al. 2020, "ZeRO", Sec. 3 and Fig. 1).
- Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
  Transformer Models", Sec. 4), generalised to GQA and gated MLPs by counting each saved tensor;
  with FlashAttention the s x s scores are not stored. For GPT-3-style blocks with dropout this
  gives their 34 s b h bytes per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from estimator.flops import RECOMPUTE
from estimator.model import ModelSpec, attention_params_per_layer, mlp_params, param_count

WEIGHT_BYTES = 2.0  # bf16/fp16 working copy
GRAD_BYTES = 2.0
OPTIMIZER_BYTES = 12.0  # fp32 master weights + Adam m and v
GIB = 1024**3
GB = 1e9


def block_activation_bytes(s: ModelSpec, batch: float, seq: float, dtype_bytes: float = 2.0, recompute: str = "none",
                           tp: int = 1, sequence_parallel: bool = True, flash: bool = True, dropout: bool = False,
                           moe_layer: bool | None = None) -> float:
    """Bytes one block keeps for its backward pass, per GPU, for one micro-batch."""
    tokens = batch * seq
    d = s.d_model
    if recompute == "full":
        return dtype_bytes * d * tokens / (tp if sequence_parallel else 1)  # only the block input
    moe = s.is_moe if moe_layer is None else moe_layer
    q_w = s.heads * s.qk_head_dim
    kv_w = (s.kv_lora_rank + s.qk_rope_head_dim) if s.is_mla else 2 * s.kv_heads * s.hd
    # replicated under TP unless sequence parallel: the two norm inputs and the two GEMM inputs
    norm_and_inputs = 4 * d
    attn = q_w + kv_w + s.heads * s.v_dim  # Q, K, V (or MLA latent), attention output
    if s.is_mla:
        attn += s.heads * (s.hd + s.v_dim)  # up-projected K and V
    width = s.expert_ffn * (s.experts_per_token + s.shared_experts) if moe else s.ffn_dim
    mlp = (3 if s.gated_mlp else 2) * width
    per_token = dtype_bytes * (attn + mlp) / tp
    per_token += dtype_bytes * norm_and_inputs / (tp if sequence_parallel else 1)
    if dropout:
        per_token += 2 * d / (tp if sequence_parallel else 1)  # 1-byte masks after attention and MLP
    scores = 0.0
    if not flash and recompute != "selective":
        # softmax output (dtype) + dropout mask (1 byte) + dropout output (dtype) per score
        scores = s.heads * seq * seq * batch * (2 * dtype_bytes + (1 if dropout else 0)) / tp
    return per_token * tokens + scores


def block_param_count(s: ModelSpec, moe_layer: bool | None = None) -> int:
    """Parameters of one decoder block (all experts of an MoE block), norms included."""
    moe = s.is_moe if moe_layer is None else moe_layer
    norms = 2 * (2 if s.norm == "layernorm" else 1) * s.d_model
    if moe:
        one = mlp_params(s.d_model, s.expert_ffn, s.gated_mlp, s.bias)
        mlp = one * (s.experts + s.shared_experts) + s.d_model * s.experts
    else:
        mlp = mlp_params(s.d_model, s.ffn_dim, s.gated_mlp, s.bias)
    return attention_params_per_layer(s) + mlp + norms


def block_training_peak_bytes(s: ModelSpec, batch: float, seq: float, dtype_bytes: float = 2.0) -> float:
    """Peak memory of one block's forward+backward in the profiler: weights, grads, saved activations."""
    p = block_param_count(s)
    return p * dtype_bytes * 2 + block_activation_bytes(s, batch, seq, dtype_bytes)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per GPU (floats, or numpy arrays when evaluated over many layouts)."""

    weights: Any
    gradients: Any
    optimizer: Any
    activations: Any
    logits: Any
    buffers: Any = 0.0  # the framework's working buffers at the peak (hardware_db/framework_buffers.csv)

    @property
    def total(self) -> Any:
        """Sum of the parts (bytes)."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.buffers

    def to_dict(self) -> dict[str, float]:
        """Parts in GB (decimal), with the total."""
        return {"weights_gb": self.weights / GB, "gradients_gb": self.gradients / GB,
                "optimizer_gb": self.optimizer / GB, "activations_gb": self.activations / GB,
                "logits_gb": self.logits / GB, "buffers_gb": self.buffers / GB, "total_gb": self.total / GB}


def buffer_bytes(buffers: tuple, zero, params_gpu, shard, unit_params, activations) -> Any:
    """Peak bytes of a framework's working buffers: the persistent ones, plus the larger of those allocated in
    the backward pass (beside the activations) and those of the optimizer step less the activations it frees.

    ``params_gpu``: this GPU's parameters before ZeRO sharding; ``shard``: the ZeRO group; ``unit_params``: one
    wrapped layer's parameters on this GPU (the FSDP / ZeRO-3 gathering unit).
    """
    zero = np.asarray(zero)
    scale = {"params_per_gpu_shard": params_gpu / shard, "params_total": params_gpu, "fixed_elements": 1.0,
             "fsdp_unit_params": unit_params}
    phase: dict[str, Any] = {"persistent": 0.0, "backward": 0.0, "optimizer_step": 0.0}
    for b in buffers:
        size = b.amount * scale[b.scales_with] * (b.element_bytes if b.scales_with == "fixed_elements" else 1.0)
        applies = 1.0 if b.zero_stage is None else (zero == b.zero_stage)
        phase[b.phase] = phase[b.phase] + np.where(applies, size, 0.0)
    return phase["persistent"] + np.maximum(phase["backward"], phase["optimizer_step"] - activations)


def training_memory_per_gpu(s: ModelSpec, *, tp: int, pp: int, dp: int, ep: int = 1, zero: int = 1,
                            micro_batch: int = 1, recompute: str = "none", seq: int | None = None,
                            sequence_parallel: bool = True, cp: int = 1, flash: bool = True,
                            grad_bytes: float = GRAD_BYTES, activation_factor: float = 1.0,
                            buffers: tuple = ()) -> MemoryBreakdown:
    """Memory on the busiest GPU (first pipeline stage) under TP x CP x PP x DP (x EP) with ZeRO-``zero``.

    Weights of the embedding and of the LM head sit on the first and last stage; the first stage
    also holds ``pp`` micro-batches of activations under 1F1B (Narayanan et al. 2021), i.e. as many
    as all its layers of one micro-batch times pp, which is ``layers`` layers' worth. Context
    parallelism splits each sequence's activations over ``cp`` GPUs; weights are replicated over CP
    ranks and ZeRO shards over DP x CP (as Megatron-Core's distributed optimizer does). ``activation_factor``
    scales the saved activations of a block that keeps more than the fused Megatron block (an eager one).
    """
    if recompute not in RECOMPUTE:
        recompute = "none"
    seq = seq or s.seq_len
    pc = param_count(s)
    tp, pp, dp, ep, zero, cp = (np.asarray(x) for x in (tp, pp, dp, ep, zero, cp))  # type: ignore[assignment]
    shard = dp * cp
    # expert weights are split over EP (and TP); dense weights over TP; layers over PP
    expert_params = pc.mlp_experts_total
    dense_params = pc.total - expert_params - pc.embedding - pc.lm_head
    layers_per_stage = -(-s.layers // pp)
    stage_frac = layers_per_stage / s.layers
    per_gpu_params: Any = (dense_params * stage_frac) / tp + (expert_params * stage_frac) / (tp * ep)
    per_gpu_params = per_gpu_params + pc.embedding / tp  # first stage holds the embedding (tied or not)
    per_gpu_params = per_gpu_params + np.where(pp == 1, pc.lm_head / tp, 0.0)
    weights = per_gpu_params * WEIGHT_BYTES / np.where(zero >= 3, shard, 1)
    grads = per_gpu_params * grad_bytes / np.where(zero >= 2, shard, 1)
    opt = per_gpu_params * OPTIMIZER_BYTES / np.where(zero >= 1, shard, 1)
    act_layer_dense = block_activation_bytes(s, micro_batch, seq, recompute=recompute, tp=tp, flash=flash,
                                             sequence_parallel=sequence_parallel, moe_layer=False)
    act_layer_moe = block_activation_bytes(s, micro_batch, seq, recompute=recompute, tp=tp, flash=flash,
                                           sequence_parallel=sequence_parallel, moe_layer=True) if s.is_moe else 0.0
    moe_frac = s.moe_layers / s.layers
    act_layer = (act_layer_dense * (1 - moe_frac) + act_layer_moe * moe_frac) * activation_factor
    activations: Any = act_layer * layers_per_stage * pp / cp  # 1F1B: pp micro-batches in flight on stage 0
    if recompute == "full":
        # the layer being recomputed needs its full activations once
        activations += block_activation_bytes(s, micro_batch, seq, recompute="none", tp=tp, flash=flash,
                                              sequence_parallel=sequence_parallel) * activation_factor / cp
    # fp32 logits + their gradient on the last stage (for pp == 1 that is this GPU)
    logits = np.where(pp == 1, 4.0 * 2 * micro_batch * seq * s.vocab / (tp * cp), 0.0)
    unit = block_param_count(s) / tp  # one layer on this GPU (an MoE layer with all its experts: high under EP)
    extra = buffer_bytes(buffers, zero, per_gpu_params, shard, unit, activations) if buffers else 0.0
    return MemoryBreakdown(weights=weights, gradients=grads, optimizer=opt, activations=activations, logits=logits,
                           buffers=extra)
