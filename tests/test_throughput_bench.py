"""The throughput benchmark predicts published rows in their own convention, and the report shows every row."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import cli
from benchmarks import throughput_bench as thb

# NeMo 24.07 Llama 2 7B (tokens/s), Llama 3 paper Table 4 (MFU, PaLM definition), PaLM Table 3 GPT-3 (MFU as 6N,
# layout not published), MT-NLG (tokens/s at TP8 PP35), OPT (TFLOP/s convention unstated)
FEW = ["nemo24.07-h100-llama2-7b", "llama3-405b-paper-8192g", "gpt3-175b-palm-table3", "mt-nlg-530b-280nodes",
       "opt-175b-paper"]


@pytest.fixture(scope="module")
def few() -> pd.DataFrame:
    return thb.run_throughput(FEW).set_index("id")


def test_every_row_has_a_source_and_one_metric():
    rows = thb.load_rows()
    assert len(rows) == 45
    for r in rows.to_dict("records"):
        src, org = thb.source_of(r["id"])
        assert src and org
        assert thb.primary_metric(r) in thb.METRIC_ORDER
    # the rows the data README lists without a layout are exactly the ones scored apart
    no_layout = {r["id"] for r in rows.to_dict("records") if not thb.layout_published(r)}
    assert no_layout == {"palm-540b-paper", "gpt3-175b-palm-table3", "gopher-280b-palm-table3", "opt-175b-paper",
                         "bloomberggpt-50b-paper", "llama-65b-paper"}


def test_metrics_and_conventions_of_a_few_rows(few):
    assert few.loc["nemo24.07-h100-llama2-7b", "metric"] == "tokens_per_s_per_gpu"
    assert few.loc["nemo24.07-h100-llama2-7b", "reported"] == 16934  # NeMo 24.07 table, tokens/s/GPU
    assert few.loc["llama3-405b-paper-8192g", "metric"] == "mfu"
    assert "PaLM definition" in few.loc["llama3-405b-paper-8192g", "notes"]
    assert "MFU as 6N" in few.loc["gpt3-175b-palm-table3", "notes"]  # PaLM Table 3: 6N, no attention
    assert not few.loc["gpt3-175b-palm-table3", "layout_published"]
    assert not few.loc["opt-175b-paper", "scored"]  # "up to 147 TFLOP/s", convention unstated
    assert few["scored"].sum() == 4
    for rid, r in few.iterrows():
        assert r["failed"] == "", rid
        assert r["predicted"] > 0 and r["error"] == pytest.approx(r["predicted"] / r["reported"] - 1)


def test_published_layout_is_the_layout_used(few):
    assert few.loc["mt-nlg-530b-280nodes", "layout_used"].startswith("TP8 PP35 CP1 EP1 DP8 ")
    assert few.loc["nemo24.07-h100-llama2-7b", "layout_used"].startswith("TP1 PP1 CP1 EP1 DP8 ")
    # NVIDIA's tuned recipe on H100: the estimator is within 15% (NeMo 24.07 table)
    assert abs(few.loc["nemo24.07-h100-llama2-7b", "error"]) < 0.15


def test_baseline_is_40_percent_mfu_with_attention():
    from estimator.model import param_count
    from estimator.presets import load_preset

    row = thb.load_rows().set_index("id").loc["nemo24.07-h100-llama2-7b"].to_dict()
    spec = load_preset("llama2-7b").with_(seq_len=4096)
    per_token = 6 * param_count(spec).active + 12 * spec.layers * spec.d_model * 4096
    assert thb.baseline(row, "tokens_per_s_per_gpu", spec) == pytest.approx(0.4 * 1979e12 / per_token, rel=0.01)
    assert thb.baseline(row, "mfu", spec) == 0.4


def test_a_failing_row_is_shown_with_its_message(monkeypatch):
    row = thb.load_rows().set_index("id").loc["nemo24.07-h100-llama2-7b"].to_dict() | {
        "id": "nemo24.07-h100-llama2-7b", "accelerator": "no-such-gpu"}
    rec = thb.predict_row(row)
    assert rec["predicted"] is None and rec["failed"] and "\n" not in rec["failed"]
    summ = thb.summarise(pd.DataFrame([rec]))
    assert summ.empty  # not scored, but present in the per-row table


def test_cli_writes_the_throughput_section(tmp_path, monkeypatch, capsys):
    real = thb.run_throughput
    monkeypatch.setattr(thb, "run_throughput", lambda ids=None: real(FEW))
    assert cli.main(["--out", str(tmp_path), "--only", "throughput"]) == 0
    md = (tmp_path / "REPORT-throughput.md").read_text()
    assert "## Training throughput at the published layout" in md and "not published" in md
    csv = pd.read_csv(tmp_path / "results" / "throughput_predictions.csv")
    assert set(csv["id"]) == set(FEW)
    assert "layout_published" in capsys.readouterr().out
