"""Fit an end-to-end efficiency factor for accelerators the kernel calibration does not cover (issue 14).

The kernel model is calibrated on measured H100 and A100 kernels (Vidur); a V100 gets the A100 rates scaled by its
peak and bandwidth, and a TPU the datasheet fractions. Published throughput measured on those chips at a stated
configuration (``benchmarks/data/older_accelerator_throughput.csv``: Megatron-LM 2019 and the 2020 DeepSpeed rows on
V100; Mesh-Transformer-JAX and Lingvo on TPU v3) shows how far that transfer is from what the chips delivered. For
each accelerator the factor is

    median over its fit rows of (reported / predicted)          (predicted with the factor off)

applied to the estimator's end-to-end efficiency. The fit rows come from other organisations than the rows it is
then scored on: GPT-3 (OpenAI, V100) and Gopher (DeepMind, TPU v3) in ``training_runs.csv`` (GPU-hours) and in
``training_throughput.csv`` (PaLM Table 3's MFU), which ``estimate-benchmark`` reports. Only decoder rows whose
convention the estimator can match are fitted: the DeepSpeed BERT rows (an encoder with fused kernels) are not, and
rows the estimator cannot predict (no shape, does not fit in memory) drop out.

    python -m benchmarks.accelerator_efficiency            # prints the fit per row and the factors
    python -m benchmarks.accelerator_efficiency --write    # rewrites hardware_db/accelerator_efficiency.csv

(``tests/test_accelerator_efficiency.py`` fails until the stored factors equal the derivation.)
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
from functools import cache
from importlib.resources import files
from pathlib import Path

import pandas as pd

OUT_CSV = Path(__file__).resolve().parents[1] / "hardware_db" / "accelerator_efficiency.csv"
EXCLUDED_PREFIXES = ("deepspeed2020-",)  # BERT-Large: an encoder with fused kernels, not the decoder block modelled
HELD_OUT = {"v100": "GPT-3 175B (OpenAI): training_runs.csv gpt3-175b, training_throughput.csv gpt3-175b-palm-table3",
            "tpu-v3": "Gopher 280B (DeepMind): training_runs.csv gopher-280b, training_throughput.csv "
                      "gopher-280b-palm-table3"}
HELD_OUT_ROWS = {"v100": ("gpt3-175b", "gpt3-175b-palm-table3"), "tpu-v3": ("gopher-280b", "gopher-280b-palm-table3")}
FIT_SOURCE = {"v100": "Shoeybi et al. 2019, Megatron-LM (arXiv 1909.08053) Table 1, Fig 5, Table 2, App. D (NVIDIA; "
                      "its TFLOP/s convention is unstated and compared as hardware FLOPs)",
              "tpu-v3": "Mesh-Transformer-JAX README (EleutherAI, kingoflolz/mesh-transformer-jax@47ed7d7e); Lingvo "
                        "GShard/GSPMD dense-LM configs (Google Brain, tensorflow/lingvo@6706ee62)"}
COLUMNS = ("accelerator_id", "efficiency_factor", "n_fit_rows", "fit_rows", "fit_source", "held_out", "held_out_error",
           "method", "retrieved")


@cache
def fit_rows() -> pd.DataFrame:
    """The older-accelerator rows, predicted blind with the factor off: id, accelerator, reported, predicted."""
    from benchmarks import throughput_bench as tb

    df = pd.read_csv(str(files("benchmarks") / "data" / "older_accelerator_throughput.csv"))
    out = []
    for row in df.to_dict("records"):
        if row["id"].startswith(EXCLUDED_PREFIXES):
            continue
        rec = tb.predict_row(row, accelerator_efficiency=1.0)
        out.append({"id": row["id"], "accelerator": row["accelerator"], "metric": rec["metric"],
                    "reported": rec["reported"], "predicted": rec["predicted"], "failed": rec["failed"]})
    return pd.DataFrame(out)


def factors(rows: pd.DataFrame | None = None) -> dict[str, dict]:
    """Per accelerator: the median reported/predicted over its predicted fit rows, with the rows used."""
    rows = fit_rows() if rows is None else rows
    ok = rows.dropna(subset=["predicted"])
    out = {}
    for acc, g in ok.groupby("accelerator", sort=True):
        ratios = (g["reported"] / g["predicted"]).tolist()
        out[str(acc)] = {"factor": round(statistics.median(ratios), 2), "n": len(ratios), "ids": list(g["id"])}
    return out


def held_out_errors(acc: str, factor: float) -> str:
    """The errors on the held-out runs with the factor and without it (predicted / reported - 1)."""
    from benchmarks import throughput_bench as thb
    from benchmarks import training_bench as tb
    from estimator.training import estimate_training

    run_id, thr_id = HELD_OUT_ROWS[acc]
    runs = tb.load_runs().set_index("id")
    row = runs.loc[run_id].to_dict() | {"id": run_id}
    kw = tb.planner_inputs(row).kwargs
    thr = thb.load_rows().set_index("id").loc[thr_id].to_dict() | {"id": thr_id}
    out = []
    for f in (factor, 1.0):
        hours = float(estimate_training(**kw, accelerator_efficiency=f).gpu_hours.magnitude)
        rec = thb.predict_row(thr, accelerator_efficiency=f)
        out.append((hours / row["reported_gpu_hours"] - 1, rec["error"], rec["metric"]))
    (h1, t1, metric), (h0, t0, _) = out
    return (f"{run_id} GPU-hours {h1:+.0%}, {thr_id} {metric} {t1:+.0%} (without the factor {h0:+.0%}, {t0:+.0%})")


def table(fit: dict[str, dict]) -> str:
    """hardware_db/accelerator_efficiency.csv text for ``fit``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    for acc, f in fit.items():
        prefixes = sorted({i.split("-")[0] + "-" for i in f["ids"]})
        w.writerow({"accelerator_id": acc, "efficiency_factor": f"{f['factor']:.2f}", "n_fit_rows": f["n"],
                    "fit_rows": " ".join(prefixes) + " rows of benchmarks/data/older_accelerator_throughput.csv",
                    "fit_source": FIT_SOURCE.get(acc, ""), "held_out": HELD_OUT.get(acc, ""),
                    "held_out_error": held_out_errors(acc, f["factor"]) if acc in HELD_OUT_ROWS else "",
                    "method": "median of reported / predicted throughput over the fit rows, predicted with the factor "
                              "off (python -m benchmarks.accelerator_efficiency)",
                    "retrieved": "2026-12-01"})
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {OUT_CSV.name}")
    args = ap.parse_args(argv)
    rows = fit_rows()
    pd.set_option("display.width", 200)
    print(rows.to_string(index=False))
    fit = factors(rows)
    text = table(fit)
    print(text)
    if args.write:
        OUT_CSV.write_text(text, encoding="utf-8")
        print(f"wrote {OUT_CSV}")


if __name__ == "__main__":
    main()
