"""Typed results of every estimate, and the one table of metric names, labels and units.

``TrainingEstimate`` and ``InferenceEstimate`` are frozen records with pint quantities at the API boundary
(``.gpu_hours``, ``.energy`` ...), ``to_dict()`` for JSON and ``to_frame()`` for pandas. ``METRICS`` names every
headline metric once; the terminal report, the dashboard and the benchmark report import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from estimator.assumptions import Assumed
from estimator.memory import GB, MemoryBreakdown
from estimator.model import ModelSpec
from estimator.parallelism import Layout
from estimator.units import Q_

#: JSON output contract version (docs: README "JSON output"); bump when a key changes meaning or goes away
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Metric:
    """A headline metric: its key in ``to_dict()``, a human label and its unit."""

    key: str
    label: str
    unit: str


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("flops", "Training compute (FLOP)", "FLOP"),
    Metric("gpu_hours", "GPU-hours", "GPU-hour"),
    Metric("wall_clock_days", "Wall-clock time", "day"),
    Metric("mfu", "MFU", "fraction"),
    Metric("avg_power_mw", "Average facility power", "MW"),
    Metric("peak_power_mw", "Peak facility power", "MW"),
    Metric("energy_mwh", "Energy (facility)", "MWh"),
    Metric("co2e_tonnes", "Operational CO2e", "tCO2e"),
    Metric("embodied_co2e_tonnes", "Embodied CO2e", "tCO2e"),
    Metric("cost_usd", "Cost", "USD"),
    Metric("memory_per_gpu_gb", "Memory per GPU", "GB"),
    Metric("ttft_ms", "Time to first token", "ms"),
    Metric("tpot_ms", "Time per output token", "ms"),
    Metric("tokens_per_second_per_gpu", "Output tokens/s per GPU", "token/s"),
    Metric("energy_per_output_token_j", "Energy per output token (GPU)", "J"),
    Metric("energy_per_query_wh", "Energy per query (GPU)", "Wh"),
    Metric("facility_energy_per_query_wh", "Energy per query (facility)", "Wh"),
    Metric("co2e_per_query_g", "CO2e per query", "gCO2e"),
    Metric("cost_per_million_output_tokens_usd", "Cost per million output tokens", "USD"),
    Metric("kv_cache_gb", "KV cache of the batch", "GB"),
)}

HEADLINE = tuple((k, METRICS[k].unit) for k in ("flops", "gpu_hours", "wall_clock_days", "mfu", "avg_power_mw",
                                                 "peak_power_mw", "energy_mwh", "co2e_tonnes",
                                                 "embodied_co2e_tonnes", "cost_usd", "memory_per_gpu_gb"))
INFERENCE_HEADLINE = tuple((k, METRICS[k].unit) for k in (
    "ttft_ms", "tpot_ms", "tokens_per_second_per_gpu", "energy_per_output_token_j", "energy_per_query_wh",
    "facility_energy_per_query_wh", "co2e_per_query_g", "cost_per_million_output_tokens_usd", "kv_cache_gb"))


def provenance(result: Any) -> dict:
    """The keys every result's to_dict() ends with: ranges, assumptions (with sources), calibration, warnings."""
    return {"ranges": result.ranges,
            "assumptions": {k: (v.to_dict() if isinstance(v, Assumed) else v) for k, v in result.assumptions.items()},
            "calibration": result.calibration, "warnings": list(result.warnings),
            "config": result.config, "schema_version": SCHEMA_VERSION}


def headline_frame(d: dict, headline) -> Any:
    """A result dict's headline metrics as a DataFrame with their ranges (shared by every result type)."""
    import pandas as pd

    rows = []
    for key, unit in headline:
        lo, hi = d["ranges"].get(key, (None, None))
        rows.append({"metric": key, "value": d[key], "low": lo, "high": hi, "unit": unit})
    return pd.DataFrame(rows)


def _f(x: float | None) -> float | None:
    return None if x is None else float(x)


def model_dict(m: ModelSpec, params: int, active: int) -> dict:
    """The model part of a result's JSON."""
    return {"name": m.name, "params": float(params), "active_params": float(active), "layers": m.layers,
            "d_model": m.d_model, "heads": m.heads, "kv_heads": m.kv_heads, "head_dim": m.hd,
            "kv_lora_rank": m.kv_lora_rank, "ffn_dim": m.ffn_dim, "vocab": m.vocab, "seq_len": m.seq_len,
            "experts": m.experts, "experts_per_token": m.experts_per_token, "source": m.source}


