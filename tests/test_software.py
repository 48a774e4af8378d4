"""The training software stack (issue 14): framework layouts, vintage, buffers, published clusters."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from estimator import estimate_training
from estimator.errors import EstimatorInputError
from estimator.memory import buffer_bytes
from estimator.software import framework_stack
from hardware_db import FrameworkBuffer, framework_buffers, frameworks

MTNLG = dict(model="mt-nlg-530b", tokens=270e9, gpu="a100-80gb", gpus=2240, tp=8, pp=35, dp=8,
             global_batch_tokens=1920 * 2048)


def test_every_framework_row_parses_with_its_sources():
    table = frameworks()
    assert {"megatron", "deepspeed", "fsdp"} <= set(table)
    for f in table.values():
        assert f.source and f.layout_source and f.activation_factor >= 1.0 and f.zero_stages


def test_fsdp_runs_no_pipeline_and_deepspeed_no_zero3_beside_its_pipeline():
    fsdp = estimate_training("llama2-70b", tokens=2e12, gpu="a100-80gb", gpus=512, framework="fsdp")
    assert fsdp.layout.pp == 1 and fsdp.layout.zero == 3
    ds = estimate_training("gpt3-175b", tokens=300e9, gpu="a100-80gb", gpus=1024, framework="deepspeed")
    assert ds.layout.pp == 1 or ds.layout.zero <= 1
    assert ds.layout.interleave == 1  # DeepSpeed's pipeline has no interleaved schedule


@pytest.mark.parametrize("kw, words", [
    (dict(framework="fsdp", pp=2), "no pipeline parallelism"),
    (dict(framework="deepspeed", pp=2, zero=3), "ZeRO stage 1 at most with pipeline"),
])
def test_a_layout_the_framework_cannot_run_is_refused(kw, words):
    with pytest.raises(EstimatorInputError, match=words):
        estimate_training("llama2-7b", tokens=2e12, gpu="a100-80gb", gpus=64, **kw)


def test_cli_refuses_it_in_one_line():
    r = subprocess.run([sys.executable, "-m", "estimator.cli", "train", "--preset", "llama2-7b", "--gpus", "64",
                        "--framework", "fsdp", "--pp", "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and re.fullmatch(r"error: [^\n]+; [^\n]+\n", r.stderr), r.stderr


def test_pre_2022_stack_drops_sequence_parallelism_and_recomputes_every_layer():
    """MT-NLG at its published layout: with today's stack a third of the layers are recomputed; without
    FlashAttention, sequence parallelism and per-layer recomputation (2021) every layer is."""
    now = estimate_training(**MTNLG)
    then = estimate_training(**MTNLG, flash_attention=False)
    assert now.layout.recompute in ("none", "selective", "partial")
    assert then.layout.recompute == "full" and then.hfu / then.mfu == pytest.approx(4 / 3, rel=0.02)
    assert "flash_attention" in then.assumptions and "framework" in then.assumptions


def test_no_sequence_parallel_keeps_more_activations_under_tp():
    kw = dict(tokens=2e12, gpu="h100-sxm", gpus=64, tp=8, pp=1, dp=8, recompute="none", micro_batch=1)
    sp = estimate_training("llama2-70b", **kw)
    no = estimate_training("llama2-70b", **kw, sequence_parallel=False)
    assert no.memory.activations > 1.3 * sp.memory.activations
    assert "sequence_parallel" in no.assumptions


def test_buffer_peak_is_persistent_plus_the_larger_phase():
    def buf(phase, amount, scales="fixed_elements", zero=None):
        return FrameworkBuffer("x", zero, phase, scales, amount, 2.0, phase, "src")

    bufs = (buf("persistent", 1e9), buf("backward", 5e8), buf("optimizer_step", 4.0, "params_per_gpu_shard"))
    # step buffer 4 B x 1e10 / 10 = 4 GB; activations 1 GB free before the step: 2 + max(1, 4 - 1) = 5 GB
    assert buffer_bytes(bufs, 1, 1e10, 10, 0, 1e9) == pytest.approx(5e9)
    # with 10 GB of activations the backward buffers set the peak: 2 + 1 = 3 GB
    assert buffer_bytes(bufs, 1, 1e10, 10, 0, 1e10) == pytest.approx(3e9)
    staged = (buf("persistent", 1e9, zero=3),)
    assert buffer_bytes(staged, 1, 1e10, 10, 0, 0.0) == 0.0 and buffer_bytes(staged, 3, 1e10, 10, 0, 0.0) == 2e9


def test_deepspeed_zero3_counts_its_buckets_and_megatron_none():
    assert framework_stack("megatron")[0].buffers == ()
    assert all(b.source for b in framework_buffers("deepspeed"))
    kw = dict(tokens=2e12, gpu="a100-80gb", gpus=64, tp=1, pp=1, dp=64, zero=3)
    ds = estimate_training("llama2-7b", framework="deepspeed", **kw)
    assert ds.memory.buffers >= 2 * 5e8 * 2  # reduce bucket + reduce-scatter copy, 5e8 elements of 2 bytes each


def test_a_preset_uses_its_published_cluster_on_the_same_accelerator():
    e = estimate_training("llama-65b", gpu="a100-80gb")
    assert e.gpus == 2048
    src = e.assumptions["gpus"].source
    assert src.startswith("published") and "2302.13971" in src
    other = estimate_training("llama-65b", gpu="h100-sxm")
    assert other.gpus != 2048 and any("2,048 a100-80gb" in w for w in other.warnings)


def test_the_default_cluster_is_said_to_be_small():
    e = estimate_training("llama3-8b")
    assert any("GPU count not given" in w and "--gpus" in w for w in e.warnings)


def test_hf_activation_factor_lies_in_the_measured_range():
    """hardware_db/activation_profiles.csv (scripts/measure_activations.py): HF LlamaDecoderLayer with SDPA."""
    import csv
    from importlib.resources import files

    rows = list(csv.DictReader(files("hardware_db").joinpath("activation_profiles.csv").read_text().splitlines()))
    ratios = [float(r["ratio"]) for r in rows if r["implementation"] == "hf_llama_sdpa"]
    assert ratios and min(ratios) <= frameworks()["hf"].activation_factor <= max(ratios)
    assert framework_stack("hf")[0].buffers == framework_stack("fsdp")[0].buffers != ()


def test_ep_comm_overlap_is_opt_in_and_megatron_only():
    kw = dict(tokens=1e12, gpu="h100-sxm", gpus=1024, tp=2, pp=8, ep=64, dp=64, micro_batch=1,
              global_batch_tokens=8192 * 4096)
    plain = estimate_training("deepseek-v3", **kw)
    hidden = estimate_training("deepseek-v3", **kw, ep_comm_overlap=True)
    assert hidden.step_time_s < plain.step_time_s and "ep_comm_overlap" in hidden.assumptions
    with pytest.raises(EstimatorInputError, match="no overlap of the expert all-to-all"):
        estimate_training("deepseek-v3", **kw, ep_comm_overlap=True, framework="deepspeed")


def test_expert_all_to_all_splits_between_nvlink_and_the_network():
    """EP inside one 8-GPU node runs on NVLink only; EP over 4 nodes sends 3/4 of its bytes over the network."""
    from estimator.hardware import accelerator, link_bandwidths_gb_per_s, resolve_rates
    from estimator.presets import load_preset
    from estimator.timing import ring_allgather_s, step_time

    spec, acc = load_preset("mixtral-8x7b"), accelerator("h100-sxm")
    km = resolve_rates(acc, "bf16", None, False).kernel
    up, out = (b * 1e9 for b in link_bandwidths_gb_per_s(acc))
    kw = dict(tp=1, pp=1, zero=1, micro_batch=1, recompute="none", global_batch_seqs=64, seq=4096, dtype_bytes=2.0,
              dp_overlap=0.0)
    routed = 2.0 * 4096 * spec.experts_per_token * spec.d_model
    per_layer = 4 * spec.moe_layers / spec.layers * spec.layers
    inside = step_time(spec, acc, km, dp=8, ep=8, **kw)
    m = 64 / 8  # micro-batches per step
    assert float(inside.ep_comm) == pytest.approx(m * per_layer * float(ring_allgather_s(routed, 8, up)), rel=1e-9)
    across = step_time(spec, acc, km, dp=32, ep=32, **kw)  # the formula's own validity: EP ranks need not divide
    expect = max(float(ring_allgather_s(routed / 4, 32, up)), float(ring_allgather_s(routed * 3 / 4, 32, out)))
    assert float(across.ep_comm) == pytest.approx(64 / 32 * per_layer * expect, rel=1e-9)


def test_hf_elementwise_factors_are_the_measured_ones_and_cost_time():
    """hardware_db/elementwise_profiles.csv (scripts/measure_activations.py --elementwise)."""
    import csv
    import statistics
    from importlib.resources import files

    rows = list(csv.DictReader(files("hardware_db").joinpath("elementwise_profiles.csv").read_text().splitlines()))
    total = [float(r["ratio_total"]) for r in rows if r["implementation"] == "hf_llama_sdpa"]
    hf = frameworks()["hf"]
    assert hf.elementwise_bytes_factor == pytest.approx(statistics.median(total), abs=0.005)
    ops = [float(r["ratio_ops_total"]) for r in rows if r["implementation"] == "hf_llama_sdpa"]
    assert hf.elementwise_kernels_factor == pytest.approx(statistics.median(ops), abs=0.005)
    kw = dict(tokens=2e12, gpu="a100-80gb", gpus=64, tp=1, pp=1, dp=64, zero=3, micro_batch=1, recompute="none")
    assert (estimate_training("llama2-7b", framework="hf", **kw).step_time_s
            > estimate_training("llama2-7b", framework="fsdp", **kw).step_time_s)
