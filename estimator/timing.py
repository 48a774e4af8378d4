"""Time: an op-level roofline for compute, plus communication, pipeline bubble and goodput.

Each kernel takes ``work / rate + overhead`` (a latency-throughput model): GEMMs at a sustained
FLOP/s, the attention core at its own FLOP/s, elementwise work at a sustained memory bandwidth.
Small per-GPU shapes therefore run at lower efficiency than large ones, without a special case.
The rates come from a calibration file (``profile-gpu fit``) or from documented fractions of the
datasheet peaks (hardware_db/assumptions.csv). Formulas use plain floats or numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estimator.flops import block_forward_flops, logits_flops
from estimator.hardware import KernelModel, link_bandwidths_gb_per_s  # KernelModel: re-exported for the profiler
from estimator.model import ModelSpec, param_count

N_GEMMS_PER_BLOCK = 4  # QKV, attention output, MLP up(+gate), MLP down (fused as in Megatron/torch)
N_ELEMENTWISE_PER_BLOCK = 6  # 2 norms, 2 residual adds, activation, RoPE


ADAM_BYTES_PER_PARAM_STEP = 28.0  # read grad, fp32 master, m, v; write master, m, v, bf16 weights
CHECKPOINT_BYTES_PER_PARAM = 16.0  # ZeRO model states, 2 + 2 + 12 bytes/param (Rajbhandari et al. 2020, Sec. 3); a
#                                   checkpoint without gradients would be 14: kept at 16, as the estimate always was


def elementwise_bytes_per_token(s: ModelSpec, moe_layer: bool = False, dtype_bytes: float = 2.0) -> float:
    """Bytes read+written by one block's elementwise kernels per token in the forward pass."""
    d = s.d_model
    norms = 2 * 2 * d  # read + write, two norms
    residual = 2 * 3 * d  # read two, write one, two adds
    width = s.expert_ffn * (s.experts_per_token + s.shared_experts) if moe_layer else s.ffn_dim
    act = (3 if s.gated_mlp else 2) * width  # gated: read gate, up; write product
    rope = 2 * (s.heads + s.kv_heads) * s.hd if s.position == "rope" else 0
    return dtype_bytes * (norms + residual + act + rope)


def block_gemms(s: ModelSpec, tokens, *, tp=1, cp=1, ep=1, moe_layer: bool = False) -> list[tuple]:
    """The GEMMs of one block's forward pass on one GPU, as (count, m, n, k) for ``out[m, n] = in[m, k] @ W[k, n]``.

    QKV and MLP up(+gate) are column-parallel (n split over TP), the attention output and MLP down row-parallel
    (k split), as in Megatron-LM; CP splits the tokens. Routed experts: each of the experts this GPU holds that the
    tokens touch is one GEMM over its share of the ``tokens x top-k`` routed tokens (expected distinct experts
    touched by uniform routing, E (1 - (1 - k/E)^T)); the router is replicated. 2 x sum(count m n k) over the list is
    the block's forward matmul FLOPs per GPU (``flops.block_forward_flops``), split the same way.
    """
    from estimator.flops import _qkv_flops_per_token

    d, m = s.d_model, np.asarray(tokens, dtype=float) / cp
    ups = 2 if s.gated_mlp else 1  # gate and up projections fused into one GEMM
    out = [(1.0, m, _qkv_flops_per_token(s) / (2 * d) / tp, d), (1.0, m, d, s.heads * s.v_dim / tp)]
    if not moe_layer:
        return out + [(1.0, m, ups * s.ffn_dim / tp, d), (1.0, m, d, s.ffn_dim / tp)]
    e_ffn, local = s.expert_ffn, s.experts / np.asarray(ep, dtype=float)
    routed = m * s.experts_per_token
    touched = np.minimum(local, local * (1.0 - (1.0 - s.experts_per_token / s.experts) ** m))
    per = routed / touched
    out += [(1.0, m, s.experts, d), (touched, per, ups * e_ffn / tp, d), (touched, per, d, e_ffn / tp)]
    if s.shared_experts:
        out += [(1.0, m, ups * e_ffn * s.shared_experts / tp, d), (1.0, m, d, e_ffn * s.shared_experts / tp)]
    return out


