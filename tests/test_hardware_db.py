"""hardware_db: accelerator specs, prices and assumptions load, validate and resolve names."""

import re

import pytest

import hardware_db as hw
from estimator.errors import EstimatorInputError

REQUIRED_IDS = {
    "v100", "a100-40gb", "a100-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h100-nvl", "h800", "h200",
    "b200", "gb200", "b300", "l40s", "l4", "rtx-4090", "mi250x", "mi300x", "mi325x", "mi355x", "tpu-v3",
    "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "tpu7x", "gaudi2", "gaudi3", "trainium1", "trainium2",
}


def test_at_least_26_accelerators_with_required_ids():
    accs = hw.accelerators()
    assert len(accs) >= 26
    assert REQUIRED_IDS <= set(accs)


def test_every_accelerator_cites_source_and_iso_retrieval_date():
    for acc in hw.accelerators().values():
        assert acc.source.strip(), acc.id
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", acc.retrieved), acc.id


def test_h100_sxm_bf16_is_dense_not_sparse():
    h100 = hw.get_accelerator("h100-sxm")
    assert h100.peak_tflops["bf16"] == pytest.approx(989.4)  # NVIDIA 1979 "with sparsity" / 2
    assert h100.peak_flops("bf16") == pytest.approx(989.4e12)
    assert h100.peak_flops("fp8") == pytest.approx(1978.9e12)
    assert h100.scaleup_bw_gb_per_s == 450  # NVLink4 900 bidir -> 450 uni
    assert h100.embodied_kgco2e == 164


def test_aliases_are_case_insensitive():
    assert hw.get_accelerator("H100").id == "h100-sxm"
    assert hw.get_accelerator("h100-SXM5").id == "h100-sxm"
    assert hw.get_accelerator("A100").id == "a100-80gb"  # documented choice: plain A100 = 80GB SXM
    assert hw.get_accelerator("a100-40GB").id == "a100-40gb"
    assert hw.get_accelerator("Ironwood").id == "tpu7x"


def test_unknown_gpu_raises_hardware_db_error_with_close_ids():
    """hardware_db raises its own error (no CLI flags in it); the estimator's seam adds the fix."""
    with pytest.raises(hw.UnknownNameError) as err:
        hw.get_accelerator("h10")
    assert err.value.name == "h10" and "h100-sxm" in err.value.suggestions
    assert "--" not in str(err.value)  # hardware_db does not name CLI flags
    from estimator.hardware import accelerator

    with pytest.raises(EstimatorInputError) as user:
        accelerator("h10")
    msg = str(user.value)
    assert "unknown GPU 'h10'" in msg and "h100-sxm" in msg and "estimate --list-gpus" in msg


def test_missing_precision_raises_naming_available_ones():
    with pytest.raises(hw.MissingFigureError, match="fp8.*bf16"):
        hw.get_accelerator("a100").peak_flops("fp8")
    from estimator.hardware import peak_flops

    with pytest.raises(EstimatorInputError, match="fp8.*bf16"):
        peak_flops(hw.get_accelerator("a100"), "fp8")
    with pytest.raises(EstimatorInputError, match="--precision fp16"):
        peak_flops(hw.get_accelerator("v100"), "bf16")  # Volta has no bf16; suggests fp16
    assert hw.get_accelerator("v100").peak_flops("fp16") == pytest.approx(125e12)


def test_hardware_db_does_not_import_the_estimator():
    """The dependency arrow runs estimator -> hardware_db only."""
    import subprocess
    import sys

    code = ("import sys, hardware_db; hardware_db.get_accelerator('h100'); "
            "bad = [m for m in sys.modules if m == 'estimator' or m.startswith('estimator.')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dense_half_precision_never_exceeds_fp8_and_values_positive():
    for acc in hw.accelerators().values():
        assert acc.memory_gb > 0 and acc.memory_bw_gb_per_s > 0 and acc.scaleup_domain >= 1
        assert all(v > 0 for v in acc.peak_tflops.values())
        if "fp8" in acc.peak_tflops:
            for half in ("bf16", "fp16"):
                assert acc.peak_tflops.get(half, 0) <= acc.peak_tflops["fp8"], acc.id


def test_tpu_v3_matches_patterson_peak_and_gib_conversion():
    v3 = hw.get_accelerator("tpu-v3")
    assert v3.peak_tflops == {"bf16": 123}
    assert v3.memory_gb == pytest.approx(32 * 2**30 / 1e9, abs=0.01)


def test_prices_have_dates_sources_and_one_default():
    for acc_id in hw.accelerators():
        rows = hw.prices(acc_id)
        if rows:
            assert sum(p.is_default for p in rows) == 1
            assert hw.default_price(acc_id) in rows
        for p in rows:
            assert p.date.strip() and p.source.strip() and p.usd_per_gpu_hour > 0
    assert hw.default_price("h100").usd_per_gpu_hour == pytest.approx(2.99)  # Lambda 8x H100 $23.92/8
    assert hw.default_price("tpu-v4") is None


def test_assumptions_have_sources_and_ranges():
    table = hw.assumptions()
    for a in table.values():
        assert a.source.strip() and a.unit.strip(), a.key
        if isinstance(a.value, float) and a.low is not None and a.high is not None:
            assert a.low <= a.value <= a.high, a.key
    assert hw.assumption("pue").value == 1.25
    assert hw.assumption("default_region").value == "USA"
    # Llama 3 Sec 3.3.4: 419 interruptions / (54 days x 24 h x 16,384 GPUs)
    assert hw.assumption("failure_rate_per_gpu_hour").value == pytest.approx(419 / (54 * 24 * 16384), rel=1e-4)
    assert "ASSUMPTION" in hw.assumption("restart_overhead_hours").source
    with pytest.raises(hw.UnknownNameError, match="pue"):
        hw.assumption("peu")


def test_validation_rejects_sparse_bf16_above_fp8():
    row = {c: "" for c in ("id", "name", "vendor", "source", "retrieved")}
    row.update(id="x", name="X", vendor="V", memory_gb="1", memory_bw_gb_per_s="1", scaleup_domain="1",
               source="s", retrieved="2026-01-01", peak_bf16_dense_tflops="1979", peak_fp8_dense_tflops="1978.9")
    with pytest.raises(ValueError, match="exceeds fp8"):
        hw._parse_accelerator(row)
