"""The profiler reads device names, SM counts and peaks through hardware_db (hardware_db/devices.py)."""

from __future__ import annotations

import inspect

import hardware_db
from hardware_db import devices
from profiler import fit


def test_nvml_names_map_to_accelerator_ids():
    assert devices.accelerator_for_device("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert devices.accelerator_for_device("NVIDIA A100-SXM4-80GB") == "a100-80gb"
    assert devices.accelerator_for_device("Tesla V100-SXM2-32GB") == "v100"
    assert devices.accelerator_for_device("NVIDIA H100 80GB HBM3", "cpu") is None
    assert devices.accelerator_for_device("Some Future GPU") is None


def test_every_device_name_row_is_a_known_accelerator_with_a_source():
    known = hardware_db.accelerators()
    rows = devices.device_names()
    assert len(rows) >= 10
    for r in rows.values():
        assert r.accelerator_id in known and r.source
    assert devices.sm_count("h100-sxm") == 132 and devices.sm_count("a100-80gb") == 108
    assert devices.sm_count("b200") is None  # no primary source read: missing stays missing


def test_peaks_come_from_hardware_db():
    acc = hardware_db.get_accelerator("h100-sxm")
    assert devices.peak_flops_per_s("h100-sxm", "fp16") == acc.peak_flops("fp16")
    assert devices.hbm_bytes_per_s("h100-sxm") == acc.memory_bw_gb_per_s * 1e9
    assert devices.peak_flops_per_s(None, "fp16") is None and devices.peak_flops_per_s("nope", "fp16") is None
    assert fit.peak_flops_per_s("a100-80gb", "bf16") == hardware_db.get_accelerator("a100-80gb").peak_flops("bf16")


def test_profiler_does_not_parse_accelerators_csv_itself():
    src = inspect.getsource(fit)
    assert "accelerators.csv\")" not in src and "NVML_NAMES" not in src and "csv.DictReader" not in src


def test_default_calibrations_are_shipped_for_h100_and_a100():
    from estimator.calibration import load_calibration

    for acc in ("h100-sxm", "a100-80gb"):
        p = devices.default_calibration(acc)
        assert p is not None and load_calibration(str(p), accelerator_id=acc).accelerator_id == acc
    assert devices.default_calibration("l4") is None and devices.default_calibration(None) is None
