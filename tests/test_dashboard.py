"""The dashboard (dashboards/app.py) driven headless by streamlit's AppTest: every page with default and edge
inputs; the numbers shown must equal the estimator API's to_dict() values, formatted the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest

from dashboards.common import energy_split
from estimator.formatting import metric_text as fmt  # the one formatter the CLI and the benchmark report use
from estimator.presets import load_preset
from estimator.results import METRICS
from estimator.training import estimate_training

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "app.py")


def app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = str(v)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def L(key: str) -> str:  # noqa: N802 - the label a metric has on every page (estimator.results.METRICS)
    return METRICS[key].label


def test_dashboard_formats_with_the_estimator_formatter():
    from dashboards import common

    assert not hasattr(common, "LABELS") and not hasattr(common, "UNITS") and not hasattr(common, "sig")
    for key, v in (("cost_usd", 236919026.4), ("mfu", 0.332), ("gpu_hours", 79237132.0), ("flops", 8.26e25),
                   ("embodied_co2e_tonnes", None), ("cost_per_million_output_tokens_usd", None)):
        assert common.fmt(key, v) == fmt(key, v)
        assert common.label(key) == L(key)
    assert common.fmt("cost_usd", None) == "—"


def test_training_default_numbers_equal_the_api():
    at = app()
    d = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="h100-sxm").to_dict()
    shown = metrics(at)
    for key in ("gpu_hours", "wall_clock_days", "energy_mwh", "co2e_tonnes", "embodied_co2e_tonnes", "cost_usd",
                "mfu", "flops", "memory_per_gpu_gb"):
        assert shown[L(key)] == fmt(key, d[key]), key
    lo, hi = d["ranges"]["cost_usd"]
    assert f"range {fmt('cost_usd', lo)} – {fmt('cost_usd', hi)}" in [c.value for c in at.caption]
    # assumptions listed under the results, with their sources
    tables = [t.value for t in at.dataframe]
    assum = next(t for t in tables if "assumption" in t.columns)
    assert {"pue", "gpu_busy_power_w", "price_per_gpu_hour"} <= set(assum["assumption"])


def test_training_from_url_then_change_an_input():
    at = app(t_source="parameters", t_params="70e9", t_tokens="1.4e12", t_gpu="b200", t_gpus="512",
             t_precision="fp8", t_region="CA-QC", t_pue="1.1")
    d = estimate_training(params=70e9, tokens=1.4e12, gpu="b200", gpus=512, precision="fp8", region="CA-QC",
                          pue=1.1).to_dict()
    assert metrics(at)["GPU-hours"] == fmt("gpu_hours", d["gpu_hours"])
    assert metrics(at)["Operational CO2e"] == fmt("co2e_tonnes", d["co2e_tonnes"])
    at.text_input(key="t_tokens").set_value("2.8e12").run()
    d2 = estimate_training(params=70e9, tokens=2.8e12, gpu="b200", gpus=512, precision="fp8", region="CA-QC",
                           pue=1.1).to_dict()
    assert metrics(at)["GPU-hours"] == fmt("gpu_hours", d2["gpu_hours"])
    assert at.query_params["t_tokens"] in ("2.8e12", ["2.8e12"])  # the state is in the URL
    assert at.query_params["t_gpu"] in ("b200", ["b200"])


def test_training_software_and_network_inputs_reach_the_estimate():
    at = app(t_preset="llama2-70b", t_tokens="2e12", t_gpu="a100-80gb", t_gpus="512", t_framework="fsdp",
             t_era="before mid-2022 (no FlashAttention)", t_scaleout="6.25")
    d = estimate_training(load_preset("llama2-70b"), tokens=2e12, gpu="a100-80gb", gpus=512, framework="fsdp",
                          flash_attention=False, scaleout_gb_per_s=6.25).to_dict()
    assert metrics(at)["GPU-hours"] == fmt("gpu_hours", d["gpu_hours"])
    assert d["layout"]["pp"] == 1  # FSDP runs no pipeline


@pytest.mark.parametrize("params, needle", [
    ({"t_tokens": "abc"}, "--tokens must be a number"),
    ({"t_framework": "fsdp", "t_pp": "2"}, "no pipeline parallelism"),
    ({"t_scaleout": "-3"}, "scaleout-gb-per-s"),
    ({"t_pue": "0.5"}, "PUE"),
    ({"t_source": "parameters", "t_params": "1000"}, "below a million"),
    ({"t_mfu": "1.5"}, "--mfu must be <= 1"),
    ({"t_calibration": "/nonexistent/cal.json"}, "not found"),
])
def test_invalid_inputs_show_a_message_not_a_traceback(params, needle):
    at = app(**params)
    errors = [e.value for e in at.error]
    assert errors and needle in errors[0]
    assert not at.metric


def test_energy_split_adds_up_and_matches_host_power():
    d = estimate_training(params=7e9, tokens=2e12, gpus=64).to_dict()
    split = energy_split(d)
    assert sum(split.values()) == pytest.approx(d["energy_mwh"])
    host = d["assumptions"]["host_power_w_per_gpu"]["value"]
    hours = d["wall_clock_days"] * 24
    assert split["Hosts (CPU, memory, network)"] == pytest.approx(host * d["gpus"] * hours / 1e6, rel=1e-9)


def test_compare_two_and_four_scenarios():
    at = app(page="compare")
    table = at.dataframe[0].value
    a = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="h100-sxm", region="US-VA").to_dict()
    b = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="b200", region="US-VA").to_dict()
    row = table.set_index("metric").loc["Cost"]
    assert row["A"] == fmt("cost_usd", a["cost_usd"]) and row["B"] == fmt("cost_usd", b["cost_usd"])
    at = app(page="compare", cmp_n="4", c3_source="parameters", c3_params="400e9", c3_active_params="17e9",
             c3_tokens="15e12", c3_gpus="8192")
    table = at.dataframe[0].value.set_index("metric")
    assert list(table.columns) == ["A", "B", "C", "D"]
    moe = estimate_training(params=400e9, active_params=17e9, tokens=15e12, gpu="h100-sxm", gpus=8192,
                            region="US-VA", precision="fp8").to_dict()
    assert table.loc["GPU-hours", "D"] == fmt("gpu_hours", moe["gpu_hours"])


def test_sensitivity_bars_are_reruns_at_the_assumption_range():
    at = app(page="sensitivity")
    base = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="h100-sxm").to_dict()
    assert metrics(at)["Base Operational CO2e"] == fmt("co2e_tonnes", base["co2e_tonnes"])
    assert metrics(at)["Base Cost"] == fmt("cost_usd", base["cost_usd"])
    frame = at.dataframe[0].value.set_index("input")
    pue = base["assumptions"]["pue"]
    lo = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="h100-sxm", pue=pue["low"]).to_dict()
    assert frame.loc["PUE", "energy_mwh_low"] == pytest.approx(lo["energy_mwh"])
    assert {"Efficiency (MFU)", "GPU power (busy)", "Grid intensity", "Price per GPU-hour",
            "Failure rate (goodput)"} <= set(frame.index)
    # every bar is an estimate_training re-run at the low/high the base estimate's assumptions record
    for name, field, key in (("Grid intensity", "grid_intensity", "grid_intensity_g_per_kwh"),
                             ("GPU power (busy)", "gpu_power_w", "gpu_busy_power_w"),
                             ("Price per GPU-hour", "price_per_gpu_hour", "price_per_gpu_hour"),
                             ("Failure rate (goodput)", "failure_rate_per_gpu_hour", "failure_rate_per_gpu_hour")):
        a = base["assumptions"][key]
        for end in ("low", "high"):
            rerun = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="h100-sxm",
                                      **{field: a[end]}).to_dict()
            for m in ("gpu_hours", "energy_mwh", "co2e_tonnes", "cost_usd"):
                assert frame.loc[name, f"{m}_{end}"] == pytest.approx(rerun[m]), (name, end, m)
    # a bigger efficiency swing moves GPU-hours in opposite directions
    eff = frame.loc["Efficiency (MFU)"]
    assert eff["gpu_hours_low"] > base["gpu_hours"] > eff["gpu_hours_high"]


def test_scaling_page_uses_estimator_scaling():
    scaling = pytest.importorskip("estimator.scaling")
    at = app(page="scaling", sc_budget="1e25")
    n, d = scaling.get_law().allocate(1e25)
    shown = metrics(at)
    assert shown["Compute-optimal parameters"] == f"{n:.3g}"
    assert shown["Compute-optimal tokens"] == f"{d:.3g}"
    e = estimate_training(params=n, tokens=d, gpu="h100-sxm").to_dict()
    assert shown["Cost"] == fmt("cost_usd", e["cost_usd"])
    warned = " ".join(w.value for w in at.warning)
    assert ("10-20T" in warned) == (d > 10e12)
    at = app(page="scaling", sc_budget="-1")
    assert at.error and "positive" in at.error[0].value


def test_serving_page_numbers_equal_the_api():
    inference = pytest.importorskip("estimator.inference")

    at = app(page="serving")
    d = inference.estimate_inference(load_preset("llama3-8b"), gpu="h100-sxm", prompt_tokens=1000,
                                     output_tokens=500, queries_per_day=1e6).to_dict()
    shown = metrics(at)
    for key in ("ttft_ms", "tpot_ms", "tokens_per_second_per_gpu", "co2e_per_query_g",
                "cost_per_million_output_tokens_usd"):
        assert shown[L(key)] == fmt(key, d[key]), key
    at = app(page="serving", sv_output="0")
    assert at.error and not at.exception


def _calibration(tmp_path: Path) -> Path:
    cal = {"schema": "llm-cost-calibration", "schema_version": 1, "id": "test-cal",
           "hardware": {"accelerator_id": "h100-sxm", "device_type": "cuda", "device_name": "test"},
           "kernel_model": {"bf16": {"gemm_flops_per_s": 7e14, "gemm_overhead_s": 1e-5, "attn_flops_per_s": 4e14,
                                     "attn_overhead_s": 1e-5}},
           "power": {"idle_w": 80.0, "slope_w": 600.0, "max_w": 700.0}, "holdout": {"time_worst_abs_rel_err": 0.1}}
    p = tmp_path / "cal.json"
    p.write_text(json.dumps(cal))
    return p


def test_calibration_page_with_and_without_a_file(tmp_path):
    at = app(page="calibration")
    texts = " ".join(i.value for i in at.info)
    if not list((Path(APP).parent.parent / "hardware_db" / "calibrations").glob("*.json")):
        assert "No calibration files" in texts
    at = app(page="calibration", cal_path=str(_calibration(tmp_path)))
    km = at.dataframe[0].value
    assert km.loc[0, "gemm_flops_per_s"] == 7e14
    at = app(page="calibration", cal_path=str(tmp_path / "missing.json"))
    assert "not found" in at.error[0].value
    # the training page uses the same file: its rates drive the estimate and its error the range
    at = app(t_calibration=str(_calibration(tmp_path)))
    d = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu="h100-sxm",
                          calibration=str(tmp_path / "cal.json")).to_dict()
    assert metrics(at)["GPU-hours"] == fmt("gpu_hours", d["gpu_hours"])


# ------------------------------------------------------------------- not estimated: no price, no embodied figure

@pytest.mark.parametrize("gpu", ["a100-80gb", "tpu-v4"])
def test_training_without_price_or_embodied_figure_shows_not_estimated(gpu):
    d = estimate_training(load_preset("llama3-8b"), tokens=2e12, gpu=gpu).to_dict()
    assert d["embodied_co2e_tonnes"] is None  # neither has a published embodied figure
    at = app(t_gpu=gpu)
    shown = metrics(at)
    for key in ("embodied_co2e_tonnes", "cost_usd", "gpu_hours", "co2e_tonnes"):
        assert shown[L(key)] == fmt(key, d[key]), key
    assert shown[L("embodied_co2e_tonnes")] == "—"
    warned = " ".join(w.value for w in at.warning)
    assert "embodied CO2e not estimated" in warned
    assert (shown[L("cost_usd")] == "—") == (d["cost_usd"] is None)
    if d["cost_usd"] is None:
        assert "cost not estimated" in warned
    assert "not estimated (see the warning below)" in [c.value for c in at.caption]


@pytest.mark.parametrize("page, params", [
    ("compare", {"c0_gpu": "tpu-v4", "c1_gpu": "a100-80gb"}),
    ("sensitivity", {"t_gpu": "tpu-v4", "s_metric": "cost_usd"}),
    ("sensitivity", {"t_gpu": "a100-80gb"}),
    ("scaling", {"sc_gpu": "tpu-v4"}),
])
def test_other_training_pages_without_price_or_embodied_figure(page, params):
    at = app(page=page, **params)
    assert not errors(at)
    warned = " ".join(w.value for w in at.warning)
    assert "not estimated" in warned
    if page == "compare":
        table = at.dataframe[0].value.set_index("metric")
        assert table.loc[L("cost_usd"), "A"] == "—" and table.loc[L("embodied_co2e_tonnes"), "A"] == "—"
        assert table.loc[L("embodied_co2e_tonnes"), "B"] == "—" and table.loc[L("cost_usd"), "B"] != "—"
    elif page == "scaling":
        assert metrics(at)[L("cost_usd")] == "—"
    elif params.get("s_metric") == "cost_usd":
        assert metrics(at)["Base Cost"] == "—"
        assert any("not estimated" in i.value for i in at.info)


@pytest.mark.parametrize("gpu", ["a100-80gb", "tpu-v4"])
def test_serving_without_price_or_embodied_figure(gpu):
    inference = pytest.importorskip("estimator.inference")
    d = inference.estimate_inference(load_preset("llama3-8b"), gpu=gpu, prompt_tokens=1000, output_tokens=500,
                                     queries_per_day=1e6).to_dict()
    at = app(page="serving", sv_gpu=gpu)
    shown = metrics(at)
    key = "cost_per_million_output_tokens_usd"
    assert shown[L(key)] == fmt(key, d[key])
    assert shown["Embodied CO2e per year"] == "—"
    assert (shown["Cost per year"] == "—") == (d["fleet"]["annual_cost_usd"] is None)
    assert "embodied CO2e not estimated" in " ".join(w.value for w in at.warning)


# --------------------------------------------------------------------------- bad input: one st.error line, no traceback

def _hostile_calibrations(tmp: Path) -> dict[str, Path]:
    deep = tmp / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = tmp / "huge.json"
    huge.write_text('{"schema": "llm-cost-calibration", "schema_version": 1, "id": "x", "n": ' + "9" * 5000 + "}")
    return {"deep": deep, "huge": huge}


@pytest.mark.parametrize("params", [
    {"t_tp": "0"}, {"t_tp": "2.5"}, {"t_tp": "1e400"}, {"t_zero": "7"}, {"t_gpus": "1e18"}, {"t_gpus": "abc"},
    {"t_gpus": "inf"}, {"t_mfu": "nan"}, {"t_grid": "-1"}, {"t_layers": "abc"},
    {"t_source": "parameters", "t_params": ""}, {"t_source": "parameters", "t_params": "seven billion"},
    {"t_precision": "fp3"}, {"page": "nope"},
    {"page": "compare", "cmp_n": "inf"}, {"page": "compare", "cmp_n": "abc"}, {"page": "compare", "cmp_n": ""},
    {"page": "compare", "c1_gpus": "1e18"}, {"page": "compare", "c0_tokens": "lots"},
    {"page": "sensitivity", "t_tp": "0"}, {"page": "sensitivity", "t_gpus": "1e18"},
    {"page": "scaling", "sc_budget": "inf"}, {"page": "scaling", "sc_budget": ""},
    {"page": "scaling", "sc_budget": "x"},
    {"page": "serving", "sv_batch": "0"}, {"page": "serving", "sv_qpd": "inf"}, {"page": "serving", "sv_prompt": "abc"},
    {"page": "serving", "sv_output": "many"}, {"page": "serving", "sv_region": "Germany"},
    {"page": "serving", "sv_gpu": "no-such-gpu"},
])
def test_bad_url_parameters_show_one_error_line(params):
    at = app(**params)  # app() asserts no exception (traceback) on the page
    errs = errors(at)
    assert errs, params
    assert all("\n" not in e and "Traceback" not in e for e in errs), errs


@pytest.mark.parametrize("kind", ["deep", "huge"])
def test_hostile_calibration_file_shows_one_error_line(tmp_path, kind):
    path = _hostile_calibrations(tmp_path)[kind]
    for at in (app(page="calibration", cal_path=str(path)), app(t_calibration=str(path))):
        errs = errors(at)
        assert len(errs) == 1 and "\n" not in errs[0], errs
        assert not at.metric


@pytest.mark.parametrize("kind", ["deep", "huge", "good", "not-json"])
def test_calibration_upload(tmp_path, kind):
    files = _hostile_calibrations(tmp_path) | {"good": _calibration(tmp_path)}
    data = b"{not json" if kind == "not-json" else files[kind].read_bytes()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "calibration"
    at.run()
    at.file_uploader(key="cal_upload").set_value(("upload.json", data, "application/json")).run()
    assert not at.exception, [e.value for e in at.exception]
    if kind == "good":
        assert not errors(at)
        assert at.dataframe[0].value.loc[0, "gemm_flops_per_s"] == 7e14
    else:
        errs = errors(at)
        assert len(errs) == 1 and "\n" not in errs[0], errs


def test_bad_input_after_a_good_run_replaces_the_numbers():
    at = app()
    assert metrics(at)
    at.text_input(key="t_tp").set_value("0").run()
    assert not at.exception
    assert errors(at) and "--tp" in errors(at)[0]
    assert not at.metric  # no stale numbers beside the error


# --------------------------------------------------------------------------- serving region select

def test_serving_region_select_shows_labelled_names_and_the_region_in_effect():
    inference = pytest.importorskip("estimator.inference")
    from hardware_db.regions import list_regions

    de = next(r for r in list_regions() if r.region == "DEU")
    at = app(page="serving", sv_region="DEU")
    box = at.selectbox(key="sv_region")
    assert f"DEU — {de.name} ({de.g_per_kwh:.0f} g/kWh)" in box.options
    assert box.value == "DEU"
    d = inference.estimate_inference(load_preset("llama3-8b"), gpu="h100-sxm", prompt_tokens=1000,
                                     output_tokens=500, queries_per_day=1e6, region="DEU").to_dict()
    assert metrics(at)[L("co2e_per_query_g")] == fmt("co2e_per_query_g", d["co2e_per_query_g"])
    assert any(de.name in c.value and "Grid intensity used" in c.value for c in at.caption)
    # the default option names the region it stands for, so what is shown is what is used
    us = inference.estimate_inference(load_preset("llama3-8b"), gpu="h100-sxm", prompt_tokens=1000,
                                      output_tokens=500, queries_per_day=1e6).to_dict()
    box.set_value("(default)").run()
    assert "United States" in at.selectbox(key="sv_region").format_func("(default)")
    assert metrics(at)[L("co2e_per_query_g")] == fmt("co2e_per_query_g", us["co2e_per_query_g"])


def test_serving_region_text_that_matches_nothing_leaves_no_stale_region():
    inference = pytest.importorskip("estimator.inference")
    at = app(page="serving", sv_region="Germany")  # a name, not an id: matches no option
    assert errors(at) and "sv_region" in errors(at)[0]
    box = at.selectbox(key="sv_region")
    assert box.value == "(default)"
    us = inference.estimate_inference(load_preset("llama3-8b"), gpu="h100-sxm", prompt_tokens=1000,
                                      output_tokens=500, queries_per_day=1e6).to_dict()
    assert metrics(at)[L("co2e_per_query_g")] == fmt("co2e_per_query_g", us["co2e_per_query_g"])
    assert any("United States" in c.value and "Grid intensity used" in c.value for c in at.caption)
    assert "sv_region" not in at.query_params  # the link no longer claims Germany
    assert "Germany" not in box.options and "Germany" not in [box.format_func(o) for o in box.options]
