"""The estimate command: table, one JSON object with the contract keys, listings, and one-line errors."""

import json
import subprocess
import sys

import pytest

CMD = [sys.executable, "-m", "estimator.cli"]
CONTRACT = ("mode", "model", "flops", "hardware_flops", "gpu", "gpus", "mfu", "gpu_hours", "wall_clock_days",
            "memory_per_gpu_gb", "avg_power_mw", "energy_mwh", "co2e_tonnes", "embodied_co2e_tonnes", "cost_usd",
            "ranges", "assumptions", "calibration")
MODEL_KEYS = ("params", "active_params", "layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "seq_len")


def run(*args):
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=60)


def test_table():
    r = run("--params", "1e12", "--tokens", "13e12")
    assert r.returncode == 0, r.stderr
    for word in ("GPU-hours", "MWh", "tCO2e", "USD", "Assumptions"):
        assert word in r.stdout


def test_json_contract():
    r = run("--params", "1e12", "--tokens", "13e12", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)  # exactly one JSON object, nothing else on stdout
    assert isinstance(d, dict)
    for k in CONTRACT:
        assert k in d, k
    for k in MODEL_KEYS:
        assert k in d["model"], k
    # the default H100 estimate names the shipped calibration it used (fitted on Vidur's measured H100 kernels)
    assert d["mode"] == "training" and d["calibration"]["id"].startswith("h100-sxm-vidur-")
    assert "compute" in d["calibration"]["used_for"] and "vidur" in d["calibration"]["data_source"]["dataset"]
    for k in ("gpu_hours", "energy_mwh", "co2e_tonnes", "cost_usd"):
        lo, hi = d["ranges"][k]
        assert lo <= d[k] <= hi


@pytest.mark.parametrize("flag,needle", [("--list-gpus", "h100-sxm"), ("--list-regions", "USA"),
                                         ("--list-presets", "llama3-8b")])
def test_listings(flag, needle):
    r = run(flag)
    assert r.returncode == 0 and needle in r.stdout


