"""sweep_training: vectorised, same numbers as estimate_training for a fixed layout, and fast."""


import numpy as np
import pandas as pd
import pytest

from estimator.model import param_count, shape_from_params, shape_from_params_array
from estimator.sweep import sweep_training
from estimator.training import estimate_training

METRICS = ("flops", "gpu_hours", "wall_clock_days", "energy_mwh", "co2e_tonnes", "cost_usd", "mfu",
           "memory_per_gpu_gb")


@pytest.mark.parametrize("n", [1.3e6, 1e8, 7e9, 70e9, 405e9, 1e12, 3.3e12])
def test_shape_from_params_array_matches_scalar(n):
    s = shape_from_params(n)
    a = shape_from_params_array(np.array([n, n]))
    for f in ("layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "seq_len"):
        assert np.all(np.asarray(getattr(a, f)) == getattr(s, f)), f
    assert np.all(param_count(a).total == param_count(s).total)


def test_shape_from_params_array_many_values():
    ns = np.geomspace(2e6, 4e12, 120)
    a = shape_from_params_array(ns)
    for i, n in enumerate(ns[::7]):
        s = shape_from_params(float(n))
        assert (a.layers[i * 7], a.d_model[i * 7]) == (s.layers, s.d_model)


@pytest.mark.parametrize("params,tokens,gpus,tp,pp,zero,rec", [
    (7e9, 2e12, 64, 8, 1, 1, "none"),
    (70e9, 15e12, 1024, 8, 4, 1, "selective"),
    (1e12, 13e12, 16384, 8, 16, 3, "full"),
    (3e9, 1e12, 16, 2, 2, 2, "none"),
])
def test_sweep_equals_estimate_training(params, tokens, gpus, tp, pp, zero, rec):
    e = estimate_training(params=params, tokens=tokens, gpus=gpus, tp=tp, pp=pp, dp=gpus // (tp * pp), ep=1,
                          zero=zero, micro_batch=1, recompute=rec).to_dict()
    row = sweep_training(params, tokens, gpus, tp=tp, pp=pp, zero=zero, recompute=rec,
                         interleave=e["layout"]["interleave"]).iloc[0]
    assert bool(row["fits"])
    for k in METRICS:
        assert row[k] == pytest.approx(e[k], rel=1e-6), k


def test_sweep_broadcasts_and_flags_invalid_layouts():
    df = sweep_training([7e9, 13e9], 2e12, [[64], [60]], tp=8)  # (70e9 no longer fits: megatron fp32 gradients)
    assert len(df) == 4
    assert list(df["fits"]) == [True, True, False, False]  # 60 GPUs are not a multiple of TP 8
    df = sweep_training(1e12, 13e12, 8, tp=8)
    assert not df["fits"].iloc[0]  # 1T parameters do not fit on 8 GPUs
    assert np.all(np.isfinite(df[list(METRICS)].to_numpy(dtype=float)))


def test_sweep_in_chunks_equals_one_pass(monkeypatch):
    """Configurations are evaluated in chunks (bounded memory, issue 11); rows straddling chunk boundaries get
    exactly what one pass gives. (Its speed is measured by benchmarks/speed.py, not asserted here.)"""
    import estimator.sweep as sw

    rng = np.random.default_rng(0)
    n = 2_500
    p, t = rng.choice(np.geomspace(1e9, 1e12, 40), n), rng.uniform(1e12, 2e13, n)
    g, pp = rng.choice([512, 1024, 4096], n), rng.choice([1, 2, 4], n)
    whole = sweep_training(p, t, g, tp=8, pp=pp)
    monkeypatch.setattr(sw, "CHUNK", 333)
    chunked = sweep_training(p, t, g, tp=8, pp=pp)
    assert len(chunked) == n
    pd.testing.assert_frame_equal(whole, chunked)
