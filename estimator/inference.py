"""``estimate_inference``: what serving a model costs per token, per query and for a fleet.

``--batching continuous`` (default; vLLM, TensorRT-LLM in-flight): TTFT is a request's own prefill, TPOT a decode
step plus the other requests' prefills interleaved; ``static`` (gptSessionBenchmark): the batch is prefilled together
(TTFT = ``prefill_batch_ms``). Throughput and energy count every step. With no batch / replica size, the pair that
minimises cost (or energy) per output token within the TTFT/TPOT targets is chosen (``serving.with_default_replica``).

GPU power per phase: the calibration's P(u), else idle + (busy - idle) x min(1, u / u_ref + s x m), u = achieved /
peak FLOP/s, m = HBM bandwidth used; s fitted on measured A100 decode power, idle measured (hardware_db/assumptions.csv;
batch-1 decode draws about half of TDP: 363-414 W on a 700 W H100). Step times: ``estimator.serving``.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from estimator import facility
from estimator.assumptions import Assumptions, one
from estimator.config import KV_PRECISIONS, WEIGHT_PRECISIONS, ServingConfig
from estimator.errors import EstimatorInputError
from estimator.hardware import DEFAULT_GPU, Rates, accelerator, peak_flops, resolve_rates, serving_compute_precision
from estimator.memory import GB
from estimator.model import ModelSpec, param_count
from estimator.ranges import efficiency_rel, serving_ranges
from estimator.resolve import resolve_model, shape_note
from estimator.results import INFERENCE_HEADLINE, InferenceEstimate
from estimator.serving import (
    PhaseTime,
    decode_contexts,
    decode_time,
    expected_experts_touched,
    fewest_gpus_that_fit,
    fleet_size,
    fleet_with_ranges,
    hbm_utilisation,
    kv_bytes_per_token,
    kv_shard_fraction,
    max_batch_that_fits,
    phase_dict,
    prefill_time,
    scheduling_assumption,
    weight_bytes_read,
    weight_bytes_stored,
    with_default_replica,
)

__all__ = ["DEFAULT_GPU", "INFERENCE_HEADLINE", "InferenceEstimate", "ServingConfig", "compare_models",
           "decode_time", "estimate_inference", "expected_experts_touched", "fleet_size", "kv_bytes_per_token",
           "kv_shard_fraction", "max_batch_that_fits", "prefill_time", "weight_bytes_read", "weight_bytes_stored"]
DEFAULT_BATCH = 64
DEFAULT_PEAK_TO_AVERAGE = 2.0
PEAK_TO_AVERAGE_SOURCE = ("ASSUMPTION: peak hourly load about twice the daily average, a common capacity-planning "
                          "rule of thumb for diurnal user traffic (no primary source read); pass --peak-to-average")
MAX_TP = 64


@dataclass(frozen=True)
class Replica:
    """Model, GPU, precisions, rates and the replica's size and batch."""

    spec: ModelSpec
    accel: Any
    wp: str
    kvp: str
    cp: str
    wb: float
    kvb: float
    peak: float
    rates: Rates
    tp: int
    batch: int
    max_batch: int


def _setup(cfg: ServingConfig) -> tuple[ModelSpec, Any, tuple[str, str, str], Rates, Assumptions, list[str]]:
    """Model, accelerator, weight / KV / GEMM precisions and kernel rates."""
    spec, notes = resolve_model(cfg.model, cfg.params, cfg.active_params, cfg.experts, cfg.experts_per_token,
                                cfg.seq_len, cfg.shape_overrides())
    ctx = cfg.prompt_tokens + cfg.output_tokens + cfg.reasoning_tokens
    if ctx > spec.seq_len:
        notes.append(f"prompt + generated tokens ({ctx:,}) exceed the model's context length ({spec.seq_len:,})")
    accel = accelerator(cfg.gpu)
    rec = Assumptions(shape_note(spec))
    if cfg.gpu is None:
        rec = rec | one("gpu", accel.id, "", "default GPU (pass --gpu)")
    half = accel.default_precision()
    wp, kvp = cfg.weight_precision or half, cfg.kv_precision or half
    if cfg.weight_precision is None:
        rec = rec | one("weight_precision", wp, "", "default: 16-bit weights (pass --weight-precision)")
    if cfg.kv_precision is None:
        rec = rec | one("kv_precision", kvp, "", "default: 16-bit KV cache (pass --kv-precision)")
    cp, why = serving_compute_precision(accel, wp)
    if wp == "fp4" and "fp4" in accel.peak_tflops:  # Blackwell: fp4 tensor cores (hardware_db fp4 dense peak)
        cp, why = "fp4", f"fp4 weights with fp4 tensor-core GEMMs ({accel.peak_tflops['fp4']:g} TFLOP/s dense peak)"
    rates = resolve_rates(accel, cp, cfg.calibration, cfg.force_calibration)
    rec = rec | one("compute_precision", cp, "", why) | one("kernel_rates", rates.kernel.source, "", rates.source)
    return spec, accel, (wp, kvp, cp), rates, rec, notes + list(rates.warnings)


