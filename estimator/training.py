"""``estimate_training``: compose model, hardware, layout, step time, goodput, facility and ranges.

Each stage is a small function of the config and the stages before it, returning its values and the
``Assumptions`` it made; ``estimate_training`` joins them. The formulas live in their own modules:
FLOPs (``flops``), memory (``memory``), layouts (``parallelism``), step time and goodput (``timing``),
power, carbon and cost (``facility``), ranges (``ranges``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from estimator import facility, timing
from estimator.assumptions import Assumptions, fact, one
from estimator.cluster import cluster_size, default_global_batch_tokens
from estimator.config import TrainingConfig
from estimator.errors import EstimatorInputError
from estimator.flops import TrainingFlops, training_flops
from estimator.hardware import (
    DEFAULT_GPU,
    DEFAULT_PRECISION_SOURCE,
    Rates,
    accelerator,
    accelerator_efficiency,
    activation_bytes,
    load_user_calibration,
    peak_flops,
    resolve_rates,
)
from estimator.hardware import TRAINING_PRECISIONS as PRECISIONS
from estimator.model import ModelSpec, param_count
from estimator.parallelism import (
    MEMORY_HEADROOM,
    Layout,
    check_layout,
    choose_layout,
    explain_no_layout,
    layout_cost,
)
from estimator.ranges import efficiency_rel, training_time_factors
from estimator.resolve import moe_from_active, resolve_model, shape_note
from estimator.results import HEADLINE, TrainingEstimate, headline_frame, provenance
from estimator.software import Stack, training_stack

__all__ = ["DEFAULT_GPU", "HEADLINE", "PRECISIONS", "TrainingConfig", "TrainingEstimate", "estimate_training",
           "headline_frame", "moe_from_active", "provenance"]
DEFAULT_TARGET_DAYS = 90.0


@dataclass(frozen=True)
class Run:
    """What the model, hardware and batch stages fixed: the shape, tokens, GPU, precision, rates, batch, software."""

    spec: ModelSpec
    tokens: float
    accel: Any
    precision: str
    peak: float
    dtype_bytes: float
    rates: Rates
    gb_seqs: int
    stack: Stack


def _model_and_batch(cfg: TrainingConfig) -> tuple[ModelSpec, float, float | None, Assumptions, list[str]]:
    """The model, the tokens and the global batch (published for a preset where the user gave none)."""
    rec, model, tokens, gbt = Assumptions(), cfg.model, cfg.tokens, cfg.global_batch_tokens
    recipe = None
    if model is not None and model.name not in ("custom", "derived", "derived-moe"):
        from estimator.presets import training_recipe

        recipe = training_recipe(model.name)
    if tokens is None:
        if not (recipe and recipe.get("training_tokens")):
            raise EstimatorInputError("no token count given", "pass --tokens N, e.g. --tokens 2e12")
        tokens = recipe["training_tokens"]
        rec = rec | one("tokens", tokens, "token", f"published for {getattr(model, 'name', '')}: {recipe['source']}")
    if gbt is None and recipe and recipe.get("global_batch_tokens"):
        gbt = recipe["global_batch_tokens"]
        rec = rec | one("global_batch_tokens", gbt, "token", f"published for {getattr(model, 'name', '')}: "
                                                             f"{recipe['source']}")
    spec, notes = resolve_model(model, cfg.params, cfg.active_params, cfg.experts, cfg.experts_per_token,
                                cfg.seq_len, cfg.shape_overrides())
    return spec, float(tokens), gbt, rec | shape_note(spec), notes  # type: ignore[arg-type]


def _setup(cfg: TrainingConfig) -> tuple[Run, Assumptions, list[str]]:
    """Model, tokens, accelerator, precision, kernel rates and global batch."""
    spec, tokens, gbt, rec, warnings = _model_and_batch(cfg)
    accel = accelerator(cfg.gpu)
    if cfg.gpu is None:
        rec = rec | one("gpu", accel.id, "", "default GPU (pass --gpu)")
    if cfg.scaleout_gb_per_s is not None:  # the user's cluster network replaces the reference system's
        accel = replace(accel, scaleout_bw_gb_per_s=cfg.scaleout_gb_per_s)
        rec = rec | one("scaleout_gb_per_s", cfg.scaleout_gb_per_s, "GB/s", "user input (--scaleout-gb-per-s)")
    elif accel.scaleout_bw_gb_per_s is not None:
        rec = rec | one("scaleout_gb_per_s", accel.scaleout_bw_gb_per_s, "GB/s", "per GPU each way, the reference "
                        f"system's network: {accel.scaleout_source or accel.source} (pass --scaleout-gb-per-s)")
    cal = load_user_calibration(cfg.calibration, accel.id, cfg.force_calibration)
    precision, why = cfg.precision or accel.default_precision(), DEFAULT_PRECISION_SOURCE
    if cfg.precision is None and cal is not None and precision not in cal.kernel_model and cal.kernel_model:
        precision = next(iter(cal.kernel_model))  # e.g. a CPU calibration measured in fp32 only
        why = f"the precision calibration {cal.id} was measured in (it has no {accel.default_precision()} rates)"
    if cfg.precision is None:
        rec = rec | one("precision", precision, "", why)
    peak = peak_flops(accel, precision)
    rates = resolve_rates(accel, precision, cal, cfg.force_calibration)
    rec = rec | one("kernel_rates", rates.kernel.source, "", rates.source)
    if gbt is None:
        gbt = default_global_batch_tokens(param_count(spec).total)
        src = (default_global_batch_tokens.__doc__ or "").replace("\n", " ")
        if cfg.gpus is not None and cfg.gpus > 8 * gbt // spec.seq_len:  # grow with the cluster, as frontier runs do
            gbt = -(-cfg.gpus // 8) * spec.seq_len
            src = ("default: one sequence per 8 GPUs, the ratio of Llama 3.1 405B (2,048 sequences on 16,384 GPUs, "
                   "Dubey et al. 2024 Table 4), so a large cluster is not starved (pass --global-batch-tokens)")
        rec = rec | one("global_batch_tokens", gbt, "token", src)
    gb_seqs = max(1, int(gbt // spec.seq_len))
    if tokens < gb_seqs * spec.seq_len:
        raise EstimatorInputError(f"--tokens {tokens:g} is less than one global batch ({gb_seqs * spec.seq_len:g} "
                                  "tokens)", "train on more tokens or lower --global-batch-tokens")
    stack, a_stack = training_stack(cfg)
    run = Run(spec, tokens, accel, precision, peak, activation_bytes(precision), rates, gb_seqs, stack)
    rec = rec | a_stack
    return run, rec, warnings + list(rates.warnings)


def _layout(cfg: TrainingConfig, r: Run, n_gpus: int) -> tuple[Layout, int, Assumptions]:
    """The fastest valid layout that fits in memory (growing a defaulted cluster until the model fits)."""
    fixed: dict[str, Any] = dict(tp=cfg.tp, cp=cfg.cp, pp=cfg.pp, dp=cfg.dp, ep=cfg.ep, zero=cfg.zero,
                                 micro_batch=cfg.micro_batch, recompute=cfg.recompute)
    user_fixed = {k: v for k, v in fixed.items() if v is not None}
    if cfg.cp and cfg.cp > 1 and r.spec.seq_len % (2 * cfg.cp):
        raise EstimatorInputError(f"--cp {cfg.cp} does not split the sequence length {r.spec.seq_len} into "
                                  "2 x CP equal chunks", "choose --cp so that seq-len is a multiple of 2 x CP")
    if cfg.tp is not None and cfg.pp is not None and cfg.dp is not None:
        check_layout(r.spec, Layout(cfg.tp, cfg.pp, cfg.dp, cfg.ep or 1, 1 if cfg.zero is None else cfg.zero,
                                    cfg.micro_batch or 1, cfg.recompute or "none", cp=cfg.cp or 1), n_gpus, r.gb_seqs)
    dp_overlap, a_overlap = fact("comm_overlap_dp")
    search = dict(spec=r.spec, accel=r.accel, km=r.rates.kernel, gb_seqs=r.gb_seqs, fixed=fixed, seq=r.spec.seq_len,
                  dtype_bytes=r.dtype_bytes, dp_overlap=dp_overlap, capacity=r.accel.memory_bytes * MEMORY_HEADROOM,
                  stack=r.stack)
    ch = choose_layout(n_gpus=n_gpus, **search)
    rec = (Assumptions({"comm_overlap_dp": a_overlap})
           | one("memory_capacity_gb", round(r.accel.memory_bytes / 1e9, 2), "GB", r.accel.memory_bytes_source))
    if cfg.gpus is None:  # a defaulted cluster grows until the model fits (up to 8 GPUs per sequence of the batch)
        grown = n_gpus
        while ch.best is None and grown < max(8, r.gb_seqs * 8):
            grown *= 2
            ch = choose_layout(n_gpus=grown, **search)
        if ch.best is not None and grown != n_gpus:
            n_gpus = grown
            rec = rec | one("gpus", n_gpus, "GPU", f"default: the smallest doubling of the {r.accel.id} count for "
                            f"{cfg.target_days:g} days that fits the model in memory (pass --gpus)")
    if not ch.n_valid:
        raise EstimatorInputError(*explain_no_layout(r.spec, n_gpus, r.gb_seqs, user_fixed))
    if ch.best is None:
        raise EstimatorInputError(
            f"the model does not fit: the leanest layout ({ch.smallest.describe()}) needs "  # type: ignore[union-attr]
            f"{ch.smallest_bytes / 1e9:.0f} GB per GPU, {r.accel.id} has {r.accel.memory_bytes / 1e9:.1f} GB "
            f"({MEMORY_HEADROOM:.0%} usable)",
            "add GPUs, allow more pipeline/tensor parallelism or ZeRO-3, use recomputation, or a GPU with more memory")
    if len(user_fixed) < 8:
        rec = rec | one("layout", ch.best.describe(), "", "chosen: fastest valid layout that fits in "
                        f"{MEMORY_HEADROOM:.0%} of GPU memory" + (f" (user fixed {user_fixed})" if user_fixed else ""))
    return ch.best, n_gpus, rec


@dataclass(frozen=True)
class Timed:
    """Step time by part, FLOPs and utilisation of the chosen layout."""

    memory: Any
    parts: dict
    step_s: float
    flops: TrainingFlops
    steps: float
    seq_per_step: int
    mfu: float
    hfu: float


def _time(cfg: TrainingConfig, r: Run, lay: Layout, n_gpus: int) -> tuple[Timed, Assumptions, list[str]]:
    """Step time of the layout (with the framework overhead, or the user's MFU), FLOPs, MFU and HFU."""
    seq, warnings = r.spec.seq_len, []
    seq_per_step = int(r.gb_seqs // (lay.dp * lay.micro_batch)) * lay.dp * lay.micro_batch
    if seq_per_step != r.gb_seqs:
        warnings.append(f"global batch rounded to {seq_per_step} sequences (DP x micro-batch = "
                        f"{lay.dp * lay.micro_batch})")
    dp_overlap = float(fact("comm_overlap_dp")[0])
    arrays = {k: getattr(lay, k) for k in ("tp", "pp", "dp", "ep", "zero", "micro_batch", "interleave", "cp")}
    mem, st = layout_cost(r.spec, accel=r.accel, km=r.rates.kernel, arrays=arrays, rec=lay.recompute,
                          frac=lay.recompute_fraction, gb_seqs=r.gb_seqs, seq=seq, dtype_bytes=r.dtype_bytes,
                          dp_overlap=dp_overlap, stack=r.stack)
    mem = type(mem)(*(float(getattr(mem, f.name)) for f in fields(mem)))
    parts = {k: float(getattr(st, k)) for k in ("compute", "bubble", "tp_comm", "cp_comm", "pp_comm", "dp_comm",
                                                "ep_comm", "optimizer")}
    # end-to-end overhead the op-level model does not see (framework, synchronisation, data loading, logging),
    # measured against published throughput benchmarks (benchmarks/framework_efficiency.py)
    fe, a_fe = fact("framework_efficiency", cfg.framework_efficiency)
    rec = Assumptions({"framework_efficiency": a_fe})
    ae, a_ae = accelerator_efficiency(r.accel.id, r.rates.kind, cfg.accelerator_efficiency)
    fe, rec = fe * ae, rec | a_ae
    parts["framework_overhead"] = sum(parts.values()) * (1.0 / fe - 1.0)
    step_s = sum(parts.values())
    if lay.recompute == "partial":
        f0, f1 = training_flops(r.spec, r.tokens, "none"), training_flops(r.spec, r.tokens, "full")
        flops = TrainingFlops(f0.model_flops, f0.hardware_flops + lay.recompute_fraction *
                              (f1.hardware_flops - f0.hardware_flops), f0.forward_per_token, "partial")
    else:
        flops = training_flops(r.spec, r.tokens, lay.recompute)
    steps = r.tokens / (seq_per_step * seq)
    per_step = flops.model_flops / steps
    if cfg.mfu is not None:
        new_s = per_step / (n_gpus * r.peak * cfg.mfu)
        parts = {k: v * new_s / step_s for k, v in parts.items()}
        step_s = new_s
        rec = rec | one("mfu", cfg.mfu, "", "user input (--mfu): replaces the time model")
    return (Timed(mem, parts, step_s, flops, steps, seq_per_step, per_step / (n_gpus * r.peak * step_s),
                  flops.hardware_flops / steps / (n_gpus * r.peak * step_s)), rec, warnings)


def _checks(r: Run, n_gpus: int, mfu: float) -> list[str]:
    """Warnings about the cluster the estimate was asked for."""
    out = []
    if n_gpus > 8 * r.gb_seqs:
        out.append(f"{n_gpus:,} GPUs share a global batch of {r.gb_seqs:,} sequences (more than 8 GPUs per "
                   f"sequence, the most Llama 3.1 405B used): data parallelism is starved and MFU is "
                   f"{mfu:.0%}; pass a larger --global-batch-tokens if the run would use one, or about "
                   f"{8 * r.gb_seqs:,} GPUs (more would idle or slow the run)")
    if r.accel.scaleout_bw_gb_per_s is None and n_gpus > (r.accel.scaleup_domain or 1):
        out.append(f"no published scale-out bandwidth for {r.accel.id}: inter-node traffic assumed at its "
                   "scale-up (NVLink/ICI) bandwidth, which is optimistic")
    return out


def estimate_training(model: ModelSpec | str | TrainingConfig | None = None, **inputs: Any) -> TrainingEstimate:
    """Estimate a training run from a ``TrainingConfig`` (or its fields as keywords, e.g. ``params=7e9,
    tokens=2e12``). Every defaulted input is recorded in ``assumptions`` with its source."""
    cfg = model if isinstance(model, TrainingConfig) else TrainingConfig(model=model, **inputs)  # type: ignore
    r, rec, warnings = _setup(cfg)
    n_gpus, a_gpus, w_gpus = cluster_size(cfg, r)
    lay, n_gpus, a_lay = _layout(cfg, r, n_gpus)
    t, a_time, w_time = _time(cfg, r, lay, n_gpus)
    good = timing.goodput_corners(param_count(r.spec).total, n_gpus, cfg.failure_rate_per_gpu_hour,
                                  cfg.restart_overhead_hours)
    rel, a_rel = efficiency_rel(r.rates, cfg.mfu is not None)
    interval = None
    if cfg.mfu is None and cfg.calibration is None:  # the interval fitted on published runs; a calibration of
        # the user's own hardware keeps its held-out error as the range
        lo, hi, a_rel = training_time_factors()
        interval = (lo, hi)
    fp, a_fp, w_fp = facility.run_footprint(cfg, r.accel, r.rates.calibration, n_gpus, t.steps * t.step_s / 3600,
                                            t.hfu, good[:3], rel, interval)
    cal, pc = r.rates.calibration, param_count(r.spec)
    cal_info = None if cal is None else cal.summary() | {"used_for": [x for x, ok in (
        ("compute", r.rates.kind in ("calibrated", "scaled")), ("power", bool(cal.power) and cfg.gpu_power_w is None))
        if ok], "rates": r.rates.source}
    wall_total = t.step_s / good[0]
    A = (rec | a_gpus | a_lay | a_time | good[3] | a_fp | a_rel
         | one("tokens_per_step", t.seq_per_step * r.spec.seq_len, "token", "global batch x sequence length"))
    return TrainingEstimate(
        model=r.spec, params=pc.total, active_params=pc.active, tokens=r.tokens, flops_count=t.flops.model_flops,
        hardware_flops_count=t.flops.hardware_flops,
        flops_breakdown_per_token=t.flops.forward_per_token.scaled(3).to_dict(), gpu=r.accel.id,
        gpu_name=r.accel.name, gpus=n_gpus, precision=r.precision, layout=lay, mfu=t.mfu, hfu=t.hfu, goodput=good[0],
        gpu_hours_h=t.steps * t.step_s / 3600 / good[0] * n_gpus, wall_clock_h=t.steps * t.step_s / 3600 / good[0],
        step_time_s=t.step_s, time_breakdown={k: v / wall_total for k, v in t.parts.items()} | {
            "downtime": 1 - good[0]}, memory=t.memory, memory_capacity_gb=r.accel.memory_bytes / 1e9,
        avg_power_w=fp.facility_w, peak_power_w=fp.peak_facility_w, gpu_avg_power_w=fp.gpu_w, energy_mwh=fp.energy_mwh,
        gpu_energy_mwh=fp.gpu_energy_mwh, co2e_t=fp.co2e_t, embodied_co2e_t=fp.embodied_t, cost_usd=fp.cost.usd,
        ranges=fp.ranges, assumptions=A, calibration=cal_info,
        warnings=tuple(warnings + w_gpus + w_time + w_fp + _checks(r, n_gpus, t.mfu)), config=cfg.to_dict())
