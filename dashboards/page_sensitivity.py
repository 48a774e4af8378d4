"""Sensitivity: a tornado chart of how far each uncertain input moves GPU-hours, energy, CO2e and cost.

Each bar is ``estimate_training`` re-run with one input set to the low or high end that the base estimate's
``assumptions`` record gives it (for efficiency: the MFU at the ends of the training-time interval fitted on
published runs, or at the calibration's time corners, ``estimator.ranges.time_corners``), everything else
unchanged. No power, carbon, price or range formula lives here.
"""

from __future__ import annotations

from dataclasses import fields

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards.common import Form, fmt, label, run_or_error, show_warnings
from dashboards.page_training import training_form
from estimator.config import TrainingConfig
from estimator.ranges import time_corners

METRICS = ("gpu_hours", "energy_mwh", "co2e_tonnes", "cost_usd")
#: (label, the TrainingConfig field a bar sets, the assumptions-record key that holds its low/high, unit)
RANGED_INPUTS = (("GPU power (busy)", "gpu_power_w", "gpu_busy_power_w", "W"),
                 ("PUE", "pue", "pue", ""),
                 ("Grid intensity", "grid_intensity", "grid_intensity_g_per_kwh", "gCO2e/kWh"),
                 ("Price per GPU-hour", "price_per_gpu_hour", "price_per_gpu_hour", "USD/GPU-hour"),
                 ("Failure rate (goodput)", "failure_rate_per_gpu_hour", "failure_rate_per_gpu_hour",
                  "per GPU-hour"))
CONFIG_FIELDS = frozenset(f.name for f in fields(TrainingConfig))


def variations(kw: dict, d: dict) -> tuple[list[tuple[str, dict, dict, str]], list[str]]:
    """(input label, inputs at low, inputs at high, what low/high are) for every input whose range the base
    estimate records, and a note for each uncertain input without one (a user input has no range)."""
    A = d["assumptions"]
    out, notes = [], []
    eff = A.get("efficiency_range", {}).get("value")
    band = A.get("training_time_interval", {})
    if band.get("low") and band.get("high") and "mfu" not in kw:
        # the interval fitted on published runs: GPU-hours x low / x high, i.e. MFU / low (higher) and / high
        m = d["mfu"]
        lo, hi = m / float(band["high"]), min(1.0, m / float(band["low"]))
        out.append(("Efficiency (MFU)", kw | {"mfu": lo}, kw | {"mfu": hi},
                    f"MFU {lo:.1%} / {hi:.1%} (GPU-hours x{float(band['low']):.2f} / x{float(band['high']):.2f}: "
                    f"{band.get('source', '')})"))
    elif eff and "mfu" not in kw:
        fast, slow = time_corners(float(eff))  # times x fast / x slow: MFU / fast (higher) and MFU / slow (lower)
        m = d["mfu"]
        lo, hi = m / slow, min(1.0, m / fast)
        out.append(("Efficiency (MFU)", kw | {"mfu": lo}, kw | {"mfu": hi},
                    f"MFU {lo:.1%} / {hi:.1%} (±{float(eff):.0%}: {A['efficiency_range'].get('source', '')})"))
    else:
        notes.append("Efficiency (MFU): no range (MFU given as an input)")
    for name, field, key, unit in RANGED_INPUTS:
        a = A.get(key, {})
        lo, hi = a.get("low"), a.get("high")
        if field not in CONFIG_FIELDS:
            notes.append(f"{name}: the estimator has no '{field}' input, so it cannot be varied here")
        elif field in kw or lo is None or hi is None or lo == hi:
            why = "user input" if field in kw else ("no value" if a.get("value") is None else "a single value")
            notes.append(f"{name}: no range recorded ({why})")
        else:
            out.append((name, kw | {field: lo}, kw | {field: hi}, f"{lo:.4g} / {hi:.4g} {unit}".strip()))
    return out, notes


def tornado(rows: pd.DataFrame, base: float, metric: str) -> go.Figure:
    r = rows.assign(span=(rows[f"{metric}_high"] - rows[f"{metric}_low"]).abs()).sort_values("span")
    fig = go.Figure()
    fig.add_trace(go.Bar(y=r["input"], x=r[f"{metric}_low"] - base, base=base, orientation="h",
                         name="input at low", marker_color="#2ca02c"))
    fig.add_trace(go.Bar(y=r["input"], x=r[f"{metric}_high"] - base, base=base, orientation="h",
                         name="input at high", marker_color="#d62728"))
    fig.add_vline(x=base, line_dash="dash", annotation_text=f"base {fmt(metric, base)}")
    fig.update_layout(barmode="overlay", title=f"{label(metric)}: effect of each input", height=360,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def render() -> None:
    st.header("Sensitivity")
    st.caption("The scenario is the Training page's (sidebar). Each input is set to its low and high value from "
               "the assumptions record, one at a time.")
    form, kw = training_form()
    form.sync()
    res = run_or_error(kw)
    if res is None:
        return
    d = res[0]
    show_warnings(d)
    vs, notes = variations(kw, d)
    rows = []
    for name, lo_kw, hi_kw, what in vs:
        lo, hi = run_or_error(lo_kw), run_or_error(hi_kw)
        if lo is None or hi is None:
            continue
        row = {"input": name, "low / high": what}
        for m in METRICS:
            row[f"{m}_low"], row[f"{m}_high"] = lo[0][m], hi[0][m]
        rows.append(row)
    frame = pd.DataFrame(rows)
    mform = Form("s")
    metric = mform.select("metric", "Metric", list(METRICS), "co2e_tonnes", help=None)
    mform.sync()
    cols = st.columns(len(METRICS))
    for c, m in zip(cols, METRICS, strict=True):
        c.metric(f"Base {label(m)}", fmt(m, d[m]))
        if d[m] is None:
            c.caption("not estimated (see the warning above)")
    if d[metric] is None:
        st.info(f"{label(metric)} is not estimated for this scenario (see the warning above), so it has no "
                "tornado; pick another metric.")
    elif not frame.empty:
        st.plotly_chart(tornado(frame, d[metric], metric), key="sens_tornado")
    if not frame.empty:
        st.dataframe(frame, hide_index=True)
        st.download_button("Download CSV", frame.to_csv(index=False), file_name="sensitivity.csv", mime="text/csv",
                           key="sens_csv")
    for n in notes:
        st.info(n)