def gemm_forward_s(s: ModelSpec, batch, seq, km: KernelModel, *, tp=1, cp=1, ep=1, moe_layer: bool = False,
                   dtype_bytes: float = 2.0):
    """Forward GEMM time of one block on one GPU: the calibrated per-GEMM roofline when ``km.gemm`` is set, else
    the linear form (all matmul FLOPs / rate + one overhead per GEMM kernel)."""
    if km.gemm is None:
        f = block_forward_flops(s, batch, seq, moe_layer=moe_layer)
        return f.matmul / (tp * cp) / km.gemm_flops_per_s + N_GEMMS_PER_BLOCK * km.gemm_overhead_s
    from estimator.kernels import gemm_time_s

    tokens = np.asarray(batch, dtype=float) * seq
    return sum(c * gemm_time_s(m, n, k, km.gemm, dtype_bytes)
               for c, m, n, k in block_gemms(s, tokens, tp=tp, cp=cp, ep=ep, moe_layer=moe_layer))


def unfused_attention_bytes(s: ModelSpec, batch, seq, dtype_bytes: float = 2.0):
    """HBM bytes standard (non-Flash) attention moves for its score matrices in one forward pass: it writes the
    scores S = QK^T, reads them for the softmax, writes P and reads P for PV, 4 s^2 elements per head and sequence
    (Dao et al. 2022, FlashAttention, Sec. 2.2 Algorithm 0: Theta(N d + N^2) HBM accesses)."""
    return 4.0 * dtype_bytes * s.heads * np.asarray(seq, dtype=float) ** 2 * np.asarray(batch, dtype=float)


def block_time_s(s: ModelSpec, batch, seq, km: KernelModel, training: bool = True, tp=1, recompute: str = "none",
                 moe_layer: bool | None = None, dtype_bytes: float = 2.0, cp=1, ep=1, flash: bool = True,
                 elementwise: tuple[float, float] = (1.0, 1.0)):
    """Time of one decoder block on one GPU (its 1/(tp cp) share) for ``batch`` x ``seq`` tokens.

    ``training`` adds the backward pass: GEMM and attention work doubled (two kernels per forward
    kernel), elementwise traffic doubled; ``recompute`` adds the recomputed forward work. Without FlashAttention
    (``flash=False``, software before 2022) the attention also streams its s x s score matrices through HBM.
    ``elementwise`` scales the non-GEMM bytes and kernel launches of an unfused block (e.g. eager Hugging Face code,
    measured in hardware_db/elementwise_profiles.csv).
    """
    moe = s.is_moe if moe_layer is None else moe_layer
    f = block_forward_flops(s, batch, seq, moe_layer=moe)
    tokens = batch * seq
    tpcp = tp * cp
    gemm_fwd = gemm_forward_s(s, batch, seq, km, tp=tp, cp=cp, ep=ep, moe_layer=moe, dtype_bytes=dtype_bytes)
    if moe and km.gemm is not None:  # expert (grouped) GEMMs at their own efficiency, fitted on serving rows
        from estimator.serving import serving_constant

        gemm_fwd = gemm_fwd / serving_constant("moe_expert_gemm_efficiency_fp8" if km.precision == "fp8" else
                                               "moe_expert_gemm_efficiency_fp16")
    attn_fwd = f.attn_core / tpcp / km.attn_flops_per_s + km.attn_overhead_s
    if not flash:
        attn_fwd = attn_fwd + unfused_attention_bytes(s, batch, seq, dtype_bytes) / tpcp / km.stream_bps
    mem_fwd = (elementwise[0] * elementwise_bytes_per_token(s, moe, dtype_bytes) * tokens / tpcp / km.mem_bytes_per_s
               + elementwise[1] * N_ELEMENTWISE_PER_BLOCK * km.mem_overhead_s)
    fwd = gemm_fwd + attn_fwd + mem_fwd + km.block_overhead_s
    if not training:
        return fwd
    bwd = 2 * (gemm_fwd + attn_fwd + mem_fwd + km.block_overhead_s)
    if recompute == "full":
        extra = fwd
    elif recompute == "selective":
        extra = attn_fwd
    else:
        extra = 0.0
    return fwd + bwd + extra


