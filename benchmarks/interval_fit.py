"""Fit the training GPU-hours interval from published runs, and check it on organisations it was not fitted on.

A low/high range is a claim about where the truth lies (issue 14, item 4). Here it is made from the estimator's own
record: over the comparable published runs of ``benchmarks/data/training_runs.csv`` (one pre-training pass,
``hours_cover`` = ``pretraining_pass`` or ``derived_gpus_x_days``; see ``benchmarks.training_bench``), the ratio
``reported GPU-hours / predicted GPU-hours`` of each run the estimator predicts blind. The interval is

    [predicted x low, predicted x high],  low = r_(k_lo), high = r_(k_hi) of the n sorted ratios,
    k_lo = floor(0.1 (n + 1)), k_hi = ceil(0.9 (n + 1))

the split-conformal order statistics for an 80% two-sided interval (Lei et al. 2018, "Distribution-free predictive
inference for regression", Sec 2.2; Vovk et al. 2005): with exchangeable runs a new run falls inside with
probability at least 80%, where the plain 10th/90th percentiles of n ratios are too narrow for small n (over these
runs they held 68% of held-out runs). Whether it holds
runs it has not seen is checked by leave-one-organisation-out cross-validation: for each organisation, the two
percentiles are fitted on the other organisations' runs and that organisation's runs are checked against them (an
organisation's runs share a framework, a cluster and a way of counting hours, so holding out single runs would
leak). The coverage reported is the share of held-out runs inside their interval, over all runs (and, beside it,
the mean over organisations). Target: 70-90%.

The factors live in ``hardware_db/assumptions.csv`` as ``training_time_interval`` (value 1.0, low, high); the
estimator reads them through ``estimator.ranges.training_time_factors``. They depend on the time model, so when
the model changes, re-run

    python -m benchmarks.interval_fit            # prints the fit, the CV coverage and the row for assumptions.csv
    python -m benchmarks.interval_fit --write    # also replaces that row in hardware_db/assumptions.csv

(``tests/test_interval_fit.py`` fails until the stored row equals the derivation.)
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEY = "training_time_interval"
LOW_Q, HIGH_Q = 0.10, 0.90
ASSUMPTIONS_CSV = Path(__file__).resolve().parents[1] / "hardware_db" / "assumptions.csv"

# Who ran each published run (the organisation that trained it, from the run's source in training_runs.csv): the
# cross-validation groups. Runs not listed here are not used; tests check every comparable predicted run is.
ORGANISATION = {
    "gpt3-175b": "OpenAI", "t5-11b": "Google", "meena-2.6b": "Google", "gshard-600b": "Google",
    "switch-1.5t": "Google", "evolved-transformer-nas": "Google", "bert-base-strubell": "UMass (Strubell)",
    "gopher-280b": "DeepMind", "palm-540b": "Google", "opt-175b": "Meta", "bloom-176b": "BigScience",
    "llama-7b": "Meta", "llama-13b": "Meta", "llama-33b": "Meta", "llama-65b": "Meta", "llama2-7b": "Meta",
    "llama2-13b": "Meta", "llama2-34b": "Meta", "llama2-70b": "Meta", "llama3-8b": "Meta", "llama3-70b": "Meta",
    "llama3.1-8b": "Meta", "llama3.1-70b": "Meta", "llama3.1-405b": "Meta", "llama3.2-1b": "Meta",
    "llama3.2-3b": "Meta", "code-llama-aggregate": "Meta", "deepseek-v3": "DeepSeek", "falcon-180b": "TII",
    "mpt-7b": "MosaicML", "smollm3-3b": "Hugging Face", "bloomberggpt-50b": "Bloomberg",
    "starcoderbase-15b": "BigCode", "glm-130b": "Tsinghua/Zhipu", "pythia-12b": "EleutherAI",
    "pythia-6.9b": "EleutherAI", "mlperf-train-v3.0-gpt3-coreweave": "NVIDIA+CoreWeave",
    "mlperf-train-v3.1-gpt3-eos": "NVIDIA",
}


@dataclass(frozen=True)
class FitRun:
    id: str
    organisation: str
    reported: float
    predicted: float

    @property
    def ratio(self) -> float:
        return self.reported / self.predicted


def fit_runs() -> list[FitRun]:
    """The comparable published runs the estimator predicts, with reported and predicted GPU-hours."""
    from benchmarks import training_bench as tb

    long, _ = tb.run_training()
    g = long[(long["metric"] == "gpu_hours") & long["in_summary"]].dropna(subset=["predicted"])
    missing = sorted(set(g["id"]) - set(ORGANISATION))
    if missing:
        raise KeyError(f"no organisation for comparable runs {missing}; add them to ORGANISATION")
    return [FitRun(r.id, ORGANISATION[r.id], float(r.reported), float(r.predicted)) for r in g.itertuples()]


def factors(ratios: list[float], low_q: float = LOW_Q, high_q: float = HIGH_Q,
            conformal: bool = True) -> tuple[float, float]:
    """(low, high) of reported / predicted, rounded to 2 decimals: the split-conformal order statistics
    r_(floor(low_q (n+1))) and r_(ceil(high_q (n+1))) (clamped to the sample), or with ``conformal=False`` numpy's
    linear-interpolation percentiles."""
    r = np.sort(np.asarray(ratios, dtype=float))
    if conformal:
        n = len(r)
        k_lo = min(n, max(1, math.floor(low_q * (n + 1))))
        k_hi = min(n, max(1, math.ceil(high_q * (n + 1))))
        lo, hi = r[k_lo - 1], r[k_hi - 1]
    else:
        lo, hi = np.quantile(r, [low_q, high_q])
    return round(float(lo), 2), round(float(hi), 2)


@dataclass(frozen=True)
class Fold:
    organisation: str
    low: float
    high: float
    runs: tuple[tuple[str, float, bool], ...]  # (id, ratio, inside)


def cross_validate(runs: list[FitRun], low_q: float = LOW_Q, high_q: float = HIGH_Q,
                   conformal: bool = True) -> list[Fold]:
    """Leave one organisation out: fit on the others, check the held-out organisation's runs."""
    folds = []
    for org in sorted({r.organisation for r in runs}):
        lo, hi = factors([r.ratio for r in runs if r.organisation != org], low_q, high_q, conformal)
        held = tuple((r.id, r.ratio, lo <= r.ratio <= hi) for r in runs if r.organisation == org)
        folds.append(Fold(org, lo, hi, held))
    return folds


