"""Blind predictions of published training throughput at the published layout (issue 14, item 2).

Each row of ``benchmarks/data/training_throughput.csv`` is a throughput (tokens/s/GPU), a model or hardware
TFLOP/s per GPU, an MFU/HFU or a step time that a source measured at a stated configuration. We ask
``estimate_training`` for that configuration (shape from the preset or the row's shape columns; accelerator, GPU
count, precision, TP/PP/CP/EP/DP, micro-batch, recompute, ZeRO/FSDP, sequence length and global batch as
published) and compare the one metric the row reports, in the row's own convention:

* ``tokens_per_s_per_gpu``: the estimator's step throughput, ``MFU x peak / model FLOPs per token`` (downtime is
  not in a throughput measurement, and the estimator's MFU excludes it).
* ``mfu``: model FLOPs / peak in the row's ``mfu_convention``: ``6N`` when it says "no attention", else the PaLM
  definition (6N + 12·L·H·Q·T, which is what the estimator's FLOPs per token count), over the dense peak of the
  row's precision (bf16 where unstated, fp16 on chips without bf16).
* ``model_tflops_per_s_per_gpu`` (NVIDIA, Llama 3): the estimator's model FLOPs (attention included) per second.
* ``hardware_tflops_per_s_per_gpu`` (MT-NLG, BloombergGPT): FLOPs executed incl. recomputation (the estimator's HFU
  x peak).
* ``tflops_per_s_per_gpu_unstated`` (OPT, BLOOM): the source does not say which FLOPs; shown against our hardware
  TFLOP/s but not scored.

One metric per row (the first of tokens/s, MFU, model TFLOP/s, hardware TFLOP/s, step time, unstated TFLOP/s that the
row has), so a row counts once. Rows without a published TP and PP (PaLM, GPT-3, Gopher, OPT, BloombergGPT,
LLaMA-65B) run at the estimator's own layout and are scored apart ("layout not published"). What the estimator
cannot take as input is named in each row's notes (virtual-pipeline chunks: the estimator picks its interleave;
gradient accumulation follows from the batch). A row that fails is shown with its one-line message.

Baseline (same rows): MFU = 40%, i.e. tokens/s/GPU = 0.4 x peak / (6·N_active + 12·L·d·T), model and hardware
TFLOP/s = 0.4 x peak, MFU = HFU = 0.4.

Error = predicted / reported - 1.
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files
from typing import Any

import pandas as pd

BASELINE_MFU = 0.40
METRIC_ORDER = ("tokens_per_s_per_gpu", "mfu", "model_tflops_per_s_per_gpu", "hardware_tflops_per_s_per_gpu",
                "step_time_s", "tflops_per_s_per_gpu_unstated")
METRIC_LABELS = {"tokens_per_s_per_gpu": "tokens/s/GPU", "mfu": "MFU", "model_tflops_per_s_per_gpu":
                 "model TFLOP/s/GPU", "hardware_tflops_per_s_per_gpu": "hardware TFLOP/s/GPU", "step_time_s":
                 "step time (s)", "tflops_per_s_per_gpu_unstated": "TFLOP/s/GPU (convention unstated)"}
SCORED_METRICS = METRIC_ORDER[:-1]  # an unstated convention is not evidence for either FLOP count
SHAPE_COLS = ("layers", "d_model", "heads", "kv_heads", "ffn_dim")

# Source (the table or paper a row was copied from) and organisation (who ran it), by id prefix. The ids are the
# data file's own; tests check every row maps.
SOURCES = (("nemo24.07-", "NVIDIA NeMo 24.07 table", "NVIDIA"), ("nemo25.02-", "NVIDIA NeMo 25.02 table", "NVIDIA"),
           ("mbridge25.09-", "NVIDIA Megatron-Bridge 25.09", "NVIDIA"),
           ("mbridge25.11-", "NVIDIA Megatron-Bridge 25.11", "NVIDIA"),
           ("mbridge26.04.01-", "NVIDIA Megatron-Bridge 26.04.01", "NVIDIA"),
           ("mlperf-", "MLPerf Training v3.1", "NVIDIA"), ("llama3-405b-paper", "Llama 3 paper Table 4", "Meta"),
           ("llama-65b-paper", "LLaMA paper", "Meta"), ("opt-", "OPT paper", "Meta"),
           ("palm-", "PaLM paper", "Google"), ("gpt3-175b-palm", "PaLM paper Table 3", "OpenAI"),
           ("gopher-", "PaLM paper Table 3", "DeepMind"), ("mt-nlg-", "MT-NLG paper", "Microsoft+NVIDIA"),
           ("bloom-", "BigScience BLOOM", "BigScience"), ("bloomberggpt-", "BloombergGPT paper", "Bloomberg"),
           ("glm-", "GLM-130B paper", "Tsinghua/Zhipu"),
           # older_accelerator_throughput.csv (fit rows of hardware_db/accelerator_efficiency.csv, not scored here)
           ("megatron2019-", "Megatron-LM 2019 paper", "NVIDIA"), ("zero2020-", "ZeRO paper", "Microsoft"),
           ("deepspeed2020-", "DeepSpeed BERT blog", "Microsoft"), ("mtj2021-", "Mesh-Transformer-JAX", "EleutherAI"),
           ("lingvo2020-", "Lingvo configs", "Google"), ("lingvo2021-", "Lingvo configs", "Google"))


def source_of(row_id: str) -> tuple[str, str]:
    """(source table or paper, organisation) of a row id."""
    for prefix, src, org in SOURCES:
        if row_id.startswith(prefix):
            return src, org
    raise KeyError(f"training_throughput.csv: no source group for id {row_id!r}; add its prefix to SOURCES")


@cache
def load_rows() -> pd.DataFrame:
    """The throughput table, validated: unique ids, at least one metric per row, a GPU count."""
    df = pd.read_csv(str(files("benchmarks") / "data" / "training_throughput.csv"))
    if df["id"].duplicated().any():
        raise ValueError(f"training_throughput.csv: duplicate ids {sorted(df.loc[df['id'].duplicated(), 'id'])}")
    none = df[df[list(METRIC_ORDER)].isna().all(axis=1)]
    if len(none):
        raise ValueError(f"training_throughput.csv: rows without a metric: {list(none['id'])}")
    return df


def _val(row: dict, col: str) -> Any:
    v = row.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def primary_metric(row: dict) -> str:
    """The one metric a row is scored on (first of METRIC_ORDER it reports)."""
    return next(m for m in METRIC_ORDER if _val(row, m) is not None)


def layout_published(row: dict) -> bool:
    """A row's layout is published when its TP and PP degrees are."""
    return _val(row, "tp") is not None and _val(row, "pp") is not None


