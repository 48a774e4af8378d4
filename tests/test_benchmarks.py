"""The benchmark runs end to end and its headline errors do not regress (no single run is pinned)."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import cli
from benchmarks import training_bench as tb
from benchmarks.claims import check_all

BASELINE = json.loads((Path(tb.__file__).parent / "results" / "baseline_errors.json").read_text())


@pytest.fixture(scope="module")
def training():
    long, runs = tb.run_training()
    return long, runs, tb.summarise(long).set_index("metric")


def test_gpu_hours_median_error_does_not_regress(training):
    _, _, s = training
    assert s.loc["gpu_hours", "n_predicted"] >= 20
    assert s.loc["gpu_hours", "ours_median_abs"] <= BASELINE["gpu_hours_median_abs_max"]


def test_measured_energy_median_error_does_not_regress(training):
    long, _, s = training
    assert s.loc["energy_mwh", "n_predicted"] >= 3
    assert s.loc["energy_mwh", "ours_median_abs"] <= BASELINE["energy_mwh_measured_median_abs_max"]
    used = long[(long["metric"] == "energy_mwh") & long["in_summary"]]
    assert set(used["basis"]) <= {"measured", "partial_measured"}


def test_tdp_formula_rows_are_excluded_from_summary(training):
    long, _, _ = training
    e = long[long["metric"] == "energy_mwh"]
    assert not e.loc[e["basis"] == "tdp_formula", "in_summary"].any()
    assert (e["basis"] == "tdp_formula").sum() == 7


def test_every_run_is_recorded_and_failures_carry_a_reason(training):
    _, runs, _ = training
    assert len(runs) == len(tb.load_runs())
    no_tokens = runs[runs["id"] == "t5-11b"].iloc[0]
    assert "token" in no_tokens["error"]
    assert runs.loc[runs["id"] == "llama3-8b", "notes"].iloc[0].count("estimator chose") == 1


def test_baseline_is_6nd_over_40_percent_of_peak():
    row = tb.load_runs().set_index("id").loc["llama3.1-405b"].to_dict() | {"id": "llama3.1-405b"}
    b = tb.baseline(row)
    expect = 6 * row["active_params"] * row["tokens"] / (989.4e12 * 0.4) / 3600
    assert b["gpu_hours"] == pytest.approx(expect, rel=1e-9)
    assert b["days"] == pytest.approx(expect / 16384 / 24, rel=1e-9)


def test_pue_override_changes_facility_energy_only():
    row = tb.load_runs().set_index("id").loc["gpt3-175b"].to_dict() | {"id": "gpt3-175b"}
    a, b = tb.predict_run(row), tb.predict_run(row, pue=2.2)
    assert b["pred"]["energy_mwh"] == pytest.approx(2 * a["pred"]["energy_mwh"], rel=1e-6)
    assert b["pred"]["gpu_hours"] == pytest.approx(a["pred"]["gpu_hours"], rel=1e-12)


def test_claims_recomputed():
    c = {x.id: x for x in check_all()}
    assert c["C19"].ours == 8192**2 and c["C19"].verdict == "holds"
    assert c["C07"].ours == pytest.approx(2.1e25 / 8.2e9 / (365.25 * 86400), rel=1e-9)
    assert c["C07"].verdict.startswith("does not hold")
    assert c["C06"].verdict.startswith("does not hold")
    assert 0.6 < c["C21"].ours < 0.7
    assert all(x.verdict != "error" for x in c.values())


def test_cli_writes_report_and_rejects_bad_input(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path), "--only", "training"]) == 0
    assert (tmp_path / "REPORT-training.md").read_text().count("baseline") >= 2
    assert not (tmp_path / "REPORT.md").exists()  # a partial run leaves the full report alone
    assert (tmp_path / "results" / "training_predicted_vs_reported.png").stat().st_size > 1000
    assert len(pd.read_csv(tmp_path / "results" / "training_predictions.csv")) > 50
    capsys.readouterr()
    for bad, names in ((["--pue", "0.5"], "--pue"), (["--only", "nonsense"], "--only"),
                       (["--grid-intensity", "-1"], "--grid-intensity"), (["--pue", "x"], "--pue")):
        with pytest.raises(SystemExit) as e:
            cli.main(["--out", str(tmp_path), *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and names in err and "; " in err, err


def test_default_output_is_the_current_directory_not_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--only", "claims"]) == 0
    assert (tmp_path / "benchmark-report" / "REPORT-claims.md").is_file()
    assert (tmp_path / "benchmark-report" / "results" / "claims.csv").is_file()
    assert "benchmark-report" in capsys.readouterr().out


def test_without_matplotlib_the_report_is_written_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main(["--out", str(tmp_path), "--only", "training"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("wrote ") and cli.NO_PLOT_NOTE in out
    assert not (tmp_path / "results" / "training_predicted_vs_reported.png").exists()
    assert "matplotlib is not installed" in (tmp_path / "REPORT-training.md").read_text()


@pytest.mark.parametrize("where", ["file-as-parent", "file-as-out"])
def test_unwritable_output_is_one_error_line(tmp_path, capsys, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "sub" if where == "file-as-parent" else blocker
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(out), "--only", "claims"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--out DIR" in err, err


def test_disk_full_mid_run_is_one_error_line(tmp_path, monkeypatch, capsys):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results" / "claims.csv"))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path), "--only", "claims"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and "disk is full" in err and err.count("\n") == 1


def test_offline_throughput_rows_run_at_the_largest_batch_that_fits():
    from benchmarks import inference_bench as ib

    rows = ib.load_measurements().set_index("id")
    assert ib.is_offline_throughput(rows.loc["I23"].to_dict())  # MLPerf Offline, batch unpublished
    assert not ib.is_offline_throughput(rows.loc["I22a"].to_dict())  # Server scenario
    df = ib.run_inference().set_index("id")
    assert "offline: largest batch that fits" in df.loc["I23", "notes"]
    assert "batch default" in df.loc["I22a", "notes"]  # the rule never touches non-offline rows


def test_a_bug_is_one_error_line_with_exit_1(tmp_path, monkeypatch, capsys):
    def broken(*_a, **_k):
        raise KeyError("shape_id")

    monkeypatch.delenv("ESTIMATE_DEBUG", raising=False)
    monkeypatch.setattr(cli, "build", broken)
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.startswith("error: internal error: KeyError") and err.count("\n") == 1


def test_gpu_hours_are_scored_only_on_one_pretraining_pass(training, tmp_path, capsys):
    """hours_cover (benchmarks/data/README.md): pretraining_pass and derived_gpus_x_days are scored; distillation
    (Llama 3.2 card), post-training (Llama 3.1 card), downtime (PaLM Sec 4, BLOOM) are shown, not scored."""
    long, _, s = training
    g = long[long["metric"] == "gpu_hours"].set_index("id")
    covers = g["basis"].str.rsplit(", ", n=1).str[-1]
    assert (g["in_summary"] == covers.isin(tb.COMPARABLE_HOURS_COVER)).all()
    for rid in ("llama3.2-1b", "llama3.1-405b", "palm-540b", "bloom-176b", "code-llama-aggregate", "falcon-180b"):
        assert not g.loc[rid, "in_summary"], rid
    for rid in ("llama3-8b", "deepseek-v3", "gpt3-175b", "mpt-7b"):
        assert g.loc[rid, "in_summary"], rid
    assert s.loc["gpu_hours", "n_reported"] == int(g["in_summary"].sum())
    assert cli.main(["--out", str(tmp_path), "--only", "training"]) == 0
    md = (tmp_path / "REPORT-training.md").read_text()
    assert "not one pre-training pass (shown, not scored)" in md and "with_distillation" in md
