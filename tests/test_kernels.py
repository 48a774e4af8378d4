"""estimator.kernels: the kernel-time model's limits and invariants, and its fitter recovering known constants."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import hardware_db
from estimator.kernels import (
    CollectiveParams,
    GemmParams,
    MemoryParams,
    allreduce_time_s,
    default_params,
    gemm_bytes,
    gemm_time_s,
    memory_time_s,
    padded_m,
    send_recv_time_s,
    wave_utilisation,
)
from profiler.kernel_fit import CANDIDATES, GemmRows, fit_collective, fit_gemm, select_gemm_form

ROOF = GemmParams(flops_per_s=7e14, overhead_s=5e-6, bytes_per_s=3e12, blend_p=2.0, form="roofline_pnorm")


def test_linear_form_is_work_over_rate_plus_overhead():
    p = GemmParams(flops_per_s=1e14, overhead_s=1e-5)
    assert gemm_time_s(128, 256, 512, p) == pytest.approx(2 * 128 * 256 * 512 / 1e14 + 1e-5)


def test_roofline_limits_small_m_reads_weights_large_m_is_flop_bound():
    n = k = 8192
    t1 = gemm_time_s(1, n, k, ROOF)
    assert t1 == pytest.approx(gemm_bytes(1, n, k) / 3e12 + 5e-6, rel=1e-3)  # weight read dominates at 1 token
    big = 1 << 16
    assert gemm_time_s(big, n, k, ROOF) == pytest.approx(2 * big * n * k / 7e14, rel=0.02)
    m = np.arange(1, 4097)
    t = gemm_time_s(m, n, k, ROOF)
    assert np.all(np.diff(t) >= 0)  # more tokens never take less time
    lo = np.maximum(2 * m * n * k / 7e14, gemm_bytes(m, n, k) / 3e12) + 5e-6
    assert np.all(t >= lo - 1e-15) and np.all(t <= math.sqrt(2) * (lo - 5e-6) + 5e-6 + 1e-15)


def test_blend_limits_and_broadcasting():
    mx = GemmParams(flops_per_s=7e14, overhead_s=0.0, bytes_per_s=3e12, blend_p=math.inf, form="roofline_max")
    m = np.array([1, 64, 4096])
    expect = np.maximum(2 * m * 4096 * 4096 / 7e14, gemm_bytes(m, 4096, 4096) / 3e12)
    np.testing.assert_allclose(gemm_time_s(m, 4096, 4096, mx), expect)
    assert gemm_time_s(m[:, None], np.array([1024, 2048]), 4096, ROOF).shape == (3, 2)


def test_waves_and_tiles():
    assert padded_m(1, 128) == 16 and padded_m(100, 128) == 128 and padded_m(129, 128) == 256
    assert padded_m(129, 0) == 129
    assert wave_utilisation(128 * 4, 128 * 33, 128, 128, 132) == pytest.approx(1.0)  # 132 tiles = one full wave
    assert wave_utilisation(128, 128 * 133, 128, 128, 132) == pytest.approx(133 / 264)
    w = GemmParams(**{**ROOF.to_dict(), "form": "roofline_pnorm_waves", "tile_m": 128, "tile_n": 128,
                      "wave_slots": 132, "wave_exponent": 1.0, "bytes_per_s": 1e14})
    assert gemm_time_s(128, 128 * 133, 8192, w) > gemm_time_s(128, 128 * 132, 8192, w) * 1.8  # a second wave


def test_memory_and_collectives():
    mp = MemoryParams(bytes_per_s=2e12, overhead_s=3e-6)
    assert memory_time_s(4e9, mp) == pytest.approx(2e-3 + 3e-6)
    cp = CollectiveParams(bus_bytes_per_s=4e11, latency_s=2e-5)
    assert allreduce_time_s(1e9, 8, cp) == pytest.approx(2 * 7 / 8 * 1e9 / 4e11 + 2e-5)
    assert allreduce_time_s(1e9, 1, cp) == 0.0
    assert send_recv_time_s(1e9, cp) == pytest.approx(1e9 / 4e11 + 2e-5)
    sharp = CollectiveParams(bus_bytes_per_s=4e11, latency_s=2e-5, blend_p=math.inf)
    assert allreduce_time_s(8, 8, sharp) == pytest.approx(2e-5)  # tiny buffer: latency-bound


def test_default_params_are_the_documented_defaults():
    acc = hardware_db.get_accelerator("h100-sxm")
    eff = {k: float(hardware_db.assumption(k).value) for k in ("gemm_efficiency", "memory_bw_efficiency",
                                                             "kernel_overhead_s")}
    d = default_params(acc.peak_flops("fp16"), acc.memory_bw_gb_per_s * 1e9, eff["gemm_efficiency"],
                       eff["memory_bw_efficiency"], eff["kernel_overhead_s"])
    assert d.gemm.form == "linear" and math.isinf(d.gemm.bytes_per_s)
    assert d.gemm.flops_per_s == pytest.approx(eff["gemm_efficiency"] * acc.peak_flops("fp16"))
    assert GemmParams.from_dict(d.gemm.to_dict()) == d.gemm


def _synthetic(p: GemmParams) -> GemmRows:
    rng = np.random.default_rng(0)
    ms, groups = [], []
    for g, (n, k) in enumerate(((4096, 4096), (12288, 4096), (4096, 11008), (22016, 4096))):
        m = np.unique(rng.integers(1, 4096, 60))
        ms += [(x, n, k) for x in m]
        groups += [f"model{g % 2}"] * len(m)
    m, n, k = (np.array(c, dtype=float) for c in zip(*ms, strict=True))
    t = gemm_time_s(m, n, k, p)
    return GemmRows(m, n, k, 2 * m * n * k, gemm_bytes(m, n, k), t, np.array(groups))


def test_fit_recovers_known_constants_and_selection_prefers_the_true_form():
    rows = _synthetic(ROOF)
    got = fit_gemm(rows, next(c for c in CANDIDATES if c.form == "roofline_pnorm"), 0)
    assert got.flops_per_s == pytest.approx(7e14, rel=0.02) and got.bytes_per_s == pytest.approx(3e12, rel=0.02)
    assert got.blend_p == pytest.approx(2.0, rel=0.05) and got.overhead_s == pytest.approx(5e-6, rel=0.1)
    cand, scores = select_gemm_form(rows, 0)
    assert cand.form in ("roofline_pnorm",) and {s["form"] for s in scores} == {"linear", "roofline_max",
                                                                                 "roofline_pnorm"}
    lin = next(s for s in scores if s["form"] == "linear")
    true_form = next(s for s in scores if s["form"] == "roofline_pnorm")
    assert true_form["time_median_abs_rel_err"] < 0.01 and lin["time_median_abs_rel_err"] > 0.02


def test_collective_fit_recovers_bandwidth_and_latency():
    b = np.logspace(3, 9, 40)
    truth = CollectiveParams(bus_bytes_per_s=3e11, latency_s=3e-5, blend_p=1.0)
    t = allreduce_time_s(b, 8, truth)
    got = fit_collective("all_reduce", b, np.full(b.size, 8.0), t)
    np.testing.assert_allclose(allreduce_time_s(b, 8, got), t, rtol=0.02)
    assert got.bus_bytes_per_s == pytest.approx(3e11, rel=0.05)


def test_kernels_import_without_torch_or_pint():
    code = ("import sys; sys.modules.update({m: None for m in ('torch', 'pynvml', 'pint')});"
            "import estimator.kernels as k; print(k.gemm_time_s(1, 2, 3, k.GemmParams(1e12, 0.0)))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_scaling_to_another_device_by_hardware_ratios():
    from estimator.kernels import KernelParams, scale_params

    base = KernelParams(gemm=ROOF, memory=MemoryParams(2e12, 3e-6), memory_by_kind={"norm": MemoryParams(1e12, 2e-6)},
                        source="h100-sxm-vidur")
    s = scale_params(base, 2.0, 1.5)
    assert s.gemm.flops_per_s == 1.4e15 and s.gemm.bytes_per_s == 4.5e12 and s.gemm.overhead_s == ROOF.overhead_s
    assert s.memory.bytes_per_s == 3e12 and s.memory_by_kind["norm"].bytes_per_s == 1.5e12
    assert s.source == "scaled from h100-sxm-vidur"
    # a FLOP-bound GEMM gets 2x faster, a weight-read one 1.5x
    assert gemm_time_s(1 << 16, 8192, 8192, s.gemm) == pytest.approx(gemm_time_s(1 << 16, 8192, 8192, ROOF) / 2,
                                                                      rel=0.03)
    with pytest.raises(ValueError):
        scale_params(base, 0.0, 1.0)