def row_spec(row: dict) -> tuple[Any, list[str]]:
    """The model shape: the preset, or a ModelSpec from the row's shape columns (None when neither)."""
    from estimator.model import RECIPE_VOCAB, ModelSpec, param_count
    from estimator.presets import load_preset

    notes: list[str] = []
    seq = _val(row, "seq_len")
    if _val(row, "preset") is not None:
        spec = load_preset(row["preset"])
        return (spec.with_(seq_len=int(seq)) if seq is not None else spec), notes
    if any(_val(row, c) is None for c in SHAPE_COLS):
        return None, notes
    vocab = _val(row, "vocab")
    if vocab is None:
        notes.append(f"vocab not published: {RECIPE_VOCAB:,} (estimator recipe)")
    d, ffn = int(row["d_model"]), int(row["ffn_dim"])
    kw: dict[str, Any] = dict(layers=int(row["layers"]), d_model=d, heads=int(row["heads"]),
                              kv_heads=int(row["kv_heads"]), ffn_dim=ffn,
                              vocab=int(vocab or RECIPE_VOCAB), seq_len=int(seq or 2048), name=str(row["model"]))
    if seq is None:
        notes.append("seq_len not published: 2048")
    # Gated (SwiGLU/GeGLU, 3 matrices) or plain (2 matrices) MLP is not a column: take the one whose parameter
    # count is nearer the published total; without a total, the GPT convention (plain MLP <=> ffn = 4 d).
    params = _val(row, "params")
    if params is not None:
        cands = [ModelSpec(**kw, gated_mlp=g) for g in (True, False)]
        spec = min(cands, key=lambda s: abs(param_count(s).total / params - 1))
        notes.append(f"{'gated' if spec.gated_mlp else 'plain'} MLP: nearer the published {params:.3g} params")
    else:
        spec = ModelSpec(**kw, gated_mlp=ffn != 4 * d)
        notes.append(f"{'gated' if spec.gated_mlp else 'plain'} MLP (ffn {'!=' if spec.gated_mlp else '='} 4 d)")
    return spec, notes


