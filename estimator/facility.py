"""From GPU power to facility power, energy, operational and embodied CO2e and dollars.

One policy for what the data lacks, the same for training, serving, sweeps and the dashboard:
- no power figure (TDP) and no user or calibrated figure: refuse, naming the flag that supplies one
  (energy is the product's core output; it is never invented);
- no listed price: the cost is ``None`` with a warning naming ``--price-per-gpu-hour``;
- no published embodied-carbon figure: embodied CO2e is ``None`` with a warning (no proxy GPU's figure
  is substituted).
Formulas are small functions over floats or numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from estimator.assumptions import Assumed, Assumptions, fact, one
from estimator.errors import EstimatorInputError
from estimator.inputs import number

if TYPE_CHECKING:
    from estimator.calibration import Calibration
    from hardware_db import Accelerator

HOURS_PER_YEAR = 8766.0  # 365.25 days


# --------------------------------------------------------------------------- formulas

def gpu_average_power_w(idle_w, busy_w, duty):
    """Average GPU power when busy a fraction ``duty`` of the time and near idle otherwise (W)."""
    duty = np.clip(duty, 0.0, 1.0)
    return idle_w + (busy_w - idle_w) * duty


def facility_power_w(gpu_w, host_w_per_gpu, gpus, pue):
    """Facility power of a cluster: (GPU + host share) x GPUs x PUE (W)."""
    return (gpu_w + host_w_per_gpu) * gpus * pue


def energy_mwh(power_w, hours):
    """Energy in MWh of ``power_w`` watts drawn for ``hours``."""
    return power_w * hours / 1e6


def operational_co2e_t(facility_energy_mwh, grid_g_per_kwh):
    """tCO2e = MWh x 1000 kWh/MWh x g/kWh / 1e6 g/t (location-based)."""
    return facility_energy_mwh * grid_g_per_kwh / 1000.0


def embodied_co2e_t(gpus, kg_per_gpu_slot, hours, lifetime_years):
    """Embodied CO2e of the hardware, amortised linearly over its life: share = hours / lifetime."""
    return gpus * kg_per_gpu_slot * hours / (lifetime_years * HOURS_PER_YEAR) / 1000.0


def cloud_cost_usd(gpu_hours, usd_per_gpu_hour):
    """Rental: GPU-hours x USD per GPU-hour."""
    return gpu_hours * usd_per_gpu_hour


def owned_cost_usd(gpus, hours, capex_usd_per_gpu, lifetime_years, facility_energy_mwh, usd_per_kwh):
    """Owned hardware: the capex share for the run's duration plus the facility's electricity."""
    capex = gpus * capex_usd_per_gpu * hours / (lifetime_years * HOURS_PER_YEAR)
    return capex + facility_energy_mwh * 1000.0 * usd_per_kwh


# --------------------------------------------------------------------------- inputs with their policy

@dataclass(frozen=True)
class BusyPower:
    """Average power of one busy GPU (W) with its range, and where it came from."""

    w: float
    low: float
    high: float
    assumptions: Assumptions


def busy_power(accel: Accelerator, *, user_w: object = None, cal: Calibration | None = None,
               util: float | None = None, fix: str = "pass --gpu-power-w W (average power of one busy accelerator)"
               ) -> BusyPower:
    """User figure, else the calibration's P(u) at ``util``, else the documented fraction of TDP."""
    if user_w is not None:
        w = number("gpu-power-w", user_w)
        return BusyPower(w, w, w, one("gpu_busy_power_w", w, "W", "user input (--gpu-power-w)"))
    if cal is not None and cal.power and util is not None:
        w = float(cal.power_w(util))
        return BusyPower(w, w, w, one("gpu_busy_power_w", round(w, 1), "W",
                                      f"calibration {cal.id}: P(u) at utilisation {util:.2f}"))
    if accel.tdp_w is None:
        raise EstimatorInputError(f"{accel.id} has no published power figure (TDP) in hardware_db, so energy, "
                                  "power and CO2e cannot be estimated", fix)
    frac, a = fact("gpu_busy_power_fraction_of_tdp")
    w = frac * accel.tdp_w
    lo = a.low * accel.tdp_w if a.low else w  # type: ignore[operator]
    hi = a.high * accel.tdp_w if a.high else w  # type: ignore[operator]
    return BusyPower(w, lo, hi, one("gpu_busy_power_w", round(w, 1), "W",
                                    f"{frac:g} x TDP {accel.tdp_w:g} W; " + a.source, lo, hi))


