"""Predicted vs published serving numbers (``benchmarks/data/inference_measurements.csv``).

Each row with ``reproducible`` yes or partial is run through ``estimate_inference`` with the published setting
(model, accelerator, GPUs per replica, batch, token counts, precision); inputs the source leaves out take the
estimator's documented defaults and are listed. Rows marked ``no``, or whose accelerator is blank, are listed with
the reason from the data. Energy is compared in the row's own scope:

* ``gpu_only`` -> ``energy_per_query_wh`` / ``energy_per_output_token_j`` (GPU only);
* ``gpu+host`` -> facility energy per query with PUE 1.0 (host, no building overhead);
* ``facility_with_pue`` -> ``facility_energy_per_query_wh``.

Analytic estimates (``measurement_kind`` analytic_estimate) are reproduced but are not evidence, so they are
left out of the median and worst error.

Offline-throughput rule: a throughput row whose source names the scenario offline (MLPerf "Offline": all queries
at once, batch chosen by the submitter for maximum throughput) and whose batch is not published is run at the
largest batch that fits (``estimate_inference`` is run once to read ``max_batch``, then again at that batch). It
applies to every such row alike; a published batch always wins.
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files

import pandas as pd

METRIC_KEYS = {"energy_per_output_token_j": "energy_per_output_token_j", "energy_per_query_wh": "energy_per_query_wh",
               "tokens_per_second_per_gpu": "tokens_per_second_per_gpu",
               "tokens_per_second_per_replica": "tokens_per_second_per_replica", "ttft_ms": "ttft_ms",
               "tpot_ms": "tpot_ms"}
PRECISION_MAP = {"fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "int8": "int8", "int4": "int4"}


@cache
def load_measurements() -> pd.DataFrame:
    df = pd.read_csv(files("benchmarks") / "data" / "inference_measurements.csv")
    if df["id"].duplicated().any():
        raise ValueError("inference_measurements.csv: duplicate ids")
    bad = set(df["metric"]) - set(METRIC_KEYS)
    if bad:
        raise ValueError(f"inference_measurements.csv: unknown metric {sorted(bad)}")
    return df


def _v(row, col):
    x = row.get(col)
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _first_sentence(text) -> str:
    t = str(text or "")
    return t.split(". ")[0].strip().rstrip(".")


def serving_inputs(row: dict) -> tuple[dict | None, list[str], str | None]:
    """(estimate_inference kwargs, notes on defaults used, reason it cannot be reproduced)."""
    from estimator.presets import load_preset

    if row.get("reproducible") == "no":
        return None, [], "reproducible=no: " + _first_sentence(row.get("notes"))
    if _v(row, "accelerator") is None:
        return None, [], "accelerator blank: " + _first_sentence(row.get("notes"))
    if _v(row, "preset") is None and _v(row, "total_params") is None:
        return None, [], "no model size"
    kw: dict = {"gpu": row["accelerator"]}
    notes: list[str] = []
    if _v(row, "preset") is not None:
        kw["model"] = load_preset(row["preset"])
    else:
        kw["params"] = float(row["total_params"])
        if _v(row, "active_params") is not None and row["active_params"] < row["total_params"]:
            kw["active_params"] = float(row["active_params"])
        notes.append("shape from parameter count")
    for col, key in (("gpus_per_replica", "gpus_per_replica"), ("batch", "batch"), ("prompt_tokens", "prompt_tokens"),
                     ("output_tokens", "output_tokens")):
        if _v(row, col) is not None:
            kw[key] = int(round(float(row[col])))
        else:
            notes.append(f"{col} default")
    if _v(row, "precision") in PRECISION_MAP:
        kw["weight_precision"] = PRECISION_MAP[row["precision"]]
    if row.get("scope") == "gpu+host":
        kw["pue"] = 1.0
    from hardware_db import default_price

    if default_price(row["accelerator"]) is None:
        kw["price_per_gpu_hour"] = 0.0
    return kw, notes, None


def predicted_value(d: dict, row: dict) -> float:
    """The estimate in the row's metric and energy scope."""
    m = row["metric"]
    if m == "energy_per_query_wh" and row.get("scope") in ("facility_with_pue", "gpu+host"):
        return d["facility_energy_per_query_wh"]
    if m == "energy_per_output_token_j" and row.get("scope") in ("facility_with_pue", "gpu+host"):
        return d["facility_energy_per_query_wh"] * 3600.0 / max(d["output_tokens"], 1)
    return d[METRIC_KEYS[m]]


