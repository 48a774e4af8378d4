"""Calibration schema v2: the shipped Vidur-fitted files load and say where their data came from; v1 files still
load; every number is checked (finite, physical range)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from estimator.calibration import SCHEMA_VERSION, load_calibration, validate_calibration
from estimator.errors import EstimatorInputError
from estimator.kernels import gemm_time_s

CAL_DIR = Path(__file__).parents[1] / "hardware_db" / "calibrations"
SHIPPED = {"h100-sxm": CAL_DIR / "h100-sxm.json", "a100-80gb": CAL_DIR / "a100-80gb.json"}
V1 = {"schema": "llm-cost-calibration", "schema_version": 1, "id": "old",
      "hardware": {"accelerator_id": None, "device_type": "cpu", "device_name": "cpu"},
      "kernel_model": {"fp32": {"gemm_flops_per_s": 1e11, "gemm_overhead_s": 1e-5, "attn_flops_per_s": 5e10,
                                "attn_overhead_s": 2e-5}},
      "memory": {"bytes_per_s": 1e10, "overhead_s": 1e-6}, "power": None, "collectives": {},
      "holdout": {"n": 3, "time_median_abs_rel_err": 0.1, "time_worst_abs_rel_err": 0.3}}


@pytest.mark.parametrize("acc", sorted(SHIPPED))
def test_shipped_calibrations_load_and_name_their_data(acc):
    cal = load_calibration(SHIPPED[acc], accelerator_id=acc)
    assert cal.schema_version == SCHEMA_VERSION == 2 and cal.accelerator_id == acc
    src = cal.data_source
    assert src["dataset"] == "vidur" and src["commit"] == "7d47513363ec447a741ac5e47241580b47724fbf"
    assert "Agrawal" in src["citation"] and "not by this project" in src["measured_by"]
    assert all(f.startswith(("compute/", "network/")) for f in src["files"])
    h = cal.holdout
    for k in ("n", "time_median_abs_rel_err", "time_p90_abs_rel_err", "time_worst_abs_rel_err", "by_kind",
              "baseline_default", "scheme"):
        assert k in h
    assert "leave-one-model-out" in h["scheme"]
    assert h["time_median_abs_rel_err"] < h["baseline_default"]["time_median_abs_rel_err"]  # better than default
    assert h["by_kind"]["gemm"]["time_median_abs_rel_err"] < h["baseline_default"]["by_kind"]["gemm"][
        "time_median_abs_rel_err"]
    kp = cal.kernel_params("fp16")
    assert kp.gemm.form.startswith("roofline") and kp.source == cal.id
    assert set(kp.memory_by_kind) >= {"norm", "add", "activation", "rope"}
    ar = cal.collective_params("all_reduce", 8)
    assert 1e10 < ar.bus_bytes_per_s < 2e12
    assert cal.holdout_warning is None  # held-out median under 25%
    assert (CAL_DIR / "LICENSE-vidur").is_file() and "MIT" in (CAL_DIR / "LICENSE-vidur").read_text()


def test_shipped_h100_gemm_is_a_weight_read_at_one_token_and_flop_bound_at_4096():
    kp = load_calibration(SHIPPED["h100-sxm"]).kernel_params("fp16")
    t1 = float(gemm_time_s(1, 22016, 4096, kp.gemm))  # Llama-2-7B gate+up at 1 token: 180 MB of weights
    assert 2 * 22016 * 4096 / t1 > 1.5e12  # bytes/s of the weight read, well above 1 TB/s
    t4k = float(gemm_time_s(4096, 22016, 4096, kp.gemm))
    assert 4e14 < 2 * 4096 * 22016 * 4096 / t4k < 989.4e12  # FLOP/s under the dense fp16 peak


def test_v1_still_loads_as_the_linear_form(tmp_path):
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(V1))
    cal = load_calibration(p)
    assert cal.schema_version == 1
    kp = cal.kernel_params("fp32")
    assert kp.gemm.form == "linear" and float(gemm_time_s(10, 10, 10, kp.gemm)) == pytest.approx(2000 / 1e11 + 1e-5)


@pytest.mark.parametrize("where,value", [
    (("kernel_model", "fp32", "gemm_flops_per_s"), float("nan")),
    (("kernel_model", "fp32", "gemm_flops_per_s"), float("inf")),
    (("kernel_model", "fp32", "gemm_flops_per_s"), 1e30),
    (("kernel_model", "fp32", "gemm_overhead_s"), -1e-6),
    (("memory", "bytes_per_s"), 0.0),
    (("holdout", "time_median_abs_rel_err"), -0.1),
    (("kernel_model", "fp32", "gemm_flops_per_s"), "fast"),
])
def test_every_number_is_checked(where, value):
    d = copy.deepcopy(V1)
    node = d
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    with pytest.raises(EstimatorInputError) as e:
        validate_calibration(d, "x.json")
    assert "\n" not in str(e.value) and where[-1] in str(e.value)


def test_v2_gemm_block_is_validated():
    d = json.loads(SHIPPED["h100-sxm"].read_text())
    for key, bad in (("blend_p", 0.5), ("form", "magic"), ("wave_exponent", math.nan), ("bytes_per_s", None)):
        e = copy.deepcopy(d)
        e["kernel_model"]["fp16"]["gemm"][key] = bad
        with pytest.raises(EstimatorInputError):
            validate_calibration(e, "x.json")
    e = copy.deepcopy(d)
    e["collectives"]["all_reduce"]["by_world_size"]["8"]["latency_s"] = -1
    with pytest.raises(EstimatorInputError):
        validate_calibration(e, "x.json")


def test_unsupported_version_gets_one_clear_line():
    d = copy.deepcopy(V1) | {"schema_version": 3}
    with pytest.raises(EstimatorInputError) as e:
        validate_calibration(d, "x.json")
    assert "schema_version 3 is not supported" in str(e.value) and "1, 2" in str(e.value)


def test_high_holdout_error_warns():
    d = copy.deepcopy(V1)
    d["holdout"]["time_median_abs_rel_err"] = 0.4
    w = validate_calibration(d).holdout_warning
    assert w and "40%" in w and "25%" in w
