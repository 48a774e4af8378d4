"""Low/high ranges: the optimistic and pessimistic corners of the uncertain inputs.

The time range is the calibration's worst held-out error where a calibration supplied the rates, else the
documented uncalibrated efficiency range; goodput, busy power, PUE, grid intensity and price each contribute
their documented low/high. (Issue 14 replaces the fixed efficiency corners by a calibrated interval.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from estimator import facility as _fac
from estimator.assumptions import Assumed, Assumptions
from estimator.hardware import Rates, assumption


def _holdout_rel(holdout: dict) -> tuple[float | None, str]:
    """The held-out time error a calibration's range uses: its GEMMs' p90 (GEMMs dominate a step), else the p90 over
    every kernel, else (v1 files) the worst."""
    g = (holdout.get("by_kind") or {}).get("gemm") or {}
    for v, what in ((g.get("time_p90_abs_rel_err"), "90th percentile of held-out GEMM time errors"),
                    (holdout.get("time_p90_abs_rel_err"), "90th percentile of held-out time errors"),
                    (holdout.get("time_worst_abs_rel_err"), "worst held-out time error")):
        if isinstance(v, (int, float)) and v > 0:
            return float(v), what
    return None, ""


def efficiency_rel(rates: Rates, mfu_given: bool) -> tuple[float, Assumptions]:
    """Relative time uncertainty: 0 when the user fixed MFU, the calibration's held-out error (a transfer to
    another GPU generation at least the uncalibrated range), or the documented uncalibrated range."""
    cal = rates.calibration
    a = assumption("efficiency_rel_range_uncalibrated")
    default = float(a.value)
    rel, what = _holdout_rel(cal.holdout) if cal is not None and rates.kind in ("calibrated", "scaled") else (None, "")
    if rel is None:
        rec = Assumed(default, "relative", a.source)
        rel = default
    elif rates.kind == "scaled" and rates.transfer == "other_generation" and rel < default:
        rec = Assumed(default, "relative", f"{a.source} (kernel rates scaled across GPU generations from calibration "
                                           f"{cal.id}, whose {what} is {rel:.0%})")  # type: ignore[union-attr]
        rel = default
    else:
        rec = Assumed(rel, "relative", f"calibration {cal.id}: {what}")  # type: ignore[union-attr]
    return (0.0 if mfu_given else rel), Assumptions({"efficiency_range": rec})


def training_time_factors() -> tuple[float, float, Assumptions]:
    """(low, high) factors on predicted training GPU-hours (and days): the split-conformal 80% order statistics of
    reported / predicted over comparable published runs, fitted by ``benchmarks/interval_fit.py`` and checked there
    on held-out organisations (``training_time_interval`` in hardware_db/assumptions.csv). For training ranges when no
    calibration-specific range applies: ``[gpu_hours x low, gpu_hours x high]``."""
    a = assumption("training_time_interval")
    if a.low is None or a.high is None:
        raise ValueError("hardware_db/assumptions.csv: training_time_interval needs low and high factors")
    lo, hi = float(a.low), float(a.high)
    return lo, hi, Assumptions({"training_time_interval": Assumed(float(a.value), "factor on GPU-hours", a.source,
                                                                  lo, hi)})


def time_corners(rel: float) -> tuple[float, float]:
    """(fast, slow) multipliers on every time for a relative uncertainty ``rel``: 1 / (1 + rel) and 1 + rel."""
    return 1.0 / (1.0 + rel), 1.0 + rel


@dataclass(frozen=True)
class Corner:
    """One corner of the inputs: GPU-hours, busy power, PUE, grid intensity."""

    gpu_hours: float
    busy_w: float
    pue: float
    grid: float


def serving_ranges(ph: Any, tp: int, b: int, pm: Any, site: Any, grid: Any, price: Any, rel: float, usd_m, gen: int
                   ) -> dict:
    """Corners of the efficiency, busy power, PUE, grid and price ranges of a serving estimate."""
    t_dec = ph.n_steps * ph.t_dec

    def corner(scale: float, busy: float, pue: float) -> tuple[float, float]:
        """(GPU J per cycle, facility Wh per query) with all times x scale and busy power ``busy``."""
        j = tp * (pm.at(ph.u_pre / scale, ph.m_pre / scale, busy) * ph.t_pre * scale
                  + pm.at(ph.u_dec / scale, ph.m_dec / scale, busy) * t_dec * scale)
        fw = float(_fac.facility_power_w(j / tp / (ph.t_cycle * scale), site.host_w, tp, pue))
        return j, fw * ph.t_cycle * scale / b / 3600

    fast, slow = time_corners(rel)
    j_lo, fwh_lo = corner(fast, pm.busy_low, site.pue_low)
    j_hi, fwh_hi = corner(slow, pm.busy_high, site.pue_high)
    tps = b * gen / ph.t_cycle
    usd_h = price.usd_per_gpu_hour
    return {
        "ttft_ms": [ph.t_ttft * 1e3 * fast, ph.t_ttft * 1e3 * slow],
        "tpot_ms": [ph.t_step * 1e3 * fast, ph.t_step * 1e3 * slow],
        "tokens_per_second_per_gpu": [tps / tp / slow, tps / tp / fast],
        "energy_per_output_token_j": [j_lo / (b * gen), j_hi / (b * gen)],
        "energy_per_query_wh": [j_lo / b / 3600, j_hi / b / 3600],
        "facility_energy_per_query_wh": [fwh_lo, fwh_hi],
        "co2e_per_query_g": [fwh_lo * grid.low / 1000, fwh_hi * grid.high / 1000],
        "cost_per_million_output_tokens_usd": ([None, None] if not usd_h else
                                               [usd_m * fast * price.low / usd_h, usd_m * slow * price.high / usd_h]),
    }