def logits_time_s(s: ModelSpec, tokens, km: KernelModel, training: bool = True, tp=1, dtype_bytes: float = 2.0):
    """LM-head GEMM (and its backward) plus the fp32 softmax/cross-entropy pass."""
    if km.gemm is None:
        t = logits_flops(s, tokens) / tp / km.gemm_flops_per_s + km.gemm_overhead_s
    else:
        from estimator.kernels import gemm_time_s

        t = gemm_time_s(tokens, s.vocab / tp, s.d_model, km.gemm, dtype_bytes)
    ce = 4.0 * 3 * s.vocab * tokens / tp / km.mem_bytes_per_s + km.mem_overhead_s
    return (3 * t + 2 * ce) if training else (t + ce)


def allreduce_s(bytes_, n, bw_bytes_per_s, km: KernelModel | None = None, domain: int = 8):
    """All-reduce seconds: the calibration's measured constants for world sizes inside one node (nearest measured
    size), else a ring at ``bw_bytes_per_s`` (``ring_allreduce_s``)."""
    ring = ring_allreduce_s(bytes_, n, bw_bytes_per_s)
    if km is None or not km.allreduce:
        return ring
    from estimator.kernels import allreduce_time_s

    n_arr = np.asarray(n, dtype=float)
    out = np.asarray(ring, dtype=float) * np.ones_like(n_arr)
    for w in np.unique(n_arr):
        if 1 < w <= min(domain, max(km.allreduce)):
            params = km.allreduce[min(km.allreduce, key=lambda x: (abs(x - w), -x))]
            out = np.where(n_arr == w, allreduce_time_s(bytes_, w, params), out)
    return out


def ring_allreduce_s(bytes_, n, bw_bytes_per_s, latency_s=0.0):
    """Ring all-reduce: each rank sends 2 (n-1)/n of the buffer (Patarasuk & Yuan 2009)."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 1, 2.0 * (n - 1) / np.maximum(n, 1) * bytes_ / bw_bytes_per_s + 2 * (n - 1) * latency_s, 0.0)


def ring_allgather_s(bytes_, n, bw_bytes_per_s, latency_s=0.0):
    """All-gather or reduce-scatter of a buffer of ``bytes_`` total: (n-1)/n of it crosses each link."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 1, (n - 1) / np.maximum(n, 1) * bytes_ / bw_bytes_per_s + (n - 1) * latency_s, 0.0)


def pipeline_bubble_s(pp, per_microbatch_s, interleave=1):
    """Idle time of one 1F1B pipeline step: (p - 1) / v micro-batch times (Narayanan et al. 2021, Sec. 2.2).

    With m micro-batches the idle fraction is then (p - 1) / (v m + p - 1): interleaving v virtual stages per
    GPU divides the bubble by v.
    """
    pp = np.asarray(pp, dtype=float)
    return (pp - 1) / np.asarray(interleave, dtype=float) * per_microbatch_s


def optimizer_step_s(params_per_gpu, shard, mem_bytes_per_s):
    """Adam step over this GPU's parameters, memory-bound: 28 bytes/param moved, divided over ``shard`` ranks
    (ZeRO-1 and above shard the optimizer states over data parallelism; Rajbhandari et al. 2020, Sec. 5.1)."""
    return params_per_gpu * ADAM_BYTES_PER_PARAM_STEP / shard / mem_bytes_per_s


def checkpoint_hours(params, write_bw_gb_per_s):
    """Hours to write one checkpoint: 16 bytes/param (weights, fp32 master, Adam m, v) at the write bandwidth."""
    return params * CHECKPOINT_BYTES_PER_PARAM / (write_bw_gb_per_s * 1e9) / 3600


def goodput_fraction(gpus, failure_rate_per_gpu_hour, restart_hours, checkpoint_hours):
    """Fraction of wall time that advances training, with checkpoints at the Young/Daly interval.

    Job failure rate lambda = gpus x per-GPU rate; the optimal checkpoint interval is
    tau = sqrt(2 delta / lambda) (Young 1974; Daly 2006); each failure loses the restart time plus
    half an interval of work on average, each checkpoint costs delta.
    """
    lam = np.asarray(gpus, dtype=float) * failure_rate_per_gpu_hour  # failures per hour
    delta = np.maximum(checkpoint_hours, 1e-9)
    tau = np.sqrt(2 * delta / np.maximum(lam, 1e-30))
    lost = delta / tau + lam * (restart_hours + tau / 2)
    return np.clip(1.0 - lost, 0.01, 1.0)


