"""``plan``: from a budget (dollars, facility MWh, tCO2e, days on a cluster, FLOPs) to the model it buys.

The budget is spent through the forward model itself: every candidate (params, tokens) is priced
with ``estimate_training`` on the user's hardware, region, PUE and price, and the answer IS one
forward estimate, so planning and estimating agree in both directions.

Method (about 5-12 calls of ``estimate_training``):
1. A cheap first guess of the compute C = 6 N D the budget allows (FLOPs budget: itself; days on G
   GPUs: G x peak x 40% x days; otherwise one probe run whose cost is scaled).
2. Secant steps on log C: split C with the scaling law (``ScalingLaw.allocate``), estimate, compare
   the metric with the budget, until within 2% or the next step is under 0.5% (model shapes come in
   whole layers and the fastest parallel layout jumps, so the metric is a step function of C).
3. Exact finish: with the model shape and GPU count held, every budget metric is proportional to the
   token count (steps x step time), so the tokens are scaled by budget / metric and estimated once
   more; the result is that estimate, checked to within 1% of the budget.
When no --gpus is given, the count the forward estimate defaults to (about 90 days, capped) is taken at the
first full-scale guess and then held fixed, so that step 3 stays proportional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from estimator.config import BUDGETS, PLAN_SHAPE_OVERRIDES, PlanConfig, TrainingConfig
from estimator.errors import EstimatorInputError
from estimator.flops import forward_flops_per_token
from estimator.hardware import accelerator, peak_flops
from estimator.model import ModelSpec, param_count
from estimator.results import TrainingEstimate
from estimator.scaling import ScalingLaw, constant, data_stock, effective_tokens, get_law, hq_data_stock
from estimator.training import estimate_training

ATTENTION_SEQS = (8192, 131072, 1048576)
GUESS_MFU = 0.4  # first guess only; the answer comes from the time model
SECANT_TOL = 0.02  # relative, on the metric, before the exact token scaling (N moves ~0.45x as much)
STEP_TOL = 0.005  # stop when the next compute step is this small: shapes and layouts are discrete
FINAL_TOL = 0.01  # the returned estimate uses the budget to within 1%
MAX_STEPS = 8
MIN_PLAN_PARAMS = 1e6  # the forward estimate's smallest model (estimator.resolve); a budget buying less is refused
MOE_EXPERTS, MOE_TOP_K = 8, 2  # the MoE compared with the planned dense model (Mixtral-style 8 experts, top-2)
MOE_LOSS_NOTE = "loss not predicted (no verified MoE scaling law)"
SHAPE_OVERRIDES = PLAN_SHAPE_OVERRIDES


def _metric(est: TrainingEstimate, kind: str) -> float:
    """The budget metric (USD, MWh, tCO2e, days, FLOP) of an estimate."""
    if kind == "usd" and est.cost is None:
        raise EstimatorInputError(f"no price for {est.gpu}, so a dollar budget cannot be planned",
                                  "pass --price-per-gpu-hour USD")
    q = {"usd": (est.cost, "USD"), "mwh": (est.energy, "MWh"), "tco2e": (est.co2e, "tCO2e"),
         "days": (est.wall_clock_days, "day"), "flops": (est.flops, "FLOP")}[kind]
    return float(q[0].m_as(q[1]))


def attention_share(spec: ModelSpec, seq: float) -> float:
    """Fraction of forward FLOPs per token in the quadratic attention core (QK^T, AV) at context ``seq``.

    Uses ``estimator.flops.forward_flops_per_token`` (full s x s score matrix, as PaLM App. B counts).
    """
    f = forward_flops_per_token(spec, seq)
    return f.attn_core / f.total


def attention_table(spec: ModelSpec, seqs=ATTENTION_SEQS) -> list[dict]:
    """Attention vs a linear-time sequence layer at each context length.

    ``linear_flops_per_token`` drops the quadratic core and keeps every projection: a lower bound for
    a linear-time mixer (state-space or linear-attention layers add O(d) work per token, not O(s d)).
    """
    rows = []
    for s in seqs:
        f = forward_flops_per_token(spec, s)
        rows.append({"seq_len": int(s), "attention_share": f.attn_core / f.total,
                     "forward_flops_per_token": f.total, "linear_flops_per_token": f.total - f.attn_core,
                     "quadratic_over_linear": f.total / (f.total - f.attn_core)})
    return rows


def moe_like(dense: ModelSpec, experts: int = MOE_EXPERTS, top_k: int = MOE_TOP_K) -> ModelSpec:
    """The dense shape with each FFN split into ``experts`` routed experts, ``top_k`` active per token.

    Same recipe as ``estimator.training.moe_from_active``: one expert is 1/k of the dense FFN width
    (rounded to a multiple of 128), so the active parameters, and the training FLOPs per token, stay
    those of the dense model (plus the router), while the total grows about experts/k-fold in the FFNs.
    """
    e_ffn = max(128, int(round(dense.ffn_dim / top_k / 128)) * 128)
    return dense.with_(experts=experts, experts_per_token=top_k, moe_ffn_dim=e_ffn, name="derived-moe")


def _arch_row(label: str, est: TrainingEstimate | None, spec: ModelSpec, tokens: float, loss: float | None,
              note: str, error: str | None = None) -> dict:
    pc = param_count(spec)
    row = {"architecture": label, "params": float(pc.total), "active_params": float(pc.active),
           "experts": spec.experts, "experts_per_token": spec.experts_per_token, "tokens": float(tokens),
           "fits": est is not None, "predicted_loss": loss, "loss_note": note}
    if est is None:
        row["error"] = error
        return row
    e = est.to_dict()
    row.update({k: e[k] for k in ("flops", "memory_per_gpu_gb", "gpu_hours", "wall_clock_days", "energy_mwh",
                                  "co2e_tonnes", "cost_usd", "gpus", "mfu")})
    row["layout"] = est.layout.describe()
    return row


def compare_architectures(est: TrainingEstimate, loss: float, law_id: str, **estimate_kwargs) -> list[dict]:
    """Dense plan vs an MoE with the same active parameters and tokens (so the same training FLOPs).

    One extra ``estimate_training`` call, on the plan's GPU type, count, region and price
    (``estimate_kwargs`` as the plan used them). An MoE that does not fit in memory on those GPUs is
    reported with ``fits: False`` and the reason. The MoE's loss is not predicted: no MoE scaling law
    with constants checked against its paper is in ``hardware_db/scaling_laws.csv``.
    """
    dense = est.model
    rows = [_arch_row("dense", est, dense, est.tokens, loss, f"predicted by {law_id}")]
    moe = moe_like(dense)
    try:
        m = estimate_training(moe, tokens=est.tokens, gpus=est.gpus, **estimate_kwargs)
        rows.append(_arch_row(f"MoE {moe.experts} experts, top-{moe.experts_per_token}", m, moe, est.tokens, None,
                              MOE_LOSS_NOTE))
    except EstimatorInputError as exc:
        rows.append(_arch_row(f"MoE {moe.experts} experts, top-{moe.experts_per_token}", None, moe, est.tokens,
                              None, MOE_LOSS_NOTE, error=str(exc)))
    return rows


@dataclass(frozen=True)
class PlanResult:
    """What a budget buys: the compute-optimal run, as one forward ``TrainingEstimate``."""

    budget_kind: str
    budget: float
    budget_unit: str
    budget_used: float
    law: ScalingLaw
    estimate: TrainingEstimate
    compute_6nd: float  # 6 N D, the compute the law is stated in (FLOP)
    predicted_loss: float
    fixed: str  # "none" | "params" | "tokens" | "model"
    inference_tokens: float | None
    unique_tokens: float | None
    attention: tuple
    calls: int
    inference: dict | None = None
    warnings: tuple = field(default_factory=tuple)
    architectures: tuple = field(default_factory=tuple)

    config: dict | None = None

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the ``estimate plan --json`` output)."""
        e = self.estimate.to_dict()
        stock, hq = data_stock(), hq_data_stock()
        d = {
            "mode": "plan",
            "budget": {"kind": self.budget_kind, "value": self.budget, "unit": self.budget_unit,
                       "flag": BUDGETS[self.budget_kind][2], "used": self.budget_used,
                       "used_fraction": self.budget_used / self.budget},
            "flops": e["flops"], "compute_6nd": self.compute_6nd,
            "params": e["model"]["params"], "active_params": e["model"]["active_params"], "tokens": e["tokens"],
            "tokens_per_param": e["tokens"] / e["model"]["params"],
            "predicted_loss": self.predicted_loss,
            "gpu_hours": e["gpu_hours"], "wall_clock_days": e["wall_clock_days"], "energy_mwh": e["energy_mwh"],
            "co2e_tonnes": e["co2e_tonnes"], "cost_usd": e["cost_usd"],
            "gpu": e["gpu"], "gpus": e["gpus"],
            "scaling_law": self.law.to_dict(),
            "fixed": self.fixed,
            "data": {"unique_tokens": self.unique_tokens,
                     "epochs": (e["tokens"] / self.unique_tokens) if self.unique_tokens else 1.0,
                     "effective_tokens": effective_tokens(e["tokens"], self.unique_tokens),
                     "stock_tokens": stock.value, "stock_tokens_low": stock.low, "stock_tokens_high": stock.high,
                     "stock_source": stock.source,
                     "hq_stock_tokens_low": hq.low, "hq_stock_tokens_high": hq.high, "hq_stock_source": hq.source},
            "inference": self.inference,
            "attention": list(self.attention),
            "architectures": {"compared_at": "same active parameters and tokens (same training FLOPs), same GPUs, "
                                             "region and price",
                              "rows": [dict(r) for r in self.architectures]} if self.architectures else None,
            "estimate_calls": self.calls,
            "estimate": e,
            "warnings": list(self.warnings) + [w for w in e["warnings"] if w not in self.warnings],
            "config": self.config, "schema_version": e["schema_version"],
        }
        return d