THROUGHPUT_METRICS = ("tokens_per_second_per_gpu", "tokens_per_second_per_replica")


def is_offline_throughput(row: dict) -> bool:
    """True when the row is a throughput number from an offline (max-throughput) scenario, per its own source text."""
    text = " ".join(str(row.get(c) or "") for c in ("name", "source_location")).lower()
    return row.get("metric") in THROUGHPUT_METRICS and "offline" in text


def run_inference() -> pd.DataFrame:
    """One row per measurement: predicted, reported, signed error, or why it was not reproduced."""
    try:
        from estimator.inference import estimate_inference
    except ImportError as exc:
        raise RuntimeError(f"estimator.inference is not available: {exc}") from None
    out = []
    for row in load_measurements().to_dict("records"):
        kw, notes, why = serving_inputs(row)
        rec = {"id": row["id"], "model": row["model"], "metric": row["metric"], "scope": _v(row, "scope") or "",
               "kind": row["measurement_kind"], "reproducible": row["reproducible"],
               "reported": float(row["reported_value"]), "predicted": None, "error": None, "why_na": why or "",
               "notes": "; ".join(notes)}
        if kw is not None:
            try:
                d = estimate_inference(**kw).to_dict()
                if "batch" not in kw and is_offline_throughput(row):
                    kw["batch"] = int(d["max_batch"])
                    d = estimate_inference(**kw).to_dict()
                    notes = [n for n in notes if n != "batch default"] + ["offline: largest batch that fits"]
                rec["predicted"] = predicted_value(d, row)
                rec["error"] = rec["predicted"] / rec["reported"] - 1.0
                rec["notes"] = "; ".join(notes + [f"batch {d['batch']}, {d['gpus_per_replica']} GPU/replica, "
                                                  f"{d['prompt_tokens']}+{d['output_tokens']} tokens"])
            except Exception as exc:  # noqa: BLE001 - record and go on
                rec["why_na"] = "estimator error: " + str(exc).split("\n")[0]
        out.append(rec)
    return pd.DataFrame(out)


def summarise_inference(df: pd.DataFrame) -> dict:
    """Median and worst absolute error over measured rows (analytic estimates excluded)."""
    ev = df.dropna(subset=["error"])
    ev = ev[ev["kind"] != "analytic_estimate"]
    a = ev["error"].abs()
    return {"n": len(ev), "median_abs": float(a.median()) if len(a) else None,
            "worst_abs": float(a.max()) if len(a) else None,
            "worst_id": ev.loc[a.idxmax(), "id"] if len(a) else ""}


# --------------------------------------------------------------------------- fully specified serving rows

FULL_METRICS = {"tokens_per_second_per_gpu": "tokens_per_second_per_gpu", "ttft_ms": "ttft_ms",
                "gpu_power_w": "gpu_power_avg_w", "energy_per_output_token_j": "energy_per_output_token_j",
                "batch_prefill_ms": "prefill_batch_ms"}


@cache
def load_full_settings() -> pd.DataFrame:
    """``serving_full_settings.csv``: every setting published (model, GPU, TP, precision, batch, tokens, batching)."""
    df = pd.read_csv(files("benchmarks") / "data" / "serving_full_settings.csv")
    if df["name"].duplicated().any():
        raise ValueError("serving_full_settings.csv: duplicate names")
    bad = set(df["metric"]) - set(FULL_METRICS)
    if bad:
        raise ValueError(f"serving_full_settings.csv: unknown metric {sorted(bad)}")
    return df


