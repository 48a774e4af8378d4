"""Serving estimator: KV-cache arithmetic, the per-phase roofline, max batch, power, fleet, CLI and bad input."""

from __future__ import annotations

import json
import math

import pytest

from estimator.cli import main
from estimator.errors import EstimatorInputError
from estimator.hardware import kernel_model_for
from estimator.inference import (
    compare_models,
    decode_time,
    estimate_inference,
    expected_experts_touched,
    fleet_size,
    kv_bytes_per_token,
    kv_shard_fraction,
    max_batch_that_fits,
    prefill_time,
    weight_bytes_read,
    weight_bytes_stored,
)
from estimator.model import param_count
from estimator.parallelism import MEMORY_HEADROOM
from estimator.presets import load_preset
from estimator.serving import serving_constant
from hardware_db import get_accelerator

H100 = get_accelerator("h100-sxm")
KM, _ = kernel_model_for(H100, "bf16", None)


# --------------------------------------------------------------------------- KV cache

def test_kv_bytes_llama2_70b_by_hand():
    # Llama-2-70B (Touvron et al. 2023; config.json): 80 layers, 8 KV heads (GQA), head_dim 8192/64 = 128.
    # 80 layers x 8 kv_heads x 128 head_dim x 2 (K and V) x 2 bytes (bf16) = 327,680 bytes per token.
    s = load_preset("llama2-70b")
    assert (s.layers, s.kv_heads, s.hd) == (80, 8, 128)
    assert kv_bytes_per_token(s, 2.0) == 80 * 8 * 128 * 2 * 2 == 327_680
    assert kv_bytes_per_token(s, 1.0) == 163_840  # fp8 KV cache halves it


def test_kv_bytes_mla_deepseek_v3_by_hand():
    # DeepSeek-V3 (config.json): 61 layers, MLA caches kv_lora_rank 512 + qk_rope_head_dim 64 per token per layer.
    # 61 x (512 + 64) x 2 bytes = 70,272 bytes per token, ~4.7x less than the 327,680 of Llama-2-70B.
    s = load_preset("deepseek-v3")
    assert s.is_mla
    assert kv_bytes_per_token(s, 2.0) == 61 * (512 + 64) * 2 == 70_272
    assert kv_shard_fraction(s, 8) == 1.0  # the latent is not split over TP


def test_kv_split_over_tp_and_replicated_beyond_kv_heads():
    s = load_preset("llama2-70b")  # 8 KV heads
    assert kv_shard_fraction(s, 1) == 1.0
    assert kv_shard_fraction(s, 4) == 0.25
    assert kv_shard_fraction(s, 16) == 1 / 8  # 16 GPUs, 8 heads: each GPU keeps a whole head


