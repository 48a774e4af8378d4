"""The end-to-end efficiency of accelerators without calibrated kernels (V100, TPU v3) is fitted on other
organisations' published throughput than the runs it is scored on, and the shipped table equals the derivation."""

from __future__ import annotations

import pytest

from benchmarks import accelerator_efficiency as fit
from benchmarks.throughput_bench import source_of
from estimator import estimate_training
from hardware_db import accelerator_efficiency

REGENERATE = ("re-run `python -m benchmarks.accelerator_efficiency --write` and commit "
              "hardware_db/accelerator_efficiency.csv")


@pytest.fixture(scope="module")
def derived():
    return fit.factors()


def test_table_equals_the_derivation(derived):
    assert fit.OUT_CSV.read_text(encoding="utf-8") == fit.table(derived), REGENERATE


def test_fit_rows_come_from_other_organisations_than_the_scored_runs(derived):
    held_out_orgs = {"v100": "OpenAI", "tpu-v3": "DeepMind"}
    for acc, f in derived.items():
        orgs = {source_of(i)[1] for i in f["ids"]}
        assert held_out_orgs[acc] not in orgs and f["n"] >= 5


def test_the_factor_applies_to_uncalibrated_accelerators_only():
    v100 = estimate_training("gpt3-175b", tokens=300e9, gpu="v100", gpus=1024, flash_attention=False)
    off = estimate_training("gpt3-175b", tokens=300e9, gpu="v100", gpus=1024, flash_attention=False,
                            accelerator_efficiency=1.0)
    assert v100.gpu_hours.magnitude == pytest.approx(off.gpu_hours.magnitude / accelerator_efficiency("v100").factor,
                                                     rel=0.02)
    assert "accelerator_efficiency" in v100.assumptions
    h100 = estimate_training("llama2-7b", tokens=2e12, gpu="h100-sxm", gpus=64)
    assert "accelerator_efficiency" not in h100.assumptions