def _first_guess_c6(kind: str, budget: float, gpus, gpu, precision) -> float | None:
    """6ND guess from the hardware peak where that is direct (FLOPs, days); else None (use a probe)."""
    if kind == "flops":
        return budget
    if kind == "days" or gpus is not None:
        accel = accelerator(gpu)
        days = budget if kind == "days" else 30.0
        return float(gpus) * peak_flops(accel, precision or accel.default_precision()) * GUESS_MFU * days * 86400
    return None


class _Planner:
    """The search state of one plan: the estimate calls made, the GPU count once held, the warnings."""

    def __init__(self, cfg: PlanConfig) -> None:
        self.cfg = cfg
        self.kind, self.budget = cfg.budget_kind, cfg.budget
        self.calls = 0
        self.gpus = cfg.training.gpus
        self.seq_len = cfg.training.seq_len
        self.base = cfg.training.kwargs(drop=("gpus", "seq_len", "model", "params", "tokens"))
        self.warnings: list[str] = []
        t = cfg.training
        self.guess = _first_guess_c6(self.kind, self.budget, t.gpus, t.gpu, t.precision)

    def run(self, *, n=None, spec: ModelSpec | None = None, d: float) -> TrainingEstimate:
        """One forward estimate of a candidate (model size or shape, tokens) on the plan's hardware."""
        self.calls += 1
        if spec is None and n is not None and n < MIN_PLAN_PARAMS and self.cfg.params is None:
            flag = BUDGETS[self.kind][2]
            raise EstimatorInputError(f"{flag} {self.budget:g} buys less than a model of a million parameters "
                                      f"({n:.3g} at {d:.3g} tokens)", f"pass a larger {flag}")
        cfg = TrainingConfig(model=spec, params=None if spec is not None else n, tokens=d, gpus=self.gpus,
                             seq_len=None if spec is not None else self.seq_len, **self.base)
        return estimate_training(cfg)

    def hold_gpus(self, est: TrainingEstimate) -> None:
        """Fix the GPU count at the forward estimate's default for this run size."""
        if self.gpus is None:
            self.gpus = est.gpus
            self.warnings.append(f"GPU count: {est.gpus} (the forward estimate's default for this run size), "
                                 "held fixed while planning; pass --gpus to choose")

    def secant(self, x0: float, run_at, x_of) -> TrainingEstimate:
        """Secant steps on log x until the budget metric is within SECANT_TOL; returns the closest estimate.

        ``run_at(x)`` prices a candidate; ``x_of(est, x)`` is the x the estimate actually realised (shapes
        come in whole layers). The first call, when no GPU count is fixed, is a probe scaled to the budget.
        """
        x, prev, best = x0, None, None
        for _ in range(MAX_STEPS):
            est = run_at(x)
            m = _metric(est, self.kind)
            r = math.log(self.budget / m)
            if self.gpus is None:
                if self.guess is None and self.calls == 1:
                    x *= self.budget / m  # probe: scale to the budget, then let the estimate pick the GPUs
                    continue
                self.hold_gpus(est)
            if best is None or abs(r) < abs(best[0]):
                best = (r, est)
            if abs(r) < SECANT_TOL:
                break
            lx = math.log(x_of(est, x))
            slope = 1.0
            if prev is not None and abs(lx - prev[0]) > 1e-9:
                slope = min(3.0, max(0.3, (math.log(m) - prev[1]) / (lx - prev[0])))
            prev = (lx, math.log(m))
            if abs(r / slope) < STEP_TOL:
                break
            x = math.exp(lx + r / slope)
        return best[1]  # type: ignore[index]

    def solve(self, law: ScalingLaw) -> tuple[TrainingEstimate, str]:
        """The estimate that spends the budget, and what was fixed ("none" | "params" | "tokens" | "model")."""
        c = self.cfg
        if c.model is not None:
            est, fixed = self.run(spec=c.model, d=law.tokens_for_params(float(param_count(c.model).total))), "model"
        elif c.params is not None:
            est, fixed = self.run(n=c.params, d=law.tokens_for_params(c.params)), "params"
        elif c.tokens is not None:  # fixed tokens: search the model size (metric grows about linearly with N)
            d_fix = c.tokens
            return self.secant((self.guess or 1e24) / (6 * d_fix), lambda n: self.run(n=n, d=d_fix),
                               lambda est, n: est.params), "tokens"
        else:  # free: secant on log(6ND), split by the scaling law
            def run_compute(c6: float) -> TrainingEstimate:
                n, d = law.allocate(c6, c.lifetime_inference_tokens or 0.0, c.unique_tokens)
                return self.run(n=n, d=d)

            est, fixed = self.secant(self.guess or 1e24, run_compute, lambda est, c6: c6), "none"
        # exact finish: hold the shape and GPUs, scale the tokens (metrics are proportional to tokens)
        self.hold_gpus(est)
        spec = est.model
        for _ in range(3):
            m = _metric(est, self.kind)
            if abs(m / self.budget - 1) < 1e-4:
                break
            est = self.run(spec=spec, d=est.tokens * self.budget / m)
        return est, fixed