def source_group(row: dict) -> str:
    """The row's source and GPU family: 'trtllm-v0.9 (h100-sxm)', 'argonne (a100-40gb)' ..."""
    src = "argonne" if str(row["source"]).startswith("argonne") else "trtllm-v0.9"
    return f"{src} ({row['gpu']})"


def full_inputs(row: dict, batching: bool = True) -> dict:
    """``estimate_inference`` keywords for a fully specified row (``batching``: pass the row's scheduler)."""
    from estimator.presets import load_preset
    from hardware_db import default_price

    kw = {"model": load_preset(row["model"]), "gpu": row["gpu"], "gpus_per_replica": int(row["tp"]),
          "batch": int(row["batch"]), "prompt_tokens": int(row["prompt_tokens"]),
          "output_tokens": int(row["output_tokens"]), "weight_precision": row["weight_precision"],
          "kv_precision": row["kv_precision"]}
    if batching:
        kw["batching"] = row["batching"]
    if default_price(row["gpu"]) is None:
        kw["price_per_gpu_hour"] = 0.0
    return kw


def roofline_baseline(row: dict) -> float:
    """A plain roofline at datasheet peaks: prefill 2 N tokens / peak FLOP/s, a decode step max(2 N b / peak, weight
    bytes / HBM bandwidth), no overheads or communication, the GPU at TDP. The same for every row."""
    from estimator.hardware import accelerator, peak_flops

    a = accelerator(row["gpu"])
    tp, b, p, o = int(row["tp"]), int(row["batch"]), int(row["prompt_tokens"]), int(row["output_tokens"])
    n, wb = float(row["active_params"]), 1.0 if row["weight_precision"] == "fp8" else 2.0
    peak = peak_flops(a, "fp8" if wb == 1.0 and "fp8" in a.peak_tflops else "fp16") * tp
    bw = a.memory_bw_gb_per_s * 1e9 * tp
    pre = max(2 * n * b * p / peak, float(row["params"]) * wb / bw)
    step = max(2 * n * b / peak, float(row["params"]) * wb / bw)
    total = pre + (o - 1) * step
    tdp = float(a.tdp_w or 0.0)
    return {"tokens_per_second_per_gpu": b * o / total / tp, "ttft_ms": max(2 * n * p / peak, n * wb / bw) * 1e3,
            "gpu_power_w": tdp, "energy_per_output_token_j": tdp * tp * total / (b * o),
            "batch_prefill_ms": pre * 1e3}[row["metric"]]


#: Argonne's avg_power is the mean NVML power over the run plus about 1 s of idle tail (the rows' notes); the
#: benchmark applies that protocol to the prediction: (P x T + idle x 1 s) / (T + 1 s), J/token = that x T / tokens.
ARGONNE_IDLE_TAIL_S = 1.0
#: The rows ``memory_bound_power_share`` was fitted on (hardware_db/assumptions.csv): Argonne's A100 power rows.
POWER_FIT_GPUS = ("a100-40gb",)


def _power_at(d: dict, k: float | None = None) -> float:
    """Average GPU power over the run from an estimate's phase terms, with memory share ``k`` (None: as estimated)."""
    if k is None:
        return float(d["gpu_power_avg_w"])
    pre, dec = d["prefill"], d["decode"]

    def p(ph: dict) -> float:
        return ph["power_idle_w"] + ph["power_span_w"] * min(1.0, ph["power_u_over_u_ref"] + k * ph["hbm_utilisation"])

    t_pre, t_dec = pre["step_time_s"], dec["time_s"]
    return (p(pre) * t_pre + p(dec) * t_dec) / (t_pre + t_dec)


