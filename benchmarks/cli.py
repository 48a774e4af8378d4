"""``estimate-benchmark``: blind training predictions, serving table and claims, written as Markdown, CSV and PNG.

Usage: ``estimate-benchmark [--out DIR] [--only training|throughput|inference|claims] [--pue X] [--grid-intensity G]``.
Writes into ``./benchmark-report/`` unless ``--out`` names another folder (the repository's own report is
``estimate-benchmark --out benchmarks``). The plot needs matplotlib (``pip install "llm-cost-estimator[bench]"``);
without it the report is written without the plot and one note says so. Bad input, and an output folder that
cannot be written, print one line ``error: <what>; <fix>`` and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import math
import os
import sys
from pathlib import Path

import pandas as pd

from benchmarks import training_bench as tb

DEFAULT_OUT = Path("benchmark-report")  # relative to the current directory, never inside the installed package
NO_PLOT_NOTE = 'note: matplotlib is not installed, so the plot was skipped (pip install "llm-cost-estimator[bench]")'


def _fail(what: str, fix: str) -> None:
    """One line ``error: <what>; <fix>`` on stderr and exit 2."""
    print(f"error: {what}; {fix}", file=sys.stderr)
    raise SystemExit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        _fail(message, "see estimate-benchmark --help")


def _have_matplotlib() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # sys.modules["matplotlib"] is None: deliberately blocked
        return False


def _check_writable(out: Path) -> None:
    """Create ``out/results`` and write a probe file there, so an unwritable folder fails before the long run."""
    fix = "choose a folder you can write with --out DIR"
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file, not a folder", fix)
    try:
        (out / "results").mkdir(parents=True, exist_ok=True)
        probe = out / "results" / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        _fail(f"cannot write to {out} ({err.strerror or err})", fix)


def _fmt(x, kind="num") -> str:
    """A number in the report: the project's one formatter (estimator.formatting.fmt); n/a where missing."""
    from estimator.formatting import fmt

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return fmt(x, {"pct": "signed_fraction", "abspct": "abs_fraction"}.get(kind, ""))


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "/").replace("\n", " ") for v in r) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- training

