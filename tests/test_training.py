"""estimate_training end to end: finite numbers, ranges, assumptions, errors, overrides, calibration."""

import json
import math

import pytest

from estimator.errors import EstimatorInputError
from estimator.training import estimate_training

RANGED = ("gpu_hours", "energy_mwh", "co2e_tonnes", "cost_usd")


@pytest.fixture(scope="module")
def big():
    return estimate_training(params=1e12, tokens=13e12)


def _cal(tmp_path, acc="h100-sxm", gemm=4.0e14):
    data = {"schema": "llm-cost-calibration", "schema_version": 1, "id": f"{acc}-test",
            "hardware": {"accelerator_id": acc, "device_type": "cuda", "device_name": "test"},
            "kernel_model": {"bf16": {"gemm_flops_per_s": gemm, "gemm_overhead_s": 6e-6, "attn_flops_per_s": 3e14,
                                      "attn_overhead_s": 1.2e-5}},
            "memory": {"bytes_per_s": 2.9e12, "overhead_s": 4e-6},
            "power": {"idle_w": 72.0, "slope_w": 560.0, "max_w": 700.0, "n_points": 10},
            "collectives": {}, "holdout": {"n": 5, "time_worst_abs_rel_err": 0.12}}
    p = tmp_path / f"{acc}.json"
    p.write_text(json.dumps(data))
    return p


def test_headline_numbers_finite_positive(big):
    d = big.to_dict()
    for k in ("flops", "hardware_flops", "gpu_hours", "wall_clock_days", "memory_per_gpu_gb", "avg_power_mw",
              "energy_mwh", "co2e_tonnes", "embodied_co2e_tonnes", "cost_usd"):
        assert math.isfinite(d[k]) and d[k] > 0, k
    assert 0 < d["mfu"] <= 1
    assert d["hardware_flops"] >= d["flops"]
    assert d["memory_per_gpu_gb"] <= d["memory_capacity_gb"]
    for k in RANGED:
        lo, hi = d["ranges"][k]
        assert lo <= d[k] <= hi, k


def test_assumptions_named(big):
    a = big.to_dict()["assumptions"]
    for k in ("gpu", "gpus", "layout", "pue", "grid_intensity_g_per_kwh", "price_per_gpu_hour", "region"):
        assert k in a, k
    assert a["pue"]["source"] and a["price_per_gpu_hour"]["source"]
    cal = big.to_dict()["calibration"]  # the default H100 estimate runs on the shipped, Vidur-fitted calibration
    assert cal["id"].startswith("h100-sxm-vidur-") and cal["used_for"] == ["compute"]
    assert "shipped default" in a["kernel_rates"]["source"]


def test_gpt3_on_v100():
    d = estimate_training(load_preset_gpt3(), tokens=300e9, gpu="v100", gpus=10000).to_dict()
    assert d["gpu"] == "v100" and d["gpus"] == 10000
    assert d["flops"] == pytest.approx(3.14e23, rel=0.05)
    assert 0 < d["mfu"] <= 1 and d["gpu_hours"] > 0


def load_preset_gpt3():
    from estimator.presets import load_preset

    return load_preset("gpt3-175b")


def test_invalid_layout_tp_not_dividing_heads():
    with pytest.raises(EstimatorInputError, match="does not divide"):
        estimate_training(params=7e9, tokens=1e12, gpus=24, tp=3, pp=1, dp=8)


def test_layout_that_cannot_fit():
    with pytest.raises(EstimatorInputError, match="does not fit.*add GPUs"):
        estimate_training(params=1e12, tokens=13e12, gpus=8)


def test_mfu_override_changes_time():
    base = estimate_training(params=7e9, tokens=1e12, gpus=64)
    slow = estimate_training(params=7e9, tokens=1e12, gpus=64, mfu=0.1)
    assert slow.mfu == pytest.approx(0.1)
    assert slow.gpu_hours > base.gpu_hours
    assert slow.to_dict()["assumptions"]["mfu"]["source"].startswith("user input")


def test_calibration_used_and_changes_estimate(tmp_path):
    base = estimate_training(params=7e9, tokens=1e12, gpus=64)
    cal = estimate_training(params=7e9, tokens=1e12, gpus=64, calibration=str(_cal(tmp_path)))
    info = cal.to_dict()["calibration"]
    assert info["id"] == "h100-sxm-test" and "compute" in info["used_for"] and "power" in info["used_for"]
    assert cal.gpu_hours != base.gpu_hours
    assert cal.to_dict()["ranges"]["gpu_hours"][1] / cal.to_dict()["gpu_hours"] < 1.2  # 12% held-out error


def test_foreign_calibration_refused_unless_forced(tmp_path):
    p = _cal(tmp_path, acc="a100-80gb")
    with pytest.raises(EstimatorInputError, match="force-calibration"):
        estimate_training(params=7e9, tokens=1e12, gpus=64, calibration=str(p))
    est = estimate_training(params=7e9, tokens=1e12, gpus=64, calibration=str(p), force_calibration=True)
    assert est.to_dict()["calibration"]["accelerator_id"] == "a100-80gb"


def test_to_frame(big):
    df = big.to_frame()
    assert list(df.columns) == ["metric", "value", "low", "high", "unit"]
    row = df.set_index("metric").loc["gpu_hours"]
    assert row["low"] <= row["value"] <= row["high"]