def predicted_full(d: dict, row: dict, k: float | None = None) -> float:
    """The estimate in the row's metric, under the row's measurement protocol (Argonne's idle tail)."""
    m = row["metric"]
    if m not in ("gpu_power_w", "energy_per_output_token_j"):
        return float(d[FULL_METRICS[m]])
    w = _power_at(d, k)
    tokens = d["batch"] * d["output_tokens"]
    t = tokens / d["tokens_per_second_per_replica"]
    if str(row["source"]).startswith("argonne"):
        w = (w * t + d["prefill"]["power_idle_w"] * ARGONNE_IDLE_TAIL_S) / (t + ARGONNE_IDLE_TAIL_S)
    return w if m == "gpu_power_w" else w * t * d["gpus_per_replica"] / tokens


def fit_memory_power_share(estimates: list[tuple[dict, dict]], gpus: tuple[str, ...] = POWER_FIT_GPUS) -> float:
    """``memory_bound_power_share`` minimising the median |error| of GPU power on the power rows of ``gpus``
    (grid 0-3 in steps of 0.005); ``estimates``: (estimate dict, row) pairs."""
    import numpy as np

    fit = [(d, r) for d, r in estimates if r["metric"] == "gpu_power_w" and r["gpu"] in gpus]
    grid = np.arange(0.0, 3.0001, 0.005)
    err = [np.median([abs(predicted_full(d, r, k) / float(r["value"]) - 1) for d, r in fit]) for k in grid]
    return float(grid[int(np.argmin(err))])


#: The rows each fitted serving constant was fitted on (hardware_db/assumptions.csv); every other row is held out.
#: Fitted in this order, each with the ones before it in place, on TensorRT-LLM v0.9 rows (throughput and TTFT):
#: prefill_gemm_rate_scale_<gpu> on the dense 2048-token TTFT rows of that calibrated GPU;
#: serving_step_overhead_s on the dense-model rows of the two calibrated GPUs (h100-sxm, a100-80gb);
#: decode_gqa_attention_efficiency_h100-sxm on the h100-sxm Mistral-7B (GQA) throughput rows;
#: moe_expert_gemm_efficiency_fp16 on the a100-80gb Mixtral rows, _fp8 on the h100-sxm Mixtral rows;
#: pcie_allreduce_efficiency on the L40S throughput rows with TP > 1 (the only PCIe-only multi-GPU runs).
TIME_METRICS = ("tokens_per_second_per_gpu", "ttft_ms")


def constant_fit_rows(df: pd.DataFrame) -> dict[str, frozenset[str]]:
    """constant -> names of the rows it was fitted on."""
    trt = df["source"].str.startswith("NVIDIA/TensorRT-LLM") & df["metric"].isin(TIME_METRICS)
    moe = df["model"].str.startswith("mixtral")

    def names(sel) -> frozenset[str]:
        return frozenset(df.loc[sel, "name"])

    long_ttft = trt & (df["metric"] == "ttft_ms") & (df["prompt_tokens"] == 2048) & ~moe
    return {**{f"prefill_gemm_rate_scale_{g}": names(long_ttft & (df["gpu"] == g)) for g in ("a100-80gb", "h100-sxm")},
            "serving_step_overhead_s": names(trt & df["gpu"].isin(["h100-sxm", "a100-80gb"]) & ~moe),
            "decode_gqa_attention_efficiency_h100-sxm": names(
                trt & (df["gpu"] == "h100-sxm") & (df["model"] == "mistral-7b")
                & (df["metric"] == "tokens_per_second_per_gpu")),
            "moe_expert_gemm_efficiency_fp16": names(trt & (df["gpu"] == "a100-80gb") & moe),
            "moe_expert_gemm_efficiency_fp8": names(trt & (df["gpu"] == "h100-sxm") & moe),
            "pcie_allreduce_efficiency": names(trt & (df["gpu"] == "l40s") & (df["tp"] > 1)
                                               & (df["metric"] == "tokens_per_second_per_gpu")),
            "memory_bound_power_share": names(df["gpu"].isin(POWER_FIT_GPUS) & (df["metric"] == "gpu_power_w"))}


def fit_rows() -> frozenset[str]:
    """Every row some fitted serving constant was fitted on."""
    return frozenset().union(*constant_fit_rows(load_full_settings()).values())


