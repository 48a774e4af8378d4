"""scripts/measure_activations.py: the saved-tensor byte counter, and hardware_db/activation_profiles.csv."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "measure_activations.py"
PROFILES = ROOT / "hardware_db" / "activation_profiles.csv"


def _script():
    if "measure_activations" in sys.modules:
        return sys.modules["measure_activations"]
    spec = importlib.util.spec_from_file_location("measure_activations", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["measure_activations"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# --- the counter, on modules whose saved tensors are known exactly (torch only) ----------------------------------

def test_counter_linear_gelu_exact_bytes():
    torch = pytest.importorskip("torch")
    m = _script()
    torch.manual_seed(0)
    batch, n_in, n_out = 8, 16, 32
    net = torch.nn.Sequential(torch.nn.Linear(n_in, n_out), torch.nn.GELU())
    x = torch.randn(batch, n_in, requires_grad=True)
    counter = m.SavedTensorCounter(exclude=list(net.parameters()), track_modules=net)
    with counter:
        y = net(x)
    # addmm saves its input x (the weight is a parameter, excluded; the bias is not saved);
    # GELU saves its input, the Linear output. Both fp32.
    assert counter.total_bytes == 4 * batch * n_in + 4 * batch * n_out
    assert counter.excluded_hits >= 1  # the weight was saved and left out
    assert counter.attribute(y) == counter.total_bytes
    names = {n for r in counter.storages.values() for n in r.saved_by}
    assert any(n.startswith("AddmmBackward0.") for n in names)
    assert any(n.startswith("GeluBackward0.") for n in names)
    assert {r.module for r in counter.storages.values()} == {"0", "1"}


def test_counter_dedups_by_storage_and_counts_whole_storage_of_a_view():
    torch = pytest.importorskip("torch")
    m = _script()
    x = torch.randn(4, 10, requires_grad=True)
    with m.SavedTensorCounter() as counter:
        y = x * x  # saves x twice: one storage
    assert counter.total_bytes == x.numel() * 4
    assert next(iter(counter.storages.values())).times_saved == 2

    base = torch.randn(6, 8, dtype=torch.bfloat16)
    w = torch.randn(4, 8, dtype=torch.bfloat16, requires_grad=True)
    with m.SavedTensorCounter() as counter2:
        z = base[:2] @ w.T  # saves the (2, 8) view, which keeps all of base alive
    assert counter2.total_bytes == base.numel() * 2
    del y, z


def test_counter_separate_label_is_not_in_total():
    torch = pytest.importorskip("torch")
    m = _script()
    table = torch.randn(5, 3)
    x = torch.randn(5, 3, requires_grad=True)
    with m.SavedTensorCounter(separate={"table": [table]}) as counter:
        y = x * table  # saves table (x needs grad), not x (table does not)
    assert counter.total_bytes == 0
    assert counter.separate_bytes("table") == table.numel() * 4
    del y


# --- one tiny LlamaDecoderLayer (torch + transformers) -----------------------------------------------------------

@pytest.mark.parametrize("impl,kv", [("sdpa", 4), ("sdpa", 1), ("eager", 4), ("eager", 1)])
def test_tiny_llama_layer_matches_tensor_by_tensor_count(impl, kv):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    m = _script()
    d, heads, ffn, seq, batch = 256, 4, 688, 32, 2
    shape = m.Shape(d, ffn, heads, kv, seq, batch)
    counter, det = m.measure_layer(shape, impl)
    hd = d // heads
    # per token: 2 RMSNorms (fp32 input 4d + bf16 normed 2d + fp32 rsqrt 4), GEMM inputs of qkv, o, gate/up (2d
    # each), SiLU in, SiLU out, up out, down in (2 ffn each), post-RoPE q (2d); k and v at kv width for SDPA, at
    # full width after repeat_kv for eager; SDPA adds an fp32 logsumexp per head, eager 6 B per head per key.
    kv_width = kv * hd if impl == "sdpa" else d
    per_token = 2 * (6 * d + 4) + 3 * 2 * d + 8 * ffn + 2 * d + 2 * 2 * kv_width
    per_token += 4 * heads if impl == "sdpa" else 6 * heads * seq
    assert counter.total_bytes == per_token * seq * batch
    assert det["score_bytes"] == (0 if impl == "sdpa" else 6 * heads * seq * seq * batch)
    assert det["rope_bytes"] > 0  # cos/sin are saved, and counted apart


# --- the measured table (no torch) -------------------------------------------------------------------------------

def _rows():
    with PROFILES.open(newline="") as f:
        return list(csv.DictReader(f))


def test_activation_profiles_csv_loads_and_is_consistent():
    rows = _rows()
    assert rows, "hardware_db/activation_profiles.csv is empty"
    assert {r["implementation"] for r in rows} >= {"hf_llama_sdpa", "hf_llama_eager"}
    for r in rows:
        for col in ("d_model", "ffn_dim", "heads", "kv_heads", "seq", "batch"):
            assert int(r[col]) > 0, (col, r)
        meas = float(r["measured_bytes_per_token_layer"])
        est = float(r["estimator_bytes_per_token_layer"])
        est_nf = float(r["estimator_noflash_bytes_per_token_layer"])
        assert meas > 0 and est > 0 and est_nf >= est
        assert math.isclose(float(r["ratio"]), meas / est, rel_tol=1e-5)
        assert math.isclose(float(r["ratio_noflash"]), meas / est_nf, rel_tol=1e-5)
        lin, score = float(r["measured_linear_bytes_per_token_layer"]), float(r["measured_score_bytes_per_token_layer"])
        assert math.isclose(lin + score, meas, rel_tol=1e-5)
        d = int(r["d_model"])
        assert math.isclose(float(r["measured_coef_bytes_per_sbh"]), meas / d, rel_tol=1e-5)
        assert math.isclose(float(r["estimator_coef_bytes_per_sbh"]), est / d, rel_tol=1e-5)
        assert r["device"] == "cpu" and r["dtype"] == "bfloat16"
        assert r["transformers_version"] and r["torch_version"] and r["method"] and r["source"]
        if r["implementation"] == "hf_llama_sdpa":
            assert score == 0


def test_activation_profiles_estimator_column_is_the_estimator():
    """The estimator column is what estimator.memory.block_activation_bytes gives for the row's shape."""
    from estimator.memory import block_activation_bytes
    from estimator.model import ModelSpec

    for r in _rows():
        d, s, b = int(r["d_model"]), int(r["seq"]), int(r["batch"])
        spec = ModelSpec(layers=1, d_model=d, heads=int(r["heads"]), kv_heads=int(r["kv_heads"]),
                         ffn_dim=int(r["ffn_dim"]), vocab=32000, seq_len=s, gated_mlp=True, norm="rmsnorm")
        for col, flash in (("estimator_bytes_per_token_layer", True),
                           ("estimator_noflash_bytes_per_token_layer", False)):
            want = block_activation_bytes(spec, batch=b, seq=s, dtype_bytes=2.0, recompute="none", tp=1,
                                          flash=flash, dropout=False) / (s * b)
            assert math.isclose(float(r[col]), want, rel_tol=1e-5), (col, r)