def _era(row: dict, notes: list[str]) -> dict:
    """The row's published software (benchmarks/data/software_era.csv: framework, FlashAttention, sequence
    parallelism) and its cluster's network (benchmarks/data/run_network.csv)."""
    from benchmarks.training_bench import run_software

    if row["id"] not in run_software():
        return {}
    from benchmarks.training_bench import run_network

    kw, note = run_software()[row["id"]]
    notes.append(note)
    out = dict(kw)
    if row["id"] in run_network():  # the cluster's published network (benchmarks/data/run_network.csv)
        out["scaleout_gb_per_s"] = run_network()[row["id"]]
        notes.append(f"network {out['scaleout_gb_per_s']:g} GB/s per GPU")
    return out


def planner_inputs(row: dict) -> tuple[dict, list[str]]:
    """``estimate_training`` keywords for a row's published configuration, and notes on what could not go in."""
    spec, notes = row_spec(row)
    if spec is None:
        raise ValueError("no preset and no shape columns")
    kw: dict[str, Any] = {"model": spec, "gpu": row["accelerator"], "gpus": int(row["gpus"])} | _era(row, notes)
    if _val(row, "precision") is not None:
        kw["precision"] = row["precision"]
    gbt = _val(row, "global_batch_tokens")
    if gbt is None and _val(row, "global_batch_seqs") is not None:
        gbt = float(row["global_batch_seqs"]) * spec.seq_len
    if gbt is not None:
        kw["global_batch_tokens"] = float(gbt)
    kw["tokens"] = float(gbt or 4e6) * 1000  # throughput does not depend on the run length: 1,000 steps
    if layout_published(row):
        for c in ("tp", "pp", "cp", "ep", "dp", "micro_batch"):
            if _val(row, c) is not None:
                kw[c] = int(row[c])
        if "dp" not in kw:
            notes.append("dp not published: estimator derives it from the GPU count")
        if _val(row, "vpp") is not None and int(row["vpp"]) > 1:
            notes.append(f"vpp {int(row['vpp'])} published: not an estimator input (it picks its interleave)")
    else:
        notes.append("layout not published: estimator's own layout")
    rc = _val(row, "recompute")
    if rc in ("none", "selective", "full"):
        kw["recompute"] = rc
    elif rc is not None:
        notes.append(f"recompute '{rc}' not an estimator option: estimator's choice")
    z, fsdp = _val(row, "zero_stage"), _val(row, "fsdp")
    if z is not None:
        kw["zero"] = int(z)
    elif fsdp is not None:  # Megatron-Bridge: 0 = DDP + distributed optimizer (ZeRO-1), > 0 = (Megatron-)FSDP
        kw["zero"] = 3 if fsdp > 0 else 1
    from hardware_db import default_price

    if default_price(row["accelerator"]) is None:  # cost is not compared; the estimator needs a price to run
        kw["price_per_gpu_hour"] = 0.0
    return kw, notes


def _peak(accel_id: str, precision: str | None) -> float:
    from hardware_db import get_accelerator

    a = get_accelerator(accel_id)
    return a.peak_flops(precision or a.default_precision())


def mfu_uses_6n(row: dict) -> bool:
    """True when the row's MFU counts 6N only (its convention says 'no attention')."""
    return "no attention" in str(_val(row, "mfu_convention") or "").lower()


def _flops_per_token(spec: Any, n_active: float, six_n: bool) -> float:
    """6N, or the PaLM definition 6N + 12·L·d·T (attention scores and values, forward and backward)."""
    return 6.0 * n_active + (0.0 if six_n else 12.0 * spec.layers * spec.d_model * spec.seq_len)


def baseline(row: dict, metric: str, spec: Any) -> float | None:
    """The MFU = 40% prediction of ``metric`` in the row's convention."""
    from estimator.model import param_count

    if spec is None:
        return None
    peak = _peak(row["accelerator"], _val(row, "precision"))
    n_active = float(param_count(spec).active)
    tps = BASELINE_MFU * peak / _flops_per_token(spec, n_active, False)
    if metric == "tokens_per_s_per_gpu":
        return tps
    if metric == "mfu":
        return BASELINE_MFU
    if metric == "step_time_s":
        gbt = _val(row, "global_batch_tokens") or (
            None if _val(row, "global_batch_seqs") is None else row["global_batch_seqs"] * spec.seq_len)
        return None if gbt is None else float(gbt) / (tps * row["gpus"])
    return BASELINE_MFU * peak / 1e12