FIT_GRIDS = {"prefill_gemm_rate_scale_a100-80gb": [0.7 + 0.01 * i for i in range(61)],
             "prefill_gemm_rate_scale_h100-sxm": [0.7 + 0.01 * i for i in range(61)],
             "serving_step_overhead_s": [i * 1e-4 for i in range(31)],
             "decode_gqa_attention_efficiency_h100-sxm": [0.2 + 0.025 * i for i in range(33)],
             "moe_expert_gemm_efficiency_fp16": [0.2 + 0.025 * i for i in range(33)],
             "moe_expert_gemm_efficiency_fp8": [0.1 + 0.025 * i for i in range(37)],
             "pcie_allreduce_efficiency": [0.05 + 0.025 * i for i in range(39)]}


def _estimate_row(row: dict, batching: bool = True) -> dict:
    """The estimate at the row's published setting (no replica search: the setting is the row's)."""
    from estimator.config import ServingConfig
    from estimator.inference import estimate_replica

    return estimate_replica(ServingConfig(**full_inputs(row, batching))).to_dict()


def _log_err(rows: list[dict]) -> float:
    import numpy as np

    return float(np.median([abs(np.log(predicted_full(_estimate_row(r), r) / float(r["value"]))) for r in rows]))


#: Where the fit starts: each constant neutral (the kernel model alone)
FIT_START = {"prefill_gemm_rate_scale_a100-80gb": 1.0, "prefill_gemm_rate_scale_h100-sxm": 1.0,
             "serving_step_overhead_s": 0.0, "decode_gqa_attention_efficiency_h100-sxm": 1.0,
             "moe_expert_gemm_efficiency_fp16": 1.0, "moe_expert_gemm_efficiency_fp8": 1.0,
             "pcie_allreduce_efficiency": 1.0}
MAX_SWEEPS = 20


def fit_time_constants() -> dict:
    """Grid fit of the step-time constants: from ``FIT_START``, each in ``FIT_GRIDS`` order on its own rows (median
    |log error|) with the others at their current values, sweeping until no constant moves (coordinate descent;
    independent of the values shipped in hardware_db/assumptions.csv)."""
    from estimator.serving import constants_override

    df = load_full_settings()
    rows = constant_fit_rows(df)
    records = df.to_dict("records")
    got = dict(FIT_START)
    for _ in range(MAX_SWEEPS):
        before = dict(got)
        for key, grid in FIT_GRIDS.items():
            fit = [r for r in records if r["name"] in rows[key]]
            others = {k: v for k, v in got.items() if k != key}
            with constants_override(**others):
                got[key] = round(float(min(grid, key=lambda x: _with(constants_override, fit, **{key: x}))), 6)
        if got == before:
            break
    return got


def fit_power_share(gpus: tuple[str, ...] = POWER_FIT_GPUS) -> float:
    """``memory_bound_power_share`` fitted on the power rows of ``gpus`` at the shipped time constants."""
    rows = [r for r in load_full_settings().to_dict("records") if r["metric"] == "gpu_power_w"]
    return fit_memory_power_share([(_estimate_row(r), r) for r in rows], gpus)


def _with(override, rows: list[dict], **values: float) -> float:
    with override(**values):
        return _log_err(rows)


def run_full_settings(batching: bool = True) -> pd.DataFrame:
    """Every fully specified row predicted blind: ours and the roofline baseline, signed errors, its source group."""
    out = []
    for row in load_full_settings().to_dict("records"):
        rec = {"name": row["name"], "metric": row["metric"], "group": source_group(row), "gpu": row["gpu"],
               "reported": float(row["value"]), "predicted": None, "error": None, "baseline_error": None,
               "why_na": ""}
        try:
            rec["predicted"] = predicted_full(_estimate_row(row, batching), row)
            rec["error"] = rec["predicted"] / rec["reported"] - 1.0
        except Exception as exc:  # noqa: BLE001 - record and go on
            rec["why_na"] = "estimator error: " + str(exc).split("\n")[0]
        rec["baseline_error"] = roofline_baseline(row) / rec["reported"] - 1.0
        out.append(rec)
    return pd.DataFrame(out)


