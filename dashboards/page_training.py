"""Training what-if: every input ``estimate`` takes, headline results with ranges, and where time, energy,
CO2e and cost go. All numbers are ``estimate_training(...).to_dict()`` values."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboards.common import (
    Form,
    assumptions_frame,
    downloads,
    energy_split,
    grid_caption,
    label,
    metric,
    run_or_error,
    scenario_inputs,
    show_warnings,
)

HEADLINE_KEYS = ("gpu_hours", "wall_clock_days", "energy_mwh", "co2e_tonnes", "cost_usd", "flops", "mfu",
                 "avg_power_mw", "embodied_co2e_tonnes", "memory_per_gpu_gb")
TIME_LABELS = {"compute": "Compute", "bubble": "Pipeline bubble", "tp_comm": "Tensor-parallel comm.",
               "pp_comm": "Pipeline comm.", "dp_comm": "Data-parallel comm. (exposed)", "ep_comm": "Expert all-to-all",
               "optimizer": "Optimizer step", "downtime": "Downtime (failures, restarts)"}


def training_form() -> tuple[Form, dict]:
    """The shared training scenario (prefix ``t``; also used by the Sensitivity page)."""
    form = Form("t")
    kw = scenario_inputs(form, full=True, where=st.sidebar)
    return form, kw


def headline(d: dict, keys=HEADLINE_KEYS, cols: int = 5) -> None:
    columns = st.columns(cols)
    for i, key in enumerate(keys):
        metric(columns[i % cols], key, d)


def time_chart(d: dict) -> go.Figure:
    tb = {k: v for k, v in d["time_breakdown"].items() if v > 0}
    days = d["wall_clock_days"]
    fig = go.Figure(go.Bar(x=[v * days for v in tb.values()], y=[TIME_LABELS.get(k, k) for k in tb],
                           orientation="h", text=[f"{v:.1%}" for v in tb.values()], textposition="auto"))
    fig.update_layout(title="Where the time goes (days of wall-clock)", xaxis_title="days", height=320,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def energy_charts(d: dict) -> tuple[go.Figure, go.Figure]:
    split = energy_split(d)
    e = go.Figure(go.Pie(labels=list(split), values=list(split.values()), hole=0.4, sort=False))
    e.update_layout(title=f"Energy {d['energy_mwh']:,.1f} MWh", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    # operational CO2e is energy x grid intensity, so it splits in the same proportions as energy
    share = {k: v / d["energy_mwh"] * d["co2e_tonnes"] for k, v in split.items()}
    names = [f"Operational: {k}" for k in share]
    vals = list(share.values())
    title = "Where the CO2e goes (tCO2e)"
    if d["embodied_co2e_tonnes"] is None:  # no published embodied figure: not estimated (the page warns)
        title += "; embodied not estimated"
    else:
        names.append("Embodied (GPU + server manufacture, amortised)")
        vals.append(d["embodied_co2e_tonnes"])
    c = go.Figure(go.Bar(x=names, y=vals, marker_color=["#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"][:len(vals)]))
    c.update_layout(title=title, yaxis_title="tCO2e", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return e, c


def range_chart(d: dict, key: str, title: str, unit: str) -> go.Figure | None:
    """A bar of ``d[key]`` with its range as error bars; None where the estimator gave no value."""
    v = d[key]
    if v is None:
        return None
    lo, hi = d["ranges"].get(key) or (v, v)
    lo, hi = (v if lo is None else lo), (v if hi is None else hi)
    error_y = {"type": "data", "symmetric": False, "array": [hi - v], "arrayminus": [v - lo]}
    fig = go.Figure(go.Bar(x=[label(key)], y=[v], error_y=error_y))
    fig.update_layout(title=title, yaxis_title=unit, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def render() -> None:
    st.header("Training what-if")
    st.caption("Inputs are in the sidebar; blank fields take the documented defaults listed under the results. "
               "The URL holds every input, so a scenario can be shared as a link.")
    form, kw = training_form()
    form.sync()
    res = run_or_error(kw)
    if res is None:
        return
    d, frame = res
    model = d["model"]
    lay = d["layout"]
    st.subheader(f"{model['name']}: {model['params']:.3g} parameters"
                 + (f" ({model['active_params']:.3g} active)" if model["active_params"] != model["params"] else "")
                 + f", {d['tokens']:.3g} tokens on {d['gpus']:,} x {d['gpu_name']} ({d['precision']})")
    st.caption(f"Layout TP{lay['tp']} x PP{lay['pp']} x DP{lay['dp']} x EP{lay['ep']}, ZeRO-{lay['zero']}, "
               f"micro-batch {lay['micro_batch']}, recompute {lay['recompute']}; goodput {d['goodput']:.1%}")
    headline(d)
    st.caption(grid_caption(d))
    show_warnings(d)
    c1, c2 = st.columns(2)
    c1.plotly_chart(time_chart(d), key="t_time_chart")
    e, c = energy_charts(d)
    c2.plotly_chart(e, key="t_energy_chart")
    c3, c4 = st.columns(2)
    c3.plotly_chart(c, key="t_co2_chart")
    cost = range_chart(d, "cost_usd", "Cost (USD) with its range", "USD")
    if cost is None:
        c4.info("Cost not estimated: no price for this GPU (see the warning above); give a price per GPU-hour "
                "in the sidebar.")
    else:
        c4.plotly_chart(cost, key="t_cost_chart")
    st.subheader("Results table")
    st.dataframe(frame, hide_index=True)
    downloads(d, frame, "training_estimate")
    st.subheader("Assumptions")
    st.dataframe(assumptions_frame(d), hide_index=True)
    if d.get("calibration"):
        st.json(d["calibration"], expanded=False)
