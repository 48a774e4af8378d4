"""Checks on the published benchmark data in benchmarks/data (no GPU, no network).

The CSVs hold published training runs, serving measurements and claims with their sources; see
benchmarks/data/README.md. These tests check structure and a few golden values copied from the cited tables.
"""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"

TRAINING_COLUMNS = ["id", "model", "preset", "total_params", "active_params", "tokens", "seq_len", "accelerator",
                    "gpus", "precision", "reported_gpu_hours", "gpu_hours_basis", "reported_days",
                    "reported_energy_mwh", "energy_basis", "energy_kind", "reported_co2e_t", "co2e_basis", "pue",
                    "grid_g_per_kwh", "reported_mfu", "source", "source_location", "confidence", "notes",
                    "hours_cover", "hours_cover_evidence"]  # tags checked in tests/test_throughput_data.py
TRAINING_NUMERIC = ("total_params", "active_params", "tokens", "seq_len", "gpus", "reported_gpu_hours", "reported_days",
                    "reported_energy_mwh", "reported_co2e_t", "pue", "grid_g_per_kwh", "reported_mfu")
INFERENCE_COLUMNS = ["id", "name", "model", "preset", "total_params", "active_params", "accelerator",
                     "gpus_per_replica", "batch", "prompt_tokens", "output_tokens", "precision", "metric",
                     "reported_value", "unit", "measurement_kind", "scope", "reproducible", "source",
                     "source_location", "notes"]
INFERENCE_NUMERIC = ("total_params", "active_params", "gpus_per_replica", "batch", "prompt_tokens", "output_tokens",
                     "reported_value")
CLAIM_COLUMNS = ["id", "claim", "quoted_value", "unit", "topic", "source", "notes"]

HARDWARE_DB = Path(__file__).resolve().parents[1] / "hardware_db" / "accelerators.csv"
with open(HARDWARE_DB, newline="") as _f:
    ACCELERATORS = {r["id"] for r in csv.DictReader(_f)}  # every hardware_db id is a valid accelerator
PRESETS = {"gpt3-175b", "gpt2", "llama-7b", "llama-13b", "llama-33b", "llama-65b", "llama2-7b", "llama2-13b",
           "llama2-70b", "llama3-8b", "llama3-70b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "llama3.2-1b",
           "llama3.2-3b", "chinchilla-70b", "gopher-280b", "bloom-176b", "opt-175b", "palm-540b", "mixtral-8x7b",
           "deepseek-v3", "mt-nlg-530b", "megatron-1t", "olmo-7b", "gemma-2b", "gemma-7b", "olmoe-1b-7b"}
ENERGY_KINDS = {"measured", "tdp_formula", "category_average", "partial_measured", ""}
METRICS = {"energy_per_output_token_j", "energy_per_query_wh", "tokens_per_second_per_gpu",
           "tokens_per_second_per_replica", "ttft_ms", "tpot_ms"}
SCOPES = {"gpu_only", "gpu+host", "facility_with_pue", ""}


@cache
def _read(name: str) -> tuple[list[str], tuple[dict[str, str], ...]]:
    with open(DATA / name, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), tuple(reader)


def training() -> tuple[dict[str, str], ...]:
    return _read("training_runs.csv")[1]


def inference() -> tuple[dict[str, str], ...]:
    return _read("inference_measurements.csv")[1]


def claims() -> tuple[dict[str, str], ...]:
    return _read("claims.csv")[1]


def _by_id(rows: tuple[dict[str, str], ...]) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in rows}


# --- training_runs.csv -------------------------------------------------------------------------------------------

def test_training_columns_exact():
    assert _read("training_runs.csv")[0] == TRAINING_COLUMNS


def test_at_least_25_training_runs_with_unique_ids():
    ids = [r["id"] for r in training()]
    assert len(ids) >= 25
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("col", ["source", "source_location", "confidence"])
def test_every_training_row_is_sourced(col):
    missing = [r["id"] for r in training() if not r[col].strip()]
    assert missing == []


