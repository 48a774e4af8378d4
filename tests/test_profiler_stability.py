"""Local-path soundness: a noisy point is measured again until its spread is small, or flagged; threads are pinned
and recorded; fit leaves flagged points out and warns when the held-out error is over 25%."""

from __future__ import annotations

import itertools
import time

from profiler import measure
from profiler.backend import open_backend
from profiler.measure import RepeatConfig, spread, time_fn


def _sleeper(durations):
    it = itertools.cycle(durations)

    def step():
        end = time.perf_counter() + next(it)
        while time.perf_counter() < end:
            pass

    return step


def test_spread_is_p90_minus_p10_over_median():
    assert spread([1.0] * 10) == 0.0
    assert spread([1.0, 2.0]) > 0.5 and spread([3.0]) == 0.0


def _replay(monkeypatch, durations):
    """Per-iteration times replayed from ``durations`` (the real timer's window is kept): deterministic on a
    loaded machine, where a busy-wait's own spread depends on what else runs."""
    real = measure._timed_cpu

    def fake(step, n, mon, name):
        _, m = real(lambda: None, n, mon, name)
        it = itertools.cycle(durations)
        return [next(it) for _ in range(n)], m

    monkeypatch.setattr(measure, "_timed_cpu", fake)


def test_noisy_point_is_repeated_then_flagged(monkeypatch):
    _replay(monkeypatch, [2e-4, 8e-4])
    cfg = RepeatConfig(warmup_iters=0, min_iters=10, min_window_s=0.0, counter_periods=0, max_spread=0.05,
                       max_windows=3)
    t = time_fn(_sleeper([1e-5]), open_backend("cpu"), cfg)
    assert t.windows == 3 and t.unstable and t.spread_rel > 0.05


def test_steady_point_takes_one_window(monkeypatch):
    _replay(monkeypatch, [1e-3])
    cfg = RepeatConfig(warmup_iters=1, min_iters=10, min_window_s=0.0, counter_periods=0, max_spread=0.5,
                       max_windows=3)
    t = time_fn(_sleeper([1e-5]), open_backend("cpu"), cfg)
    assert t.windows == 1 and not t.unstable and t.time_s_median == 1e-3


def test_fit_warns_and_records_a_high_holdout_error(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from profiler import fit

    src = Path(__file__).parent / "data" / "profiler" / "cpu-quick"
    run = tmp_path / "run"
    shutil.copytree(src, run)
    recs = [json.loads(x) for x in (run / "measurements.jsonl").read_text().splitlines() if x.strip()]
    held = fit.holdout_ids([r for r in recs if r.get("status") == "ok"])
    for r in recs:  # held-out points 3x slower than the fit set saw: the held-out error must be reported and warned
        if r["shape_id"] in held and r.get("time_s_median"):
            r["time_s_median"] *= 3
    recs[0]["unstable"] = True
    (run / "measurements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    cal = fit.fit_calibration(run)
    assert cal["holdout"]["time_median_abs_rel_err"] > 0.25
    assert cal["warnings"] and "over 25%" in cal["warnings"][0]
    assert any("unstable" in n for n in cal["notes"])
    assert cal["schema_version"] == 2 and cal["holdout"]["time_p90_abs_rel_err"] is not None


def test_sweep_pins_and_records_threads(tmp_path):
    import json
    import subprocess
    import sys

    import pytest

    pytest.importorskip("torch")
    from profiler import sweep

    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "profiler.cli", "sweep", "--device", "cpu", "--out", str(out),
                    "--no-progress", "--no-codecarbon", "--threads", "1", "--kind", "gemm", "--shape",
                    "m=64,n=64,k=64", "--mode", "fwd", "--dtype", "fp32"], check=True, capture_output=True)
    rec = sweep.read_records(out / sweep.MEASUREMENTS)[0]
    assert rec["torch_threads"] == 1 and rec["windows"] >= 1 and "unstable" in rec and rec["time_spread_rel"] >= 0
    run = json.loads((out / sweep.RUN_FILE).read_text())
    assert run["config"]["threads"] == 1
    assert run["environment"]["torch_threads"] == 1