def score_full_settings(df: pd.DataFrame, fit_rows: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Median |error| by metric and source group, ours beside the baseline, on fit rows and on held-out rows."""
    df = df.assign(split=["fit" if n in fit_rows else "held-out" for n in df["name"]])
    rows = []
    for (metric, split, group), g in df.groupby(["metric", "split", "group"]):
        e = g["error"].dropna().abs()
        rows.append({"metric": metric, "split": split, "group": group, "n": len(g), "n_predicted": len(e),
                     "ours_median_abs": float(e.median()) if len(e) else None,
                     "baseline_median_abs": float(g["baseline_error"].abs().median())})
    for (metric, split), g in df.groupby(["metric", "split"]):
        e = g["error"].dropna().abs()
        rows.append({"metric": metric, "split": split, "group": "all", "n": len(g), "n_predicted": len(e),
                     "ours_median_abs": float(e.median()) if len(e) else None,
                     "baseline_median_abs": float(g["baseline_error"].abs().median())})
    return pd.DataFrame(rows)


def _fmt_pct(x) -> str:
    return "" if x is None or x != x else f"{100 * x:.1f}%"


def full_settings_report(df: pd.DataFrame | None = None) -> str:
    """Markdown: per-metric median |error| (ours beside the roofline baseline), fit rows and held-out rows, by source
    group; the fitted constants with their fit rows; the power fit's A100 <-> H100 transfer."""
    import numpy as np

    from estimator.hardware import assumption

    df = run_full_settings() if df is None else df
    s = score_full_settings(df, fit_rows())
    lines = ["# Fully specified serving rows, predicted blind", "",
             f"{len(df)} rows of `benchmarks/data/serving_full_settings.csv`, every one predicted "
             f"({int(df['error'].notna().sum())} of {len(df)}). Median |error|; the baseline is a plain roofline at "
             "datasheet peaks with the GPU at TDP (`roofline_baseline`). 'fit' rows are those some constant was "
             "fitted on; 'held-out' rows were used by none.", "",
             "| metric | split | source (GPU) | n | ours | roofline baseline |", "|---|---|---|---|---|---|"]
    for r in s.sort_values(["metric", "split", "group"]).to_dict("records"):
        lines.append(f"| {r['metric']} | {r['split']} | {r['group']} | {r['n_predicted']} | "
                     f"{_fmt_pct(r['ours_median_abs'])} | {_fmt_pct(r['baseline_median_abs'])} |")
    lines += ["", "## Fitted constants (hardware_db/assumptions.csv) and the rows each was fitted on", ""]
    for key, names in constant_fit_rows(load_full_settings()).items():
        lines.append(f"- `{key}` = {assumption(key).value:g}: {len(names)} rows ({', '.join(sorted(names))})")
    rows = [r for r in load_full_settings().to_dict("records") if r["metric"] == "gpu_power_w"]
    est = [(_estimate_row(r), r) for r in rows]
    lines += ["", "## GPU power: fitted on one generation, scored on the other", "",
              "| fitted on | memory_bound_power_share | A100-40GB error | H100 error |", "|---|---|---|---|"]
    for g in ("a100-40gb", "h100-sxm"):
        k = fit_memory_power_share(est, (g,))
        errs = [float(np.median([abs(predicted_full(d, r, k) / r["value"] - 1) for d, r in est if r["gpu"] == h]))
                for h in ("a100-40gb", "h100-sxm")]
        lines.append(f"| {g} | {k:g} | {_fmt_pct(errs[0])} | {_fmt_pct(errs[1])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m benchmarks.inference_bench OUT_DIR: write the report and the per-row CSV
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    rows = run_full_settings()
    rows.to_csv(out / "serving_full_settings_rows.csv", index=False)
    (out / "serving_full_settings.md").write_text(full_settings_report(rows))