def idle_power(accel: Accelerator, busy_w: float) -> tuple[float, Assumptions]:
    """Idle power of one GPU (W): hardware_db's figure, else the documented fraction of TDP; never above busy."""
    if accel.idle_w is not None:
        idle, rec = accel.idle_w, Assumed(accel.idle_w, "W", f"hardware_db {accel.id}")
    else:
        ifrac, a = fact("gpu_idle_power_fraction_of_tdp")
        idle = ifrac * (accel.tdp_w or busy_w)
        rec = Assumed(round(idle, 1), "W", f"{ifrac:g} x TDP; " + a.source)
    return min(idle, busy_w), Assumptions({"gpu_idle_power_w": rec})


@dataclass(frozen=True)
class Site:
    """Facility overheads: PUE (with its range) and the host power per GPU."""

    pue: float
    pue_low: float
    pue_high: float
    host_w: float
    assumptions: Assumptions


def site(pue: object = None) -> Site:
    """PUE (user or documented default) and host power per GPU."""
    host_w, a_host = fact("host_power_w_per_gpu")
    p, a_pue = fact("pue", None if pue is None else number("pue", pue, minimum=1.0, inclusive=True,
                                                            hint="PUE is >= 1.0, e.g. --pue 1.1"))
    lo = a_pue.low if a_pue.low is not None else p
    hi = a_pue.high if a_pue.high is not None else p
    return Site(p, float(lo), float(hi), host_w,  # type: ignore[arg-type]
                Assumptions({"host_power_w_per_gpu": a_host, "pue": a_pue}))


@dataclass(frozen=True)
class Grid:
    """Grid carbon intensity (gCO2e/kWh) with its range."""

    g_per_kwh: float
    low: float
    high: float
    assumptions: Assumptions


def grid(region: str | None = None, grid_intensity: object = None) -> Grid:
    """The user's intensity (no range), else the region's (default region if none) with the documented range."""
    from estimator.hardware import assumption
    from estimator.hardware import grid as lookup

    if grid_intensity is not None:
        g = number("grid-intensity", grid_intensity, minimum=0, inclusive=True, hint="gCO2e/kWh, e.g. 400")
        return Grid(g, g, g, one("grid_intensity_g_per_kwh", g, "gCO2e/kWh", "user input (--grid-intensity)"))
    if region is not None and (not isinstance(region, str) or not region.strip()):
        raise EstimatorInputError(f"--region must name a region, got {region!r}",
                                  "pass a country code, US state (US-VA) or cloud region (estimate --list-regions)")
    gi = lookup(region or str(assumption("default_region").value))
    rel = float(assumption("grid_intensity_rel_range").value)
    g = gi.g_per_kwh
    lo, hi = g * (1 - rel), g * (1 + rel)
    rec = Assumptions({"grid_intensity_g_per_kwh": Assumed(
        round(g, 1), "gCO2e/kWh", f"{gi.name}: {gi.source}; data year {gi.vintage}, codecarbon "
                                  f"{gi.codecarbon_version}; range +/-{rel:.0%} (grid_intensity_rel_range)",
        round(lo, 1), round(hi, 1))})
    if region is None:
        rec = rec | one("region", gi.region, "", "default region (pass --region)")
    return Grid(g, lo, hi, rec)


@dataclass(frozen=True)
class Price:
    """USD per GPU-hour with the spread of listed prices; ``usd_per_gpu_hour`` None where none is listed."""

    usd_per_gpu_hour: float | None
    low: float | None
    high: float | None
    assumptions: Assumptions
    warnings: tuple[str, ...] = ()


