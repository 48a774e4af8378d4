"""Checks on benchmarks/data/training_throughput.csv (no GPU, no network).

The file holds published training throughput (tokens/s/GPU, TFLOP/s/GPU, MFU, HFU) at a stated parallel layout, one row
per configuration, for the estimator to predict blind. See benchmarks/data/README.md, section
"training_throughput.csv". These tests check structure, units, provenance and layout arithmetic, plus golden values
copied from the cited tables. Also checks the `hours_cover` tags added to training_runs.csv.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"

COLUMNS = ["id", "model", "preset", "params", "active_params", "layers", "d_model", "heads", "kv_heads", "ffn_dim",
           "vocab", "experts", "experts_per_token", "seq_len", "global_batch_seqs", "global_batch_tokens",
           "accelerator", "gpus", "precision", "precision_detail", "tp", "pp", "cp", "ep", "dp", "vpp", "fsdp",
           "zero_stage", "micro_batch", "grad_accum", "recompute", "framework", "workload", "tokens_per_s_per_gpu",
           "model_tflops_per_s_per_gpu", "hardware_tflops_per_s_per_gpu", "tflops_per_s_per_gpu_unstated", "mfu",
           "mfu_convention", "hfu", "step_time_s", "derived_fields", "source", "source_location", "retrieved",
           "confidence", "notes"]
POSITIVE_INTS = ("params", "active_params", "layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "experts",
                 "experts_per_token", "seq_len", "global_batch_seqs", "global_batch_tokens", "gpus", "tp", "pp", "cp",
                 "ep", "dp", "vpp", "micro_batch", "grad_accum")
NON_NEGATIVE_INTS = ("fsdp", "zero_stage")
POSITIVE_FLOATS = ("tokens_per_s_per_gpu", "model_tflops_per_s_per_gpu", "hardware_tflops_per_s_per_gpu",
                   "tflops_per_s_per_gpu_unstated", "step_time_s")
FRACTIONS = ("mfu", "hfu")
METRICS = POSITIVE_FLOATS[:4] + FRACTIONS
PRECISIONS = {"bf16", "fp16", "fp8", ""}
RECOMPUTE = {"none", "selective", "full", "partial", ""}
WORKLOADS = {"pretraining", "pretraining_benchmark", "fine_tuning"}
CONFIDENCE = {"high", "medium", "low"}
SHAPE = ("layers", "d_model", "heads")
HOURS_COVER = {"pretraining_pass", "with_distillation", "with_post_training", "with_downtime", "derived_gpus_x_days",
               "aggregate_many_runs", "unknown", "not_applicable"}

# Dense bf16 peak per chip (TFLOP/s), for the MFU consistency check only; the values are the ones the sources use
# (Llama 3 paper: 989 for H100; PaLM App. B: 312 for A100, 275 for TPU v4; Patterson fn 12: 125 V100, 123 TPU v3).
PEAK_BF16 = {"h100-sxm": 989.0, "a100-80gb": 312.0, "a100-40gb": 312.0, "v100": 125.0, "tpu-v4": 275.0,
             "tpu-v3": 123.0}


def _read(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(DATA / name, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@cache
def _rows() -> tuple[dict[str, str], ...]:
    return tuple(_read("training_throughput.csv")[1])


@cache
def _accelerators() -> frozenset[str]:
    with open(ROOT / "hardware_db" / "accelerators.csv", newline="") as f:
        return frozenset(r["id"] for r in csv.DictReader(f))


@cache
def _presets() -> frozenset[str]:
    with open(ROOT / "hardware_db" / "models.csv", newline="") as f:
        return frozenset(r["name"] for r in csv.DictReader(f))


def _int(row: dict[str, str], col: str) -> int | None:
    return int(row[col]) if row[col] != "" else None


def _by_id(rid: str) -> dict[str, str]:
    (row,) = [r for r in _rows() if r["id"] == rid]
    return row


def test_columns_exact():
    assert _read("training_throughput.csv")[0] == COLUMNS


def test_at_least_25_rows_unique_ids_several_organisations():
    ids = [r["id"] for r in _rows()]
    assert len(ids) >= 25
    assert len(set(ids)) == len(ids)
    # NVIDIA tables, Meta, Google, Microsoft/NVIDIA, BigScience, Bloomberg, Tsinghua, MLCommons
    prefixes = {i.split("-")[0] for i in ids}
    assert {"nemo24.07", "mbridge25.11", "llama3", "palm", "mt", "bloom", "bloomberggpt", "glm", "mlperf"} <= prefixes


@pytest.mark.parametrize("col", ["id", "model", "accelerator", "gpus", "workload", "source", "source_location",
                                 "retrieved", "confidence"])
def test_required_fields_present(col):
    assert [r["id"] for r in _rows() if not r[col].strip()] == []


def test_every_row_has_a_metric():
    assert [r["id"] for r in _rows() if not any(r[m] for m in METRICS)] == []


def test_integers_parse_and_are_positive():
    for r in _rows():
        for col in POSITIVE_INTS:
            if r[col]:
                assert re.fullmatch(r"\d+", r[col]), (r["id"], col, r[col])
                assert int(r[col]) >= 1, (r["id"], col)
        for col in NON_NEGATIVE_INTS:
            if r[col]:
                assert re.fullmatch(r"\d+", r[col]), (r["id"], col, r[col])


def test_metrics_positive_and_fractions_in_range():
    for r in _rows():
        for col in POSITIVE_FLOATS:
            if r[col]:
                assert float(r[col]) > 0, (r["id"], col)
        for col in FRACTIONS:
            if r[col]:
                assert 0 < float(r[col]) < 1, (r["id"], col, r[col])


def test_mfu_never_exceeds_hfu_and_mfu_has_a_convention():
    for r in _rows():
        if r["mfu"] and r["hfu"]:
            assert float(r["mfu"]) <= float(r["hfu"]), r["id"]
        if r["mfu"]:
            assert r["mfu_convention"].strip(), r["id"]


def test_tflops_below_the_dense_peak_and_mfu_matches_model_tflops():
    """Model TFLOP/s is per GPU and dense (never above the dense peak); where both are given they agree within 3
    points."""
    dense_peak_fp8 = {"h100-sxm": 1979.0, "b200": 4500.0, "gb200": 5000.0}  # generous upper bounds, dense fp8
    for r in _rows():
        tfl = r["model_tflops_per_s_per_gpu"] or r["hardware_tflops_per_s_per_gpu"]
        if not tfl:
            continue
        acc = r["accelerator"]
        bound = dense_peak_fp8.get(acc) if r["precision"] == "fp8" else PEAK_BF16.get(acc, dense_peak_fp8.get(acc))
        if bound:
            assert float(tfl) < bound, (r["id"], tfl, bound)
        if r["mfu"] and r["model_tflops_per_s_per_gpu"] and acc in PEAK_BF16:
            assert abs(float(r["model_tflops_per_s_per_gpu"]) / PEAK_BF16[acc] - float(r["mfu"])) < 0.03, r["id"]


def test_vocabularies():
    for r in _rows():
        assert r["accelerator"] in _accelerators(), r["id"]
        assert r["precision"] in PRECISIONS, r["id"]
        assert r["recompute"] in RECOMPUTE, r["id"]
        assert r["workload"] in WORKLOADS, r["id"]
        assert r["confidence"] in CONFIDENCE, r["id"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["retrieved"]), r["id"]


def test_model_is_a_preset_or_has_a_shape():
    for r in _rows():
        if r["preset"]:
            assert r["preset"] in _presets(), (r["id"], r["preset"])
            assert not any(r[c] for c in SHAPE), f"{r['id']}: preset rows carry no shape (the preset is the shape)"
        else:
            assert all(r[c] for c in SHAPE), f"{r['id']}: no preset, so layers/d_model/heads are required"


def test_layout_consistent():
    """gpus = tp*pp*cp*dp wherever tp, pp and dp are given (cp blank means 1); ep divides dp*cp; batch arithmetic."""
    for r in _rows():
        g, tp, pp, cp, dp, ep = (_int(r, c) for c in ("gpus", "tp", "pp", "cp", "dp", "ep"))
        if tp and pp and dp:
            assert g == tp * pp * (cp or 1) * dp, r["id"]
        if ep and dp:
            assert (dp * (cp or 1)) % ep == 0, r["id"]
        mb, ga, gbs = _int(r, "micro_batch"), _int(r, "grad_accum"), _int(r, "global_batch_seqs")
        if mb and ga and gbs and dp and not _int(r, "fsdp"):
            assert gbs == mb * dp * ga, r["id"]
        if r["vpp"] and pp:
            assert pp > 1 or int(r["vpp"]) == 1, r["id"]


def test_derived_fields_name_real_columns_and_are_explained():
    for r in _rows():
        for col in filter(None, r["derived_fields"].split(";")):
            assert col in COLUMNS and r[col], (r["id"], col)
            assert col in r["notes"], f"{r['id']}: notes must say how {col} was derived"


def test_sources_cite_a_commit_or_a_table():
    """GitHub sources name a 40-hex commit; papers name a table, section or page."""
    for r in _rows():
        loc = r["source_location"] + " " + r["source"]
        if "github" in r["source"].lower() or "@" in loc:
            assert re.search(r"[0-9a-f]{40}", loc), r["id"]
        else:
            assert re.search(r"Table|Sec|PDF p|App\.|https?://", loc), r["id"]


def test_excluded_megatron_table1():
    """Megatron-LM 2021 Table 1 fits framework_efficiency (megatron_table1.csv), so it must not be scored here."""
    assert not [r["id"] for r in _rows() if "2104.04473" in r["source"] or "megatron-1t" in r["preset"]]


@pytest.mark.parametrize(("rid", "col", "value"), [
    ("mbridge25.09-h100-deepseek-v3", "tokens_per_s_per_gpu", "1297"),      # Megatron-Bridge 25.09 DGX-H100 table
    ("mbridge25.09-h100-deepseek-v3", "ep", "64"),
    ("nemo24.07-h100-llama3-70b", "model_tflops_per_s_per_gpu", "734"),     # NeMo 24.07 pretraining table
    ("nemo24.07-h100-nemotron4-340b", "tokens_per_s_per_gpu", "326"),
    ("llama3-405b-paper-8192g", "model_tflops_per_s_per_gpu", "430"),       # Llama 3 paper Table 4
    ("llama3-405b-paper-16384g", "mfu", "0.41"),
    ("mt-nlg-530b-280nodes", "step_time_s", "60.1"),                        # Smith et al. 2022 Sec 2.4
    ("glm-130b-paper", "hfu", "0.433"),                                     # GLM-130B p5
    ("palm-540b-paper", "hfu", "0.578"),                                    # PaLM Sec 4
    ("bloom-176b-run", "pp", "12"),                                         # tr11-176B-ml.slurm
])
def test_golden_values(rid, col, value):
    assert _by_id(rid)[col] == value


def test_bf16_vs_fp8_moe_pair_present():
    """The issue's MoE FP8 claim (about 1.1-1.2x over bf16) needs a same-model, same-GPU-count pair."""
    bf16 = _by_id("mbridge25.11-gb200-deepseek-v3-bf16")
    fp8 = _by_id("mbridge25.11-gb200-deepseek-v3-mxfp8")
    assert bf16["gpus"] == fp8["gpus"] and bf16["preset"] == fp8["preset"] == "deepseek-v3"
    assert 1.0 < float(fp8["tokens_per_s_per_gpu"]) / float(bf16["tokens_per_s_per_gpu"]) < 1.5