def training_section(long: pd.DataFrame, runs: pd.DataFrame, summ: pd.DataFrame, pue, grid) -> str:
    out = ["## Training runs: blind predictions", "",
           "Each run is predicted from what a planner knows beforehand (preset or parameter count, tokens, sequence "
           "length, accelerator type and count, precision) with `estimate_training`; no reported GPU-hours, days, MFU "
           "or energy go in, and there are no per-run corrections. Energy and CO2e use the run's own PUE and grid "
           "intensity where stated" + (f" (overridden for all runs: PUE {pue})" if pue is not None else "")
           + (f" (grid overridden: {grid} g/kWh)" if grid is not None else "") + ". Baseline: GPU-hours = "
           "6·N_active·D / (dense peak × 40%), days = that / GPUs, energy = baseline GPU-hours × TDP × PUE. "
           "Error = predicted / reported − 1.", "",
           "### Accuracy summary (evidence rows only)", "",
           "GPU-hours: comparable runs only, i.e. hours of one pre-training pass (`hours_cover` = `pretraining_pass`, "
           "or `derived_gpus_x_days`: chips x days x 24 of the run); hours with distillation, post-training or "
           "downtime, aggregates and unknown covers are listed below, not scored. "
           "Energy: `measured` and `partial_measured` rows only (TDP-formula and category-average rows are listed "
           "separately below). CO2e: rows whose CO2e rests on measured energy. Ours and baseline on the same runs.", ""]
    rows = []
    for r in summ.itertuples():
        rows.append({"metric": tb.METRIC_LABELS[r.metric], "runs with a reported value": r.n_reported,
                     "predicted (ours)": r.n_predicted, "ours median abs err": _fmt(r.ours_median_abs, "abspct"),
                     "ours worst": f"{_fmt(r.ours_worst_abs, 'abspct')} ({r.ours_worst_id})",
                     "baseline median abs err": _fmt(r.baseline_same_runs_median_abs, "abspct"),
                     "baseline worst": f"{_fmt(r.baseline_same_runs_worst_abs, 'abspct')} "
                                       f"({r.baseline_same_runs_worst_id})"})
    out += [_md_table(pd.DataFrame(rows)), ""]
    g = summ.set_index("metric")
    verdicts = []
    for m in ("gpu_hours", "energy_mwh"):
        o, b = g.loc[m, "ours_same_runs_median_abs"], g.loc[m, "baseline_same_runs_median_abs"]
        if o is None or b is None or (isinstance(o, float) and math.isnan(o)):
            continue
        word = "better than" if o < b else "worse than"
        verdicts.append(f"- {tb.METRIC_LABELS[m]}: our median absolute error {o:.0%} is {word} the 6ND/40% "
                        f"baseline's {b:.0%} on the same {int(g.loc[m, 'n_both'])} runs.")
    mfu = runs["mfu_predicted"].dropna()
    if len(mfu):
        verdicts.append(f"- Our predicted MFU ranges {mfu.min():.0%}-{mfu.max():.0%} (median {mfu.median():.0%}); "
                        "published runs report 21-52%, so where we miss GPU-hours low, an optimistic time model is "
                        "the cause.")
    out += ["How our model compares with the baseline:", ""] + verdicts + [""]

    wide = []
    for rid, sub in long.groupby("id", sort=False):
        d = {"run": rid}
        for m in tb.METRICS:
            s = sub[sub["metric"] == m]
            if s.empty:
                d[tb.METRIC_LABELS[m]] = ""
                continue
            r = s.iloc[0]
            tag = r["basis"] + ("" if r["in_summary"] else ", excluded")
            d[tb.METRIC_LABELS[m]] = (f"{_fmt(r['predicted'])} / {_fmt(r['reported'])} ({_fmt(r['error'], 'pct')}; "
                                      f"base {_fmt(r['baseline_error'], 'pct')}) [{tag}]")
        wide.append(d)
    out += ["### Per run", "",
            "Cells: predicted / reported (signed error; baseline's signed error) [basis of the reported value]. "
            "`derived` GPU-hours are chips × days × 24 in the source; `excluded` = not evidence (formula-based).", "",
            _md_table(pd.DataFrame(wide)), ""]
    na = runs[runs["error"] != ""][["id", "error"]].rename(columns={"id": "run", "error": "not predicted because"})
    out += ["### Runs the estimator could not predict", "", _md_table(na), "",
            "### Inputs the estimator chose (per run)", "",
            _md_table(runs[runs["notes"] != ""][["id", "gpus_used", "notes"]].assign(
                gpus_used=lambda x: x["gpus_used"].map(lambda v: "" if pd.isna(v) else int(v)))), ""]
    nc = tb.hours_not_comparable(long)
    if len(nc):
        t = nc[["id", "basis", "predicted", "reported", "error", "baseline_error"]].copy()
        t["predicted"], t["reported"] = t["predicted"].map(_fmt), t["reported"].map(_fmt)
        t["error"], t["baseline_error"] = t["error"].map(lambda v: _fmt(v, "pct")), t["baseline_error"].map(
            lambda v: _fmt(v, "pct"))
        out += ["### GPU-hours that are not one pre-training pass (shown, not scored)", "",
                "Tag after the comma: `hours_cover` in `benchmarks/data/training_runs.csv` (evidence in "
                "`hours_cover_evidence`).", "", _md_table(t), ""]
    ex = tb.excluded(long).dropna(subset=["predicted"])
    if len(ex):
        t = ex[["id", "metric", "basis", "predicted", "reported", "error"]].copy()
        t["predicted"], t["reported"] = t["predicted"].map(_fmt), t["reported"].map(_fmt)
        t["error"] = t["error"].map(lambda v: _fmt(v, "pct"))
        out += ["### Formula-based energy and CO2e (reported separately, not in the summary)", "",
                "These published values are GPU-hours × TDP (or an assumed power) × PUE × grid: a TDP estimator "
                "reproduces them by construction, so agreement is not evidence.", "", _md_table(t), ""]
    return "\n".join(out)


