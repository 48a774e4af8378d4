"""profile-gpu import vidur: Vidur's measured profiles (tests/data/vidur, a subset of microsoft/vidur@7d47513,
MIT, measured by Vidur's authors) as one measurement record per kernel; then fit and check on them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from estimator.calibration import load_calibration
from profiler import vidur
from profiler.cli import main
from profiler.sweep import read_records

DATA = Path(__file__).parent / "data" / "vidur"
H100 = DATA / "compute" / "h100"
NET = DATA / "network" / "h100_dgx"


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        rc = 0
    except SystemExit as e:
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_every_op_is_its_own_row_with_shape_flops_bytes_and_source():
    recs = vidur.import_vidur([H100], "h100-sxm")
    rows_7b = _csv_rows(H100 / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv")
    mine = [r for r in recs if r["model"] == "meta-llama/Llama-2-7b-hf"]
    assert len(mine) == 10 * len(rows_7b)  # 4 GEMMs + 2 norms, rope, activation, add, embedding per CSV row
    for r in recs:
        assert r["source"]["dataset"] == "vidur" and r["source"]["commit"] == vidur.VIDUR_COMMIT
        assert r["source"]["file"].startswith("compute/h100/") and r["accelerator_id"] == "h100-sxm"
        assert r["tp"] >= 1 and r["bytes_moved"] > 0 and r["time_s_median"] > 0 and r["dtype"] == "fp16"
    # one row checked by hand: Llama-2-7B QKV projection at TP 2 (d 4096, 32 heads, head_dim 128)
    i, row = next((i, x) for i, x in enumerate(rows_7b) if x["num_tensor_parallel_workers"] == "2"
                  and x["num_tokens"] == "512")
    qkv = next(r for r in mine if r["op"] == "attn_pre_proj" and r["source"]["row"] == i)
    assert qkv["params"] == {"m": 512, "n": 3 * 4096 // 2, "k": 4096}
    assert qkv["flops_analytic"] == 2 * 512 * 6144 * 4096
    assert qkv["bytes_moved"] == 2 * (512 * 4096 + 4096 * 6144 + 512 * 6144)
    assert qkv["time_s_median"] == pytest.approx(float(row["time_stats.attn_pre_proj.median"]) * 1e-3)
    down = next(r for r in mine if r["op"] == "mlp_down_proj" and r["source"]["row"] == i)
    assert down["params"] == {"m": 512, "n": 4096, "k": 11008 // 2}
    act = next(r for r in mine if r["op"] == "mlp_act" and r["source"]["row"] == i)
    assert act["kernel"] == "activation" and act["bytes_moved"] == 2 * 3 * 512 * 11008 // 2  # SiLU-and-multiply


def test_model_folder_and_gpu_folder_and_network():
    one = vidur.import_vidur([H100 / "microsoft" / "phi-2"], "h100-sxm")
    assert {r["model"] for r in one} == {"microsoft/phi-2"}
    assert {r["op"] for r in one if r["kind"] == "gemm"} == set(vidur.GEMM_OPS)
    allm = vidur.import_vidur([H100], "h100-sxm")
    assert len({r["model"] for r in allm}) == 3
    net = vidur.import_vidur([NET], "h100-sxm")
    ar = [r for r in net if r["kernel"] == "all_reduce"]
    src = _csv_rows(NET / "all_reduce.csv")
    assert len(ar) == len(src)
    assert ar[0]["params"]["bytes"] == 2 * int(src[0]["size"])  # size is fp16 elements
    assert ar[0]["bytes_on_wire"] == pytest.approx(ar[0]["params"]["bytes"] * 2 * (ar[0]["params"]["world_size"] - 1)
                                                   / ar[0]["params"]["world_size"])


def test_cli_import_fit_check_roundtrip(tmp_path, capsys):
    out = tmp_path / "vidur.jsonl"
    rc, o, e = _run(["import", "vidur", str(H100), str(NET), "--gpu", "h100-sxm", "--out", str(out)], capsys)
    assert rc == 0, e
    assert "measured by Vidur's authors" in o
    recs = read_records(out)
    assert len(recs) > 800
    cal_path = tmp_path / "cal.json"
    rc, o, e = _run(["fit", str(out), "--out", str(cal_path)], capsys)
    assert rc == 0, e
    cal = json.loads(cal_path.read_text())
    assert cal["schema_version"] == 2 and cal["data_source"]["dataset"] == "vidur"
    assert "not by this project" in cal["data_source"]["measured_by"]
    assert cal["hardware"]["accelerator_id"] == "h100-sxm"
    folds = cal["kernel_model"]["fp16"]["gemm_holdout_folds"]
    assert {f["held_out"] for f in folds} == {"meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf",
                                              "microsoft/phi-2"}
    assert all(f["held_out"] not in f["fit_on"] for f in folds)
    assert cal["kernel_model"]["fp16"]["gemm"]["form"] != "linear"  # the data picks a roofline over the linear form
    assert "all_reduce" in cal["collectives"] and set(cal["collectives"]["all_reduce"]["by_world_size"]) == {
        "2", "4", "8"}
    load_calibration(cal_path)
    rows_file = tmp_path / "rows.jsonl"
    rc, o, e = _run(["check", str(cal_path), str(out), "--json", "--rows", str(rows_file)], capsys)
    assert rc == 0, e
    res = json.loads(o)
    keys = {"n", "time_median_abs_rel_err", "time_p90_abs_rel_err", "time_worst_abs_rel_err"}
    assert set(res) == keys | {"by_kind"}  # exactly the contract's keys (issue 12)
    rows = [json.loads(x) for x in rows_file.read_text().splitlines()]
    assert {"gemm", "norm", "rope", "activation", "add", "embedding", "all_reduce"} <= set(res["by_kind"])
    for s in res["by_kind"].values():
        assert set(s) == keys
        assert 0 <= s["time_median_abs_rel_err"] <= s["time_p90_abs_rel_err"] <= s["time_worst_abs_rel_err"]
    assert res["n"] == len(rows) == sum(s["n"] for s in res["by_kind"].values())
    assert all(r["predicted_s"] > 0 and r["measured_s"] > 0 for r in rows)
    assert res["by_kind"]["gemm"]["time_median_abs_rel_err"] < 0.15  # in-sample GEMMs: a sanity bound
    rc, o, e = _run(["check", str(cal_path), str(out)], capsys)
    assert rc == 0 and "gemm: n " in o


def _one_error_line(rc: int, err: str) -> None:
    assert rc == 2
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and "error:" in lines[0] and ";" in lines[0], err


@pytest.mark.parametrize("make", ["empty", "foreign", "nan", "negative", "missing"])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make):
    d = tmp_path / "in"
    d.mkdir()
    src = H100 / "microsoft" / "phi-2" / "mlp.csv"
    if make == "foreign":
        (d / "mlp.csv").write_text("a,b\n1,2\n")
    elif make in ("nan", "negative"):
        text = src.read_text().splitlines()
        header = text[0].split(",")
        col = header.index("time_stats.mlp_up_proj.median")
        row = text[1].split(",")
        row[col] = "nan" if make == "nan" else "-1"
        (d / "mlp.csv").write_text("\n".join([text[0], ",".join(row)]) + "\n")
    target = tmp_path / "nope" if make == "missing" else d
    rc, _, err = _run(["import", "vidur", str(target), "--gpu", "h100-sxm", "--out", str(tmp_path / "o.jsonl")],
                      capsys)
    _one_error_line(rc, err)
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_gpu_and_bad_check_inputs(tmp_path, capsys):
    rc, _, err = _run(["import", "vidur", str(NET), "--gpu", "h1000", "--out", str(tmp_path / "o.jsonl")], capsys)
    _one_error_line(rc, err)
    rc, _, err = _run(["check", str(tmp_path / "none.json"), str(tmp_path / "m.jsonl")], capsys)
    _one_error_line(rc, err)
    foreign = tmp_path / "m.jsonl"
    foreign.write_text('{"hello": 1}\n')
    cal = Path(__file__).parents[1] / "hardware_db" / "calibrations" / "h100-sxm.json"
    rc, _, err = _run(["check", str(cal), str(foreign)], capsys)
    _one_error_line(rc, err)


def test_fit_needs_two_models_to_score(tmp_path, capsys):
    out = tmp_path / "one.jsonl"
    assert _run(["import", "vidur", str(H100 / "microsoft" / "phi-2"), "--gpu", "h100-sxm", "--out", str(out)],
                capsys)[0] == 0
    rc, _, err = _run(["fit", str(out), "--out", str(tmp_path / "c.json")], capsys)
    _one_error_line(rc, err)
    assert "nothing to score" in err


def test_import_is_deterministic(tmp_path):
    a = vidur.import_vidur([DATA], "h100-sxm")
    shutil.copytree(DATA, tmp_path / "copy")
    b = vidur.import_vidur([tmp_path / "copy"], "h100-sxm")
    assert a == b  # sources are named from Vidur's compute/ or network/ folder on, not the local path
