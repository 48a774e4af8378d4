"""The serving step model: KV cache, weights read, and the per-kernel roofline of prefill and decode steps.

* A replica is ``tp`` GPUs under tensor parallelism (weights and KV cache split over TP; two
  all-reduces of the activations per layer over the scale-up link).
* Each phase is a roofline per kernel class, with the rates of ``estimator.hardware.kernel_model_for``
  (calibration or documented efficiencies): weight GEMMs take max(FLOPs / GEMM rate, weight bytes / HBM
  rate), the attention core max(FLOPs / attention rate, KV bytes / HBM rate); elementwise traffic, kernel
  launch overheads and TP all-reduces add on. Prefill is compute-bound (2 N_active FLOPs per token plus
  attention over the prompt); decode at small batch is bound by reading the active weights once per step
  plus each sequence's KV cache, and turns compute-bound at large batch.
* MoE: a step reads the weights of the distinct experts its tokens touch, expected
  E (1 - (1 - k/E)^T) per layer for T tokens routed uniformly.
* Kernels run one after another: each kernel's compute and memory time overlap (its roofline max), different
  kernels' do not (their sum).
* Fitted serving constants (``SERVING_CONSTANTS``, hardware_db/assumptions.csv, each with the measured rows it was
  fitted on in ``benchmarks.inference_bench.constant_fit_rows``): the prefill GEMM rate per calibrated GPU, a fixed
  framework cost per forward step, Hopper GQA decode-attention efficiency, MoE expert GEMM efficiency by precision,
  PCIe all-reduce efficiency for GPUs with no GPU-to-GPU link (L40S: its datasheet PCIe bandwidth).
* The default replica: ``with_default_replica`` searches power-of-two TP and batch for the lowest cost or energy per
  output token within the latency targets.

Formulas use plain floats or numpy arrays (units in the names).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from estimator import facility
from estimator.assumptions import Assumptions, one
from estimator.calibration import Calibration
from estimator.errors import EstimatorInputError
from estimator.flops import decode_step_flops, logits_flops, model_forward_flops
from estimator.hardware import KernelModel, link_bandwidths_gb_per_s
from estimator.model import ModelSpec, param_count
from estimator.parallelism import MEMORY_HEADROOM
from estimator.timing import (
    N_ELEMENTWISE_PER_BLOCK,
    N_GEMMS_PER_BLOCK,
    elementwise_bytes_per_token,
    ring_allreduce_s,
)

ACT_BYTES = 2.0  # activations stay in bf16/fp16 whatever the weight format
DECODE_CONTEXT_SAMPLES = 16  # decode step time is averaged over this many points of the growing context
#: Fitted serving constants (hardware_db/assumptions.csv, each with the rows it was fitted on)
SERVING_CONSTANTS = ("prefill_gemm_rate_scale_a100-80gb", "prefill_gemm_rate_scale_h100-sxm", "serving_step_overhead_s",
                     "decode_gqa_attention_efficiency_h100-sxm", "moe_expert_gemm_efficiency_fp16",
                     "moe_expert_gemm_efficiency_fp8", "pcie_allreduce_efficiency")
_OVERRIDES: dict[str, float] = {}


def serving_constant(key: str, default: float | None = None) -> float:
    """A fitted serving constant from hardware_db/assumptions.csv (or a fit's trial value, ``constants_override``);
    ``default`` where the file has no such key."""
    if key in _OVERRIDES:
        return _OVERRIDES[key]
    from estimator.hardware import assumption

    if default is not None and key not in SERVING_CONSTANTS:
        return default
    return float(assumption(key).value)


def prefill_gemm_scale(cal: Calibration | None) -> float:
    """Rate multiplier on a calibration's GEMM times in prefill (large token counts), fitted per calibrated GPU
    (``prefill_gemm_rate_scale_<gpu>``); 1 without a calibration or a fitted figure."""
    if cal is None or not cal.accelerator_id:
        return 1.0
    return serving_constant(f"prefill_gemm_rate_scale_{cal.accelerator_id}", 1.0)


class constants_override:  # noqa: N801 - used as a context manager
    """Trial values of the fitted serving constants, for refitting them (``benchmarks.inference_bench``)."""

    def __init__(self, **values: float) -> None:
        self.values, self.saved = values, dict(_OVERRIDES)

    def __enter__(self) -> None:
        _OVERRIDES.update(self.values)

    def __exit__(self, *exc: object) -> None:
        _OVERRIDES.clear()
        _OVERRIDES.update(self.saved)


@functools.cache
def pcie_bw_gb_per_s(accel_id: str) -> float | None:
    """Unidirectional PCIe bandwidth of a GPU with no scale-up link (hardware_db/accelerators.csv, sourced)."""
    import csv
    import io
    from importlib.resources import files

    text = (files("hardware_db") / "accelerators.csv").read_text()
    for row in csv.DictReader(io.StringIO(text)):
        if row["id"] == accel_id and row.get("pcie_bw_gb_per_s"):
            return float(row["pcie_bw_gb_per_s"])
    return None


# --------------------------------------------------------------------------- shape arithmetic

def kv_bytes_per_token(s: ModelSpec, kv_bytes: float = 2.0) -> float:
    """KV-cache bytes one token occupies over all layers (whole model, before any TP split).

    MHA/GQA/MQA: K and V of ``kv_heads`` heads of ``head_dim`` per layer -> 2 x kv_heads x hd x bytes.
    MLA (DeepSeek-V2/V3): the compressed latent plus the decoupled RoPE key per layer ->
    (kv_lora_rank + qk_rope_head_dim) x bytes (DeepSeek-V2 paper, Sec. 2.1.2 and Table 1).
    """
    per_layer = (s.kv_lora_rank + s.qk_rope_head_dim) if s.is_mla else 2 * s.kv_heads * s.hd
    return float(per_layer * s.layers * kv_bytes)


def kv_shard_fraction(s: ModelSpec, tp: int) -> float:
    """Fraction of a token's KV cache that one of ``tp`` GPUs holds.

    KV heads are split over TP; with fewer KV heads than GPUs each GPU keeps a copy of one head
    (as vLLM does). The MLA latent is shared by all heads, so every TP rank keeps all of it.
    """
    if s.is_mla:
        return 1.0
    return max(1.0 / tp, 1.0 / s.kv_heads) if tp > 1 else 1.0


def expected_experts_touched(experts: int, experts_per_token: int, tokens: Any) -> Any:
    """Expected distinct routed experts hit by ``tokens`` tokens choosing k of E uniformly: E (1 - (1 - k/E)^T)."""
    if experts <= 1:
        return float(experts)
    return experts * (1.0 - (1.0 - experts_per_token / experts) ** np.asarray(tokens, dtype=float))


def weight_bytes_read(s: ModelSpec, tokens, weight_bytes: float):
    """Weight bytes one forward step over ``tokens`` tokens reads from HBM (whole model, before TP).

    Every non-expert matrix once, the LM head once (the embedding table is a lookup of a few rows),
    and for MoE layers the shared experts plus the expected distinct routed experts touched.
    """
    pc = param_count(s)
    dense: Any = pc.attention + pc.mlp_dense + pc.router + pc.norms + pc.other + s.vocab * s.d_model
    if s.is_moe:
        one = pc.mlp_experts_total / ((s.experts + s.shared_experts) * s.moe_layers)
        touched = expected_experts_touched(s.experts, s.experts_per_token, tokens) + s.shared_experts
        dense = dense + one * touched * s.moe_layers
    return dense * weight_bytes


def weight_bytes_stored(s: ModelSpec, weight_bytes: float) -> float:
    """Bytes of all weights (every expert, embedding and LM head) of one model copy."""
    return param_count(s).total * weight_bytes


# --------------------------------------------------------------------------- phase roofline

@dataclass(frozen=True)
class PhaseTime:
    """Seconds of one forward step on one GPU of the replica, by part (floats or arrays)."""

    gemm_compute: Any
    weight_read: Any
    attn_compute: Any
    kv_read: Any
    elementwise: Any
    overhead: Any
    tp_comm: Any
    flops_per_gpu: Any  # FLOPs one GPU performs in the step
    gemm_time: Any = None  # calibrated per-GEMM roofline (weight reads included); None: max(compute, weight read)
    hbm_bytes: Any = 0.0  # bytes one GPU moves to or from HBM in the step (weights, KV, activations)

    @property
    def compute(self):
        """Time the step would take if only FLOPs mattered."""
        return self.gemm_compute + self.attn_compute

    @property
    def memory(self):
        """Time the step would take if only HBM traffic mattered."""
        return self.weight_read + self.kv_read + self.elementwise

    @property
    def total(self):
        """Per-kernel roofline: max(compute, memory) for GEMMs and attention, plus the rest."""
        gemm = np.maximum(self.gemm_compute, self.weight_read) if self.gemm_time is None else self.gemm_time
        return gemm + np.maximum(self.attn_compute, self.kv_read) + self.elementwise + self.overhead + self.tp_comm

    @property
    def bound(self) -> str:
        """'compute' or 'memory': which of the two a step's time is nearer to."""
        return "compute" if float(np.mean(self.compute)) >= float(np.mean(self.memory)) else "memory"


def _tp_allreduce_s(s: ModelSpec, tokens, tp: int, accel, cal: Calibration | None, km: KernelModel):
    """Two all-reduces per layer of ``tokens`` x d_model activations across TP (Megatron TP)."""
    if tp <= 1:
        return 0.0 * np.asarray(tokens, dtype=float)
    buf = ACT_BYTES * np.asarray(tokens, dtype=float) * s.d_model
    if km.allreduce and tp <= (accel.scaleup_domain or 1):
        from estimator.timing import allreduce_s

        up = link_bandwidths_gb_per_s(accel)[0] * 1e9
        return 2 * s.layers * allreduce_s(buf, tp, up, km, accel.scaleup_domain or 1)
    pcie = pcie_bw_gb_per_s(accel.id) if (accel.scaleup_domain or 1) <= 1 else None
    if pcie is not None:  # no GPU-to-GPU link: a ring over PCIe at the fitted fraction of its bandwidth
        bw = pcie * 1e9 * serving_constant("pcie_allreduce_efficiency")
        return 2 * s.layers * (ring_allreduce_s(buf, tp, bw) + km.mem_overhead_s)
    ar = (cal.collectives.get("all_reduce") if cal is not None else None) or {}
    if ar.get("bus_bytes_per_s"):
        bw, lat = float(ar["bus_bytes_per_s"]), float(ar.get("latency_s", km.mem_overhead_s))
    else:
        up, out = link_bandwidths_gb_per_s(accel)
        bw, lat = (up if tp <= (accel.scaleup_domain or 1) else out) * 1e9, km.mem_overhead_s
    one = ring_allreduce_s(buf, tp, bw) + lat
    return 2 * s.layers * one


def _elementwise_bytes(s: ModelSpec, tokens) -> Any:
    dense = s.layers - s.moe_layers
    per_tok = dense * elementwise_bytes_per_token(s, False, ACT_BYTES)
    if s.moe_layers:
        per_tok += s.moe_layers * elementwise_bytes_per_token(s, True, ACT_BYTES)
    return per_tok * np.asarray(tokens, dtype=float)


def _overhead_s(s: ModelSpec, km: KernelModel) -> float:
    """Launch overheads of one forward pass: per layer the GEMMs, the attention kernel, the elementwise kernels."""
    gemm_o = 0.0 if km.gemm is not None else km.gemm_overhead_s  # the calibrated GEMM times include theirs
    per_layer = N_GEMMS_PER_BLOCK * gemm_o + km.attn_overhead_s + N_ELEMENTWISE_PER_BLOCK * km.mem_overhead_s
    # + LM head and sampling, + the serving framework's fixed cost per forward step (scheduling, sampling, host sync)
    return s.layers * per_layer + gemm_o + km.mem_overhead_s + serving_constant("serving_step_overhead_s")


def gemm_step_s(s: ModelSpec, batch, seq, km: KernelModel, *, tp: int, weight_bytes: float):
    """Calibrated GEMM time of one forward step (every block's GEMMs plus the LM head for ``batch`` tokens), or
    None without a calibrated GEMM model. Weight reads are part of each GEMM's roofline."""
    if km.gemm is None:
        return None
    from estimator.kernels import gemm_time_s
    from estimator.timing import gemm_forward_s

    kw = dict(tp=tp, dtype_bytes=weight_bytes)
    t = (s.layers - s.moe_layers) * gemm_forward_s(s, batch, seq, km, moe_layer=False, **kw)
    if s.moe_layers:  # expert GEMMs (grouped, many small matrices) at their own fitted efficiency
        eff = serving_constant("moe_expert_gemm_efficiency_fp8" if weight_bytes == 1.0 else
                               "moe_expert_gemm_efficiency_fp16")  # fp4 / int4 take the 16-bit figure (no data)
        t = t + s.moe_layers * gemm_forward_s(s, batch, seq, km, moe_layer=True, **kw) / eff
    return t + gemm_time_s(batch, s.vocab / tp, s.d_model, km.gemm, weight_bytes)


def gqa_kv_read_factor(s: ModelSpec, tp: int, cal: Calibration | None) -> float:
    """Decode attention time over grouped KV heads (GQA) relative to streaming the KV cache once at the memory
    rate: 1 / e, e = ``decode_gqa_attention_efficiency_<gpu>`` fitted per calibrated GPU (1 where none is fitted).
    MHA and MLA: 1."""
    if s.is_mla or s.kv_heads >= s.heads or cal is None or not cal.accelerator_id:
        return 1.0
    return 1.0 / serving_constant(f"decode_gqa_attention_efficiency_{cal.accelerator_id}", 1.0)


def _scaled(t, rate_scale: float):
    """A calibrated GEMM time at ``rate_scale`` times the calibrated rate (None stays None)."""
    return None if t is None else t / rate_scale


def _weight_read_bps(km: KernelModel) -> float:
    """Bytes/s at which weights stream: the calibrated GEMMs' byte rate, else the memory rate."""
    return km.gemm.bytes_per_s if km.gemm is not None and np.isfinite(km.gemm.bytes_per_s) else km.mem_bytes_per_s


def prefill_time(s: ModelSpec, batch: int, prompt: int, km: KernelModel, *, tp: int = 1, weight_bytes: float = 2.0,
                 kv_bytes: float = 2.0, accel=None, cal: Calibration | None = None) -> PhaseTime:
    """One GPU's time to prefill ``batch`` prompts of ``prompt`` tokens (logits for the last token only)."""
    f = model_forward_flops(s, batch, prompt, include_logits=False)
    head = logits_flops(s, batch)
    tokens = batch * prompt
    kv_write = kv_bytes_per_token(s, kv_bytes) * kv_shard_fraction(s, tp) * tokens
    return PhaseTime(
        gemm_compute=(f.matmul + head) / tp / km.gemm_flops_per_s,
        weight_read=weight_bytes_read(s, tokens, weight_bytes) / tp / _weight_read_bps(km),
        attn_compute=f.attn_core / tp / km.attn_flops_per_s,
        kv_read=kv_write / km.stream_bps,
        elementwise=_elementwise_bytes(s, tokens) / tp / km.mem_bytes_per_s,
        overhead=_overhead_s(s, km),
        tp_comm=_tp_allreduce_s(s, tokens, tp, accel, cal, km) if accel is not None else 0.0,
        flops_per_gpu=(f.total + head) / tp,
        gemm_time=_scaled(gemm_step_s(s, batch, prompt, km, tp=tp, weight_bytes=weight_bytes), prefill_gemm_scale(cal)),
        hbm_bytes=(weight_bytes_read(s, tokens, weight_bytes) + _elementwise_bytes(s, tokens)) / tp + kv_write,
    )


def decode_time(s: ModelSpec, batch: int, context, km: KernelModel, *, tp: int = 1, weight_bytes: float = 2.0,
                kv_bytes: float = 2.0, accel=None, cal: Calibration | None = None) -> PhaseTime:
    """One GPU's time for one decode step of ``batch`` sequences whose KV caches hold ``context`` tokens."""
    ctx = np.asarray(context, dtype=float)
    f = decode_step_flops(s, batch, ctx)
    kv = kv_bytes_per_token(s, kv_bytes) * kv_shard_fraction(s, tp) * batch * (ctx + 1) * gqa_kv_read_factor(s, tp, cal)
    return PhaseTime(
        gemm_compute=f.matmul / tp / km.gemm_flops_per_s,
        weight_read=weight_bytes_read(s, batch, weight_bytes) / tp / _weight_read_bps(km) + 0.0 * ctx,
        attn_compute=f.attn_core / tp / km.attn_flops_per_s,
        kv_read=kv / km.stream_bps,
        elementwise=_elementwise_bytes(s, batch) / tp / km.mem_bytes_per_s + 0.0 * ctx,
        overhead=_overhead_s(s, km) + 0.0 * ctx,
        tp_comm=(_tp_allreduce_s(s, batch, tp, accel, cal, km) if accel is not None else 0.0) + 0.0 * ctx,
        flops_per_gpu=f.total / tp,
        gemm_time=(None if km.gemm is None else
                   gemm_step_s(s, batch, 1, km, tp=tp, weight_bytes=weight_bytes) + 0.0 * ctx),
        hbm_bytes=(weight_bytes_read(s, batch, weight_bytes) + _elementwise_bytes(s, batch)) / tp + kv,
    )


def decode_contexts(prompt: int, generated: int, n: int = DECODE_CONTEXT_SAMPLES) -> np.ndarray:
    """Context lengths at which to sample decode steps: midpoints of ``n`` equal slices of the generation."""
    steps = max(generated - 1, 0)
    if steps == 0:
        return np.array([float(prompt)])
    k = min(n, steps)
    return prompt + (np.arange(k) + 0.5) * steps / k


def max_batch_that_fits(s: ModelSpec, tp: int, capacity_gb: float, tokens_per_seq: int, weight_bytes: float,
                        kv_bytes: float) -> int:
    """Most sequences of ``tokens_per_seq`` whose KV cache fits on each GPU beside its weight shard.

    Usable memory is ``MEMORY_HEADROOM`` of the HBM (allocator, activations workspace, NCCL buffers).
    """
    free = capacity_gb * 1e9 * MEMORY_HEADROOM - weight_bytes_stored(s, weight_bytes) / tp
    per_seq = kv_bytes_per_token(s, kv_bytes) * kv_shard_fraction(s, tp) * tokens_per_seq
    return int(max(free, 0.0) // per_seq)


def fewest_gpus_that_fit(spec: ModelSpec, accel, ctx: int, wb: float, kvb: float) -> int:
    """Fewest GPUs (any count) that hold the weights plus one sequence's KV cache."""
    for tp in range(1, 4097):
        if max_batch_that_fits(spec, tp, accel.memory_bytes / 1e9, ctx, wb, kvb) >= 1:
            return tp
    return 4097


def hbm_utilisation(nbytes, t: float, accel) -> float:
    """HBM bandwidth utilisation of a step: bytes moved / step time / datasheet bandwidth (at most 1)."""
    return min(1.0, float(nbytes) / t / (accel.memory_bw_gb_per_s * 1e9))


def scheduling_assumption(batching: str | None) -> Assumptions:
    """How TTFT and TPOT follow from the step times under the scheduler (``--batching``)."""
    if batching == "static":
        return one("batching", "static", "", "the whole batch is prefilled together, then decoded together "
                   "(TensorRT-LLM gptSessionBenchmark): TTFT = the batch's prefill, TPOT = one decode step")
    return one("batching", "continuous", "", ("default (pass --batching static for whole-batch runs): " if
                                              batching is None else "") +
               "in-flight batching as vLLM and TensorRT-LLM serve: TTFT = prefill of one request's prompt (no "
               "queueing); TPOT = a decode step plus the other requests' prefills interleaved over the generation")


MAX_SEARCH_TP = 64  # largest tensor-parallel replica the default search tries
FAR_FROM_BEST = 1.5  # a forced replica this many times the best cost (energy) per output token is warned about


def _objective(d: dict, optimise: str) -> float:
    """Energy (J) or cost per output token; without a price, GPU-seconds per output token stand in for cost."""
    if optimise == "energy":
        return float(d["energy_per_output_token_j"])
    usd = d.get("cost_per_million_output_tokens_usd")
    return float(usd) if usd else 1.0 / float(d["tokens_per_second_per_gpu"])


def _candidates(cfg: Any, estimate) -> list:
    """Every (power-of-two TP, power-of-two or largest batch) that fits, as estimates (forced values kept)."""
    tps = [cfg.gpus_per_replica] if cfg.gpus_per_replica else [2**i for i in range(7) if 2**i <= MAX_SEARCH_TP]
    out = []
    for tp in tps:
        try:
            first = estimate(replace(cfg, gpus_per_replica=tp, batch=cfg.batch or 1))
        except EstimatorInputError:
            continue
        mb = first.max_batch
        batches = [cfg.batch] if cfg.batch else sorted({*(2**i for i in range(21) if 2**i < mb), mb})
        out += [first] + [estimate(replace(cfg, gpus_per_replica=tp, batch=b)) for b in batches
                          if b != first.batch]
    return out


def _search(cfg: Any, estimate, optimise: str, ttft: float, tpot: float) -> tuple:
    """(best candidate, whether it meets the targets, candidates) over the sizes and batches ``cfg`` leaves open."""
    cands = _candidates(cfg, estimate)
    if not cands:
        return None, False, 0
    best, met = _best(cands, optimise, ttft, tpot)
    return best, met, len(cands)


_search_cached = functools.lru_cache(maxsize=64)(_search)


def _cached_search(cfg: Any, estimate, optimise: str, ttft: float, tpot: float) -> tuple:
    """``_search``, cached by the (frozen) config: a forced choice's check and the dashboard's sweeps repeat it.
    Unhashable inputs (a calibration object) are searched uncached."""
    try:
        return _search_cached(cfg, estimate, optimise, ttft, tpot)
    except TypeError:
        return _search(cfg, estimate, optimise, ttft, tpot)


def _best(cands: list, optimise: str, ttft: float, tpot: float):
    """The candidate with the lowest objective among those within both latency targets, and whether any was."""
    ok = [e for e in cands if e.ttft.m_as("ms") <= ttft and e.tpot.m_as("ms") <= tpot]
    if ok:
        return min(ok, key=lambda e: _objective(e.to_dict(), optimise)), True
    return min(cands, key=lambda e: max(e.ttft.m_as("ms") / ttft, e.tpot.m_as("ms") / tpot)), False


def with_default_replica(cfg: Any, estimate):
    """``estimate(cfg)`` where batch and GPUs per replica are set; where either is not, the replica size and batch
    that minimise cost (or energy, ``cfg.optimise``) per output token within the TTFT / TPOT targets, with the
    choice and its reason in ``replica_choice``. A forced choice far from the best is warned about."""
    from estimator.config import DEFAULT_TPOT_SLO_MS, DEFAULT_TTFT_SLO_MS

    opt = cfg.optimise or "cost"
    ttft, tpot = cfg.ttft_slo_ms or DEFAULT_TTFT_SLO_MS, cfg.tpot_slo_ms or DEFAULT_TPOT_SLO_MS
    if cfg.batch is not None and cfg.gpus_per_replica is not None:  # forced: estimate it, warn if far from best
        got = estimate(cfg)  # raises the fit error of a forced choice that does not fit
        best = _cached_search(replace(cfg, batch=None, gpus_per_replica=None), estimate, opt, ttft, tpot)[0]
        if best is None:
            return got
        ratio = _objective(got.to_dict(), opt) / _objective(best.to_dict(), opt)
        warn = (f"{got.gpus_per_replica} GPUs per replica at batch {got.batch} is {ratio:.1f}x the {opt} per output "
                f"token of the best choice within the latency targets ({best.gpus_per_replica} GPUs, batch "
                f"{best.batch}; drop --batch / --gpus-per-replica to use it)",) if ratio > FAR_FROM_BEST else ()
        return replace(got, warnings=got.warnings + warn)
    best, met, n = _cached_search(cfg, estimate, opt, ttft, tpot)
    if best is None:
        return estimate(cfg)  # nothing fits: the plain estimate says why
    chosen = best
    why = (f"lowest {opt} per output token of {n} fitting (GPUs per replica, batch) pairs within TTFT <= "
           f"{ttft:g} ms and TPOT <= {tpot:g} ms" if met else
           f"no fitting pair meets TTFT <= {ttft:g} ms and TPOT <= {tpot:g} ms: the one nearest the targets")
    rec = (one("gpus_per_replica", chosen.gpus_per_replica, "GPU", f"chosen: {why} (pass --gpus-per-replica)")
           | one("batch", chosen.batch, "sequence", f"chosen: {why} (pass --batch)")
           | one("ttft_slo_ms", ttft, "ms", "default: MLPerf Inference Llama 2 70B server TTFT target (pass "
                 "--ttft-slo-ms)" if cfg.ttft_slo_ms is None else "user input")
           | one("tpot_slo_ms", tpot, "ms", "default: MLPerf Inference Llama 2 70B server TPOT target (pass "
                 "--tpot-slo-ms)" if cfg.tpot_slo_ms is None else "user input"))
    choice = {"gpus_per_replica": chosen.gpus_per_replica, "batch": chosen.batch, "optimise": opt,
              "ttft_slo_ms": ttft, "tpot_slo_ms": tpot, "met_targets": met, "candidates": n, "why": why}
    warn = () if met else (f"no replica size and batch meets TTFT <= {ttft:g} ms and TPOT <= {tpot:g} ms",)
    return replace(chosen, assumptions={**chosen.assumptions, **rec}, replica_choice=choice,
                   warnings=chosen.warnings + warn, config=cfg.to_dict())


def fleet_size(queries_per_day: float, peak_to_average: float, queries_per_s_per_replica: float, gpus_per_replica: int,
               idle_w: float, operating_w: float, host_w: float, pue: float, grid_g_per_kwh: float,
               usd_per_gpu_hour: float | None) -> dict:
    """Replicas for the peak load, and the year's average power, energy, CO2e and rental cost.

    Replicas = ceil(peak queries/s / queries/s per replica), peak = average x ``peak_to_average``.
    GPUs run at ``operating_w`` a fraction (average load / capacity) of the time and idle otherwise;
    rental is paid for every provisioned GPU all year.
    """
    avg_qps = queries_per_day / 86400.0
    replicas = max(1, math.ceil(avg_qps * peak_to_average / queries_per_s_per_replica))
    gpus = replicas * gpus_per_replica
    duty = avg_qps / (replicas * queries_per_s_per_replica)
    gpu_w = float(facility.gpu_average_power_w(idle_w, operating_w, duty))
    fac_w = float(facility.facility_power_w(gpu_w, host_w, gpus, pue))
    mwh = facility.energy_mwh(fac_w, facility.HOURS_PER_YEAR)
    return {"queries_per_day": queries_per_day, "peak_to_average": peak_to_average, "replicas": replicas,
            "gpus": gpus, "utilisation": duty, "gpu_avg_power_w": gpu_w, "avg_power_mw": fac_w / 1e6,
            "annual_energy_mwh": mwh, "annual_co2e_tonnes": facility.operational_co2e_t(mwh, grid_g_per_kwh),
            "annual_cost_usd": None if usd_per_gpu_hour is None else facility.cloud_cost_usd(
                gpus * facility.HOURS_PER_YEAR, usd_per_gpu_hour)}


FLEET_RANGE_KEYS = ("replicas", "gpus", "avg_power_mw", "annual_energy_mwh", "annual_co2e_tonnes", "annual_cost_usd")


def fleet_with_ranges(queries_per_day: float, peak_to_average: float, qps: float, tp: int, pm: Any, gpu_w: float,
                      site: Any, grid: Any, price: Any, rel: float) -> dict:
    """``fleet_size`` at the central inputs, with ``ranges``: low/high of GPUs, MW, MWh/yr, tCO2e/yr and $/yr from
    the corners of the time uncertainty ``rel`` (queries/s per replica x (1 + rel) or / (1 + rel)), the busy power,
    PUE, grid-intensity and price ranges."""
    usd_h = price.usd_per_gpu_hour

    def at(fast: float, busy: float, pue: float, g: float, usd: float | None) -> dict:
        span = pm.busy_w - pm.idle_w
        w = pm.idle_w + (gpu_w - pm.idle_w) * ((busy - pm.idle_w) / span if span > 0 else 1.0)
        return fleet_size(queries_per_day, peak_to_average, qps / fast, tp, pm.idle_w, w, site.host_w, pue, g, usd)

    fl = fleet_size(queries_per_day, peak_to_average, qps, tp, pm.idle_w, gpu_w, site.host_w, site.pue,
                    grid.g_per_kwh, usd_h)
    lo = at(1.0 / (1.0 + rel), pm.busy_low, site.pue_low, grid.low, None if usd_h is None else price.low)
    hi = at(1.0 + rel, pm.busy_high, site.pue_high, grid.high, None if usd_h is None else price.high)
    fl["ranges"] = {k: (None if fl[k] is None else [min(lo[k], hi[k], fl[k]), max(lo[k], hi[k], fl[k])])
                    for k in FLEET_RANGE_KEYS}
    return fl


def phase_dict(pt: PhaseTime, t: float, u: float, w: float, extra: dict | None = None) -> dict:
    """Mean seconds by part of one step of a phase, its bound, compute utilisation and GPU power (and ``extra``)."""

    def mean(x) -> float:
        return float(np.mean(x))

    return {"step_time_s": t, "bound": pt.bound, "compute_s": mean(pt.compute), "memory_s": mean(pt.memory),
            "gemm_compute_s": mean(pt.gemm_compute), "weight_read_s": mean(pt.weight_read),
            "attn_compute_s": mean(pt.attn_compute), "kv_s": mean(pt.kv_read), "elementwise_s": mean(pt.elementwise),
            "overhead_s": mean(pt.overhead), "tp_comm_s": mean(pt.tp_comm), "compute_utilisation": u,
            "gpu_power_w": w, **(extra or {})}