# --------------------------------------------------------------------------- one training step

@dataclass(frozen=True)
class StepTime:
    """Seconds per optimizer step, by part (arrays when evaluated over many layouts)."""

    compute: object  # busy kernels incl. recomputation, all micro-batches, one pipeline stage
    bubble: object
    tp_comm: object
    pp_comm: object
    dp_comm: object
    ep_comm: object
    optimizer: object
    cp_comm: object = 0.0

    @property
    def total(self):
        """Sum of every part (s)."""
        return (self.compute + self.bubble + self.tp_comm + self.pp_comm + self.dp_comm + self.ep_comm  # type: ignore
                + self.optimizer + self.cp_comm)


def stage_time_s(s: ModelSpec, km: KernelModel, *, tp, cp, ep, pp, micro_batch, seq, recompute: str,
                 dtype_bytes: float, flash: bool = True, elementwise: tuple[float, float] = (1.0, 1.0)):
    """One micro-batch's forward+backward through one pipeline stage's layers (the LM head spread evenly)."""
    dense_frac = 1.0 - s.moe_layers / s.layers
    kw = dict(dtype_bytes=dtype_bytes, cp=cp, ep=ep, flash=flash, elementwise=elementwise)
    t_layer = dense_frac * block_time_s(s, micro_batch, seq, km, True, tp, recompute, moe_layer=False, **kw)
    if s.moe_layers:
        t_layer = t_layer + (1 - dense_frac) * block_time_s(s, micro_batch, seq, km, True, tp, recompute,
                                                            moe_layer=True, **kw)
    return (np.ceil(s.layers / pp) * t_layer
            + logits_time_s(s, micro_batch * seq, km, True, tp * cp, dtype_bytes) / pp)