def test_max_batch_by_hand():
    # Llama-2-70B, bf16 weights, 2 x H100 (80 GB), 1,500 tokens per sequence:
    # usable 0.9 x 80e9 = 72e9 B per GPU; weights 2 B x N / 2 per GPU; KV per sequence per GPU 327,680 / 2 x 1,500.
    s = load_preset("llama2-70b")
    n = param_count(s).total
    free = 80e9 * MEMORY_HEADROOM - 2.0 * n / 2
    per_seq = 327_680 / 2 * 1500
    expected = int(free // per_seq)
    assert max_batch_that_fits(s, 2, 80.0, 1500, 2.0, 2.0) == expected
    # 68.98e9 params x 2 B / 2 GPUs = 68.98 GB of weights per GPU; 72 - 68.98 = ~3.0 GB left;
    # 163,840 B x 1,500 tokens = 245.76 MB per sequence -> 12 sequences
    assert n == pytest.approx(68.98e9, rel=0.01)
    assert expected == 12
    assert max_batch_that_fits(s, 1, 80.0, 1500, 2.0, 2.0) == 0  # 138 GB of weights do not fit on one GPU


# --------------------------------------------------------------------------- roofline regimes

def test_prefill_is_compute_bound():
    s = load_preset("llama3-8b")
    p = prefill_time(s, 8, 2000, KM)
    assert p.bound == "compute"
    assert p.gemm_compute > 10 * p.weight_read


def test_decode_memory_bound_at_small_batch_and_linear_throughput():
    s = load_preset("llama3-8b")
    steps = {b: decode_time(s, b, 128, KM) for b in (1, 2, 4, 8)}
    for t in steps.values():
        assert t.bound == "memory"
        assert t.weight_read > 5 * t.gemm_compute  # reading the weights dominates
    tps = {b: b / float(t.total) for b, t in steps.items()}
    assert tps[8] / tps[1] == pytest.approx(8, rel=0.1)  # ~linear in batch while weight-read bound
    assert tps[2] / tps[1] == pytest.approx(2, rel=0.05)


def test_decode_compute_bound_at_large_batch_and_throughput_saturates():
    s = load_preset("llama3-8b")
    big, bigger = decode_time(s, 4096, 128, KM), decode_time(s, 8192, 128, KM)
    assert big.bound == "compute"
    assert big.gemm_compute > big.weight_read  # GEMMs now limited by FLOPs, not by the weight read
    tps_big, tps_bigger = 4096 / float(big.total), 8192 / float(bigger.total)
    assert tps_bigger / tps_big < 1.1  # doubling the batch barely helps
    # the ceiling: 2 N_active FLOPs per token at the sustained GEMM rate
    ceiling = KM.gemm_flops_per_s / (2 * param_count(s).active)
    assert tps_bigger < ceiling


def test_long_context_makes_decode_kv_bound():
    s = load_preset("llama3-8b")
    t = decode_time(s, 64, 32_000, KM)
    assert t.kv_read > t.weight_read  # 64 x 32k tokens x 131,072 B = 268 GB of KV per step vs 16 GB of weights


# --------------------------------------------------------------------------- precision, MoE, TP

def test_weight_precision_moves_decode_time():
    s = load_preset("llama3-8b")
    t16 = decode_time(s, 1, 128, KM, weight_bytes=2.0).weight_read
    t8 = decode_time(s, 1, 128, KM, weight_bytes=1.0).weight_read
    t4 = decode_time(s, 1, 128, KM, weight_bytes=0.5).weight_read
    assert t8 == pytest.approx(t16 / 2) and t4 == pytest.approx(t16 / 4)
    e16 = estimate_inference(s, batch=1, prompt_tokens=100, output_tokens=100, gpus_per_replica=1)
    e4 = estimate_inference(s, batch=1, prompt_tokens=100, output_tokens=100, gpus_per_replica=1,
                            weight_precision="int4")
    assert e4.compute_precision == "bf16"  # int4 GEMMs at the 16-bit rate
    fixed = serving_constant("serving_step_overhead_s")  # the framework's fixed cost per step does not shrink
    assert e4.tpot.m_as("s") - fixed < (e16.tpot.m_as("s") - fixed) * 0.5
    a100 = estimate_inference(s, gpu="a100-80gb", batch=1, prompt_tokens=100, output_tokens=100,
                              weight_precision="fp8")
    assert a100.compute_precision == "bf16"  # no fp8 tensor cores on A100
    h100 = estimate_inference(s, batch=1, prompt_tokens=100, output_tokens=100, weight_precision="fp8")
    assert h100.compute_precision == "fp8"


def test_moe_expected_experts_and_weight_read():
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2.0)
    assert expected_experts_touched(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_experts_touched(256, 8, 10_000) == pytest.approx(256, rel=1e-6)
    s = load_preset("mixtral-8x7b")
    pc = param_count(s)
    small = weight_bytes_read(s, 1, 1.0)
    large = weight_bytes_read(s, 4096, 1.0)
    assert small < pc.active * 1.01  # batch 1 reads about the active weights
    assert not s.tied_embeddings
    assert large == pytest.approx(pc.total - pc.embedding, rel=1e-6)  # every expert touched; no embedding table read
    assert large <= weight_bytes_stored(s, 1.0)


def test_tensor_parallel_splits_weights_and_adds_allreduce():
    s = load_preset("llama3-8b")
    e1 = estimate_inference(s, batch=8, gpus_per_replica=1)
    e2 = estimate_inference(s, batch=8, gpus_per_replica=2)
    assert e2.weights_per_gpu.m_as("GB") == pytest.approx(e1.weights_per_gpu.m_as("GB") / 2)
    assert e1.decode["tp_comm_s"] == 0.0 and e2.decode["tp_comm_s"] > 0.0
    assert e2.tpot < e1.tpot  # half the weights to read per GPU
    assert e2.max_batch > 2 * e1.max_batch  # the weights' share freed on each GPU


# --------------------------------------------------------------------------- the estimate

def test_estimate_outputs_consistent():
    e = estimate_inference(params=70e9, gpu="h100-sxm", prompt_tokens=1000, output_tokens=500, batch=64)
    d = e.to_dict()
    assert d["prefill"]["bound"] == "compute" and d["decode"]["bound"] == "memory"
    # the replica's cycle: prefill all 64 prompts, then 499 decode steps; TTFT is one prompt's prefill
    cycle = d["prefill"]["step_time_s"] + 499 * d["decode"]["step_time_s"]
    assert d["tokens_per_second_per_replica"] == pytest.approx(64 * 500 / cycle, rel=1e-9)
    assert d["prefill_batch_ms"] == pytest.approx(d["prefill"]["step_time_s"] * 1e3)
    # in-flight batching: each decode step also carries the other 63 requests' prefills, spread over 499 steps
    interleaved = (d["prefill"]["step_time_s"] - d["ttft_ms"] / 1e3) / 499
    assert d["tpot_ms"] / 1e3 == pytest.approx(d["decode"]["step_time_s"] + interleaved, rel=1e-9)
    assert d["ttft_ms"] < d["prefill"]["step_time_s"] * 1e3 / 32  # continuous batching: not the whole batch's
    assert d["tokens_per_second_per_gpu"] * d["gpus_per_replica"] == pytest.approx(d["tokens_per_second_per_replica"])
    assert d["energy_per_query_wh"] * 3600 == pytest.approx(d["energy_per_output_token_j"] * 500, rel=1e-9)
    assert d["facility_energy_per_query_wh"] > d["energy_per_query_wh"]
    # memory-bound decode draws about half of TDP: Argonne measured 363-414 W at batch 1 on a 700 W H100
    assert d["gpu_power_decode_w"] < d["gpu_power_prefill_w"] <= 700
    assert 300 <= d["gpu_power_decode_w"] <= 600
    usd_h = d["assumptions"]["price_per_gpu_hour"]["value"]
    assert d["cost_per_million_output_tokens_usd"] == pytest.approx(usd_h / 3600 / d["tokens_per_second_per_gpu"] * 1e6)
    for k, (lo, hi) in d["ranges"].items():
        assert lo <= d[k] <= hi, k
    assert set(e.to_frame()["metric"]) >= {"ttft_ms", "tpot_ms", "energy_per_query_wh"}


def test_reasoning_tokens_are_generated_and_billed():
    base = estimate_inference(params=8e9, batch=16, prompt_tokens=500, output_tokens=200)
    think = estimate_inference(params=8e9, batch=16, prompt_tokens=500, output_tokens=200, reasoning_tokens=2000)
    assert think.energy_per_query > 5 * base.energy_per_query
    assert think.decode["steps"] == 2199


def test_fleet_arithmetic_by_hand():
    # 8.64e6 queries/day = 100/s average, 200/s at peak; 30 q/s per replica -> ceil(6.67) = 7 replicas of 4 GPUs.
    f = fleet_size(8.64e6, 2.0, 30.0, 4, idle_w=100.0, operating_w=400.0, host_w=150.0, pue=1.2,
                   grid_g_per_kwh=400.0, usd_per_gpu_hour=2.0)
    assert f["replicas"] == 7 and f["gpus"] == 28
    duty = 100 / (7 * 30)
    gpu_w = 100 + 300 * duty
    mw = (gpu_w + 150) * 28 * 1.2 / 1e6
    assert f["avg_power_mw"] == pytest.approx(mw)
    assert f["annual_energy_mwh"] == pytest.approx(mw * 8766)
    assert f["annual_co2e_tonnes"] == pytest.approx(mw * 8766 * 400 / 1000)
    assert f["annual_cost_usd"] == pytest.approx(28 * 8766 * 2.0)


def test_fleet_in_estimate_scales_with_load():
    lo = estimate_inference(params=8e9, batch=32, queries_per_day=1e6).fleet
    hi = estimate_inference(params=8e9, batch=32, queries_per_day=1e8).fleet
    assert hi["gpus"] > 50 * lo["gpus"] / 2
    assert hi["annual_energy_mwh"] > lo["annual_energy_mwh"]
    assert lo["peak_to_average"] == 2.0


def test_compare_small_and_large_model():
    c = compare_models("llama3-8b", "llama3-70b", {"prompt_tokens": 500, "output_tokens": 300, "batch": 16,
                                                   "queries_per_day": 1e6})
    assert c.ratios["energy_per_query_wh"] > 3
    assert c.ratios["fleet_gpus"] >= 2
    assert c.ratios["cost_per_million_output_tokens_usd"] > 3
    assert set(c.to_dict()) == {"small", "large", "ratios"}


# --------------------------------------------------------------------------- bad input (API)

@pytest.mark.parametrize("kw", [{"batch": 0}, {"batch": -3}, {"batch": 2e6}, {"batch": 1.5},
                                {"prompt_tokens": 0}, {"output_tokens": -1},
                                {"prompt_tokens": 9e6, "output_tokens": 2e6}, {"weight_precision": "int3"},
                                {"kv_precision": "int4"}, {"prompt_tokens": "many"}])
def test_bad_input_raises_one_line(kw):
    with pytest.raises(EstimatorInputError) as err:
        estimate_inference(params=8e9, **kw)
    assert "\n" not in str(err.value)


def test_model_too_big_names_gpus_needed():
    with pytest.raises(EstimatorInputError, match=r"needs at least \d+ GPUs"):
        estimate_inference(params=405e9, gpus_per_replica=1, batch=1)
    with pytest.raises(EstimatorInputError, match="does not fit"):
        estimate_inference(params=8e9, gpus_per_replica=1, batch=100_000)


# --------------------------------------------------------------------------- CLI

def _run(capsys, argv):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_inference_json_keys(capsys):
    code, out, _ = _run(capsys, ["--inference", "--params", "70e9", "--gpu", "h100-sxm", "--prompt-tokens", "1000",
                                 "--output-tokens", "500", "--batch", "64", "--queries-per-day", "1e6", "--json"])
    assert code == 0
    d = json.loads(out)
    for k in ("mode", "model", "gpu", "gpus_per_replica", "batch", "ttft_ms", "tpot_ms", "tokens_per_second_per_gpu",
              "energy_per_output_token_j", "energy_per_query_wh", "facility_energy_per_query_wh", "co2e_per_query_g",
              "cost_per_million_output_tokens_usd", "kv_cache_gb", "max_batch", "ranges", "assumptions",
              "calibration", "fleet"):
        assert k in d, k
    assert d["mode"] == "inference" and d["batch"] == 64
    assert set(d["fleet"]) >= {"gpus", "avg_power_mw", "annual_energy_mwh", "annual_co2e_tonnes", "annual_cost_usd"}
    assert all(math.isfinite(d[k]) for k in ("ttft_ms", "tpot_ms", "co2e_per_query_g"))


def test_cli_inference_table(capsys):
    code, out, _ = _run(capsys, ["--inference", "--preset", "llama3-8b", "--batch", "8"])
    assert code == 0 and "time per output token" in out


@pytest.mark.parametrize("extra, needle", [
    (["--batch", "0"], "--batch"), (["--batch", "-5"], "--batch"), (["--batch", "1e7"], "--batch"),
    (["--prompt-tokens", "0"], "--prompt-tokens"), (["--prompt-tokens", "9e6", "--output-tokens", "2e6"], "exceeds"),
    (["--weight-precision", "fp2"], "weight-precision"), (["--kv-precision", "int8"], "kv-precision"),
    (["--params", "2e12", "--gpus-per-replica", "1"], "needs at least"), (["--tokens", "1e12"], "training option"),
])
def test_cli_bad_input_exits_2(capsys, extra, needle):
    argv = ["--inference", *(["--params", "8e9"] if "--params" not in extra else []), *extra]
    code, _, err = _run(capsys, argv)
    assert code == 2
    assert err.startswith("error:") and needle in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_cli_training_unchanged(capsys):
    code, out, _ = _run(capsys, ["--params", "1e12", "--tokens", "13e12", "--json"])
    assert code == 0
    d = json.loads(out)
    assert d["mode"] == "training" and d["flops"] > 1e25


def test_calibration_rates_and_power_curve_are_used():
    from estimator.calibration import validate_calibration

    cal = validate_calibration({
        "schema": "llm-cost-calibration", "schema_version": 1, "id": "test-h100",
        "hardware": {"device_type": "cuda", "accelerator_id": "h100-sxm", "device_name": "H100"},
        "kernel_model": {"bf16": {"gemm_flops_per_s": 6e14, "gemm_overhead_s": 1e-5, "attn_flops_per_s": 3e14,
                                  "attn_overhead_s": 1e-5}},
        "memory": {"bytes_per_s": 2.5e12, "overhead_s": 3e-6},
        "power": {"idle_w": 90.0, "slope_w": 800.0, "max_w": 690.0},
        "holdout": {"time_worst_abs_rel_err": 0.1}})
    e = estimate_inference(load_preset("llama3-8b"), batch=8, calibration=cal)
    d = e.to_dict()
    assert d["calibration"]["id"] == "test-h100" and set(d["calibration"]["used_for"]) == {"compute", "power"}
    u = d["decode"]["compute_utilisation"]
    assert d["gpu_power_decode_w"] == pytest.approx(min(690.0, 90.0 + 800.0 * u))
    assert d["ranges"]["tpot_ms"][1] == pytest.approx(d["tpot_ms"] * 1.1)
    assert d["decode"]["weight_read_s"] == pytest.approx(weight_bytes_read(e.model, 8, 2.0) / 2.5e12)
