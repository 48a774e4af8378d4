"""Serving: latency and energy per token against batch size, fleet size and power against queries per day.
Every number is ``estimator.inference.estimate_inference(...).to_dict()``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboards.common import (
    AUTO,
    INPUT_ERRORS,
    Form,
    estimate_serving,
    fmt_value,
    gpu_list,
    grid_caption,
    metric,
    optional_module,
    parse_number,
    preset_list,
    region_select,
    show_warnings,
    try_call,
)
from estimator.config import DEFAULT_TPOT_SLO_MS, DEFAULT_TTFT_SLO_MS, WEIGHT_PRECISIONS

#: headline metrics (labels and units from estimator.results.METRICS)
HEADLINE = ("ttft_ms", "tpot_ms", "tokens_per_second_per_gpu", "energy_per_output_token_j",
            "facility_energy_per_query_wh", "co2e_per_query_g", "cost_per_million_output_tokens_usd")
#: fleet figures: (key in to_dict()["fleet"], label, unit for estimator.formatting.fmt)
FLEET = (("replicas", "Replicas", ""), ("gpus", "GPUs", ""), ("avg_power_mw", "Average power", "MW"),
         ("annual_energy_mwh", "Energy per year", "MWh"),
         ("annual_co2e_tonnes", "Operational CO2e per year", "tCO2e"),
         ("annual_embodied_co2e_tonnes", "Embodied CO2e per year", "tCO2e"),
         ("annual_cost_usd", "Cost per year", "USD"))


def serving_inputs() -> tuple[Form, dict]:
    form = Form("sv")
    c = st.columns(4)
    kw = {"preset": form.select("preset", "Model preset", preset_list(), "llama3-8b", where=c[0]),
          "gpu": form.select("gpu", "GPU type", gpu_list(), "h100-sxm", where=c[1]),
          "prompt_tokens": parse_number(form.text("prompt", "Prompt tokens", "1000", where=c[2])),
          "output_tokens": parse_number(form.text("output", "Output tokens", "500", where=c[3]))}
    c = st.columns(4)
    kw["batch"] = parse_number(form.text("batch", "Batch (blank = default)", "", where=c[0]))
    kw["queries_per_day"] = parse_number(form.text("qpd", "Queries per day", "1e6", where=c[1]))
    wp = form.select("weights", "Weight precision", [AUTO, *WEIGHT_PRECISIONS], AUTO, where=c[2])
    kw["weight_precision"] = None if wp == AUTO else wp
    kw["region"] = region_select(form, "region", "Region (grid carbon intensity)", where=c[3])
    c = st.columns(5)
    kw["gpus_per_replica"] = parse_number(form.text("tp", "GPUs per replica (blank = chosen)", "", where=c[0]))
    kw["batching"] = form.select("batching", "Batching", ["continuous", "static"], "continuous", where=c[1])
    kw["optimise"] = form.select("optimise", "Default choice minimises", ["cost", "energy"], "cost", where=c[2])
    kw["ttft_slo_ms"] = parse_number(form.text("ttft_slo", f"TTFT target, ms (default {DEFAULT_TTFT_SLO_MS:g})", "",
                                               where=c[3]))
    kw["tpot_slo_ms"] = parse_number(form.text("tpot_slo", f"TPOT target, ms (default {DEFAULT_TPOT_SLO_MS:g})", "",
                                               where=c[4]))
    return form, {k: v for k, v in kw.items() if v is not None}


def fleet_value(fleet: dict, key: str, unit: str) -> tuple[str, str | None]:
    """A fleet figure and its low-high range, formatted."""
    v = fleet.get(key)
    text = f"{v:,}" if isinstance(v, int) else fmt_value(v, unit)
    rng = (fleet.get("ranges") or {}).get(key)
    if not rng:
        return text, None
    lo, hi = rng
    return text, (f"{lo:,} - {hi:,}" if isinstance(lo, int) else f"{fmt_value(lo, unit)} - {fmt_value(hi, unit)}")


def batch_sweep(kw: dict, max_batch: int) -> pd.DataFrame:
    rows = []
    for b in sorted({int(x) for x in np.unique(np.geomspace(1, max(1, min(max_batch, 1024)), 11).round())}):
        try:
            d = estimate_serving(kw | {"batch": b})[0]
        except INPUT_ERRORS:
            continue
        rows.append({"batch": b, "tpot_ms": d["tpot_ms"], "ttft_ms": d["ttft_ms"],
                     "energy_per_output_token_j": d["energy_per_output_token_j"]})
    return pd.DataFrame(rows)


def fleet_sweep(kw: dict) -> pd.DataFrame:
    rows = []
    for q in np.logspace(4, 10, 13):
        try:
            f = estimate_serving(kw | {"queries_per_day": float(q)})[0].get("fleet")
        except INPUT_ERRORS:
            continue
        if f:
            rows.append({"queries_per_day": float(q), "gpus": f["gpus"], "avg_power_mw": f["avg_power_mw"]})
    return pd.DataFrame(rows)


def two_axis(df: pd.DataFrame, x: str, y1: str, y2: str, title: str, xlog: bool = True) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=df[x], y=df[y1], name=y1, mode="lines+markers"), secondary_y=False)
    fig.add_trace(go.Scatter(x=df[x], y=df[y2], name=y2, mode="lines+markers"), secondary_y=True)
    fig.update_xaxes(type="log" if xlog else "linear", title_text=x)
    fig.update_yaxes(title_text=y1, secondary_y=False)
    fig.update_yaxes(title_text=y2, secondary_y=True)
    fig.update_layout(title=title, height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def render() -> None:
    st.header("Serving")
    if optional_module("estimator.inference") is None:
        st.warning("Not available: estimator.inference is not installed in this version.")
        return
    form, kw = serving_inputs()
    form.sync()
    res = try_call(estimate_serving, kw)
    if res is None:
        return
    d, frame = res
    st.caption(f"{d['model']['name']} on {d['gpus_per_replica']} x {d['gpu_name']} per replica, batch {d['batch']} "
               f"(max that fits {d['max_batch']}), weights {d['weight_precision']}, KV {d['kv_precision']}")
    if d.get("replica_choice"):
        ch = d["replica_choice"]
        st.caption(f"Chosen: {ch['gpus_per_replica']} GPUs per replica at batch {ch['batch']}: {ch['why']}")
    st.caption(grid_caption(d))
    cols = st.columns(len(HEADLINE))
    for c, key in zip(cols, HEADLINE, strict=True):
        metric(c, key, d)
    fleet = d.get("fleet")
    if fleet:
        st.subheader(f"Fleet for {fleet['queries_per_day']:,.0f} queries per day")
        cols = st.columns(len(FLEET))
        for c, (key, lab, unit) in zip(cols, FLEET, strict=True):
            text, rng = fleet_value(fleet, key, unit)
            c.metric(lab, text)
            if fleet.get(key) is None:
                c.caption("not estimated (see the warning below)")
            elif rng:
                c.caption(f"range {rng}")
    show_warnings(d)
    c1, c2 = st.columns(2)
    bs = batch_sweep({k: v for k, v in kw.items() if k != "batch"} | {"gpus_per_replica": d["gpus_per_replica"]},
                     d["max_batch"])
    if not bs.empty:
        c1.plotly_chart(two_axis(bs, "batch", "tpot_ms", "energy_per_output_token_j",
                                 "Latency and energy per token against batch size"), key="sv_chart_batch")
    fs = fleet_sweep(kw | {"gpus_per_replica": d["gpus_per_replica"], "batch": d["batch"]})
    if not fs.empty:
        c2.plotly_chart(two_axis(fs, "queries_per_day", "gpus", "avg_power_mw",
                                 "Fleet size and power against queries per day"), key="sv_chart_fleet")
    st.dataframe(frame, hide_index=True)
    a, b = st.columns(2)
    a.download_button("Download CSV", frame.to_csv(index=False), file_name="serving_estimate.csv", mime="text/csv",
                      key="sv_csv")
    b.download_button("Download JSON", json.dumps(d, indent=2, default=str), file_name="serving_estimate.json",
                      mime="application/json", key="sv_json")
    with st.expander("Assumptions"):
        from dashboards.common import assumptions_frame

        st.dataframe(assumptions_frame(d), hide_index=True)
