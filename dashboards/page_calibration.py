"""Calibration and benchmarks: a calibration file's measurements and fitted rates, and the benchmark report
(predicted against reported) from ``benchmarks/results``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards.common import INPUT_ERRORS, REPO, Form, error_text

CAL_DIR = REPO / "hardware_db" / "calibrations"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a fit with its hold-out scores is a few kB; refuse anything absurd
RESULTS_DIR = REPO / "benchmarks" / "results"
REPORT = REPO / "benchmarks" / "REPORT.md"


def calibration_files() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in CAL_DIR.glob("*.json")) if CAL_DIR.is_dir() else []


def kernel_chart(records: list[dict], cal) -> go.Figure | None:
    """Measured GEMM/attention throughput (FLOPs / median time) per kernel, and the fitted rate per precision."""
    rows = [r for r in records if r.get("kind") in ("gemm", "attention") and r.get("flops_analytic")
            and (r.get("time_s_median") or 0) > 0]
    if not rows:
        return None
    fig = go.Figure()
    for (kind, dtype), grp in pd.DataFrame(rows).groupby(["kind", "dtype"]):
        fig.add_trace(go.Scatter(x=grp["flops_analytic"], y=grp["flops_analytic"] / grp["time_s_median"],
                                 mode="markers", name=f"measured {kind} {dtype}"))
        rates = cal.kernel_model.get(dtype)
        if rates:
            rate = rates["gemm_flops_per_s" if kind == "gemm" else "attn_flops_per_s"]
            fig.add_hline(y=rate, line_dash="dash", annotation_text=f"fitted {kind} {dtype} rate {rate:.3g}")
    fig.update_layout(title="Achieved FLOP/s per kernel against work (fit: dashed)", xaxis_type="log",
                      yaxis_type="log", xaxis_title="FLOP per kernel", yaxis_title="FLOP/s", height=400)
    return fig


def power_chart(cal) -> go.Figure | None:
    if not cal.power:
        return None
    u = np.linspace(0, 1, 51)
    fig = go.Figure(go.Scatter(x=u, y=cal.power_w(u), name="fitted P(u)"))
    fig.update_layout(title="Fitted GPU power against compute utilisation", xaxis_title="utilisation u",
                      yaxis_title="W", height=360)
    return fig


def _load(p: Path):
    """``load_calibration`` of ``p``, or None after one ``st.error`` line (bad JSON, deep nesting, huge numbers)."""
    from estimator.calibration import load_calibration

    try:
        return load_calibration(p)
    except INPUT_ERRORS as err:
        st.error(error_text(err))
    return None


def _load_upload(upload):
    """An uploaded calibration file, read through ``load_calibration`` like a file on disk (None after st.error)."""
    data = upload.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        st.error(f"calibration upload {upload.name} is {len(data) / 1e6:.0f} MB; a calibration file is a few kB: "
                 "upload the JSON that 'profile-gpu fit' wrote")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / (Path(upload.name).name or "calibration.json")
        p.write_bytes(data)
        return _load(p)


def calibration_section(form: Form) -> None:
    st.subheader("Calibration")
    files = calibration_files()
    if not files:
        st.info(f"No calibration files in {CAL_DIR.relative_to(REPO)}/ yet. Measure a GPU with "
                "'profile-gpu sweep' then 'profile-gpu fit', or give a file's path below.")
    upload = st.file_uploader("Upload a calibration file (JSON from 'profile-gpu fit')", type=["json"],
                              key="cal_upload")
    path = form.text("path", "Calibration file", files[0] if files else "")
    if upload is not None:
        cal, p = _load_upload(upload), None
    elif path.strip():
        p = Path(path)
        p = p if p.is_absolute() else REPO / p
        cal = _load(p)
    else:
        return
    if cal is None:
        return
    st.caption(f"{cal.id}: {cal.device_name} ({cal.accelerator_id or cal.device_type})")
    st.dataframe(pd.DataFrame([{"precision": k, **v} for k, v in cal.kernel_model.items()]), hide_index=True)
    st.json({"holdout": cal.holdout, "memory": cal.memory, "power": cal.power}, expanded=False)
    meas = (cal.raw.get("measurements") or {}).get("file")
    mpath = p.parent / meas if (meas and p is not None) else None
    records = []
    if mpath is None or not mpath.is_file():
        st.info("The measurements file of this calibration is not next to it, so only the fit is shown.")
    else:
        from profiler.sweep import read_records

        try:
            records = [r for r in read_records(mpath) if r.get("status") == "ok"]
        except INPUT_ERRORS as err:
            st.error(error_text(err))
    try:
        fig = kernel_chart(records, cal)
        if fig is not None:
            st.plotly_chart(fig, key="cal_kernels")
        fig = power_chart(cal)
        if fig is not None:
            st.plotly_chart(fig, key="cal_power")
    except INPUT_ERRORS as err:  # a measurement row the chart cannot read
        st.error(error_text(err))


def benchmark_chart(df: pd.DataFrame, title: str) -> go.Figure:
    """Predicted against reported, one colour per metric, with the y = x line."""
    ok = df.dropna(subset=["predicted", "reported"])
    ok = ok[(ok["predicted"] > 0) & (ok["reported"] > 0)]
    fig = go.Figure()
    for metric, grp in ok.groupby("metric") if "metric" in ok else [("value", ok)]:
        fig.add_trace(go.Scatter(x=grp["reported"], y=grp["predicted"], mode="markers", name=str(metric),
                                 text=grp.get("id", None)))
    if len(ok):
        lo, hi = float(min(ok["reported"].min(), ok["predicted"].min())), float(max(ok["reported"].max(),
                                                                                  ok["predicted"].max()))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = reported",
                                 line={"dash": "dash", "color": "grey"}))
    fig.update_layout(title=title, xaxis_type="log", yaxis_type="log", xaxis_title="reported",
                      yaxis_title="predicted", height=420)
    return fig


def benchmark_section() -> None:
    st.subheader("Benchmarks: predicted against reported")
    if REPORT.is_file():
        with st.expander("benchmarks/REPORT.md", expanded=False):
            st.markdown(REPORT.read_text(encoding="utf-8"))
    csvs = sorted(RESULTS_DIR.glob("*.csv")) if RESULTS_DIR.is_dir() else []
    shown = 0
    for f in csvs:
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError) as err:
            st.error(f"{f.name}: not a readable CSV ({error_text(err)})")
            continue
        if {"predicted", "reported"} <= set(df.columns):
            st.plotly_chart(benchmark_chart(df, f.name), key=f"bench_{f.stem}")
            shown += 1
        st.caption(str(f.relative_to(REPO)))
        st.dataframe(df, hide_index=True)
    if not csvs and not REPORT.is_file():
        st.info("No benchmark results yet: benchmarks/REPORT.md and benchmarks/results/*.csv do not exist. "
                "They are written by the benchmark run (benchmarks/training_bench.py).")
    elif csvs and not shown:
        st.info("No results file has 'predicted' and 'reported' columns to plot.")


def render() -> None:
    st.header("Calibration and benchmarks")
    form = Form("cal")
    calibration_section(form)
    form.sync()
    benchmark_section()
