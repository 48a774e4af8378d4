"""Blind predictions of published training runs, compared with what each run reported.

Each run in ``benchmarks/data/training_runs.csv`` is predicted from what a planner knows before training:
the architecture (preset) or parameter counts, tokens, sequence length, accelerator type and count, and
precision. Nothing reported after the run (GPU-hours, days, MFU, energy) goes in, and there are no per-run
constants or corrections: a run the model misses shows as a miss.

Beside the estimator we report the plain baseline ``GPU-hours = 6 N D / (peak x 40%)`` (N active parameters,
D tokens, the accelerator's dense peak at the run's precision) with energy = baseline GPU-hours x TDP x PUE.

Energy and CO2e are compared in the run's own terms: its stated PUE and grid intensity are passed to the
estimator. Scopes follow ``energy_kind`` in the data README:

* ``measured`` (Patterson et al. 2021 Table 4): system power incl. host x PUE -> our facility ``energy_mwh``.
* ``partial_measured`` (Morrison et al. 2025; OLMo): GPU-only energy x PUE (or before PUE where the basis says
  so) -> our ``gpu_energy_mwh`` x PUE.
* ``category_average``, ``tdp_formula``: compared, but not evidence; excluded from the accuracy summary.

GPU-hours are scored only where they are comparable with one pre-training pass (``hours_cover`` in the data
README): ``pretraining_pass`` (the source says the hours are that model's pre-training) and ``derived_gpus_x_days``
(chips x days x 24 of the run, which is the run's allocation and the best published proxy for its GPU time). Hours
that include distillation, post-training or downtime, that total several runs, or whose cover is unknown are shown
with their tag and not scored (``COMPARABLE_HOURS_COVER``).

Units: GPU-hours (h), days (d), energy (MWh), CO2e (tonnes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import pandas as pd

METRICS = ("gpu_hours", "days", "energy_mwh", "co2e_t")
METRIC_LABELS = {"gpu_hours": "GPU-hours", "days": "days", "energy_mwh": "energy (MWh)", "co2e_t": "CO2e (t)"}
BASELINE_MFU = 0.40
MEASURED_ENERGY_KINDS = ("measured", "partial_measured")
FORMULA_WORDS = ("formula", "hypothetical", "tdp", "estimate")
COMPARABLE_HOURS_COVER = ("pretraining_pass", "derived_gpus_x_days")
HOURS_COVER = COMPARABLE_HOURS_COVER + ("with_distillation", "with_post_training", "with_downtime",
                                        "aggregate_many_runs", "unknown", "not_applicable")


@cache
def load_runs() -> pd.DataFrame:
    """The training-run table, validated: unique ids, known energy kinds, positive numbers."""
    df = pd.read_csv(files("benchmarks") / "data" / "training_runs.csv")
    if df["id"].duplicated().any():
        raise ValueError(f"training_runs.csv: duplicate ids {sorted(df.loc[df['id'].duplicated(), 'id'])}")
    covers = set(df["hours_cover"].fillna("")) - set(HOURS_COVER)
    if covers:
        raise ValueError(f"training_runs.csv: unknown hours_cover {sorted(covers)}")
    kinds = set(df["energy_kind"].dropna()) - {"measured", "partial_measured", "category_average", "tdp_formula"}
    if kinds:
        raise ValueError(f"training_runs.csv: unknown energy_kind {sorted(kinds)}")
    for col in ("total_params", "tokens", "gpus", "reported_gpu_hours", "reported_days", "reported_energy_mwh",
                "reported_co2e_t", "pue", "grid_g_per_kwh"):
        if (df[col].dropna() <= 0).any():
            raise ValueError(f"training_runs.csv: {col} must be positive")
    return df


def _val(row, col):
    v = row.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


@dataclass(frozen=True)
class PlannerInputs:
    """What a planner knows beforehand, as estimate_training keyword arguments, plus what could not be given."""

    kwargs: dict
    notes: tuple
    missing: str | None  # why the run cannot be predicted at all (None when it can)


@cache
def run_software() -> dict[str, tuple[dict, str]]:
    """Per benchmark row, the ``estimate_training`` keywords its published software implies and a note
    (benchmarks/data/software_era.csv, each row with its evidence and source): the framework where the source
    names one of the estimator's, ``flash_attention=False`` for a run before FlashAttention (May 2022), and
    ``sequence_parallel=False`` for tensor parallelism without it. A blank cell is "not stated": the estimator's
    default (today's Megatron-like stack) is used and the note says so."""
    import csv

    from estimator.config import framework_ids

    text = files("benchmarks").joinpath("data/software_era.csv").read_text(encoding="utf-8")
    out: dict[str, tuple[dict, str]] = {}
    for r in csv.DictReader(text.splitlines()):
        if (not r["evidence"].strip() or not r["source"].strip() or r["flash_attention"] not in ("0", "1", "")
                or r["sequence_parallel"] not in ("0", "1", "") or r["ep_comm_overlap"] not in ("1", "")
                or r["framework"] not in ("", *framework_ids())):
            raise ValueError(f"benchmarks/data/software_era.csv row {r['id']!r}: framework one of "
                             f"{framework_ids()} or blank, flash_attention and sequence_parallel 0/1 or blank, "
                             "ep_comm_overlap 1 or blank, evidence and source")
        kw: dict = {}
        said = []
        if r["framework"]:
            kw["framework"] = r["framework"]
            said.append(f"framework {r['framework']}")
        if r["flash_attention"] == "0":
            kw["flash_attention"] = False
            said.append("before FlashAttention, sequence parallelism and selective recomputation")
        elif r["sequence_parallel"] == "0":
            kw["sequence_parallel"] = False
            said.append("no sequence parallelism")
        if r["ep_comm_overlap"] == "1":
            kw["ep_comm_overlap"] = True
            said.append("expert all-to-all overlapped with computation")
        unstated = [c for c in ("framework", "flash_attention", "sequence_parallel") if not r[c]]
        note = "software: " + ("; ".join(said) if said else "as the estimator's default")
        if unstated:
            note += f" ({', '.join(unstated)} not stated: default)"
        out[r["id"]] = (kw, note)
    return out


@cache
def run_network() -> dict[str, float]:
    """Per benchmark run, the published network of its cluster in GB/s per GPU each way
    (benchmarks/data/run_network.csv, each row with its evidence and source); other runs use the reference system's
    (hardware_db/accelerators.csv)."""
    import csv

    text = files("benchmarks").joinpath("data/run_network.csv").read_text(encoding="utf-8")
    out: dict[str, float] = {}
    for r in csv.DictReader(text.splitlines()):
        if not r["evidence"].strip() or not r["source"].strip() or not float(r["scaleout_gb_per_s"]) > 0:
            raise ValueError(f"benchmarks/data/run_network.csv row {r['id']!r}: needs a positive "
                             "scaleout_gb_per_s, evidence and source")
        out[r["id"]] = float(r["scaleout_gb_per_s"])
    return out


@cache
def pre_flash_runs() -> frozenset[str]:
    """Benchmark rows trained before FlashAttention and selective recomputation (May 2022)."""
    return frozenset(k for k, (kw, _) in run_software().items() if kw.get("flash_attention") is False)


def planner_inputs(row: dict, pue=None, grid_intensity=None) -> PlannerInputs:
    """Keyword arguments for ``estimate_training`` from one run's pre-training facts only."""
    from estimator.presets import load_preset

    kw: dict = {}
    notes: list[str] = []
    tokens, total = _val(row, "tokens"), _val(row, "total_params")
    preset = _val(row, "preset")
    if tokens is None:
        return PlannerInputs(kw, (), "no token count published")
    if preset is None and total is None:
        return PlannerInputs(kw, (), "no parameter count (aggregate row)")
    kw["tokens"] = float(tokens)
    if preset is not None:
        kw["model"] = load_preset(preset)
    else:
        kw["params"] = float(total)
        active = _val(row, "active_params")
        if active is not None and active < total:
            kw["active_params"] = float(active)
        notes.append("shape derived from parameter count")
    if _val(row, "seq_len") is not None:
        kw["seq_len"] = int(row["seq_len"])
    elif preset is None:
        notes.append("seq_len not published: estimator default")
    acc = _val(row, "accelerator")
    if acc is None:
        return PlannerInputs(kw, tuple(notes), "accelerator not in the hardware list")
    kw["gpu"] = acc
    if _val(row, "gpus") is not None:
        kw["gpus"] = int(row["gpus"])
    else:
        notes.append("GPU count not published: estimator chose it")
    if _val(row, "precision") is not None:
        kw["precision"] = row["precision"]
    if row["id"] in run_software():  # the run's published software and its era (issue 14)
        sw, note = run_software()[row["id"]]
        kw.update(sw)
        notes.append(note)
    if row["id"] in run_network():  # the cluster's published network (GB/s per GPU)
        kw["scaleout_gb_per_s"] = run_network()[row["id"]]
        notes.append(f"network {kw['scaleout_gb_per_s']:g} GB/s per GPU (benchmarks/data/run_network.csv)")
    from hardware_db import default_price

    if default_price(acc) is None:  # cost is not compared; the estimator needs some price to run
        kw["price_per_gpu_hour"] = 0.0
        notes.append(f"no price for {acc}: cost not estimated")
    p = pue if pue is not None else _val(row, "pue")
    if p is not None:
        kw["pue"] = float(p)
    g = grid_intensity if grid_intensity is not None else _val(row, "grid_g_per_kwh")
    if g is not None:
        kw["grid_intensity"] = float(g)
    else:
        notes.append("grid not stated: default region")
    return PlannerInputs(kw, tuple(notes), None)


def co2e_basis_kind(row: dict) -> str:
    """'formula' when the published CO2e is GPU-hours x TDP-type arithmetic, 'measured' when it rests on
    measured energy, else 'other'."""
    if _val(row, "reported_co2e_t") is None:
        return ""
    basis = str(_val(row, "co2e_basis") or "").lower()
    if row.get("energy_kind") == "tdp_formula" or any(w in basis for w in FORMULA_WORDS):
        return "formula"
    if row.get("energy_kind") in MEASURED_ENERGY_KINDS:
        return "measured"
    return "other"


def _energy_scope(row: dict) -> str:
    """'facility' (system x PUE), 'gpu_x_pue' (GPU-only x PUE) or 'gpu' (GPU-only before PUE)."""
    if row.get("energy_kind") == "partial_measured":
        return "gpu" if "before pue" in str(row.get("energy_basis", "")).lower() else "gpu_x_pue"
    return "facility"


def _default_pue() -> float:
    from hardware_db import assumption

    return float(assumption("pue").value)


def _default_grid() -> float:
    from hardware_db import assumption
    from hardware_db.regions import grid_intensity

    return float(grid_intensity(str(assumption("default_region").value)).g_per_kwh)


def baseline(row: dict, pue=None, grid_intensity=None) -> dict:
    """The plain 6ND / (peak x 40%) estimate; energy = GPU-hours x TDP x PUE (GPU-only scopes without host)."""
    from hardware_db import get_accelerator

    out = {m: None for m in METRICS}
    n = _val(row, "active_params") or _val(row, "total_params")
    d, acc = _val(row, "tokens"), _val(row, "accelerator")
    if n is None or d is None or acc is None:
        return out
    a = get_accelerator(acc)
    prec = _val(row, "precision") or a.default_precision()
    gh = 6.0 * n * d / (a.peak_flops(prec) * BASELINE_MFU) / 3600.0
    out["gpu_hours"] = gh
    if _val(row, "gpus") is not None:
        out["days"] = gh / row["gpus"] / 24.0
    if a.tdp_w is not None:
        p = pue if pue is not None else (_val(row, "pue") or _default_pue())
        scope = _energy_scope(row)
        e = gh * a.tdp_w / 1e6 * (1.0 if scope == "gpu" else p)
        out["energy_mwh"] = e
        g = grid_intensity if grid_intensity is not None else (_val(row, "grid_g_per_kwh") or _default_grid())
        out["co2e_t"] = e * g / 1000.0
    return out


def predict_run(row: dict, pue=None, grid_intensity=None) -> dict:
    """One run: our prediction and the baseline for each metric, or the error that stopped it."""
    from estimator.training import estimate_training

    pi = planner_inputs(row, pue, grid_intensity)
    rec = {"id": row["id"], "pred": {m: None for m in METRICS}, "notes": list(pi.notes), "error": pi.missing,
           "gpus_used": None, "mfu": None}
    try:
        rec["base"] = baseline(row, pue, grid_intensity)
    except Exception as exc:  # noqa: BLE001 - one bad run must not stop the benchmark
        rec["base"] = {m: None for m in METRICS}
        rec["notes"].append(f"baseline failed: {exc}")
    if pi.missing:
        return rec
    try:
        d = estimate_training(**pi.kwargs).to_dict()
    except Exception as exc:  # noqa: BLE001
        rec["error"] = str(exc).split("\n")[0]
        return rec
    rec["gpus_used"], rec["mfu"] = d["gpus"], d["mfu"]
    rec["pred"]["gpu_hours"] = d["gpu_hours"]
    if "gpus" in pi.kwargs:
        rec["pred"]["days"] = d["wall_clock_days"]
    scope = _energy_scope(row)
    pue_used = float(d["assumptions"]["pue"]["value"])
    rec["pred"]["energy_mwh"] = {"facility": d["energy_mwh"], "gpu_x_pue": d["gpu_energy_mwh"] * pue_used,
                                 "gpu": d["gpu_energy_mwh"]}[scope]
    grid = float(d["assumptions"]["grid_intensity_g_per_kwh"]["value"])
    rec["pred"]["co2e_t"] = rec["pred"]["energy_mwh"] * grid / 1000.0 if scope != "facility" else d["co2e_tonnes"]
    if scope != "facility":
        rec["notes"].append("GPU-only energy scope" + (" before PUE" if scope == "gpu" else " x PUE"))
    return rec


def _basis(row: dict, metric: str) -> str:
    if metric == "gpu_hours":
        return f"{_val(row, 'gpu_hours_basis') or ''}, {_val(row, 'hours_cover') or 'untagged'}"
    if metric == "days":
        return "reported"
    if metric == "energy_mwh":
        return str(_val(row, "energy_kind") or "")
    return co2e_basis_kind(row)


REPORTED_COL = {"gpu_hours": "reported_gpu_hours", "days": "reported_days", "energy_mwh": "reported_energy_mwh",
                "co2e_t": "reported_co2e_t"}


def in_summary(metric: str, basis: str) -> bool:
    """Which reported values are evidence: GPU-hours of one pre-training pass (``COMPARABLE_HOURS_COVER``);
    measured energy and CO2e (formula-based ones reproduce a TDP model by construction)."""
    if metric == "gpu_hours":
        return basis.rsplit(", ", 1)[-1] in COMPARABLE_HOURS_COVER
    if metric == "energy_mwh":
        return basis in MEASURED_ENERGY_KINDS
    if metric == "co2e_t":
        return basis == "measured"
    return True


def run_training(pue=None, grid_intensity=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table: one row per run x metric with a reported value; per-run table with errors and notes)."""
    runs = load_runs()
    long_rows, run_rows = [], []
    for row in runs.to_dict("records"):
        rec = predict_run(row, pue, grid_intensity)
        run_rows.append({"id": rec["id"], "gpus_used": rec["gpus_used"], "mfu_predicted": rec["mfu"],
                         "error": rec["error"] or "", "notes": "; ".join(rec["notes"])})
        for m in METRICS:
            rep = _val(row, REPORTED_COL[m])
            if rep is None:
                continue
            p, b = rec["pred"][m], rec["base"][m]
            basis = _basis(row, m)
            long_rows.append({
                "id": rec["id"], "metric": m, "reported": float(rep), "basis": basis,
                "predicted": p, "error": None if p is None else p / rep - 1.0,
                "baseline": b, "baseline_error": None if b is None else b / rep - 1.0,
                "in_summary": in_summary(m, basis),
                "why_na": "" if p is not None else (rec["error"] or ("no GPU count: days skipped" if m == "days"
                                                                      else "n/a")),
            })
    return pd.DataFrame(long_rows), pd.DataFrame(run_rows)


def summarise(long: pd.DataFrame) -> pd.DataFrame:
    """Median and worst absolute relative error per metric, ours and baseline, over the summary rows.

    Both are computed on the same runs (those both could predict), so the comparison is like for like.
    """
    out = []
    for m in METRICS:
        sub = long[(long["metric"] == m) & long["in_summary"]]
        both = sub.dropna(subset=["error", "baseline_error"])
        ours_all = sub.dropna(subset=["error"])
        row = {"metric": m, "n_reported": len(sub), "n_predicted": len(ours_all), "n_both": len(both)}
        for name, s in (("ours", ours_all["error"]), ("ours_same_runs", both["error"]),
                        ("baseline_same_runs", both["baseline_error"])):
            a = s.abs()
            row[f"{name}_median_abs"] = float(a.median()) if len(a) else None
            row[f"{name}_worst_abs"] = float(a.max()) if len(a) else None
            row[f"{name}_worst_id"] = (sub.loc[a.idxmax(), "id"] if len(a) else "")
        out.append(row)
    return pd.DataFrame(out)


def excluded(long: pd.DataFrame) -> pd.DataFrame:
    """Energy and CO2e rows left out of the summary (formula-based or category averages)."""
    return long[~long["in_summary"] & (long["metric"] != "gpu_hours")]


def hours_not_comparable(long: pd.DataFrame) -> pd.DataFrame:
    """GPU-hours rows shown but not scored: their hours are not one pre-training pass (tag in ``basis``)."""
    return long[(long["metric"] == "gpu_hours") & ~long["in_summary"]]
