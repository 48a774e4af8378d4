"""The fully specified serving benchmark: every row predicted, scored beside the roofline baseline, the power fit
reproducible and transferring across GPU generations."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import inference_bench as ib
from estimator.hardware import assumption


@pytest.fixture(scope="module")
def full():
    return ib.run_full_settings()


def test_every_fully_specified_row_is_predicted(full):
    assert len(full) == len(ib.load_full_settings()) >= 126
    assert (full["why_na"] == "").all(), full.loc[full["why_na"] != "", ["name", "why_na"]].to_string()
    assert full["error"].notna().all() and full["baseline_error"].notna().all()


def test_rows_carry_sources():
    df = ib.load_full_settings()
    assert df["source"].str.len().min() > 40
    assert set(df["batching"]) <= {"static", "continuous"}


def test_power_beats_baseline_and_meets_target(full):
    s = ib.score_full_settings(full).set_index(["metric", "split", "group"])
    for metric in ("gpu_power_w",):
        row = s.loc[(metric, "held-out", "all")]
        assert row["ours_median_abs"] <= 0.12 < row["baseline_median_abs"]


def test_throughput_and_ttft_beat_the_roofline_baseline(full):
    s = ib.score_full_settings(full).set_index(["metric", "split", "group"])
    for metric in ("tokens_per_second_per_gpu", "ttft_ms", "batch_prefill_ms"):
        row = s.loc[(metric, "held-out", "all")]
        assert row["ours_median_abs"] < row["baseline_median_abs"]


def test_shipped_memory_power_share_is_the_a100_fit_and_transfers_to_h100():
    k = ib.fit_power_share(("a100-40gb",))
    assert k == pytest.approx(float(assumption("memory_bound_power_share").value), abs=0.006)
    rows = [r for r in ib.load_full_settings().to_dict("records") if r["metric"] == "gpu_power_w"]
    h100 = [abs(ib.predicted_full(ib._estimate_row(r), r, k) / r["value"] - 1) for r in rows if r["gpu"] == "h100-sxm"]
    assert len(h100) >= 10 and float(np.median(h100)) <= 0.12  # fitted on A100, scored on H100


def test_shipped_time_constants_are_their_fits():
    got = ib.fit_time_constants()
    assert set(got) == set(ib.FIT_GRIDS)
    for key, value in got.items():
        assert value == pytest.approx(float(assumption(key).value), rel=1e-6), key
        assert ib.constant_fit_rows(ib.load_full_settings())[key], key  # every constant names its fit rows


def test_fit_rows_and_held_out_rows_are_disjoint_and_held_out_meets_targets(full):
    fit = ib.fit_rows()
    assert 0 < len(fit) < len(full) / 2
    s = ib.score_full_settings(full, fit).set_index(["metric", "split", "group"])
    targets = {"tokens_per_second_per_gpu": 0.10, "ttft_ms": 0.10, "batch_prefill_ms": 0.10, "gpu_power_w": 0.12,
               "energy_per_output_token_j": 0.12}  # issue 13's targets, on rows no constant was fitted on
    for metric, target in targets.items():
        assert s.loc[(metric, "held-out", "all"), "ours_median_abs"] <= target, metric
