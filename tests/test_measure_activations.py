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


# --- the non-GEMM byte counter (TorchDispatchMode), on ops whose traffic is known exactly (torch only) -----------

def test_op_kind_classifies_gemm_view_and_elementwise():
    m = _script()
    for name in ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "convolution",
                 "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention_for_cpu_backward",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention_backward"):
        assert m.op_kind(name) == "gemm", name
    for name in ("view", "_unsafe_view", "expand", "transpose", "t", "permute", "unsqueeze", "slice", "select",
                 "as_strided", "detach", "alias", "split_with_sizes", "empty_strided"):
        assert m.op_kind(name) == "view", name
    for name in ("mul", "add", "_to_copy", "clone", "copy_", "silu", "silu_backward", "mean", "sum", "cat",
                 "slice_backward", "threshold_backward"):
        assert m.op_kind(name) == "elementwise", name
    assert m.op_kind("some_view_op", is_view=True) == "view"


def test_elementwise_counter_relu_plus_x_exact_bytes_and_ops():
    torch = pytest.importorskip("torch")
    m = _script()
    x = torch.randn(4, 8, requires_grad=True)  # fp32: 128 bytes
    g = torch.randn(4, 8)
    counter = m.make_elementwise_counter()
    with counter:
        y = torch.relu(x) + x
        counter.phase = "bwd"
        y.backward(g)
    fwd, bwd = counter.tally("fwd"), counter.tally("bwd")
    # relu reads x, writes r; add reads r and x, writes y: 2 kernels, 3 x 128 read, 2 x 128 written
    assert (fwd.read, fwd.written, fwd.ops, fwd.gemm_ops) == (384, 256, 2, 0)
    assert dict(fwd.by_op) == {"relu": [1, 128, 128], "add.Tensor": [1, 256, 128]}
    assert fwd.bytes == 640 and fwd.bytes_dense == 640
    # backward: threshold_backward(g, r) and the engine's sum of the two gradients of x
    assert {k: v[0] for k, v in bwd.by_op.items()} == {"threshold_backward": 1, "add.Tensor": 1}
    assert (bwd.read, bwd.written, bwd.ops) == (512, 256, 2)
    # x.grad is stolen, not copied: the AccumulateGrad node runs no counted kernel
    assert counter.tally("accumulate_grad").bytes == 0
    assert torch.equal(x.grad, g * (x.detach() > 0) + g)


def test_elementwise_counter_skips_gemm_and_views_counts_broadcast_once_and_out_args_as_written():
    torch = pytest.importorskip("torch")
    m = _script()
    x, w, c = torch.randn(4, 8), torch.randn(8, 8), torch.randn(1, 8)
    buf, dst = torch.empty(4, 8), torch.empty(4, 8)
    counter = m.make_elementwise_counter()
    with counter:
        a = x @ w  # mm: a GEMM, not counted
        a.view(-1)  # a view: no kernel
        a + c.expand(4, 8)  # reads a (128) + the 8 distinct floats of c (32; 128 as given), writes 128
        dst.copy_(a)  # reads a only, writes dst
        torch.add(a, a, out=buf)  # out= is written, not read
        a.mul_(2.0)  # in place: reads and writes a
    t = counter.tally("fwd")
    assert t.gemm_ops == 1 and t.view_ops >= 2
    assert t.ops == 4
    assert dict(t.by_op) == {"add.Tensor": [1, 160, 128], "copy_": [1, 128, 128], "add.out": [1, 256, 128],
                             "mul_.Tensor": [1, 128, 128]}
    assert t.read == 672 and t.read_dense == 768 and t.written == 512


@pytest.mark.parametrize("kv", [4, 1])
def test_tiny_llama_layer_elementwise_bytes_match_op_by_op_count(kv):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    m = _script()
    d, heads, ffn, seq, batch = 256, 4, 688, 32, 2
    shape = m.Shape(d, ffn, heads, kv, seq, batch)
    counter, _ = m.measure_elementwise(shape, "sdpa")
    fwd, bwd = counter.tally("fwd"), counter.tally("bwd")
    hd, tokens = d // heads, seq * batch
    qk = (heads + kv) * hd
    table = seq * hd * 2  # one bf16 RoPE cos or sin table, (1, 1, seq, hd), read by 2 muls of each of q and k
    # forward per token: each RMSNorm 36 d + 24 (fp32 upcast 6d, pow 8d, mean 4d + 4, +eps 8, rsqrt 8,
    # mul by rsqrt 8d + 4, downcast 6d, mul by weight 4d); RoPE 20 bytes per q/k element (mul, neg, cat, mul,
    # add); 2 residual adds 6d each; SiLU 4 ffn + gate*up 6 ffn. Plus the weight (2d) of each norm once and
    # each table once per RoPE mul.
    want_fwd = tokens * (84 * d + 48 + 20 * qk + 10 * ffn) + 2 * 2 * d + 4 * table
    assert fwd.bytes == want_fwd
    assert (fwd.ops, fwd.gemm_ops) == (30, 8)  # 7 projections + SDPA
    assert bwd.gemm_ops == 15  # 14 mm (input and weight gradients) + SDPA backward
    assert bwd.bytes > 2 * fwd.bytes
    if kv == heads:
        # backward per token: each RMSNorm 98 d + 40, MLP 18 ffn + 6 d, RoPE 28 per q/k element, the 2 adds
        # summing the q/k/v input gradients 12 d, the q and k gradient transposes copied (clone) 4 per element.
        want_bwd = tokens * (214 * d + 80 + 18 * ffn + 32 * qk) + 2 * (2 + 2) * d + 4 * table
        assert bwd.bytes == want_bwd
        assert bwd.ops == 56
    assert counter.tally("accumulate_grad").bytes == 0


