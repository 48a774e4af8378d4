"""Compare: two to four pinned scenarios side by side (table and grouped bars), each one estimate_training call."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboards.common import (
    AUTO,
    DEFAULT,
    PRECISIONS,
    Form,
    fmt,
    gpu_list,
    grid_caption,
    init_state,
    label,
    preset_list,
    region_list,
    run_or_error,
    scenario_inputs,
    show_warnings,
    sync_url,
)

METRICS = ("gpu_hours", "wall_clock_days", "energy_mwh", "co2e_tonnes", "cost_usd")
TABLE_METRICS = ("flops", "gpus", *METRICS, "embodied_co2e_tonnes", "mfu", "avg_power_mw", "memory_per_gpu_gb")
LETTERS = "ABCD"
# the examples of issue 6: H100 vs B200, Virginia vs Quebec, bf16 vs fp8 (same model and tokens)
SLOT_DEFAULTS = (
    {"gpu": "h100-sxm", "region": "US-VA"},
    {"gpu": "b200", "region": "US-VA"},
    {"gpu": "h100-sxm", "region": "CA-QC"},
    {"gpu": "h100-sxm", "region": "US-VA", "precision": "fp8"},
)
TRAINING_FIELDS = ("source", "preset", "params", "active_params", "tokens", "gpu", "gpus", "precision", "region")


def _copy_training(slot: int) -> None:
    """Button callback: copy the Training page's scenario (from the URL) into a slot."""
    choices = {"source": ["preset", "parameters"], "preset": preset_list(), "gpu": gpu_list(),
               "precision": [AUTO, *PRECISIONS], "region": [DEFAULT, *region_list()]}
    for f in TRAINING_FIELDS:
        v = st.query_params.get(f"t_{f}")
        k = f"c{slot}_{f}"
        if v is not None and f in choices and v not in choices[f]:
            v = None  # not an option of the select box (a hand-edited link): keep the slot's default
        if v is not None:
            st.session_state[k] = v
        elif k in st.session_state:
            del st.session_state[k]  # back to the slot's default on the next run


def scenario_label(i: int, d: dict) -> str:
    return f"{LETTERS[i]}: {d['model']['name']} · {d['gpus']} x {d['gpu']} · {d['precision']} · {grid_caption(d)}"


def table(results: list[tuple[int, dict]]) -> pd.DataFrame:
    rows = []
    for key in TABLE_METRICS:
        row = {"metric": "GPUs" if key == "gpus" else label(key)}
        for i, d in results:
            row[LETTERS[i]] = f"{d[key]:,}" if key == "gpus" else fmt(key, d[key])
        rows.append(row)
    return pd.DataFrame(rows)


def bars(results: list[tuple[int, dict]]) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(METRICS), subplot_titles=[label(k) for k in METRICS])
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for j, key in enumerate(METRICS, start=1):
        for i, d in results:
            v = d[key]
            if v is None:  # not estimated (no price): no bar; the table shows "—" and the warning says why
                continue
            lo, hi = d["ranges"].get(key) or (v, v)
            lo, hi = (v if lo is None else lo), (v if hi is None else hi)
            fig.add_trace(go.Bar(x=[LETTERS[i]], y=[v], name=LETTERS[i], marker_color=colors[i],
                                 showlegend=j == 1, error_y={"type": "data", "symmetric": False, "array": [hi - v],
                                                             "arrayminus": [v - lo]}), row=1, col=j)
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, barmode="group")
    return fig


def render() -> None:
    st.header("Compare scenarios")
    st.caption("Pin two to four scenarios; each column is one estimate. The error bars are the estimate's ranges.")
    init_state("cmp_n", 2, [2, 3, 4])
    n = st.radio("Scenarios", [2, 3, 4], key="cmp_n", horizontal=True)
    sync_url({"cmp_n": 2})
    cols = st.columns(n)
    results: list[tuple[int, dict]] = []
    for i in range(n):
        with cols[i]:
            st.markdown(f"**Scenario {LETTERS[i]}**")
            st.button("Copy from Training page", key=f"copy_{i}", on_click=_copy_training, args=(i,))
            form = Form(f"c{i}")
            kw = scenario_inputs(form, full=False, defaults=SLOT_DEFAULTS[i])
            form.sync()
            res = run_or_error(kw)
            if res is not None:
                results.append((i, res[0]))
                show_warnings(res[0])
    if not results:
        return
    for i, d in results:
        st.caption(scenario_label(i, d))
    st.dataframe(table(results), hide_index=True)
    st.plotly_chart(bars(results), key="cmp_bars")
    frame = pd.concat([pd.DataFrame([{"scenario": LETTERS[i], **{k: d[k] for k in TABLE_METRICS}}])
                       for i, d in results], ignore_index=True)
    st.download_button("Download CSV", frame.to_csv(index=False), file_name="compare.csv", mime="text/csv",
                       key="cmp_csv")
    st.download_button("Download JSON", json.dumps({LETTERS[i]: d for i, d in results}, indent=2, default=str),
                       file_name="compare.json", mime="application/json", key="cmp_json")