BASE = ["--params", "1e12", "--tokens", "13e12"]
BAD = [
    (["--params", "-5", "--tokens", "13e12"], "--params"),
    (["--params", "0", "--tokens", "13e12"], "--params"),
    (["--params", "nan", "--tokens", "13e12"], "finite"),
    (["--params", "inf", "--tokens", "13e12"], "finite"),
    (["--params", "abc", "--tokens", "13e12"], "number"),
    (BASE + ["--gpus", "0"], "--gpus"),
    (BASE + ["--gpus", "-1"], "--gpus"),
    (BASE + ["--gpus", "2.5"], "whole"),
    (["--params", "1e12", "--tokens", "1e6"], "global batch"),
    (BASE + ["--pue", "0.9"], "--pue"),
    (BASE + ["--mfu", "0"], "--mfu"),
    (BASE + ["--mfu", "1.5"], "--mfu"),
    (BASE + ["--price-per-gpu-hour", "-1"], "--price-per-gpu-hour"),
    (BASE + ["--grid-intensity", "-3"], "--grid-intensity"),
    (BASE + ["--precision", "fp7"], "precision"),
    (BASE + ["--gpu", "h10"], "h100-sxm"),
    (BASE + ["--region", "Atlantis"], "region"),
    (["--preset", "llama9", "--tokens", "1e12"], "preset"),
    (["--preset", "llama3-8b", "--params", "1e9", "--tokens", "1e12"], "--params"),
    (BASE + ["--tp", "7"], "layout"),
    (["--params", "1e12", "--tokens", "13e12", "--gpus", "8"], "does not fit"),
    (["--hf-config", "missing.json", "--tokens", "1e12"], "config"),
    (["--hf-config", "NOTJSON", "--tokens", "1e12"], "JSON"),
    (["--hf-config", "FOREIGN", "--tokens", "1e12"], "model_type"),
    (["--params", "7e9", "--tokens", "1e12", "--calibration", "missing.json"], "not found"),
    (["--params", "7e9", "--tokens", "1e12", "--calibration", "NOTJSON"], "JSON"),
    (["--params", "7e9", "--tokens", "1e12", "--calibration", "FOREIGN"], "schema"),
    (["--params", "7e9", "--tokens", "1e12", "--calibration", "OTHERGPU"], "force-calibration"),
    (BASE + ["--bogus"], "unknown option"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(args, needle, tmp_path):
    notjson = tmp_path / "x.json"
    notjson.write_text("not json {")
    foreign = tmp_path / "f.json"
    foreign.write_text('{"foo": 1}')
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"schema": "llm-cost-calibration", "schema_version": 1, "id": "o",
                                 "hardware": {"accelerator_id": "a100-80gb", "device_type": "cuda"},
                                 "kernel_model": {"bf16": {"gemm_flops_per_s": 2e14, "gemm_overhead_s": 0,
                                                           "attn_flops_per_s": 1e14, "attn_overhead_s": 0}}}))
    subst = {"NOTJSON": str(notjson), "FOREIGN": str(foreign), "OTHERGPU": str(other)}
    r = run(*[subst.get(a, a) for a in args])
    assert r.returncode == 2, (r.returncode, r.stdout[-300:], r.stderr[-500:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in r.stderr + r.stdout
    assert needle.lower() in lines[0].lower()


# Issue 11: a flag that does not apply to the chosen mode is an error naming the flag and the mode.
MISPLACED = [
    (["--budget-flops", "1e24", "--gpus", "2048", "--cp", "3"], "--cp 3"),  # plan passes --cp on (was ignored)
    (["--inference", "--params", "7e9", "--gpus", "8"], "--gpus is a training option"),
    (["--inference", "--params", "7e9", "--tp", "2"], "--tp is a training option"),
    (["--inference", "--params", "7e9", "--mfu", "0.4"], "--mfu is a training option"),
    (["--inference", "--params", "7e9", "--owned"], "--owned is a training option"),
    (["--params", "7e9", "--tokens", "1e12", "--batch", "8"], "--batch is a serving option"),
    (["--params", "7e9", "--tokens", "1e12", "--prompt-tokens", "100"], "--prompt-tokens is a serving option"),
    (["--params", "7e9", "--tokens", "1e12", "--queries-per-day", "1e6"], "--queries-per-day is a serving option"),
    (["--params", "7e9", "--tokens", "1e12", "--weight-precision", "fp8"], "--weight-precision is a serving"),
    (["train", "--params", "7e9", "--tokens", "1e12", "--budget-usd", "1e6"], "--budget-usd is a planning option"),
    (["serve", "--params", "7e9", "--tokens", "1e12"], "--tokens is a training option"),
    (["plan", "--budget-usd", "1e6", "--layers", "8"], "--layers is a training option"),
    (["train", "--inference", "--params", "7e9"], "--inference does not apply"),
    (BASE + ["--zero", "7"], "ZeRO stage is 0, 1, 2 or 3"),
    (BASE + ["--tp", "0"], "--tp must be >= 1"),
    (BASE + ["--tp", "2.5"], "whole number"),
    (BASE + ["--seq-len", "abc"], "--seq-len must be a"),
    (BASE + ["--gpu", ""], "--gpu is empty"),
]


@pytest.mark.parametrize("args,needle", MISPLACED, ids=[" ".join(a) for a, _ in MISPLACED])
def test_flag_of_another_mode_is_one_line_exit_2(args, needle):
    r = run(*args)
    assert r.returncode == 2, (r.stdout[-300:], r.stderr[-300:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr


@pytest.mark.parametrize("sub,flat", [
    (["train", "--params", "7e9", "--tokens", "1e12", "--gpus", "64"], ["--params", "7e9", "--tokens", "1e12",
                                                                         "--gpus", "64"]),
    (["serve", "--preset", "llama3-8b", "--batch", "8"], ["--inference", "--preset", "llama3-8b", "--batch", "8"]),
    (["plan", "--budget-flops", "1e22", "--gpus", "64", "--no-compare"],
     ["--budget-flops", "1e22", "--gpus", "64", "--no-compare"]),
])
def test_subcommands_equal_the_flat_forms_and_echo_their_config(sub, flat):
    a, b = (json.loads(run(*x, "--json").stdout) for x in (sub, flat))
    assert a == b
    assert a["schema_version"] == 1 and isinstance(a["config"], dict)
    if a["mode"] == "training":
        assert a["config"]["params"] == 7e9 and a["config"]["gpus"] == 64


def test_help_shows_types_and_version():
    h = run("train", "--help").stdout
    assert "--tp INTEGER" in h and "--params NUMBER" in h and "[bf16|fp16|fp8|tf32|fp32]" in h
    assert "--zero INTEGER" in h and "0-3" in h and "--batch" not in h
    assert "--batch INTEGER" in run("serve", "--help").stdout
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("estimate (llm-cost-estimator) ")


def test_list_gpus_json_is_json():
    d = json.loads(run("--list-gpus", "--json").stdout)
    rows = {r["id"]: r for r in d["rows"]}
    import hardware_db

    assert rows["h100-sxm"]["peak_bf16_dense_tflops"] == hardware_db.get_accelerator("h100-sxm").peak_tflops["bf16"]
    assert rows["tpu-v5e"]["tdp_w"] is None  # no published TDP: missing stays missing (null), never 0


def test_layout_error_names_the_real_cause():
    """Issue 15: TP2 PP1 on 2,048 GPUs with a small batch fails because DP x micro-batch exceeds the batch, not
    because of the GPU count's factors."""
    r = run("--params", "7e9", "--tokens", "2e12", "--gpus", "2048", "--tp", "2", "--pp", "1",
            "--global-batch-tokens", "4e6")
    assert r.returncode == 2 and "smaller than DP x micro-batch" in r.stderr and "small factors" not in r.stderr


def test_tiny_derived_model_warns_about_its_embedding_share():
    d = json.loads(run("--params", "1e8", "--tokens", "2e10", "--gpus", "8", "--json").stdout)
    assert any("embedding and LM head" in w for w in d["warnings"])


def test_doubling_a_cluster_with_the_default_batch_is_not_slower():
    """Issue 14/15: the default global batch grows with the cluster (one sequence per 8 GPUs), so twice the GPUs
    finish sooner instead of starving data parallelism."""
    days = [json.loads(run("--params", "4e11", "--tokens", "8e12", "--gpus", str(g), "--json").stdout)
            ["wall_clock_days"] for g in (16384, 32768)]
    assert days[1] < days[0]