def _data_warnings(d_act: float, U: float | None, d_eff: float) -> list[str]:
    """Warnings when the plan needs more text than exists (Villalobos et al.) or repeats it too often."""
    out = []
    stock, hq = data_stock(), hq_data_stock()
    ref = constant("llama3.training_tokens")
    unique = d_act if U is None else U
    # default data warning: the stock of high-quality text (Villalobos et al. 2022)
    if hq.low is not None and unique > hq.low:
        w = constant("villalobos2022.hq_stock_words")
        out.append(f"the plan needs {unique:.3g} unique tokens, more than the stock of high-quality language "
                   f"data: {hq.low:.2g}-{hq.high:.2g} tokens ({w.low:.2g}-{w.high:.2g} words x "
                   f"{hq.value / w.value:.3g} tokens/word; Villalobos et al. 2022, arXiv:2211.04325v1); "
                   f"Llama 3 was trained on ~{ref.value:.2g} tokens (model card '15T+')"
                   + ("; pass --unique-tokens U to plan with repeated epochs (Muennighoff et al. 2023)"
                      if U is None else ""))
    if U is None and stock.low is not None and d_act > stock.low:
        out.append(f"the plan trains on {d_act:.3g} tokens; the stock of public human-generated text is "
                   f"~{stock.value:.0e} tokens (90% CI {stock.low:.0e}-{stock.high:.0e}; Villalobos et al. 2024): "
                   "pass --unique-tokens U to plan with repeated epochs (Muennighoff et al. 2023)")
    if U is not None:
        if U > stock.value:
            out.append(f"--unique-tokens {U:.3g} exceeds the ~{stock.value:.0e}-token stock of public "
                       "human-generated text (Villalobos et al. 2024)")
        epochs = d_act / U
        if epochs > 4:
            out.append(f"{epochs:.1f} epochs over the unique data: beyond ~4 epochs repeated tokens are worth "
                       f"less (Muennighoff et al. 2023); effective tokens {d_eff:.3g} of {d_act:.3g}")
    return out


