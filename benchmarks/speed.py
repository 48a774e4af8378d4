"""Speed of the estimator: cold start of the estimate command, warm estimates, and sweep_training throughput.

Run: python -m benchmarks.speed [--baseline DIR]  -> prints a table and writes benchmarks/results/speed.json.
(a) wall time of `estimate --params 1e12 --tokens 13e12 --json` in a fresh interpreter, median of 5;
(b) warm `estimate_training` with the automatic layout search (1T/13T default cluster; 70B on 2,048 GPUs) and
    with a fixed layout, median of 15;
(c) sweep_training configurations per second for 1e5 and 1e6 configurations.
``--baseline DIR`` runs (a) and (b) also on another checkout of the project (e.g. a `git worktree` of an older
commit) in the same run, so the two are compared on the same machine under the same load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "speed.json"
ARGS = ["--params", "1e12", "--tokens", "13e12", "--json"]
WARM_CASES = {"auto layout, 1e12 params, 13e12 tokens": {"params": 1e12, "tokens": 13e12},
              "auto layout, 70e9 params on 2,048 GPUs": {"params": 70e9, "tokens": 2e12, "gpus": 2048},
              "fixed layout, 70e9 params TP8 PP4 DP64": {"params": 70e9, "tokens": 2e12, "gpus": 2048, "tp": 8,
                                                         "pp": 4, "dp": 64}}
WARM_SCRIPT = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from estimator.training import estimate_training
cases = json.loads(sys.argv[2]); out = {}
for name, kw in cases.items():
    estimate_training(**kw)
    ts = []
    for _ in range(15):
        t = time.perf_counter(); estimate_training(**kw); ts.append(time.perf_counter() - t)
    out[name] = statistics.median(ts)
print(json.dumps(out))
"""


def cold_start_s(root: Path, runs: int = 5) -> list[float]:
    """Wall seconds of the estimate command in a fresh interpreter, importing the checkout at ``root``."""
    code = f"import sys; sys.path.insert(0, {str(root)!r}); from estimator.cli import main; main({ARGS!r})"
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=root)
        times.append(time.perf_counter() - t0)
    return times


def warm_s(root: Path) -> dict[str, float]:
    """Median seconds of warm estimate_training calls (one process, after one warm-up call each)."""
    r = subprocess.run([sys.executable, "-c", WARM_SCRIPT, str(root), json.dumps(WARM_CASES)], check=True,
                       capture_output=True, text=True, cwd=root)
    return json.loads(r.stdout)


def sweep_rate(n: int, seed: int = 0) -> tuple[float, float]:
    """(configurations per second, seconds) of one sweep_training call over ``n`` random configurations."""
    from estimator.sweep import sweep_training

    rng = np.random.default_rng(seed)
    params = rng.choice(np.geomspace(1e9, 1e12, 50), n)
    tokens = rng.uniform(1e12, 2e13, n)
    gpus = rng.choice([512, 1024, 2048, 4096, 8192], n)
    pp = rng.choice([1, 2, 4, 8], n)
    sweep_training(params[:100], tokens[:100], gpus[:100], tp=8, pp=pp[:100])  # warm-up (CSV caches)
    t0 = time.perf_counter()
    df = sweep_training(params, tokens, gpus, tp=8, pp=pp)
    dt = time.perf_counter() - t0
    if len(df) != n:
        raise RuntimeError(f"sweep returned {len(df)} rows for {n} configurations")
    return n / dt, dt


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="another checkout to time in the same run")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    here = Path(__file__).resolve().parents[1]
    roots = {"this": here} | ({"baseline": a.baseline.resolve()} if a.baseline else {})
    res: dict = {"measured_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "python": platform.python_version(), "machine": platform.machine(), "cpu": platform.processor(),
                 "command": "estimate " + " ".join(ARGS), "checkouts": {k: str(v) for k, v in roots.items()},
                 "cold_start_s": {}, "warm_estimate_s": {}, "sweep": {}}
    for name, root in roots.items():
        cold = cold_start_s(root)
        res["cold_start_s"][name] = {"median": statistics.median(cold), "runs": cold}
        res["warm_estimate_s"][name] = warm_s(root)
    for n in (100_000, 1_000_000):
        rate, dt = sweep_rate(n)
        res["sweep"][str(n)] = {"configs_per_s": rate, "seconds": dt}
    print(f"{'measure':<58}" + "".join(f"{k:>14}" for k in roots))
    print(f"{'cold start, median of 5 (s)':<58}" + "".join(f"{res['cold_start_s'][k]['median']:>14.3f}"
                                                           for k in roots))
    for case in WARM_CASES:
        print(f"{'warm ' + case + ' (ms)':<58}" + "".join(f"{res['warm_estimate_s'][k][case] * 1e3:>14.2f}"
                                                          for k in roots))
    for n, v in res["sweep"].items():
        print(f"{'sweep_training ' + n + ' configs (configs/s)':<58}{v['configs_per_s']:>14,.0f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