def predicted(row: dict, metric: str, est: Any) -> float:
    """The estimate's value of ``metric`` in the row's convention."""
    peak_est = _peak(row["accelerator"], est.precision)
    per_token = float(est.flops_breakdown_per_token["total"])
    tps = est.mfu * peak_est / per_token  # step throughput, downtime excluded
    if metric == "tokens_per_s_per_gpu":
        return tps
    if metric == "mfu":
        fpt = _flops_per_token(est.model, float(est.active_params), True) if mfu_uses_6n(row) else per_token
        return tps * fpt / _peak(row["accelerator"], _val(row, "precision"))
    if metric == "model_tflops_per_s_per_gpu":
        return tps * per_token / 1e12
    if metric == "step_time_s":
        return float(est.step_time_s)
    return est.hfu * peak_est / 1e12  # hardware or unstated TFLOP/s


def predict_row(row: dict, **override: Any) -> dict:
    """One row: reported, predicted and baseline value of its metric, the layout used, notes, or the error
    (``override``: estimator inputs to change, e.g. ``accelerator_efficiency=1.0`` to fit that factor)."""
    from estimator.training import estimate_training

    metric = primary_metric(row)
    src, org = source_of(row["id"])
    rec: dict[str, Any] = {
        "id": row["id"], "source": src, "organisation": org, "layout_published": layout_published(row),
        "metric": metric, "scored": metric in SCORED_METRICS, "reported": float(row[metric]),
        "predicted": None, "error": None, "baseline": None, "baseline_error": None, "layout_used": "",
        "mfu_predicted": None, "failed": "", "notes": ""}
    notes: list[str] = []
    if metric == "mfu":
        notes.append("MFU as 6N" if mfu_uses_6n(row) else "MFU as 6N + attention (PaLM definition)")
    if metric == "tflops_per_s_per_gpu_unstated":
        notes.append("TFLOP/s convention unstated: shown against our hardware TFLOP/s, not scored")
    spec = None
    try:
        kw, more = planner_inputs(row)
        notes += more
        spec = kw["model"]
        est = estimate_training(**(kw | override))
        rec["predicted"] = predicted(row, metric, est)
        rec["mfu_predicted"] = float(est.mfu)
        lay = est.to_dict()["layout"]
        rec["layout_used"] = (f"TP{lay['tp']} PP{lay['pp']} CP{lay.get('cp', 1)} EP{lay['ep']} DP{lay['dp']} "
                              f"ZeRO-{lay['zero']} mb{lay['micro_batch']} il{lay.get('interleave', 1)} "
                              f"recompute={lay['recompute']}")
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop the benchmark; it is shown with its message
        rec["failed"] = str(exc).split("\n")[0] or type(exc).__name__
    try:
        rec["baseline"] = baseline(row, metric, spec)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"baseline failed: {str(exc).splitlines()[0]}")
    for k in ("predicted", "baseline"):
        if rec[k] is not None:
            rec[k.replace("predicted", "error").replace("baseline", "baseline_error")] = rec[k] / rec["reported"] - 1
    rec["notes"] = "; ".join(notes)
    return rec


def run_throughput(ids: list[str] | None = None) -> pd.DataFrame:
    """Every row (or the rows named in ``ids``), one record each, in file order."""
    rows = load_rows().to_dict("records")
    return pd.DataFrame([predict_row(r) for r in rows if ids is None or r["id"] in ids])


def _stats(s: pd.Series) -> dict:
    a = s.dropna().abs()
    return {"n": len(a), "median_abs": float(a.median()) if len(a) else None,
            "p90_abs": float(a.quantile(0.9)) if len(a) else None}


def summarise(df: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Median and p90 |error| of ours and the baseline, on the scored rows both predicted, split by whether the
    layout was published (and by ``by``, e.g. "source" or "organisation")."""
    sub = df[df["scored"]].dropna(subset=["error", "baseline_error"])
    keys = ["layout_published"] + ([by] if by else [])
    out = []
    for key, g in sub.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        o, b = _stats(g["error"]), _stats(g["baseline_error"])
        out.append(dict(zip(keys, key, strict=True)) | {
            "n": o["n"], "ours_median_abs": o["median_abs"], "ours_p90_abs": o["p90_abs"],
            "baseline_median_abs": b["median_abs"], "baseline_p90_abs": b["p90_abs"]})
    return pd.DataFrame(out)


def main() -> None:
    df = run_throughput()
    pd.set_option("display.width", 200)
    print(df[["id", "metric", "reported", "predicted", "error", "baseline_error", "failed"]].to_string(index=False))
    print(summarise(df).to_string(index=False))
    print(summarise(df, "source").to_string(index=False))


if __name__ == "__main__":
    main()
