"""Frozen, validated input records: ``TrainingConfig``, ``ServingConfig``, ``PlanConfig``.

The CLI, the dashboard and the Python API all build one of these; ``estimate_training(config)`` (and the
others) run it, and the JSON output echoes it (``config``). Construction validates every number and choice
with the same one-line messages the CLI prints (``estimator.inputs``): a record that exists is usable.
Model-shape overrides (``layers``, ``d_model`` ...) are checked when the model is resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

from estimator.errors import EstimatorInputError
from estimator.flops import RECOMPUTE
from estimator.hardware import DTYPE_BYTES, TRAINING_PRECISIONS
from estimator.inputs import choice, number, show, whole
from estimator.model import ModelSpec

MAX_GPUS = 10_000_000  # the layout search enumerates divisors of the count; 1e7 GPUs is ~50x any cluster built
WEIGHT_PRECISIONS = {**{p: DTYPE_BYTES[p] for p in ("bf16", "fp16", "fp8", "int4")}, "fp4": 0.5}  # bytes per weight
KV_PRECISIONS = {p: DTYPE_BYTES[p] for p in ("bf16", "fp16", "fp8")}  # bytes per cached element
MAX_TOTAL_TOKENS = 10_000_000  # prompt + output + reasoning per request
BATCHING = ("continuous", "static")  # serving scheduler: in-flight batching, or whole batches (gptSessionBenchmark)
OPTIMISE = ("cost", "energy")  # what the default replica size and batch minimise per output token
#: Default latency targets of the replica/batch choice: MLPerf Inference Llama 2 70B server scenario (TTFT <= 2 s,
#: TPOT <= 200 ms; benchmarks/data/inference_measurements.csv rows I22a-c)
DEFAULT_TTFT_SLO_MS, DEFAULT_TPOT_SLO_MS = 2000.0, 200.0
MAX_BATCH = 1_000_000
MAX_TEXT = 200  # characters of a --gpu, --region or --scaling-law (the longest known id is ~30)


def framework_ids() -> tuple[str, ...]:
    """Training frameworks hardware_db/frameworks.csv describes (megatron, deepspeed, fsdp)."""
    from hardware_db import frameworks

    return tuple(frameworks())


def _pos(name: str, **kw) -> Callable[[Any], float]:
    return lambda v: number(name, v, **kw)


def _nonneg(name: str, **kw) -> Callable[[Any], float]:
    return lambda v: number(name, v, minimum=0, inclusive=True, **kw)


def _int(name: str, minimum: int = 1, maximum: float = 1e6, hint: str = "") -> Callable[[Any], int]:
    return lambda v: whole(name, v, minimum=minimum, maximum=maximum, hint=hint)


def _text(name: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise TypeError(f"{name} must be a str, got {type(v).__name__}")
        if not v.strip():
            raise EstimatorInputError(f"--{name} is empty", f"pass a value to --{name} or leave it out")
        if len(v) > MAX_TEXT:
            raise EstimatorInputError(f"--{name} {show(v)} is longer than any known value",
                                      f"pass a --{name} of at most {MAX_TEXT} characters")
        return v.strip()
    return check


def _model(v: Any) -> ModelSpec:
    if isinstance(v, ModelSpec):
        return v
    if isinstance(v, str):
        from estimator.presets import load_preset

        return load_preset(v)
    raise TypeError(f"model must be a ModelSpec or a preset name, got {type(v).__name__}")


def _calibration(v: Any) -> Any:
    from pathlib import Path

    from estimator.calibration import Calibration

    if isinstance(v, (Calibration, str, Path)):
        return v
    raise TypeError(f"calibration must be a path or a Calibration, got {type(v).__name__}")


def _flag(name: str) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be True or False, got {v!r}")
        return v
    return check


SHAPE = {"params": _pos("params", hint="e.g. --params 70e9"), "active_params": _pos("active-params"),
         "experts": _int("experts", maximum=1e5), "experts_per_token": _int("experts-per-token", maximum=1e5),
         "seq_len": _int("seq-len", maximum=1e8)}
SITE = {"pue": _pos("pue", minimum=1.0, inclusive=True, hint="PUE is >= 1.0, e.g. --pue 1.1"),
        "region": _text("region"), "grid_intensity": _nonneg("grid-intensity", hint="gCO2e/kWh, e.g. 400"),
        "price_per_gpu_hour": _nonneg("price-per-gpu-hour"), "gpu": _text("gpu"), "model": _model,
        "calibration": _calibration, "force_calibration": _flag("force_calibration")}
TRAINING = SHAPE | SITE | {
    "tokens": _pos("tokens", hint="e.g. --tokens 2e12"), "gpus": _int("gpus", maximum=MAX_GPUS, hint=""),
    "precision": lambda v: choice("precision", v, TRAINING_PRECISIONS),
    **{k: _int(k.replace("_", "-"), maximum=1e6) for k in ("tp", "pp", "dp", "ep", "cp", "micro_batch")},
    "zero": _int("zero", minimum=0, maximum=3, hint="ZeRO stage is 0, 1, 2 or 3 (3 = FSDP)"),
    "recompute": lambda v: choice("recompute", v, RECOMPUTE),
    "global_batch_tokens": _pos("global-batch-tokens"),
    "mfu": _pos("mfu", maximum=1.0, hint="MFU is a fraction in (0, 1], e.g. --mfu 0.4"),
    "gpu_power_w": _pos("gpu-power-w"), "owned": _flag("owned"), "capex_per_gpu": _pos("capex-per-gpu"),
    "electricity_usd_per_kwh": _pos("electricity-usd-per-kwh"),
    "framework_efficiency": _pos("framework-efficiency", maximum=1.0),
    "failure_rate_per_gpu_hour": _nonneg("failure-rate-per-gpu-hour"),
    "restart_overhead_hours": _nonneg("restart-overhead-hours"), "target_days": _pos("target-days"),
    "flash_attention": _flag("flash_attention"),
    "sequence_parallel": lambda v: None if v is None else _flag("sequence_parallel")(v),
    "ep_comm_overlap": _flag("ep_comm_overlap"),
    "scaleout_gb_per_s": _pos("scaleout-gb-per-s", maximum=1e5,
                              hint="e.g. --scaleout-gb-per-s 50 (one 400 Gb/s NIC per GPU)"),
    "accelerator_efficiency": _pos("accelerator-efficiency", maximum=2.0),
    "framework": lambda v: choice("framework", v, framework_ids())}
SERVING = SHAPE | SITE | {
    "gpus_per_replica": _int("gpus-per-replica", maximum=4096), "batch": _int("batch", maximum=MAX_BATCH),
    "prompt_tokens": _int("prompt-tokens", maximum=MAX_TOTAL_TOKENS),
    "output_tokens": _int("output-tokens", maximum=MAX_TOTAL_TOKENS),
    "reasoning_tokens": _int("reasoning-tokens", minimum=0, maximum=MAX_TOTAL_TOKENS),
    "weight_precision": lambda v: choice("weight-precision", v, WEIGHT_PRECISIONS),
    "kv_precision": lambda v: choice("kv-precision", v, KV_PRECISIONS),
    "queries_per_day": _pos("queries-per-day", maximum=1e15, hint="e.g. --queries-per-day 1e6"),
    "peak_to_average": _pos("peak-to-average", minimum=1.0, inclusive=True, maximum=1e3,
                            hint="peak / average load, >= 1, e.g. --peak-to-average 2"),
    "batching": lambda v: choice("batching", v, BATCHING), "optimise": lambda v: choice("optimise", v, OPTIMISE),
    "ttft_slo_ms": _pos("ttft-slo-ms", maximum=1e9), "tpot_slo_ms": _pos("tpot-slo-ms", maximum=1e9)}


class _Validated:
    """Validate and normalise every non-None field with the class's table of checks, then freeze."""

    _checks: dict[str, Callable[[Any], Any]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is None and f.default is not None and f.default is not MISSING:
                object.__setattr__(self, f.name, f.default)  # None means "the default" for every field
                continue
            check = self._checks.get(f.name)
            if v is not None and check is not None:
                object.__setattr__(self, f.name, check(v))

    def to_dict(self) -> dict:
        """The inputs as given (after normalisation), JSON-able: a model as its name, a calibration as its path."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, ModelSpec):
                v = v.name
            elif v is not None and not isinstance(v, (int, float, str, bool, dict)):
                v = str(getattr(v, "path", v))
            out[f.name] = v
        return out

    def kwargs(self, drop: tuple[str, ...] = ()) -> dict:
        """The fields that were set, as keyword arguments (for deriving another record)."""
        return {f.name: getattr(self, f.name) for f in fields(self)  # type: ignore[arg-type]
                if getattr(self, f.name) is not None and f.name not in drop}


@dataclass(frozen=True)
class _ModelAndSite(_Validated):
    """Inputs every estimate shares: the model (preset, size or shape overrides), the GPU, the site, the price and
    the calibration."""

    model: ModelSpec | None = None
    params: float | None = None
    active_params: float | None = None
    experts: int | None = None
    experts_per_token: int | None = None
    seq_len: int | None = None
    layers: Any = None
    d_model: Any = None
    heads: Any = None
    kv_heads: Any = None
    ffn_dim: Any = None
    vocab: Any = None
    gpu: str | None = None
    pue: float | None = None
    region: str | None = None
    grid_intensity: float | None = None
    price_per_gpu_hour: float | None = None
    calibration: Any = None
    force_calibration: bool = False

    def shape_overrides(self) -> dict:
        """The model-shape fields the user set."""
        return {k: getattr(self, k) for k in ("layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab")}


@dataclass(frozen=True)
class TrainingConfig(_ModelAndSite):
    """Every input of a training estimate; None means 'use the documented default' (recorded in assumptions)."""

    tokens: float | None = None
    gpus: int | None = None
    precision: str | None = None
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    ep: int | None = None
    cp: int | None = None
    zero: int | None = None
    recompute: str | None = None
    micro_batch: int | None = None
    global_batch_tokens: float | None = None
    mfu: float | None = None
    gpu_power_w: float | None = None
    owned: bool = False
    capex_per_gpu: float | None = None
    electricity_usd_per_kwh: float | None = None
    framework_efficiency: float | None = None
    failure_rate_per_gpu_hour: float | None = None
    restart_overhead_hours: float | None = None
    target_days: float = 90.0
    flash_attention: bool = True  # software vintage: False for runs before FlashAttention (Dao et al. 2022)
    sequence_parallel: bool | None = None  # None: the framework's (and vintage's) own; False: --no-sequence-parallel
    ep_comm_overlap: bool = False  # Megatron-Core's batch-level overlap of the MoE all-to-all (--ep-comm-overlap)
    scaleout_gb_per_s: float | None = None  # the cluster's network per GPU (GB/s each way); the reference system's
    accelerator_efficiency: float | None = None  # API only: replaces hardware_db/accelerator_efficiency.csv
    framework: str | None = None  # hardware_db/frameworks.csv: gradient precision, layouts, activation profile

    _checks = TRAINING  # type: ignore[assignment]


@dataclass(frozen=True)
class ServingConfig(_ModelAndSite):
    """Every input of a serving estimate; None means 'use the documented default' (recorded in assumptions)."""

    gpus_per_replica: int | None = None
    batch: int | None = None
    prompt_tokens: int = 1000
    output_tokens: int = 500
    reasoning_tokens: int = 0
    weight_precision: str | None = None
    kv_precision: str | None = None
    queries_per_day: float | None = None
    peak_to_average: float | None = None
    batching: str | None = None
    optimise: str | None = None
    ttft_slo_ms: float | None = None
    tpot_slo_ms: float | None = None

    _checks = SERVING  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        total = self.prompt_tokens + self.output_tokens + self.reasoning_tokens
        if total > MAX_TOTAL_TOKENS:
            raise EstimatorInputError(f"prompt + output + reasoning tokens = {total:,} exceeds {MAX_TOTAL_TOKENS:,} "
                                      "per request", "pass realistic token counts per query")


#: budget kind -> (TrainingEstimate.to_dict key, unit, CLI flag)
BUDGETS = {
    "usd": ("cost_usd", "USD", "--budget-usd"),
    "mwh": ("energy_mwh", "MWh", "--budget-mwh"),
    "tco2e": ("co2e_tonnes", "tCO2e", "--budget-tco2e"),
    "days": ("wall_clock_days", "day", "--budget-days"),
    "flops": ("flops", "FLOP", "--budget-flops"),
}
PLAN_SHAPE_OVERRIDES = ("layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "experts", "experts_per_token",
                        "active_params")


@dataclass(frozen=True)
class PlanConfig:
    """One budget, what is fixed (model, params or tokens), the plan options, and the forward estimate's inputs."""

    budget_kind: str
    budget: float
    training: TrainingConfig  # gpu, gpus, region, price ... (model/params/tokens are the plan's own fields)
    model: ModelSpec | None = None
    params: float | None = None
    tokens: float | None = None
    scaling_law: str | None = None
    lifetime_inference_tokens: float | None = None
    unique_tokens: float | None = None
    compare: bool = True

    @classmethod
    def build(cls, budgets: dict, *, model=None, params=None, tokens=None, scaling_law=None,
              lifetime_inference_tokens=None, unique_tokens=None, compare: bool = True, **estimate) -> PlanConfig:
        """Validate a plan's inputs: exactly one budget, at most one of model/params/tokens, no shape override."""
        given = {k: v for k, v in budgets.items() if v is not None}
        if not given:
            raise EstimatorInputError("no budget given", "pass one of " + ", ".join(b[2] for b in BUDGETS.values()))
        if len(given) > 1:
            raise EstimatorInputError(" and ".join(BUDGETS[k][2] for k in given) + " given at once",
                                      "plan from one budget at a time")
        kind, raw = next(iter(given.items()))
        budget = number(BUDGETS[kind][2].lstrip("-"), raw, hint=f"a positive number, e.g. {BUDGETS[kind][2]} 1e6")
        bad = [k for k in PLAN_SHAPE_OVERRIDES if estimate.get(k) is not None]
        if bad:
            raise EstimatorInputError(f"--{bad[0].replace('_', '-')} cannot be combined with a budget",
                                      "a plan chooses a dense model's shape; pass --params or --preset to fix the "
                                      "model")
        if sum(x is not None for x in (params, tokens, model)) > 1:
            raise EstimatorInputError("a budget with both the model size (--params/--preset) and --tokens fixed "
                                      "leaves nothing to plan", "fix at most one of them, or drop the budget to "
                                      "estimate")
        if kind == "days" and estimate.get("gpus") is None:
            raise EstimatorInputError("--budget-days needs the cluster size", "pass --gpus N (and --gpu)")
        if scaling_law is not None:
            from estimator.scaling import get_law

            scaling_law = _text("scaling-law")(scaling_law)
            get_law(scaling_law)  # an unknown law is refused here, before any estimate runs
        t = None if lifetime_inference_tokens is None else number(
            "lifetime-inference-tokens", lifetime_inference_tokens, minimum=0, inclusive=True)
        u = None if unique_tokens is None else number("unique-tokens", unique_tokens, hint="e.g. --unique-tokens 5e12")
        n = None if params is None else number("params", params, hint="e.g. --params 70e9")
        d = None if tokens is None else number("tokens", tokens, hint="e.g. --tokens 2e12")
        if (n is not None or model is not None) and t:
            raise EstimatorInputError("--lifetime-inference-tokens changes the model size, which is fixed here",
                                      "drop --params/--preset, or drop --lifetime-inference-tokens")
        return cls(kind, budget, TrainingConfig(**estimate), None if model is None else _model(model), n, d,
                   scaling_law, t, u, bool(compare))

    def to_dict(self) -> dict:
        """JSON-able echo of the plan's inputs."""
        return {"budget_kind": self.budget_kind, "budget": self.budget,
                "model": self.model.name if self.model is not None else None, "params": self.params,
                "tokens": self.tokens, "scaling_law": self.scaling_law,
                "lifetime_inference_tokens": self.lifetime_inference_tokens, "unique_tokens": self.unique_tokens,
                "compare": self.compare, "training": self.training.to_dict()}