@dataclass(frozen=True)
class TrainingEstimate:
    """Everything a training estimate says, with pint quantities; ``to_dict`` gives plain floats for JSON."""

    model: ModelSpec
    params: int
    active_params: int
    tokens: float
    flops_count: float  # FLOP (model FLOPs; the quantity is .flops)
    hardware_flops_count: float
    flops_breakdown_per_token: dict
    gpu: str
    gpu_name: str
    gpus: int
    precision: str
    layout: Layout
    mfu: float
    hfu: float
    goodput: float
    gpu_hours_h: float
    wall_clock_h: float
    step_time_s: float
    time_breakdown: dict  # fractions of wall time
    memory: MemoryBreakdown
    memory_capacity_gb: float
    avg_power_w: float  # facility
    peak_power_w: float
    gpu_avg_power_w: float
    energy_mwh: float  # facility, with PUE
    gpu_energy_mwh: float
    co2e_t: float  # operational, location-based
    embodied_co2e_t: float | None
    cost_usd: float | None
    ranges: dict
    assumptions: Mapping[str, Assumed]
    calibration: dict | None
    warnings: tuple = field(default_factory=tuple)
    config: dict | None = None

    @property
    def flops(self):
        """Model FLOPs (pint FLOP)."""
        return Q_(self.flops_count, "FLOP")

    @property
    def hardware_flops(self):
        """Hardware FLOPs including recomputation (pint FLOP)."""
        return Q_(self.hardware_flops_count, "FLOP")

    @property
    def gpu_hours(self):
        """GPU-hours (pint hour)."""
        return Q_(self.gpu_hours_h, "hour")

    @property
    def wall_clock_days(self):
        """Wall-clock time (pint day)."""
        return Q_(self.wall_clock_h / 24, "day")

    @property
    def step_time(self):
        """Seconds per optimizer step (pint s)."""
        return Q_(self.step_time_s, "s")

    @property
    def avg_power(self):
        """Average facility power (pint MW)."""
        return Q_(self.avg_power_w / 1e6, "MW")

    @property
    def peak_power(self):
        """Facility power at TDP (pint MW)."""
        return Q_(self.peak_power_w / 1e6, "MW")

    @property
    def energy(self):
        """Facility energy with PUE (pint MWh)."""
        return Q_(self.energy_mwh, "MWh")

    @property
    def gpu_energy(self):
        """GPU-only energy (pint MWh)."""
        return Q_(self.gpu_energy_mwh, "MWh")

    @property
    def co2e(self):
        """Operational, location-based CO2e (pint tCO2e)."""
        return Q_(self.co2e_t, "tCO2e")

    @property
    def embodied_co2e(self):
        """Amortised embodied CO2e (pint tCO2e), or None without a published figure."""
        return Q_(self.embodied_co2e_t, "tCO2e") if self.embodied_co2e_t is not None else None

    @property
    def cost(self):
        """Dollars (pint USD), or None without a price."""
        return Q_(self.cost_usd, "USD") if self.cost_usd is not None else None

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the ``--json`` output)."""
        m = model_dict(self.model, self.params, self.active_params)
        for k in ("head_dim", "kv_lora_rank"):
            m.pop(k)
        return {
            "mode": "training", "model": m, "tokens": float(self.tokens), "flops": float(self.flops_count),
            "hardware_flops": float(self.hardware_flops_count),
            "flops_breakdown_per_token": self.flops_breakdown_per_token,
            "gpu": self.gpu, "gpu_name": self.gpu_name, "gpus": int(self.gpus), "precision": self.precision,
            "layout": self.layout.to_dict(),
            "mfu": float(self.mfu), "hfu": float(self.hfu), "goodput": float(self.goodput),
            "gpu_hours": float(self.gpu_hours_h), "wall_clock_days": float(self.wall_clock_h / 24),
            "step_time_s": float(self.step_time_s), "time_breakdown": self.time_breakdown,
            "memory_per_gpu_gb": float(self.memory.total / GB), "memory_breakdown_gb": self.memory.to_dict(),
            "memory_capacity_gb": self.memory_capacity_gb, "gpu_avg_power_w": float(self.gpu_avg_power_w),
            "avg_power_mw": float(self.avg_power_w / 1e6), "peak_power_mw": float(self.peak_power_w / 1e6),
            "energy_mwh": float(self.energy_mwh), "gpu_energy_mwh": float(self.gpu_energy_mwh),
            "co2e_tonnes": float(self.co2e_t), "embodied_co2e_tonnes": _f(self.embodied_co2e_t),
            "cost_usd": _f(self.cost_usd),
            **provenance(self),
        }

    def to_frame(self):
        """One row per headline metric: value, low, high, unit (pandas DataFrame)."""
        return headline_frame(self.to_dict(), HEADLINE)


@dataclass(frozen=True)
class InferenceEstimate:
    """A serving estimate with pint quantities; ``to_dict`` gives plain floats for JSON."""

    model: ModelSpec
    params: int
    active_params: int
    gpu: str
    gpu_name: str
    gpus_per_replica: int
    batch: int
    max_batch: int
    prompt_tokens: int
    output_tokens: int
    reasoning_tokens: int
    weight_precision: str
    kv_precision: str
    compute_precision: str
    ttft: Any  # Quantity s
    tpot: Any
    tokens_per_second_per_gpu: float
    tokens_per_second_per_replica: float
    queries_per_second_per_replica: float
    prefill: dict
    decode: dict
    kv_bytes_per_token: float
    kv_cache: Any  # Quantity GB, whole batch at full context, per replica
    weights_per_gpu: Any
    memory_capacity_gb: float
    gpu_power_prefill_w: float
    gpu_power_decode_w: float
    gpu_power_avg_w: float
    energy_per_output_token: Any  # Quantity J (GPU only)
    energy_per_query: Any  # Wh GPU only
    facility_energy_per_query: Any  # Wh incl. host and PUE
    co2e_per_query: Any  # gCO2e
    cost_per_million_output_tokens: Any  # USD, or None without a price
    fleet: dict | None
    ranges: dict
    assumptions: Mapping[str, Assumed]
    calibration: dict | None
    warnings: tuple = field(default_factory=tuple)
    config: dict | None = None
    prefill_batch: Any = None  # Quantity s: prefill of the whole batch together
    batching: str = "continuous"
    replica_choice: dict | None = None  # how the default replica size and batch were chosen

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the ``estimate serve --json`` output)."""
        m = model_dict(self.model, self.params, self.active_params)
        m.pop("ffn_dim"), m.pop("vocab")
        cost = self.cost_per_million_output_tokens
        return {
            "mode": "inference", "model": m,
            "gpu": self.gpu, "gpu_name": self.gpu_name, "gpus_per_replica": int(self.gpus_per_replica),
            "batch": int(self.batch), "max_batch": int(self.max_batch),
            "prompt_tokens": int(self.prompt_tokens), "output_tokens": int(self.output_tokens),
            "reasoning_tokens": int(self.reasoning_tokens),
            "weight_precision": self.weight_precision, "kv_precision": self.kv_precision,
            "compute_precision": self.compute_precision,
            "ttft_ms": float(self.ttft.m_as("ms")), "tpot_ms": float(self.tpot.m_as("ms")),
            "prefill_batch_ms": None if self.prefill_batch is None else float(self.prefill_batch.m_as("ms")),
            "batching": self.batching,
            **({"replica_choice": self.replica_choice} if self.replica_choice is not None else {}),
            "tokens_per_second_per_gpu": float(self.tokens_per_second_per_gpu),
            "tokens_per_second_per_replica": float(self.tokens_per_second_per_replica),
            "queries_per_second_per_replica": float(self.queries_per_second_per_replica),
            "prefill": self.prefill, "decode": self.decode,
            "kv_bytes_per_token": float(self.kv_bytes_per_token), "kv_cache_gb": float(self.kv_cache.m_as("GB")),
            "weights_per_gpu_gb": float(self.weights_per_gpu.m_as("GB")),
            "memory_capacity_gb": float(self.memory_capacity_gb),
            "gpu_power_prefill_w": float(self.gpu_power_prefill_w),
            "gpu_power_decode_w": float(self.gpu_power_decode_w), "gpu_power_avg_w": float(self.gpu_power_avg_w),
            "energy_per_output_token_j": float(self.energy_per_output_token.m_as("J")),
            "energy_per_query_wh": float(self.energy_per_query.m_as("Wh")),
            "facility_energy_per_query_wh": float(self.facility_energy_per_query.m_as("Wh")),
            "co2e_per_query_g": float(self.co2e_per_query.m_as("gCO2e")),
            "cost_per_million_output_tokens_usd": None if cost is None else float(cost.m_as("USD")),
            **({"fleet": self.fleet} if self.fleet is not None else {}),
            **provenance(self),
        }

    def to_frame(self):
        """One row per headline metric: value, low, high, unit (pandas DataFrame)."""
        return headline_frame(self.to_dict(), INFERENCE_HEADLINE)