def _replica(cfg: ServingConfig) -> tuple[Replica, Assumptions, list[str]]:
    """The replica size (smallest power-of-two TP that holds the weights and batch) and the batch."""
    spec, accel, (wp, kvp, cp), rates, rec, warnings = _setup(cfg)
    wb, kvb = WEIGHT_PRECISIONS[wp], KV_PRECISIONS[kvp]
    ctx = cfg.prompt_tokens + cfg.output_tokens + cfg.reasoning_tokens
    gb = weight_bytes_stored(spec, wb) / GB
    tp = cfg.gpus_per_replica
    if tp is None:
        cap = accel.memory_bytes / 1e9
        tp = next((t for t in (2**i for i in range(7))
                   if max_batch_that_fits(spec, t, cap, ctx, wb, kvb) >= (cfg.batch or 1)), None)
        if tp is None:
            raise EstimatorInputError(
                f"the model does not fit in {MAX_TP} x {accel.id} even at batch {cfg.batch or 1}: it needs about "
                f"{fewest_gpus_that_fit(spec, accel, ctx, wb, kvb)} GPUs ({gb:,.0f} GB of {wp} weights)",
                "use a lower --weight-precision, a GPU with more memory, or fewer tokens per request")
        rec = rec | one("gpus_per_replica", tp, "GPU", "default: smallest power-of-two tensor-parallel group that "
                        f"holds the weights and batch {cfg.batch or 1} (pass --gpus-per-replica)")
    if tp > (accel.scaleup_domain or 1):
        warnings.append(f"--gpus-per-replica {tp} exceeds the {accel.id} scale-up domain ({accel.scaleup_domain}): "
                        "TP all-reduces cross the slower scale-out network")
    if spec.heads % tp:
        warnings.append(f"{spec.heads} attention heads do not divide evenly over {tp} GPUs")
    mb = max_batch_that_fits(spec, tp, accel.memory_bytes / 1e9, ctx, wb, kvb)
    if mb < 1:
        need = fewest_gpus_that_fit(spec, accel, ctx, wb, kvb)
        raise EstimatorInputError(
            f"the model does not fit on {tp} x {accel.id} even at batch 1 ({gb:,.0f} GB of {wp} weights + KV cache "
            f"for {ctx:,} tokens); it needs at least {need} GPUs",
            f"pass --gpus-per-replica {need} or more, or a lower --weight-precision")
    b = cfg.batch if cfg.batch is not None else min(DEFAULT_BATCH, mb)
    if cfg.batch is None:
        rec = rec | one("batch", b, "sequence", f"default: {DEFAULT_BATCH} concurrent requests, or the most that "
                        "fit (pass --batch)")
    elif b > mb:
        raise EstimatorInputError(
            f"--batch {b} does not fit: at most {mb} sequences of {ctx:,} tokens fit beside the weights on {tp} x "
            f"{accel.id}", f"pass --batch {mb} or less, more --gpus-per-replica, or --kv-precision fp8")
    rec = rec | one("memory_capacity_gb", round(accel.memory_bytes / 1e9, 2), "GB", accel.memory_bytes_source)
    return (Replica(spec, accel, wp, kvp, cp, wb, kvb, peak_flops(accel, cp), rates, tp, b, mb), rec, warnings)


@dataclass(frozen=True)
class Phases:
    """Prefill of the batch, decode steps sampled over the growing context, and the cycle's times."""

    pre: PhaseTime
    dec: PhaseTime
    contexts: Any
    t_pre: float
    t_ttft: float
    t_step: float
    n_steps: int
    t_cycle: float
    t_dec: float  # one decode step alone (t_step adds the interleaved prefills under continuous batching)
    u_pre: float
    u_dec: float
    m_pre: float  # HBM bandwidth utilisation of the prefill step
    m_dec: float  # ... of the mean decode step