def test_training_numeric_columns_parse_as_positive_floats():
    for r in training():
        for col in TRAINING_NUMERIC:
            if r[col]:
                v = float(r[col])  # raises on '~', ranges or text
                assert math.isfinite(v) and v > 0, (r["id"], col, v)


def test_training_ids_are_in_allowed_lists():
    for r in training():
        assert r["accelerator"] in ACCELERATORS | {""}, r["id"]
        assert r["preset"] in PRESETS | {""}, r["id"]
        assert r["energy_kind"] in ENERGY_KINDS, r["id"]
        assert r["precision"] in {"bf16", "fp16", "fp8", ""}, r["id"]
        assert r["gpu_hours_basis"] in {"reported", "derived", ""}, r["id"]
        assert r["confidence"] in {"high", "medium", "low"}, r["id"]


def test_active_never_exceeds_total_and_mfu_is_a_fraction():
    for r in training():
        if r["total_params"] and r["active_params"]:
            assert float(r["active_params"]) <= float(r["total_params"]), r["id"]
        if r["reported_mfu"]:
            assert 0 < float(r["reported_mfu"]) < 1, r["id"]


def test_gpu_hours_basis_present_exactly_when_hours_present():
    for r in training():
        assert bool(r["reported_gpu_hours"]) == bool(r["gpu_hours_basis"]), r["id"]


def test_energy_kind_set_exactly_when_energy_reported():
    for r in training():
        assert bool(r["reported_energy_mwh"]) == bool(r["energy_kind"]), r["id"]


def test_measured_energy_counts():
    kinds = [r["energy_kind"] for r in training()]
    assert kinds.count("measured") == 6  # Patterson et al. 2021 Table 4 runs
    assert kinds.count("partial_measured") == 5  # OLMo / OLMo 2 / OLMoE (one node extrapolated)
    assert kinds.count("tdp_formula") >= 7


def test_patterson_measured_rows_reproduce_their_own_energy():
    """Patterson Table 4: chips x days x 24 h x measured W x PUE matches the reported MWh within 1%."""
    watts = {"gpt3-175b": 330, "t5-11b": 310, "meena-2.6b": 289, "gshard-600b": 288, "switch-1.5t": 245,
             "evolved-transformer-nas": 208}
    rows = _by_id(training())
    for rid, w in watts.items():
        r = rows[rid]
        assert r["energy_kind"] == "measured"
        mwh = float(r["gpus"]) * float(r["reported_days"]) * 24 * w * float(r["pue"]) / 1e6
        assert mwh == pytest.approx(float(r["reported_energy_mwh"]), rel=0.01), rid


def test_derived_gpu_hours_match_chips_times_days():
    for r in training():
        if r["gpu_hours_basis"] == "derived" and r["gpus"] and r["reported_days"]:
            expected = float(r["gpus"]) * float(r["reported_days"]) * 24
            assert float(r["reported_gpu_hours"]) == pytest.approx(expected, rel=0.01), r["id"]


def test_golden_values_from_primary_tables():
    rows = _by_id(training())
    assert float(rows["gpt3-175b"]["reported_energy_mwh"]) == 1287  # Patterson Table 4
    assert float(rows["bloom-176b"]["reported_gpu_hours"]) == 1_082_990  # Luccioni Table 1
    assert float(rows["llama-65b"]["reported_gpu_hours"]) == 1_022_362  # LLaMA Table 15
    assert float(rows["llama2-70b"]["reported_gpu_hours"]) == 1_720_320  # Llama 2 card
    assert float(rows["llama3.1-405b"]["reported_gpu_hours"]) == 30.84e6  # Llama 3.1 card
    assert float(rows["llama3.1-405b"]["reported_co2e_t"]) == 8930
    assert float(rows["deepseek-v3"]["active_params"]) == 37e9
    # BLOOM's energy is exactly GPU-hours x 400 W: the circularity the energy_kind column flags.
    assert float(rows["bloom-176b"]["reported_gpu_hours"]) * 0.4 / 1000 == pytest.approx(
        float(rows["bloom-176b"]["reported_energy_mwh"]), rel=1e-6)
    assert rows["bloom-176b"]["energy_kind"] == "tdp_formula"