def price(accel: Accelerator, user_usd: object = None) -> Price:
    """The user's price, else the default listed price (range: all listed prices), else None with a warning."""
    from estimator.hardware import price_rows

    if user_usd is not None:
        p = number("price-per-gpu-hour", user_usd, minimum=0, inclusive=True)
        return Price(p, p, p, one("price_per_gpu_hour", p, "USD/GPU-hour", "user input"))
    row, rows = price_rows(accel)
    if row is None:
        return Price(None, None, None, one("price_per_gpu_hour", None, "USD/GPU-hour",
                                           "unavailable: no published price"),
                     (f"no published price for {accel.id} in hardware_db/prices.csv: cost not estimated "
                      "(pass --price-per-gpu-hour USD)",))
    vals = [r.usd_per_gpu_hour for r in rows] or [row.usd_per_gpu_hour]
    lo, hi = min(vals), max(vals)
    return Price(row.usd_per_gpu_hour, lo, hi, one("price_per_gpu_hour", row.usd_per_gpu_hour, "USD/GPU-hour",
                                                   f"{row.provider} {row.offering} ({row.date}): {row.source}",
                                                   lo, hi))


@dataclass(frozen=True)
class Embodied:
    """Embodied kgCO2e per GPU slot (GPU + its server share) and the hardware life; kg None where unpublished."""

    kg_per_gpu_slot: float | None
    lifetime_years: float
    assumptions: Assumptions
    warnings: tuple[str, ...] = ()

    def tonnes(self, gpus, hours):
        """Amortised embodied tCO2e of ``gpus`` held for ``hours``, or None without a published figure."""
        if self.kg_per_gpu_slot is None:
            return None
        return embodied_co2e_t(gpus, self.kg_per_gpu_slot, hours, self.lifetime_years)


def embodied(accel: Accelerator) -> Embodied:
    """Embodied figure of one GPU slot: hardware_db's GPU figure plus the documented server share."""
    lifetime, a_life = fact("hardware_lifetime_years")
    server_kg, a_server = fact("server_embodied_kgco2e_per_gpu")
    rec = Assumptions({"hardware_lifetime_years": a_life, "server_embodied_kgco2e_per_gpu": a_server})
    if accel.embodied_kgco2e is None:
        return Embodied(None, lifetime, rec | one("gpu_embodied_kgco2e", None, "kgCO2e",
                                                  f"unavailable: no published figure for {accel.id}"),
                        (f"no published embodied-carbon figure for {accel.id} in hardware_db: embodied CO2e not "
                         "estimated",))
    return Embodied(accel.embodied_kgco2e + server_kg, lifetime,
                    rec | one("gpu_embodied_kgco2e", accel.embodied_kgco2e, "kgCO2e", f"hardware_db {accel.id}"))


@dataclass(frozen=True)
class Owned:
    """Owned-hardware costing: capex per GPU (incl. its server share) and electricity price."""

    capex_usd_per_gpu: float
    usd_per_kwh: float


def owned(capex_per_gpu: object, electricity_usd_per_kwh: object) -> Owned:
    """Validate the owned-hardware inputs (both are needed)."""
    if capex_per_gpu is None or electricity_usd_per_kwh is None:
        raise EstimatorInputError("--owned needs --capex-per-gpu USD and --electricity-usd-per-kwh USD",
                                  "e.g. --owned --capex-per-gpu 30000 --electricity-usd-per-kwh 0.08")
    return Owned(number("capex-per-gpu", capex_per_gpu), number("electricity-usd-per-kwh", electricity_usd_per_kwh))


@dataclass(frozen=True)
class RunCost:
    """Dollars of a run with its range (None where no price is known)."""

    usd: float | None
    low: float | None
    high: float | None
    assumptions: Assumptions


def run_cost(gpu_hours: float, gh_lo: float, gh_hi: float, p: Price, own: Owned | None, *, gpus: int,
             wall_h: float, energy: float, lifetime_years: float) -> RunCost:
    """Cloud cost (GPU-hours x price, range from the GPU-hour and price corners) or owned cost (capex + power)."""
    if own is not None:
        usd = owned_cost_usd(gpus, wall_h, own.capex_usd_per_gpu, lifetime_years, energy, own.usd_per_kwh)
        return RunCost(usd, usd, usd, one("cost_basis", "owned", "", f"capex {own.capex_usd_per_gpu:g} USD/GPU over "
                                          f"{lifetime_years:g} years + electricity {own.usd_per_kwh:g} USD/kWh"))
    if p.usd_per_gpu_hour is None:
        return RunCost(None, None, None, Assumptions())
    return RunCost(cloud_cost_usd(gpu_hours, p.usd_per_gpu_hour), gh_lo * p.low, gh_hi * p.high,  # type: ignore
                   Assumptions())