def _phases(cfg: ServingConfig, r: Replica) -> Phases:
    """Step times of prefill and decode on one GPU of the replica, their utilisation and memory-streaming share."""
    km, gen = r.rates.kernel, cfg.output_tokens + cfg.reasoning_tokens
    kw = dict(tp=r.tp, weight_bytes=r.wb, kv_bytes=r.kvb, accel=r.accel, cal=r.rates.calibration)
    pre = prefill_time(r.spec, r.batch, cfg.prompt_tokens, km, **kw)  # type: ignore[arg-type]
    ctxs = decode_contexts(cfg.prompt_tokens, gen)
    dec = decode_time(r.spec, r.batch, ctxs, km, **kw)  # type: ignore[arg-type]
    t_pre, t_dec = float(pre.total), float(np.mean(dec.total))
    t_cycle = t_pre + (gen - 1) * t_dec
    if cfg.batching == "static":  # the whole batch is prefilled together, then decoded together
        t_ttft, t_step = t_pre, t_dec
    else:  # a request's own prefill; its decode steps also carry the other requests' interleaved prefills
        t_ttft = float(prefill_time(r.spec, 1, cfg.prompt_tokens, km, **kw).total)  # type: ignore[arg-type]
        t_step = t_dec + max(t_pre - t_ttft, 0.0) / max(gen - 1, 1) if gen > 1 else t_dec
    return Phases(pre, dec, ctxs, t_pre, t_ttft, t_step, gen - 1, t_cycle, t_dec,
                  float(pre.flops_per_gpu) / t_pre / r.peak, float(np.mean(dec.flops_per_gpu)) / t_dec / r.peak,
                  hbm_utilisation(pre.hbm_bytes, t_pre, r.accel),
                  hbm_utilisation(np.mean(dec.hbm_bytes), t_dec, r.accel))


def _fleet(cfg: ServingConfig, r: Replica, qps: float, pm: facility.PowerModel, gpu_w: float, site, grid, price,
           rel: float):
    """Replicas, GPUs, power, energy, CO2e and cost of serving ``queries_per_day``, with ranges (None without a
    load)."""
    if cfg.queries_per_day is None:
        return None, Assumptions(), []
    pta, rec = cfg.peak_to_average, Assumptions()
    if pta is None:
        pta = DEFAULT_PEAK_TO_AVERAGE
        rec = one("peak_to_average", pta, "ratio", PEAK_TO_AVERAGE_SOURCE)
    fl = fleet_with_ranges(cfg.queries_per_day, pta, qps, r.tp, pm, gpu_w, site, grid, price, rel)
    emb = facility.embodied(r.accel)
    fl["annual_embodied_co2e_tonnes"] = emb.tonnes(fl["gpus"], facility.HOURS_PER_YEAR)
    return fl, rec | emb.assumptions, list(emb.warnings)


def estimate_inference(model: ModelSpec | str | ServingConfig | None = None, **inputs: Any) -> InferenceEstimate:
    """Estimate serving a model from a ``ServingConfig`` (or its fields as keywords): latency, throughput, power,
    energy, CO2e and dollars per token and query; ``queries_per_day`` adds a fleet. Every defaulted input is
    recorded in ``assumptions`` with its source."""
    cfg = model if isinstance(model, ServingConfig) else ServingConfig(model=model, **inputs)  # type: ignore[arg-type]
    return with_default_replica(cfg, estimate_replica)


