"""``sweep_training``: the training estimate for many configurations at once, vectorised with numpy.

No formula lives here. The model shape comes from ``model.shape_from_params_array`` (the same recipe
search as ``shape_from_params``), and FLOPs, memory, step time, goodput, power, carbon and cost come
from the very functions ``estimate_training`` calls, given numpy arrays instead of scalars. This
module only composes them the way ``estimate_training`` does for one *fixed* layout (no layout
search, no calibration, no ranges); ``tests/test_sweep.py`` checks that both agree.

Inputs broadcast against each other (``params``, ``tokens``, ``gpus``, ``tp``, ``pp``, ``zero``,
``micro_batch``, ``interleave``); every other input is a scalar. The result is a pandas DataFrame, one row per
configuration, with the units in the column names. Configurations are evaluated in chunks of ``CHUNK`` rows, so
memory stays bounded (a few hundred MB) however many are asked for; only the result frame grows with the count.
"""

from __future__ import annotations

import numpy as np

from estimator import facility
from estimator.assumptions import fact
from estimator.cluster import default_global_batch_tokens
from estimator.errors import EstimatorInputError
from estimator.flops import RECOMPUTE, training_flops
from estimator.hardware import (
    DEFAULT_GPU,
    TRAINING_PRECISIONS,
    accelerator,
    activation_bytes,
    peak_flops,
    price_rows,
    resolve_rates,
)
from estimator.memory import GB, training_memory_per_gpu
from estimator.model import RECIPE_SEQ_LEN, RECIPE_VOCAB, param_count, shape_from_params_array
from estimator.parallelism import MEMORY_HEADROOM, valid_layouts
from estimator.software import framework_stack
from estimator.timing import checkpoint_hours, goodput_fraction, step_time

CHUNK = 200_000  # configurations evaluated at once
COLUMNS = ("params", "tokens", "gpus", "tp", "pp", "dp", "layers", "d_model", "flops", "gpu_hours", "wall_clock_days",
           "energy_mwh", "co2e_tonnes", "cost_usd", "mfu", "memory_per_gpu_gb", "fits")