def step_time(s: ModelSpec, accel, km: KernelModel, *, tp, pp, dp, ep, zero, micro_batch, recompute: str,
              global_batch_seqs, seq, dtype_bytes: float, dp_overlap: float, interleave=1, cp=1,
              flash: bool = True, ep_overlap: bool = False,
              elementwise: tuple[float, float] = (1.0, 1.0)) -> StepTime:
    """Step time of one training step for (possibly arrays of) layouts with one recompute mode.

    Data-parallel traffic: the gradient all-reduce once per step (ZeRO-0..2), or under ZeRO-3 the parameters
    all-gathered for every micro-batch's forward and backward and its gradients reduce-scattered, 3 (n-1)/n of the
    parameter bytes per micro-batch (Rajbhandari et al. 2020, Sec. 7.2.2; PyTorch FSDP without no_sync).
    Expert all-to-alls split between the scale-up domain and the network; with ``ep_overlap`` (Megatron-Core's
    batch-level overlap) only what exceeds the stage's computation is exposed.
    """
    tp, pp, dp, ep, cp = (np.asarray(x, dtype=float) for x in (tp, pp, dp, ep, cp))
    mb = np.asarray(micro_batch, dtype=float)
    tpcp = tp * cp  # CP splits every token-parallel piece of work (GEMM rows, attention queries) like TP does
    zero = np.asarray(zero, dtype=float)
    m = np.floor(global_batch_seqs / (dp * mb))  # micro-batches per step per pipeline
    layers_per_stage = np.ceil(s.layers / pp)
    t_stage = stage_time_s(s, km, tp=tp, cp=cp, ep=ep, pp=pp, micro_batch=mb, seq=seq, recompute=recompute,
                           dtype_bytes=dtype_bytes, flash=flash, elementwise=elementwise)
    # communication bandwidths (bytes/s): inside the scale-up domain (NVLink/ICI) or across nodes
    up, out = (b * 1e9 for b in link_bandwidths_gb_per_s(accel))
    domain = accel.scaleup_domain or 1
    act_bytes = dtype_bytes * mb * seq * s.d_model / cp  # this GPU's chunk of each sequence
    n_tp_coll = 4 + (2 if recompute == "full" else 0)  # 2 fwd + 2 bwd all-reduces (or AG + RS with SP)
    t_tp = layers_per_stage * n_tp_coll * allreduce_s(act_bytes, tp, np.where(tp <= domain, up, out), km, domain)
    # ring attention (Liu et al. 2023; Megatron-Core CP): K and V pass round the CP ranks, forward (all-gather)
    # and backward (all-gather + reduce-scatter of their gradients); counted as not hidden behind attention
    kv_width = s.heads * (s.qk_head_dim + s.v_dim) if s.is_mla else 2 * s.kv_heads * s.hd
    kv_bytes = dtype_bytes * mb * seq * kv_width / tp
    t_cp = layers_per_stage * 3 * ring_allgather_s(kv_bytes, cp, np.where(tpcp <= domain, up, out))
    v = np.asarray(interleave, dtype=float)
    pp_bw = np.where(tpcp * pp <= domain, up, out)
    t_pp = np.where(pp > 1, 2 * v * act_bytes / tp / pp_bw, 0.0)  # activations fwd, gradients bwd, per virtual stage
    if s.moe_layers:
        tokens_routed = mb * seq * s.experts_per_token / cp
        routed_bytes = dtype_bytes * tokens_routed * s.d_model
        # the EP ranks in this GPU's scale-up domain receive their share over NVLink, the rest over the network,
        # both at once
        local = np.minimum(1.0, domain / (tp * ep))
        a2a = np.maximum(ring_allgather_s(routed_bytes * local, ep, up),
                         ring_allgather_s(routed_bytes * (1.0 - local), ep, out))
        t_ep = layers_per_stage * (s.moe_layers / s.layers) * 4 * a2a / tp
        if ep_overlap:  # batch-level overlap: one micro-batch's all-to-all runs under another's computation
            t_ep = np.maximum(0.0, t_ep - t_stage)
    else:
        t_ep = 0.0 * tp
    per_microbatch = t_stage + t_tp + t_pp + t_ep + t_cp
    # data-parallel gradient synchronisation, once per step, partly hidden behind the backward pass
    pc = param_count(s)
    expert = pc.mlp_experts_total
    params_gpu = ((pc.total - expert) / (tp * pp)) + expert / (tp * pp * ep)
    dp_bw = np.where(tpcp * pp * dp <= domain, up, out)
    # gradients are reduced over every replica of the weights: DP x CP ranks
    zero3 = 3 * np.maximum(m, 1) * ring_allgather_s(params_gpu * 2.0, dp * cp, dp_bw)
    t_dp_raw = np.where(zero >= 3, zero3, ring_allreduce_s(params_gpu * 2.0, dp * cp, dp_bw))
    t_opt = optimizer_step_s(params_gpu, np.where(zero >= 1, dp * cp, 1.0), km.stream_bps)
    return StepTime(compute=m * t_stage, bubble=pipeline_bubble_s(pp, per_microbatch, v), tp_comm=m * t_tp,
                    pp_comm=m * t_pp, dp_comm=t_dp_raw * (1.0 - dp_overlap), cp_comm=m * t_cp, ep_comm=m * t_ep,
                    optimizer=t_opt)


def goodput_corners(params: float, n_gpus: int, failure_rate_per_gpu_hour=None, restart_overhead_hours=None):
    """(goodput, best-case, worst-case goodput, Assumptions) with failures, restarts and Young/Daly checkpoints at
    the documented failure and restart rates (or the user's), from the low/high ends of their documented ranges."""
    from estimator.assumptions import Assumptions, fact

    fr, a_fr = fact("failure_rate_per_gpu_hour", failure_rate_per_gpu_hour)
    rh, a_rh = fact("restart_overhead_hours", restart_overhead_hours)
    ckbw, a_ck = fact("checkpoint_write_bw_gb_per_s")
    ckpt_h = checkpoint_hours(params, ckbw)
    good = float(goodput_fraction(n_gpus, fr, rh, ckpt_h))
    best = float(goodput_fraction(n_gpus, a_fr.low or fr, a_rh.low or rh, ckpt_h))
    worst = float(goodput_fraction(n_gpus, a_fr.high or fr, a_rh.high or rh, ckpt_h))
    return good, best, worst, Assumptions({"failure_rate_per_gpu_hour": a_fr, "restart_overhead_hours": a_rh,
                                           "checkpoint_write_bw_gb_per_s": a_ck})