# --------------------------------------------------------------------------- a training run

@dataclass(frozen=True)
class Footprint:
    """Power, energy, CO2e and cost of the run, with their low/high corners."""

    gpu_w: float
    facility_w: float
    peak_facility_w: float
    energy_mwh: float
    gpu_energy_mwh: float
    co2e_t: float
    embodied_t: float | None
    cost: RunCost
    ranges: dict


def run_footprint(cfg: Any, accel: Accelerator, cal: Calibration | None, n_gpus: int, productive_h: float, hfu: float,
                  good: tuple[float, float, float], rel: float,
                  interval: tuple[float, float] | None = None) -> tuple[Footprint, Assumptions, list[str]]:
    """A training run's GPU and facility power, energy, operational and embodied CO2e and dollars, with ranges.

    ``good``: (goodput, best-case, worst-case); ``rel``: relative time uncertainty; ``cfg``: a TrainingConfig;
    ``interval``: (low, high) factors on the GPU-hours fitted on published runs, replacing the corners when given.
    """
    g, g_best, g_worst = good
    wall_h = productive_h / g
    busy = busy_power(accel, user_w=cfg.gpu_power_w, cal=cal, util=hfu)
    idle_w, a_idle = idle_power(accel, busy.w)
    # The busy figure is the average power over productive training steps (Morrison et al. measured it over
    # whole steps, communication and stalls included), so GPUs sit near idle only during downtime.
    st, gr, emb = site(cfg.pue), grid(cfg.region, cfg.grid_intensity), embodied(accel)

    def energy(gh: float, busy_w: float, pue: float) -> float:
        w = float(gpu_average_power_w(idle_w, busy_w, g))
        return energy_mwh(float(facility_power_w(w, st.host_w, 1, pue)), gh)

    gpu_w = float(gpu_average_power_w(idle_w, busy.w, g))
    fac_w = float(facility_power_w(gpu_w, st.host_w, n_gpus, st.pue))
    e = energy_mwh(fac_w, wall_h)
    fast, slow = 1.0 / (1.0 + rel), 1.0 + rel  # as ranges.time_corners
    gh_lo, gh_hi = productive_h * fast / g_best * n_gpus, productive_h * slow / g_worst * n_gpus
    if interval is not None:  # the interval fitted on published runs (it covers goodput as well)
        gh_lo, gh_hi = wall_h * n_gpus * interval[0], wall_h * n_gpus * interval[1]
    e_lo, e_hi = energy(gh_lo, busy.low, st.pue_low), energy(gh_hi, busy.high, st.pue_high)
    own = owned(cfg.capex_per_gpu, cfg.electricity_usd_per_kwh) if cfg.owned else None
    pr = price(accel, cfg.price_per_gpu_hour) if own is None else None
    cost = run_cost(wall_h * n_gpus, gh_lo, gh_hi, pr, own, gpus=n_gpus,  # type: ignore[arg-type]
                    wall_h=wall_h, energy=e, lifetime_years=emb.lifetime_years)
    ranges = {"gpu_hours": [gh_lo, gh_hi], "wall_clock_days": [gh_lo / n_gpus / 24, gh_hi / n_gpus / 24],
              "energy_mwh": [e_lo, e_hi], "co2e_tonnes": [operational_co2e_t(e_lo, gr.low),
                                                          operational_co2e_t(e_hi, gr.high)],
              "cost_usd": [cost.low, cost.high]}
    rec = (busy.assumptions | a_idle | st.assumptions | gr.assumptions | emb.assumptions | cost.assumptions
           | (pr.assumptions if pr else Assumptions()))
    fp = Footprint(gpu_w, fac_w, float(facility_power_w(accel.tdp_w or busy.w, st.host_w, n_gpus,
                                                                 st.pue)),
                   e, energy_mwh(gpu_w * n_gpus, wall_h), operational_co2e_t(e, gr.g_per_kwh),
                   emb.tonnes(n_gpus, wall_h), cost, ranges)
    return fp, rec, list(emb.warnings) + list(pr.warnings if pr else ())