# --- training_runs.csv: what each row's reported GPU-hours cover ----------------------------------------------------

def test_training_runs_hours_cover_tags():
    header, rows = _read("training_runs.csv")
    assert header[-2:] == ["hours_cover", "hours_cover_evidence"]
    for r in rows:
        assert r["hours_cover"] in HOURS_COVER, (r["id"], r["hours_cover"])
        assert r["hours_cover_evidence"].strip(), r["id"]
        has_hours = bool(r["reported_gpu_hours"])
        assert (r["hours_cover"] == "not_applicable") == (not has_hours), r["id"]
        if r["gpu_hours_basis"] == "derived":
            assert r["hours_cover"] in {"derived_gpus_x_days", "with_downtime"}, r["id"]


@pytest.mark.parametrize(("rid", "tag"), [
    ("llama3.2-1b", "with_distillation"), ("llama3.2-3b", "with_distillation"),
    ("palm-540b", "with_downtime"), ("llama3.1-405b", "with_post_training"),
    ("llama2-70b", "pretraining_pass"), ("deepseek-v3", "pretraining_pass"), ("glm-130b", "derived_gpus_x_days"),
])
def test_hours_cover_known_cases(rid, tag):
    (row,) = [r for r in _read("training_runs.csv")[1] if r["id"] == rid]
    assert row["hours_cover"] == tag