def test_required_runs_present():
    presets = {r["preset"] for r in training()}
    for p in ("gpt3-175b", "gopher-280b", "opt-175b", "bloom-176b", "llama-7b", "llama-13b", "llama-33b", "llama-65b",
              "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3.1-8b", "llama3.1-70b",
              "llama3.1-405b", "llama3.2-1b", "llama3.2-3b", "olmoe-1b-7b", "megatron-1t", "mt-nlg-530b"):
        assert p in presets, p


# --- inference_measurements.csv ----------------------------------------------------------------------------------

def test_inference_columns_exact_and_ids_unique():
    assert _read("inference_measurements.csv")[0] == INFERENCE_COLUMNS
    ids = [r["id"] for r in inference()]
    assert len(ids) == len(set(ids)) and len(ids) >= 10


def test_inference_rows_valid():
    for r in inference():
        assert r["metric"] in METRICS, r["id"]
        assert r["scope"] in SCOPES, r["id"]
        assert r["reproducible"] in {"yes", "no", "partial"}, r["id"]
        assert r["accelerator"] in ACCELERATORS | {""}, r["id"]
        assert r["preset"] in PRESETS | {""}, r["id"]
        assert r["source"].strip() and r["source_location"].strip(), r["id"]
        if r["reproducible"] != "yes":
            assert r["notes"].strip(), r["id"]  # the reason must be written down
        for col in INFERENCE_NUMERIC:
            if r[col]:
                assert float(r[col]) > 0, (r["id"], col)
        assert r["reported_value"], r["id"]


def test_inference_derived_values():
    rows = _by_id(inference())
    assert float(rows["I14a"]["reported_value"]) == pytest.approx(1828.775 / 420.066, rel=1e-3)  # ML.ENERGY v1
    assert float(rows["I16"]["reported_value"]) == pytest.approx(211.086 / 3600, rel=1e-2)
    assert float(rows["I24"]["reported_value"]) == pytest.approx(358 / 2400, rel=1e-2)  # Morrison Table 3
    # MLPerf v4.1 DGX-H100 (8 GPUs, 4 TP2 replicas): system tokens/s divided by 8 GPUs.
    assert float(rows["I21"]["reported_value"]) == pytest.approx(24524.9 / 8, rel=1e-9)
    assert float(rows["I22a"]["reported_value"]) == pytest.approx(21605.79 / 8, rel=1e-9)


def test_accelerator_list_covers_hardware_db_and_published_hardware():
    assert {"b200", "a100-pcie-80gb", "h100-sxm", "a100-40gb", "v100"} <= ACCELERATORS
    rows = _by_id(inference())
    assert rows["I19"]["accelerator"] == rows["I20"]["accelerator"] == rows["I23"]["accelerator"] == "b200"
    assert rows["I14a"]["accelerator"] == "a100-pcie-80gb"  # ML.ENERGY v1: Chameleon gpu_a100_pcie, A100 80GB
    for rid in ("I21", "I22a", "I22b", "I22c"):
        assert rows[rid]["gpus_per_replica"] == "2" and rows[rid]["precision"] == "fp8", rid  # NVIDIA TP2 config


# --- claims.csv ----------------------------------------------------------------------------------------------------

def test_claims_columns_and_values():
    assert _read("claims.csv")[0] == CLAIM_COLUMNS
    rows = _by_id(claims())
    assert len(rows) == len(claims())
    for r in claims():
        assert r["claim"].strip() and r["source"].strip() and r["topic"].strip(), r["id"]
        if r["quoted_value"]:
            assert float(r["quoted_value"]) > 0, r["id"]
    assert float(rows["C01"]["quoted_value"]) == 2.1e25
    assert float(rows["R02"]["quoted_value"]) == 10715  # EIA FAQ, 2020
    assert rows["R03"]["quoted_value"] == ""  # no source found: stays missing


def test_attention_score_claims_match_arithmetic():
    rows = _by_id(claims())
    assert 8192**2 == pytest.approx(float(rows["C19"]["quoted_value"]), rel=0.01)
    assert 128_000**2 == pytest.approx(float(rows["C20"]["quoted_value"]), rel=0.01)