def _inference_trade(law: ScalingLaw, n_act: float, d_act: float, T: float) -> dict:
    """Lifetime FLOPs of the plan against the training-only optimum at the same compute (Sardana et al. 2023)."""
    c6 = 6 * n_act * d_act
    n_c, d_c = law.allocate(c6)
    return {"lifetime_inference_tokens": T, "source": "Sardana et al. 2023, 'Beyond Chinchilla-Optimal' "
            "(arXiv:2401.00448): minimise 6ND + 2NT at equal loss",
            "inference_flops": 2 * n_act * T, "lifetime_flops": c6 + 2 * n_act * T,
            "training_only_optimum": {"params": n_c, "tokens": d_c, "predicted_loss": law.loss(n_c, d_c),
                                      "inference_flops": 2 * n_c * T, "lifetime_flops": c6 + 2 * n_c * T}}


def plan(budget_usd=None, budget_mwh=None, budget_tco2e=None, budget_days=None, budget_flops=None, *,
         params=None, tokens=None, model: ModelSpec | str | None = None, scaling_law: str | None = None,
         lifetime_inference_tokens=None, unique_tokens=None, compare: bool = True, config: PlanConfig | None = None,
         **estimate_kwargs) -> PlanResult:
    """Plan the compute-optimal training run a budget buys.

    Exactly one budget: ``budget_usd`` (USD), ``budget_mwh`` (facility MWh incl. PUE), ``budget_tco2e``
    (operational tCO2e, location-based), ``budget_days`` (wall-clock days; needs ``gpus``) or
    ``budget_flops`` (model FLOPs as the forward estimate counts them). Optional: fixed ``params`` or
    ``tokens`` (not both) or a fixed ``model`` shape; ``lifetime_inference_tokens`` (Sardana et al. 2023
    trade); ``unique_tokens`` (Muennighoff et al. 2023 repeated-data law). Other keyword arguments
    (gpu, gpus, precision, pue, region, price_per_gpu_hour, ...) are ``TrainingConfig`` fields for the forward
    estimate. ``compare`` (default True) adds the dense-vs-MoE comparison; ``config`` passes a built PlanConfig.
    """
    cfg = config or PlanConfig.build({"usd": budget_usd, "mwh": budget_mwh, "tco2e": budget_tco2e,
                                      "days": budget_days, "flops": budget_flops}, model=model, params=params,
                                     tokens=tokens, scaling_law=scaling_law, compare=compare,
                                     lifetime_inference_tokens=lifetime_inference_tokens,
                                     unique_tokens=unique_tokens, **estimate_kwargs)
    law = get_law(cfg.scaling_law)
    planner = _Planner(cfg)
    est, fixed = planner.solve(law)
    warnings = planner.warnings
    used = _metric(est, cfg.budget_kind)
    if abs(used / cfg.budget - 1) > FINAL_TOL:
        warnings.append(f"the plan uses {used / cfg.budget:.1%} of the budget: model shapes come in whole layers, so "
                        "the budget cannot be met exactly with the tokens fixed")
    n_act, d_act = float(est.params), float(est.tokens)
    U, T = cfg.unique_tokens, cfg.lifetime_inference_tokens
    d_eff = effective_tokens(d_act, U)
    loss = law.loss(n_act, d_eff)
    warnings += _data_warnings(d_act, U, d_eff)
    if law.form == "kaplan":
        warnings.append("Kaplan et al. 2020 predicts loss on WebText2 with non-embedding parameters; here N is the "
                        "total parameter count and the loss is not comparable with Chinchilla's")
    archs = tuple(compare_architectures(est, loss, law.id, **planner.base)) if cfg.compare else ()
    return PlanResult(budget_kind=cfg.budget_kind, budget=cfg.budget, budget_unit=BUDGETS[cfg.budget_kind][1],
                      budget_used=used, law=law, estimate=est, compute_6nd=6 * n_act * d_act, predicted_loss=loss,
                      fixed=fixed, inference_tokens=T, unique_tokens=U, attention=tuple(attention_table(est.model)),
                      calls=planner.calls, inference=_inference_trade(law, n_act, d_act, T) if T else None,
                      warnings=tuple(warnings), architectures=archs, config=cfg.to_dict())