def plot(long: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("gpu_hours", "energy_mwh", "co2e_t")
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    for ax, m in zip(axes, metrics, strict=True):
        s = long[long["metric"] == m]
        ev, ex = s[s["in_summary"]], s[~s["in_summary"]]
        ax.scatter(ev["reported"], ev["predicted"], c="C0", label="ours (evidence)", zorder=3)
        ax.scatter(ex["reported"], ex["predicted"], facecolors="none", edgecolors="C0",
                   label="ours (formula-based, excluded)", zorder=3)
        ax.scatter(s["reported"], s["baseline"], marker="x", c="C3", label="6ND / (peak x 40%)", zorder=2)
        vals = pd.concat([s["reported"], s["predicted"], s["baseline"]]).dropna()
        vals = vals[vals > 0]
        if len(vals):
            lo, hi = vals.min() / 2, vals.max() * 2
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            ax.plot([lo, hi], [2 * lo, 2 * hi], "k:", lw=0.6)
            ax.plot([lo, hi], [lo / 2, hi / 2], "k:", lw=0.6)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"reported {tb.METRIC_LABELS[m]}")
        ax.set_ylabel(f"predicted {tb.METRIC_LABELS[m]}")
        ax.set_title(f"{tb.METRIC_LABELS[m]} (line: equal; dotted: 2x)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- throughput

def throughput_section(df: pd.DataFrame) -> str:
    from benchmarks import throughput_bench as thb

    def summary_table(by: str | None) -> str:
        s = thb.summarise(df, by)
        if s.empty:
            return "(no scored rows)"
        s = s.assign(layout=s.pop("layout_published").map({True: "published", False: "not published"}))
        for c in ("ours_median_abs", "ours_p90_abs", "baseline_median_abs", "baseline_p90_abs"):
            s[c] = s[c].map(lambda v: _fmt(v, "abspct"))
        return _md_table(s[["layout"] + [c for c in s.columns if c != "layout"]])

    t = df.assign(metric=df["metric"].map(thb.METRIC_LABELS), reported=df["reported"].map(_fmt),
                  predicted=df["predicted"].map(_fmt), error=df["error"].map(lambda v: _fmt(v, "pct")),
                  baseline_error=df["baseline_error"].map(lambda v: _fmt(v, "pct")),
                  layout_published=df["layout_published"].map({True: "yes", False: "no"}),
                  scored=df["scored"].map({True: "yes", False: "no"}))[
        ["id", "source", "layout_published", "metric", "reported", "predicted", "error", "baseline_error", "scored",
         "layout_used", "failed", "notes"]]
    return "\n".join([
        "## Training throughput at the published layout (issue 14, item 2)", "",
        "Each row of `benchmarks/data/training_throughput.csv` predicted blind with `estimate_training` at its "
        "published configuration (shape, accelerator, GPUs, precision, TP/PP/CP/EP/DP, micro-batch, recompute, "
        "ZeRO/FSDP, sequence length, global batch), compared on the one metric the row reports in its own convention "
        "(see `benchmarks/throughput_bench.py`). Rows without a published TP/PP run at the estimator's own layout and "
        "are summarised apart. Baseline: MFU = 40% (tokens/s/GPU = 0.4 x peak / (6 N_active + 12 L d T)). "
        "Error = predicted / reported - 1; |error| over scored rows both predicted. Megatron-LM 2021 Table 1 is not "
        "here: it fits `framework_efficiency`.", "",
        "### Summary", "", summary_table(None), "", "### By source", "", summary_table("source"), "",
        "### By organisation", "", summary_table("organisation"), "", "### Per row", "", _md_table(t), ""])


# --------------------------------------------------------------------------- inference and claims

def inference_section(df: pd.DataFrame, summ: dict) -> str:
    t = df.dropna(subset=["predicted"]).copy()
    t = t.assign(predicted=t["predicted"].map(_fmt), reported=t["reported"].map(_fmt),
                 error=t["error"].map(lambda v: _fmt(v, "pct")))[
        ["id", "model", "metric", "scope", "kind", "predicted", "reported", "error", "notes"]]
    na = df[df["predicted"].isna()][["id", "model", "metric", "reproducible", "why_na"]]
    return "\n".join([
        "## Serving: predicted vs published (issue 4)", "",
        "`estimate_inference` with each row's published setting; inputs the source leaves out use the estimator's "
        "defaults (listed in notes). Energy is compared in the row's scope (gpu_only: GPU energy; gpu+host: host "
        "added, PUE 1.0; facility_with_pue: facility).", "",
        f"Median absolute error over {summ['n']} measured rows (analytic estimates excluded): "
        f"**{_fmt(summ['median_abs'], 'abspct')}**, worst **{_fmt(summ['worst_abs'], 'abspct')}** "
        f"({summ['worst_id']}).", "",
        "Settings the sources publish (accelerator, batch, output tokens, precision, GPUs per replica) are cited row "
        "by row in `benchmarks/data/inference_measurements.csv`; prompt lengths are unpublished for every reproduced "
        "row, so all use the 1000-token default. Offline-throughput rule (applies to every row alike): a throughput "
        "row whose source names the scenario offline (MLPerf \"Offline\": all queries issued at once, batch tuned "
        "for maximum throughput) and whose batch is not published is run at the largest batch that fits. Rows "
        "measured at low load (e.g. Poisson 1 req/s) include idle power that a batched estimate does not.", "",
        _md_table(t), "", "### Too vague to reproduce", "", _md_table(na), ""])


def claims_section(cf: pd.DataFrame) -> str:
    t = cf.assign(quoted=cf["quoted"].map(_fmt), ours=cf["ours"].map(_fmt))[
        ["id", "claim", "quoted", "ours", "unit", "verdict", "assumptions"]]
    return "\n".join(["## Claims", "",
                      "Each claim in `benchmarks/data/claims.csv` recomputed with the estimator; 'ours' is our number "
                      "in the claim's unit unless the assumptions say otherwise.", "", _md_table(t), ""])


# --------------------------------------------------------------------------- main

def build(out: Path, only: str | None, pue, grid, with_plot: bool = True) -> str:
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    parts = ["# Benchmark report", "", "Generated by `estimate-benchmark`"
             + (f" (--only {only})" if only else "") + ". Data: `benchmarks/data/` (see its README).", ""]
    printed = []
    if only in (None, "training"):
        long, runs = tb.run_training(pue, grid)
        summ = tb.summarise(long)
        long.to_csv(results / "training_predictions.csv", index=False)
        runs.to_csv(results / "training_runs_status.csv", index=False)
        summ.to_csv(results / "training_summary.csv", index=False)
        parts.append(training_section(long, runs, summ, pue, grid))
        if with_plot:
            plot(long, results / "training_predicted_vs_reported.png")
            parts += ["![predicted vs reported](results/training_predicted_vs_reported.png)", ""]
        else:
            parts += ["(Plot not drawn: matplotlib is not installed.)", ""]
        printed.append(summ[["metric", "n_predicted", "ours_median_abs", "ours_worst_abs",
                             "baseline_same_runs_median_abs", "baseline_same_runs_worst_abs"]].to_string(index=False))
    if only in (None, "throughput"):
        from benchmarks import throughput_bench as thb

        thr = thb.run_throughput()
        thr.to_csv(results / "throughput_predictions.csv", index=False)
        parts.append(throughput_section(thr))
        printed.append(thb.summarise(thr).to_string(index=False))
    if only in (None, "inference"):
        from benchmarks.inference_bench import run_inference, summarise_inference

        try:
            inf = run_inference()
            isumm = summarise_inference(inf)
            inf.to_csv(results / "inference_predictions.csv", index=False)
            parts.append(inference_section(inf, isumm))
            printed.append(f"serving: median abs err {_fmt(isumm['median_abs'], 'abspct')}, worst "
                           f"{_fmt(isumm['worst_abs'], 'abspct')} ({isumm['worst_id']}) over {isumm['n']} rows")
        except RuntimeError as exc:
            parts += ["## Serving", "", f"Not run: {exc}", ""]
    if only in (None, "claims"):
        from benchmarks.claims import claims_frame

        cf = claims_frame()
        cf.to_csv(results / "claims.csv", index=False)
        parts.append(claims_section(cf))
        printed.append(cf[["id", "quoted", "ours", "verdict"]].to_string(index=False))
    text = "\n".join(parts)
    # a partial run (--only) writes its CSVs but leaves the full report alone
    (out / ("REPORT.md" if only is None else f"REPORT-{only}.md")).write_text(text)
    return "\n\n".join(printed)


def main(argv=None) -> int:
    p = _Parser(prog="estimate-benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default ./benchmark-report)")
    p.add_argument("--only", choices=("training", "throughput", "inference", "claims"))
    p.add_argument("--pue", type=float, help="PUE for every run (overrides the runs' own)")
    p.add_argument("--grid-intensity", type=float, help="gCO2e/kWh for every run (overrides the runs' own)")
    a = p.parse_args(argv)
    if a.pue is not None and not (math.isfinite(a.pue) and a.pue >= 1.0):
        _fail(f"--pue must be >= 1.0, got {a.pue}", "give a PUE such as 1.1 (facility energy / IT energy)")
    if a.grid_intensity is not None and not (math.isfinite(a.grid_intensity) and a.grid_intensity >= 0):
        _fail(f"--grid-intensity must be >= 0 gCO2e/kWh, got {a.grid_intensity}", "give gCO2e/kWh, e.g. 400")
    out = Path(a.out)
    _check_writable(out)
    with_plot = _have_matplotlib()
    try:
        text = build(out, a.only, a.pue, a.grid_intensity, with_plot)
    except OSError as err:  # e.g. the disk fills mid-run
        why = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        _fail(f"writing the report into {out} failed: {why} ({getattr(err, 'filename', '') or out})",
              "free space or choose another folder with --out DIR, then run again")
    except Exception as err:  # a bug, not bad input: still one line, exit 1 (ESTIMATE_DEBUG=1 shows the trace)
        if os.environ.get("ESTIMATE_DEBUG"):
            raise
        print(f"error: internal error: {type(err).__name__}: {err}; please report it (ESTIMATE_DEBUG=1 for details)",
              file=sys.stderr)
        raise SystemExit(1) from None
    print(text)
    if not with_plot:
        print(NO_PLOT_NOTE)
    print(f"wrote {out / ('REPORT.md' if a.only is None else f'REPORT-{a.only}.md')} and {out / 'results'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