def estimate_replica(cfg: ServingConfig) -> InferenceEstimate:
    """The estimate at the config's replica size and batch as given: no search for the best replica, no warning
    about a forced one (a missing batch or size takes the plain default: 64, or the smallest TP that fits)."""
    r, rec, warnings = _replica(cfg)
    ph = _phases(cfg, r)
    b, gen, tp = r.batch, cfg.output_tokens + cfg.reasoning_tokens, r.tp
    tps = b * gen / ph.t_cycle
    pm, a_pm = facility.phase_power_model(r.accel, r.rates.calibration, r.rates.kernel.gemm_flops_per_s, r.peak)
    w_pre, w_dec = pm.at(ph.u_pre, ph.m_pre), pm.at(ph.u_dec, ph.m_dec)
    gpu_j = tp * (w_pre * ph.t_pre + w_dec * ph.n_steps * ph.t_dec)
    gpu_w = gpu_j / tp / ph.t_cycle
    site, grid = facility.site(cfg.pue), facility.grid(cfg.region, cfg.grid_intensity)
    fac_wh = float(facility.facility_power_w(gpu_w, site.host_w, tp, site.pue)) * ph.t_cycle / b / 3600
    price = facility.price(r.accel, cfg.price_per_gpu_hour)
    usd_h = price.usd_per_gpu_hour
    usd_m = None if usd_h is None else facility.cloud_cost_usd(tp * 1e6 / tps / 3600, usd_h)
    rel, a_rel = efficiency_rel(r.rates, False)
    fleet, a_fleet, w_fleet = _fleet(cfg, r, b / ph.t_cycle, pm, gpu_w, site, grid, price, rel)
    ranges = serving_ranges(ph, r.tp, r.batch, pm, site, grid, price, rel, usd_m, gen)
    cal = r.rates.calibration
    cal_info = None if cal is None else cal.summary() | {"used_for": [x for x, ok in (
        ("compute", r.rates.kind in ("calibrated", "scaled")), ("power", bool(cal.power))) if ok],
        "rates": r.rates.source}
    A = (rec | scheduling_assumption(cfg.batching)
         | a_pm | site.assumptions | grid.assumptions | price.assumptions | a_fleet | a_rel)
    kvt = kv_bytes_per_token(r.spec, r.kvb)
    pc = param_count(r.spec)
    from estimator.units import Q_

    return InferenceEstimate(
        model=r.spec, params=pc.total, active_params=pc.active, gpu=r.accel.id, gpu_name=r.accel.name,
        gpus_per_replica=tp, batch=b, max_batch=r.max_batch, prompt_tokens=cfg.prompt_tokens,
        output_tokens=cfg.output_tokens, reasoning_tokens=cfg.reasoning_tokens, weight_precision=r.wp,
        kv_precision=r.kvp, compute_precision=r.cp, ttft=Q_(ph.t_ttft, "s"), tpot=Q_(ph.t_step, "s"),
        tokens_per_second_per_gpu=tps / tp, tokens_per_second_per_replica=tps,
        queries_per_second_per_replica=b / ph.t_cycle,
        prefill=phase_dict(ph.pre, ph.t_pre, ph.u_pre, w_pre, pm.terms(ph.u_pre, ph.m_pre)),
        decode=phase_dict(ph.dec, ph.t_dec, ph.u_dec, w_dec, pm.terms(ph.u_dec, ph.m_dec))
        | {"steps": ph.n_steps, "time_s": ph.n_steps * ph.t_dec, "mean_context_tokens": float(np.mean(ph.contexts))},
        kv_bytes_per_token=kvt, kv_cache=Q_(kvt * b * (cfg.prompt_tokens + gen) / GB, "GB"),
        weights_per_gpu=Q_(weight_bytes_stored(r.spec, r.wb) / tp / GB, "GB"),
        memory_capacity_gb=r.accel.memory_bytes / 1e9,
        gpu_power_prefill_w=w_pre, gpu_power_decode_w=w_dec, gpu_power_avg_w=gpu_w,
        energy_per_output_token=Q_(gpu_j / (b * gen), "J"), energy_per_query=Q_(gpu_j / b / 3600, "Wh"),
        facility_energy_per_query=Q_(fac_wh, "Wh"),
        co2e_per_query=Q_(facility.operational_co2e_t(fac_wh / 1e6, grid.g_per_kwh) * 1e6, "gCO2e"),
        cost_per_million_output_tokens=None if usd_m is None else Q_(usd_m, "USD"), fleet=fleet, ranges=ranges,
        assumptions=A, calibration=cal_info, warnings=tuple(warnings + list(price.warnings) + w_fleet),
        config=cfg.to_dict(), prefill_batch=Q_(ph.t_pre, "s"), batching=cfg.batching or "continuous")


# --------------------------------------------------------------------------- comparisons

@dataclass(frozen=True)
class ModelComparison:
    """Two models serving the same load; ``ratios`` are large / small."""

    small: InferenceEstimate
    large: InferenceEstimate
    ratios: dict

    def to_dict(self) -> dict:
        """Both estimates and the ratios."""
        return {"small": self.small.to_dict(), "large": self.large.to_dict(), "ratios": self.ratios}


def _as_kwargs(m) -> dict:
    if isinstance(m, (ModelSpec, str)):
        return {"model": m}
    if isinstance(m, dict):
        return dict(m)
    raise EstimatorInputError(f"cannot read a model from {type(m).__name__}",
                              "pass a ModelSpec, a preset name or a dict of estimate_inference arguments")


def compare_models(small, large, load: dict) -> ModelComparison:
    """A small specialised model against a large general one on the same load.

    ``small`` and ``large``: a ModelSpec, a preset name, or a dict of ``estimate_inference`` keyword arguments;
    ``load``: keyword arguments both share (prompt_tokens, queries_per_day, gpu, region ...); a model's own dict
    wins where both name a key.
    """
    ests = [estimate_inference(**({**load, **_as_kwargs(m)})) for m in (small, large)]
    a, b = (e.to_dict() for e in ests)
    keys = ["energy_per_query_wh", "facility_energy_per_query_wh", "co2e_per_query_g",
            "cost_per_million_output_tokens_usd", "tokens_per_second_per_gpu", "ttft_ms", "tpot_ms"]
    ratios = {k: (b[k] / a[k] if a[k] and b[k] is not None else None) for k in keys}
    if "fleet" in a and "fleet" in b:
        for k in ("gpus", "avg_power_mw", "annual_energy_mwh", "annual_co2e_tonnes", "annual_cost_usd"):
            ratios[f"fleet_{k}"] = b["fleet"][k] / a["fleet"][k] if a["fleet"][k] and b["fleet"][k] else None
    return ModelComparison(small=ests[0], large=ests[1], ratios=ratios)