# --------------------------------------------------------------------------- serving: power at an operating point

@dataclass(frozen=True)
class PowerModel:
    """GPU power at a phase's operating point: the calibration's P(u), else idle-to-busy by utilisation."""

    idle_w: float
    busy_w: float
    busy_low: float
    busy_high: float
    u_ref: float
    mem_share: float
    cal: Any

    def at(self, u: float, m: float, busy: float | None = None) -> float:
        """Power at compute utilisation u and HBM bandwidth utilisation m: the compute part scales the idle-to-busy
        span by u / u_ref, HBM traffic adds mem_share of it per unit of bandwidth used (fitted on measured decode)."""
        if self.cal is not None and self.cal.power:
            return float(self.cal.power_w(u))
        b = self.busy_w if busy is None else busy
        return float(gpu_average_power_w(self.idle_w, b, min(1.0, u / self.u_ref + self.mem_share * m)))

    def terms(self, u: float, m: float) -> dict:
        """The power model's inputs at an operating point (for refitting ``mem_share`` from measurements)."""
        return {"hbm_utilisation": m, "power_idle_w": self.idle_w, "power_span_w": self.busy_w - self.idle_w,
                "power_u_over_u_ref": u / self.u_ref}


def phase_power_model(accel: Accelerator, cal: Calibration | None, gemm_flops_per_s: float,
                      peak: float) -> tuple[PowerModel, Assumptions]:
    """Idle and busy power (from a calibration's curve or the documented fraction of TDP) and the reference u."""
    mem_share, a_mem = fact("memory_bound_power_share")
    rec = Assumptions({"memory_bound_power_share": a_mem})
    if cal is not None and cal.power:
        p = cal.power
        return (PowerModel(float(p["idle_w"]), float(p["max_w"]), float(p["max_w"]), float(p["max_w"]), 1.0,
                           mem_share, cal),
                rec | one("gpu_power_curve", f"idle {p['idle_w']:g} W + {p['slope_w']:g} W x u, max {p['max_w']:g} W",
                          "W", f"calibration {cal.id}")
                | one("gpu_power_model", "P(u) = min(max, idle + slope u)", "W", f"calibration {cal.id}"))
    busy = busy_power(accel, fix="pass --calibration FILE with a measured power curve, or another --gpu")
    idle, a_idle = serving_idle_power(accel, busy.w)
    u_ref = gemm_flops_per_s / peak  # busy power was measured on GEMM-dominated training near this
    return (PowerModel(idle, busy.w, busy.low, busy.high, u_ref, mem_share, None),
            rec | busy.assumptions | a_idle | one(
                "gpu_power_model", "idle + (busy - idle) x min(1, u / u_ref + memory_bound_power_share x m)", "W",
                f"u = achieved/peak FLOP/s per phase, u_ref = GEMM efficiency {u_ref:.2f} at which busy power applies; "
                "m = HBM bytes moved / step time / datasheet bandwidth; memory_bound_power_share fitted on measured "
                "A100 decode power (Argonne LLM-Inference-Bench), scored on H100"))


def serving_idle_power(accel: Accelerator, busy_w: float) -> tuple[float, Assumptions]:
    """Idle power of a serving GPU: hardware_db's figure, else the measured idle fraction of TDP (nvidia-smi on
    idle H100s); never above busy."""
    if accel.idle_w is not None:
        return idle_power(accel, busy_w)
    frac, a = fact("serving_idle_power_fraction_of_tdp")
    idle = frac * (accel.tdp_w or busy_w)
    return min(idle, busy_w), Assumptions({"gpu_idle_power_w": Assumed(round(idle, 1), "W",
                                                                       f"{frac:g} x TDP; " + a.source)})