def _positive_array(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise EstimatorInputError(f"{name} must be positive finite numbers", f"check the {name} values of the sweep")
    return a


def sweep_training(params, tokens, gpus, *, gpu: str = DEFAULT_GPU, tp=8, pp=1, zero=1, micro_batch=1, interleave=1,
                   recompute: str = "none", seq_len: int = RECIPE_SEQ_LEN, vocab: int = RECIPE_VOCAB,
                   precision: str | None = None, global_batch_tokens=None, pue=None, grid_intensity=None,
                   region: str | None = None, price_per_gpu_hour=None):
    """Estimate training for every broadcast combination of the array inputs; return a DataFrame.

    params: total parameters (dense Llama-3-recipe shape, as ``estimate --params``); tokens: training
    tokens; gpus: GPU count; tp, pp: tensor and pipeline parallel sizes, dp = gpus / (tp x pp).
    Columns: gpu_hours (GPU-hour), wall_clock_days (day), energy_mwh (facility MWh), co2e_tonnes
    (operational tCO2e), cost_usd (cloud USD), mfu (fraction), memory_per_gpu_gb (GB), fits (the
    layout is valid and fits in ``MEMORY_HEADROOM`` of GPU memory). Rows that do not fit still get
    numbers (they are what the layout would cost if it fitted); filter on ``fits``.
    """
    import pandas as pd

    if recompute not in RECOMPUTE:
        raise EstimatorInputError(f"unknown recompute mode {recompute!r}", f"use one of {', '.join(RECOMPUTE)}")
    arrays = np.broadcast_arrays(
        _positive_array("params", params), _positive_array("tokens", tokens), _positive_array("gpus", gpus),
        _positive_array("tp", tp), _positive_array("pp", pp), np.asarray(zero, dtype=float),
        _positive_array("micro_batch", micro_batch), _positive_array("interleave", interleave))
    flat = [np.ravel(x) for x in arrays]
    accel = accelerator(gpu)
    precision = precision or accel.default_precision()
    if precision not in TRAINING_PRECISIONS:
        raise EstimatorInputError(f"unknown precision {precision!r}", f"use one of {', '.join(TRAINING_PRECISIONS)}")
    if price_per_gpu_hour is None:
        row = price_rows(accel)[0]
        price_per_gpu_hour = row.usd_per_gpu_hour if row is not None else float("nan")  # no price: cost NaN
    scalars = dict(accel=accel, precision=precision, recompute=recompute, seq_len=seq_len, vocab=vocab,
                   global_batch_tokens=global_batch_tokens, pue=pue, price=float(price_per_gpu_hour),
                   grid=float(grid_intensity) if grid_intensity is not None else facility.grid(region).g_per_kwh)
    n_rows = len(flat[0])
    out = {c: np.empty(n_rows, dtype=bool if c == "fits" else float) for c in COLUMNS}
    for i in range(0, n_rows, CHUNK):  # results written in place: peak memory is the frame plus one chunk
        for c, v in _sweep_chunk(*(x[i:i + CHUNK] for x in flat), **scalars).items():
            out[c][i:i + CHUNK] = v
    return pd.DataFrame(out, columns=list(COLUMNS), copy=False)


def _sweep_chunk(n, toks, g, tp_a, pp_a, z, mb, v, *, accel, precision, recompute, seq_len, vocab,
                 global_batch_tokens, pue, price, grid) -> dict:
    """``sweep_training`` for one chunk of flat arrays: the same stages as ``estimate_training`` for a fixed layout."""
    spec = shape_from_params_array(n, seq_len, vocab)
    pc = param_count(spec)
    seq = spec.seq_len
    peak = peak_flops(accel, precision)
    dtype_bytes = activation_bytes(precision)
    km = resolve_rates(accel, precision, None, False).kernel  # the same rates estimate_training uses
    dp = np.floor(g / (tp_a * pp_a))
    gbt = (np.where(pc.total >= 1e11, default_global_batch_tokens(1e11), default_global_batch_tokens(1.0))
           if global_batch_tokens is None else np.broadcast_to(float(global_batch_tokens), n.shape))
    gb_seqs = np.maximum(1, np.floor(gbt / seq))
    valid = valid_layouts(spec, g, gb_seqs, tp=tp_a, pp=pp_a, dp=dp, zero=z, micro_batch=mb, interleave=v) & (
        toks >= gb_seqs * seq)
    dp = np.maximum(dp, 1.0)
    mem = training_memory_per_gpu(spec, tp=tp_a, pp=pp_a, dp=dp, ep=1, zero=z, micro_batch=mb, recompute=recompute,
                                  seq=seq, grad_bytes=framework_stack(None)[0].grad_bytes)
    mem_total = np.asarray(mem.total, dtype=float)
    fits = valid & (mem_total <= accel.memory_bytes * MEMORY_HEADROOM)
    st = step_time(spec, accel, km, tp=tp_a, pp=pp_a, dp=dp, ep=np.ones_like(dp), zero=z, micro_batch=mb,
                   recompute=recompute, global_batch_seqs=gb_seqs, seq=seq, dtype_bytes=dtype_bytes,
                   dp_overlap=fact("comm_overlap_dp")[0], interleave=v)
    step_s = np.asarray(st.total, dtype=float) / fact("framework_efficiency")[0]
    flops = training_flops(spec, toks, recompute)
    seq_per_step = np.floor(gb_seqs / (dp * mb)) * dp * mb
    seq_per_step = np.maximum(seq_per_step, dp * mb)  # rows with dp x mb > batch are invalid (fits False)
    steps = toks / (seq_per_step * seq)
    mfu = flops.model_flops / steps / (g * peak * step_s)
    good = goodput_fraction(g, fact("failure_rate_per_gpu_hour")[0], fact("restart_overhead_hours")[0],
                            checkpoint_hours(pc.total, fact("checkpoint_write_bw_gb_per_s")[0]))
    wall_h = steps * step_s / 3600 / good
    gpu_hours = wall_h * g
    busy_w = facility.busy_power(accel).w
    idle_w, _ = facility.idle_power(accel, busy_w)
    gpu_w = facility.gpu_average_power_w(idle_w, busy_w, good)  # busy power is the productive-step average
    site = facility.site(pue)
    energy = facility.energy_mwh(facility.facility_power_w(gpu_w, site.host_w, g, site.pue), wall_h)
    return {
        "params": np.asarray(pc.total, dtype=float), "tokens": toks, "gpus": g, "tp": tp_a, "pp": pp_a, "dp": dp,
        "layers": spec.layers, "d_model": spec.d_model, "flops": flops.model_flops, "gpu_hours": gpu_hours,
        "wall_clock_days": wall_h / 24.0, "energy_mwh": energy,
        "co2e_tonnes": facility.operational_co2e_t(energy, grid),
        "cost_usd": facility.cloud_cost_usd(gpu_hours, price), "mfu": mfu,
        "memory_per_gpu_gb": mem_total / GB, "fits": fits,
    }
