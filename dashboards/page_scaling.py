"""Scaling: the compute-optimal split of a FLOP budget (``estimator.scaling``) and what training it costs
(``estimate_training``), with cost against model size at fixed loss or fixed tokens."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards.common import (
    INPUT_ERRORS,
    Form,
    error_text,
    fmt,
    gpu_list,
    label,
    optional_module,
    parse_number,
    region_select,
    run_or_error,
    show_warnings,
)
from estimator.errors import EstimatorInputError

HIGH_QUALITY_TEXT_TOKENS = (10e12, 20e12)  # issue 6: "~10-20T of high-quality text" (planning rule of thumb)
SIZES = 9  # points on the cost curve, N_opt / 10 .. N_opt x 10


def tokens_at_loss(law, n: float, loss: float) -> float | None:
    """Tokens D with law.loss(n, D) == loss, by bisection on log D over law.loss (None when unreachable)."""
    lo, hi = 1e6, 1e18
    if law.loss(n, hi) > loss:
        return None
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if law.loss(n, mid) > loss else (lo, mid)
        if hi / lo < 1 + 1e-9:
            break
    return math.sqrt(lo * hi)


def curve(law, n_opt: float, d_opt: float, mode: str, base_kw: dict) -> pd.DataFrame:
    target = law.loss(n_opt, d_opt)
    rows = []
    for n in n_opt * np.logspace(-1, 1, SIZES):
        d = d_opt if mode == "fixed tokens" else tokens_at_loss(law, n, target)
        row = {"params": float(n), "tokens": d, "loss": None if d is None else law.loss(n, d), "cost_usd": None,
               "gpu_hours": None, "note": ""}
        if d is None:
            row["note"] = "loss unreachable at this size"
        else:
            try:
                from dashboards.common import estimate

                r = estimate(base_kw | {"params": float(n), "tokens": float(d)})[0]
                row["cost_usd"], row["gpu_hours"] = r["cost_usd"], r["gpu_hours"]
            except INPUT_ERRORS as err:
                row["note"] = error_text(err)
        row["beyond_text"] = d is not None and d > HIGH_QUALITY_TEXT_TOKENS[0]
        rows.append(row)
    return pd.DataFrame(rows)


def curve_chart(df: pd.DataFrame, n_opt: float, mode: str) -> go.Figure:
    ok = df.dropna(subset=["cost_usd"])
    fig = go.Figure()
    for beyond, name, color in ((False, "tokens within ~10T of high-quality text", "#1f77b4"),
                                (True, "needs more than ~10-20T tokens of high-quality text", "#d62728")):
        s = ok[ok["beyond_text"] == beyond]
        fig.add_trace(go.Scatter(x=s["params"], y=s["cost_usd"], mode="markers+lines", name=name,
                                 marker={"color": color, "size": 9},
                                 text=[f"{t:.3g} tokens" for t in s["tokens"]], hovertemplate="%{x:.3g} params, "
                                 "$%{y:,.0f}<br>%{text}<extra></extra>"))
    fig.add_vline(x=n_opt, line_dash="dash", annotation_text="compute-optimal")
    fig.update_layout(title=f"Training cost against model size ({mode})", xaxis_type="log", yaxis_type="log",
                      xaxis_title="parameters", yaxis_title="USD", height=420,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def render() -> None:
    st.header("Scaling: compute-optimal split")
    scaling = optional_module("estimator.scaling")
    if scaling is None:
        st.warning("Not available: estimator.scaling is not installed in this version, so the compute-optimal "
                   "split cannot be shown.")
        return
    form = Form("sc")
    c1, c2, c3, c4 = st.columns(4)
    budget = parse_number(form.text("budget", "Compute budget C = 6ND (FLOP)", "1e24", where=c1))
    law_id = form.select("law", "Scaling law", list(scaling.LAWS), scaling.DEFAULT_LAW, where=c2)
    gpu = form.select("gpu", "GPU type", gpu_list(), "h100-sxm", where=c3)
    region = region_select(form, "region", "Region", where=c4)
    mode = form.radio("mode", "Cost curve", ["fixed loss", "fixed tokens"], "fixed loss")
    form.sync()
    try:
        law = scaling.get_law(law_id)
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            raise EstimatorInputError(f"compute budget must be a number, got {budget!r}", "e.g. 1e24")
        n_opt, d_opt = law.allocate(float(budget))
    except INPUT_ERRORS as err:
        st.error(error_text(err))
        return
    st.caption(f"{law.name}. Source: {law.source}")
    m = st.columns(4)
    m[0].metric("Compute-optimal parameters", f"{n_opt:.3g}")
    m[1].metric("Compute-optimal tokens", f"{d_opt:.3g}")
    m[2].metric("Tokens per parameter", f"{d_opt / n_opt:.1f}")
    m[3].metric("Predicted loss (nats/token)", f"{law.loss(n_opt, d_opt):.3f}")
    if d_opt > HIGH_QUALITY_TEXT_TOKENS[0]:
        stock = scaling.data_stock()
        st.warning(f"This plan needs {d_opt:.3g} tokens: more than the ~10-20T tokens of high-quality text "
                   f"available today (effective stock of public human text: {stock.value:.3g} tokens, "
                   f"{stock.source.split(':')[0]}). Expect repeated or synthetic data.")
    base_kw = {"gpu": gpu} | ({} if region is None else {"region": region})
    res = run_or_error(base_kw | {"params": n_opt, "tokens": d_opt})
    if res is not None:
        d = res[0]
        k = st.columns(5)
        for c, key in zip(k, ("gpus", "gpu_hours", "wall_clock_days", "co2e_tonnes", "cost_usd"), strict=True):
            c.metric("GPUs" if key == "gpus" else label(key), f"{d['gpus']:,}" if key == "gpus" else fmt(key, d[key]))
            if key != "gpus" and d[key] is None:
                c.caption("not estimated (see the warning below)")
        show_warnings(d)
    df = curve(law, n_opt, d_opt, mode, base_kw)
    if df["cost_usd"].notna().any():
        st.plotly_chart(curve_chart(df, n_opt, mode), key="sc_curve")
    else:
        st.info("Cost not estimated at any size (no price for this GPU), so there is no cost curve.")
    st.dataframe(df, hide_index=True)
    st.download_button("Download CSV", df.to_csv(index=False), file_name="scaling.csv", mime="text/csv",
                       key="sc_csv")