def derive(runs: list[FitRun] | None = None) -> dict:
    """The fitted factors, the fit rows and the held-out coverage."""
    runs = runs if runs is not None else fit_runs()
    lo, hi = factors([r.ratio for r in runs])
    folds = cross_validate(runs)
    inside = [ok for f in folds for _, _, ok in f.runs]
    return {"low": lo, "high": hi, "median_ratio": round(statistics.median(r.ratio for r in runs), 2),
            "n_runs": len(runs), "n_organisations": len(folds), "runs": runs, "folds": folds,
            "cv_coverage": sum(inside) / len(inside),
            "cv_coverage_mean_over_orgs": statistics.mean(sum(ok for *_, ok in f.runs) / len(f.runs) for f in folds)}


def assumption_row(d: dict) -> dict:
    """The ``training_time_interval`` row for hardware_db/assumptions.csv."""
    ids = ", ".join(r.id for r in d["runs"])
    orgs = ", ".join(f.organisation for f in d["folds"])
    value = 1.0 if d["low"] <= 1.0 <= d["high"] else d["median_ratio"]
    return {
        "key": KEY, "value": f"{value:g}", "low": f"{d['low']:g}", "high": f"{d['high']:g}",
        "unit": "factor on predicted training GPU-hours and days",
        "source": (f"Derived by benchmarks/interval_fit.py: low/high = split-conformal 80% order statistics "
                   f"(r_floor(0.1(n+1)), r_ceil(0.9(n+1))) of reported / predicted GPU-hours over the {d['n_runs']} "
                   "comparable published runs of benchmarks/data/training_runs.csv "
                   f"(hours_cover pretraining_pass or derived_gpus_x_days) that the estimator predicts: {ids}; "
                   f"{d['n_organisations']} organisations ({orgs}). Leave-one-organisation-out held-out coverage "
                   f"{d['cv_coverage']:.0%} of runs (mean over organisations {d['cv_coverage_mean_over_orgs']:.0%})"),
        "notes": (f"Interval = [predicted x low, predicted x high]; median reported/predicted {d['median_ratio']:g}. "
                  "Used for training ranges when no calibration-specific range applies "
                  "(estimator.ranges.training_time_factors). Re-derive with `python -m benchmarks.interval_fit "
                  "--write` whenever the time model changes (tests/test_interval_fit.py checks it)."),
    }


def _csv_line(row: dict, fieldnames: list[str]) -> str:
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n").writerow(row)
    return buf.getvalue()


def write_row(row: dict, path: Path = ASSUMPTIONS_CSV) -> None:
    """Replace (or append) the ``training_time_interval`` line of assumptions.csv, leaving every other line as is."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    fieldnames = next(csv.reader([lines[0]]))
    new = _csv_line(row, fieldnames)
    out, done = [], False
    for line in lines:
        if line.startswith(KEY + ","):
            out.append(new)
            done = True
        else:
            out.append(line)
    if not done:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(new)
    path.write_text("".join(out), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interval_fit", description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"replace the {KEY} row of hardware_db/assumptions.csv")
    a = p.parse_args(argv)
    d = derive()
    print(f"{'run':<28} {'organisation':<18} {'reported':>12} {'predicted':>12} {'ratio':>6}")
    for r in sorted(d["runs"], key=lambda r: r.ratio):
        print(f"{r.id:<28} {r.organisation:<18} {r.reported:>12,.0f} {r.predicted:>12,.0f} {r.ratio:>6.2f}")
    print(f"\nfit on all {d['n_runs']} runs ({d['n_organisations']} organisations): low {d['low']}, high {d['high']}, "
          f"median ratio {d['median_ratio']}")
    print("\nleave-one-organisation-out:")
    for f in d["folds"]:
        ins = sum(ok for *_, ok in f.runs)
        print(f"  {f.organisation:<18} interval x[{f.low}, {f.high}]  inside {ins}/{len(f.runs)}  "
              + ", ".join(f"{i} {x:.2f}{'' if ok else ' OUT'}" for i, x, ok in f.runs))
    print(f"held-out coverage: {d['cv_coverage']:.0%} of runs, {d['cv_coverage_mean_over_orgs']:.0%} mean over "
          "organisations (target 70-90%)")
    runs = d["runs"]
    for lq, hq in ((0.10, 0.90), (0.05, 0.95)):  # for information only: plain percentiles
        ins = [ok for f in cross_validate(runs, lq, hq, conformal=False) for *_, ok in f.runs]
        print(f"  (for comparison, plain percentiles p{lq * 100:g}-p{hq * 100:g}: held-out coverage "
              f"{sum(ins) / len(ins):.0%})")
    row = assumption_row(d)
    print("\nhardware_db/assumptions.csv row:\n" + _csv_line(row, list(row)), end="")
    if a.write:
        write_row(row)
        print(f"wrote the {KEY} row into {ASSUMPTIONS_CSV}")


if __name__ == "__main__":
    main()