# --- the measured elementwise table (no torch) -------------------------------------------------------------------

ELEMENTWISE = ROOT / "hardware_db" / "elementwise_profiles.csv"


def _ew_rows():
    with ELEMENTWISE.open(newline="") as f:
        return list(csv.DictReader(f))


def test_elementwise_profiles_csv_loads_and_is_consistent():
    rows = _ew_rows()
    assert rows, "hardware_db/elementwise_profiles.csv is empty"
    assert {r["implementation"] for r in rows} >= {"hf_llama_sdpa"}
    assert len({int(r["d_model"]) for r in rows}) >= 3 and len({int(r["seq"]) for r in rows}) >= 2
    for r in rows:
        for col in ("d_model", "ffn_dim", "heads", "kv_heads", "seq", "batch", "measured_fwd_ops",
                    "measured_bwd_ops", "estimator_fwd_ops", "estimator_bwd_ops"):
            assert int(r[col]) > 0, (col, r)
        mf, mb = float(r["measured_fwd_bytes_per_token"]), float(r["measured_bwd_bytes_per_token"])
        ef, eb = float(r["estimator_fwd_bytes_per_token"]), float(r["estimator_bwd_bytes_per_token"])
        assert mf > 0 and mb > 0 and ef > 0 and eb > 0
        assert math.isclose(eb, 2 * ef, rel_tol=1e-6)
        assert math.isclose(float(r["ratio_fwd"]), mf / ef, rel_tol=1e-5)
        assert math.isclose(float(r["ratio_bwd"]), mb / eb, rel_tol=1e-5)
        assert math.isclose(float(r["ratio_total"]), (mf + mb) / (ef + eb), rel_tol=1e-5)
        ops = int(r["measured_fwd_ops"]) + int(r["measured_bwd_ops"])
        assert math.isclose(float(r["ratio_ops_total"]),
                            ops / (int(r["estimator_fwd_ops"]) + int(r["estimator_bwd_ops"])), rel_tol=1e-5)
        for ph in ("fwd", "bwd"):
            parts = float(r[f"measured_{ph}_read_bytes_per_token"]) + float(r[f"measured_{ph}_write_bytes_per_token"])
            assert math.isclose(parts, float(r[f"measured_{ph}_bytes_per_token"]), rel_tol=1e-5)
            assert float(r[f"measured_{ph}_dense_bytes_per_token"]) >= float(r[f"measured_{ph}_bytes_per_token"])
        assert r["device"] == "cpu" and r["dtype"] == "bfloat16"
        assert r["transformers_version"] and r["torch_version"] and r["method"] and r["source"] and r["retrieved"]


def test_elementwise_profiles_estimator_columns_are_the_estimator():
    from estimator.model import ModelSpec
    from estimator.timing import N_ELEMENTWISE_PER_BLOCK, elementwise_bytes_per_token

    for r in _ew_rows():
        spec = ModelSpec(layers=1, d_model=int(r["d_model"]), heads=int(r["heads"]), kv_heads=int(r["kv_heads"]),
                         ffn_dim=int(r["ffn_dim"]), vocab=32000, seq_len=int(r["seq"]), gated_mlp=True,
                         norm="rmsnorm", position="rope")
        want = elementwise_bytes_per_token(spec, moe_layer=False, dtype_bytes=2)
        assert math.isclose(float(r["estimator_fwd_bytes_per_token"]), want, rel_tol=1e-5), r
        assert int(r["estimator_fwd_ops"]) == N_ELEMENTWISE_PER_BLOCK
        assert int(r["estimator_bwd_ops"]) == 2 * N_ELEMENTWISE_PER_BLOCK
