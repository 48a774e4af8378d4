"""Measurements -> calibration file (schema: docs/calibration-schema.md).

Fits, by least squares on relative error (each row divided by its measured time, so a
1 ms kernel weighs as much as a 1 s one):

- ``kernel_model[dtype]``: GEMM time = FLOPs / rate + kernels x overhead, attention likewise
  (a forward is 1 kernel, forward+backward 3: the estimator charges backward as 2 x forward);
- ``memory``: elementwise time = bytes / bandwidth + overhead (decode steps when no
  elementwise kernels were measured);
- ``power``: P(u) = idle + slope x u with idle from the idle windows, u = achieved / peak
  FLOP/s (peak from hardware_db; the best measured GEMM rate when the device is unknown);
- ``collectives``: time = bytes on the wire / bus bandwidth + latency per op.

A deterministic ~20% of shapes (hash of the shape id) is held out of every fit, and the
estimator's own ``estimator.timing.block_time_s`` and ``estimator.memory`` predictions are
scored on the held-out blocks.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np

from estimator.errors import EstimatorInputError
from estimator.hardware import DTYPE_BYTES  # the one dtype-size table
from hardware_db import devices
from profiler.sweep import MEASUREMENTS, RUN_FILE, read_records, utc_now

HOLDOUT_MOD = 5  # 1 in 5 shapes held out
HOLDOUT_MIN_KIND = 5
HOLDOUT_WARN = 0.25  # fit warns, and records it, when the held-out median time error is over this
PRECISION_OF = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32", "fp8": "fp8"}

# --- inputs ------------------------------------------------------------------------------------

def resolve_inputs(path: str | Path) -> tuple[Path, dict]:
    """(measurements file, run.json contents or {}) for a run directory or a measurements file."""
    p = Path(path)
    if p.is_dir():
        p = p / MEASUREMENTS
    if not p.is_file():
        raise EstimatorInputError(f"no measurements at {path}",
                                  "pass a run directory or measurements.jsonl written by 'profile-gpu sweep'")
    run_file = p.parent / RUN_FILE
    run = {}
    if run_file.is_file():
        try:
            run = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError):
            raise EstimatorInputError(f"{run_file} is not valid JSON", "restore it or remove it") from None
        if not isinstance(run, dict) or run.get("schema") != "llm-cost-profile-run":
            raise EstimatorInputError(f"{run_file} is not a profiler run file (a foreign file?)",
                                      "remove it or pass the measurements file from a profiler run")
    return p, run


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash(shape_id: str) -> str:
    return hashlib.sha256(shape_id.encode()).hexdigest()


def holdout_ids(records: list[dict]) -> set[str]:
    """Deterministic ~20% of shapes per kind, chosen by the hash of their shape id (so the
    same file always splits the same way on every machine). A kind with fewer than
    ``HOLDOUT_MIN_KIND`` shapes stays entirely in the fit set."""
    out: set[str] = set()
    kinds = sorted({r["kind"] for r in records} - {"idle", "collective"})
    for kind in kinds:
        ids = sorted({r["shape_id"] for r in records if r["kind"] == kind}, key=_hash)
        if len(ids) >= HOLDOUT_MIN_KIND:
            out.update(ids[:max(1, round(len(ids) / HOLDOUT_MOD))])
    return out


# --- least squares -------------------------------------------------------------------------------

def fit_rate_overhead(work: list[float], kernels: list[float], time_s: list[float]) -> tuple[float, float] | None:
    """Fit time = work / rate + kernels x overhead on relative error; overhead >= 0.

    Returns (rate per second, overhead seconds); with one distinct work value the line goes
    through the origin (overhead 0); None without a usable point.
    """
    w, k, t = (np.asarray(v, dtype=float) for v in (work, kernels, time_s))
    keep = (t > 0) & (w > 0)
    w, k, t = w[keep], k[keep], t[keep]
    if len(t) == 0:
        return None
    a = np.column_stack([w / t, k / t])
    (inv_rate, overhead), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if overhead < 0 or inv_rate <= 0 or len(set(w)) < 2:
        inv_rate = float(np.sum(w / t) / np.sum((w / t) ** 2))  # through the origin
        overhead = 0.0
    if inv_rate <= 0 or not math.isfinite(inv_rate):
        return None
    return float(1.0 / inv_rate), float(overhead)


def _kernels(rec: dict) -> int:
    return 3 if rec.get("mode") == "fwd_bwd" else 1


def fit_kernel_model(fit: list[dict]) -> tuple[dict, list[str]]:
    """kernel_model per precision from GEMM and attention records, plus notes on fallbacks."""
    notes: list[str] = []
    out: dict = {}
    dtypes = sorted({r["dtype"] for r in fit if r["kind"] in ("gemm", "attention")})
    per: dict = {}
    for dtype in dtypes:
        for kind in ("gemm", "attention"):
            rows = [r for r in fit if r["kind"] == kind and r["dtype"] == dtype and r.get("flops_analytic")]
            res = fit_rate_overhead([r["flops_analytic"] for r in rows], [_kernels(r) for r in rows],
                                    [r["time_s_median"] for r in rows])
            if res:
                per[(dtype, kind)] = res
    for dtype in dtypes:
        gemm = per.get((dtype, "gemm"))
        attn = per.get((dtype, "attention"))
        if gemm and not attn and dtype == "fp8" and ("bf16", "attention") in per:
            attn = per[("bf16", "attention")]
            notes.append("fp8 attention rate is the bf16 one: fp8 training keeps attention in bf16 "
                         "(Transformer Engine default)")
        if not gemm or not attn:
            notes.append(f"{dtype}: no {'GEMM' if not gemm else 'attention'} fit; precision left out")
            continue
        out[dtype] = {"gemm_flops_per_s": gemm[0], "gemm_overhead_s": gemm[1],
                      "attn_flops_per_s": attn[0], "attn_overhead_s": attn[1]}
    return out, notes


def fit_block_overhead(fit: list[dict], kernel_model: dict, memory: dict | None) -> None:
    """Per precision, the time a decoder block takes beyond its kernels (framework ops, launches, small
    norms/RoPE pieces), per pass: the median over fit-set blocks of (measured - kernel model) / passes,
    where a forward counts 1 pass and forward+backward 3. Stored as kernel_model[dtype]["block_overhead_s"]
    (>= 0) and used by estimator.timing.block_time_s; held-out blocks are predicted with it."""
    from estimator.timing import KernelModel, block_time_s
    from profiler.shapes import spec_of

    mem_rate = memory["bytes_per_s"] if memory else float("inf")
    mem_over = memory["overhead_s"] if memory else 0.0
    for dtype, km_d in kernel_model.items():
        km = KernelModel(km_d["gemm_flops_per_s"], km_d["gemm_overhead_s"], km_d["attn_flops_per_s"],
                         km_d["attn_overhead_s"], mem_rate, mem_over, source="fit")
        resid = []
        for r in fit:
            if r["kind"] != "block" or r["dtype"] != dtype:
                continue
            p = r["params"]
            training = r["mode"] == "fwd_bwd"
            pred = float(block_time_s(spec_of(p), p.get("batch", 1), p["seq"], km, training=training,
                                      dtype_bytes=DTYPE_BYTES[dtype]))
            resid.append((r["time_s_median"] - pred) / (3 if training else 1))
        km_d["block_overhead_s"] = max(0.0, float(statistics.median(resid))) if resid else 0.0


def fit_memory(fit: list[dict]) -> dict | None:
    for kind in ("elementwise", "decode"):
        rows = [r for r in fit if r["kind"] == kind and r.get("bytes_moved")]
        res = fit_rate_overhead([r["bytes_moved"] for r in rows], [1] * len(rows), [r["time_s_median"] for r in rows])
        if res:
            return {"bytes_per_s": res[0], "overhead_s": res[1], "from": kind, "n_points": len(rows)}
    return None


# --- hardware -----------------------------------------------------------------------------------

def match_accelerator(device_name: str | None, device_type: str) -> str | None:
    """hardware_db accelerator id for an NVML/torch device name, or None (always None on CPU)."""
    return devices.accelerator_for_device(device_name, device_type)


def peak_flops_per_s(accelerator_id: str | None, dtype: str) -> float | None:
    """Dense datasheet peak (FLOP/s) from hardware_db, or None."""
    return devices.peak_flops_per_s(accelerator_id, dtype)


# --- power and collectives ----------------------------------------------------------------------------

def fit_power(records: list[dict], peaks: dict[str, float], power_limit_w: float | None) -> dict | None:
    """P(u) = min(max_w, idle_w + slope_w u) from windows with energy; None without energy."""
    idle = [r["avg_power_w"] for r in records if r["kind"] == "idle" and r.get("avg_power_w")]
    pts = [(r["flops_analytic"] / r["time_s_median"] / peaks[r["dtype"]], r["avg_power_w"]) for r in records
           if r["kind"] not in ("idle", "collective") and r.get("avg_power_w") and r.get("flops_analytic")
           and r["dtype"] in peaks]
    if not pts and not idle:
        return None
    u = np.array([p[0] for p in pts])
    pw = np.array([p[1] for p in pts])
    if idle:
        idle_w = float(statistics.median(idle))
        slope = float(np.sum(u * (pw - idle_w)) / np.sum(u * u)) if len(u) and np.sum(u * u) > 0 else 0.0
    elif len(u) >= 2 and len(set(u.tolist())) >= 2:
        slope, idle_w = (float(v) for v in np.polyfit(u, pw, 1))
    else:
        return None
    max_w = power_limit_w or float(max([*pw.tolist(), *idle], default=idle_w))
    return {"idle_w": max(idle_w, 0.0), "slope_w": max(slope, 0.0), "max_w": float(max_w),
            "n_points": int(len(pts) + len(idle))}


def fit_collectives(records: list[dict]) -> dict:
    out = {}
    for op in sorted({r["params"].get("op") for r in records if r["kind"] == "collective"} - {None}):
        rows = [r for r in records if r["kind"] == "collective" and r["params"].get("op") == op]
        res = fit_rate_overhead([r["bytes_on_wire"] for r in rows], [1] * len(rows),
                                [r["time_s_median"] for r in rows])
        if res:
            out[op] = {"bus_bytes_per_s": res[0], "latency_s": res[1], "world_size": rows[0]["params"]["world_size"],
                       "backend": rows[0].get("backend"), "n_points": len(rows)}
    return out


# --- held-out error ---------------------------------------------------------------------------------

def _errors(pairs: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    errs = [abs(p - m) / m for p, m in pairs if m and m > 0 and p is not None and math.isfinite(p)]
    if not errs:
        return None, None
    return float(statistics.median(errs)), float(max(errs))


def holdout_errors(held: list[dict], kernel_model: dict, memory: dict | None, power: dict | None,
                   peaks: dict[str, float]) -> dict:
    """Errors of the fitted model on held-out shapes: blocks via the estimator's own functions
    (time: estimator.timing.block_time_s; memory: estimator.memory.block_training_peak_bytes);
    GEMM/attention through the kernel model when no block was held out."""
    from estimator.memory import block_training_peak_bytes
    from estimator.timing import KernelModel, block_time_s
    from profiler.shapes import spec_of

    blocks = [r for r in held if r["kind"] == "block" and r["dtype"] in kernel_model]
    kernels = [r for r in held if r["kind"] in ("gemm", "attention") and r["dtype"] in kernel_model]
    mem_rate = memory["bytes_per_s"] if memory else float("inf")
    mem_over = memory["overhead_s"] if memory else 0.0
    time_pairs, energy_pairs, mem_pairs = [], [], []
    used = blocks or kernels
    for r in used:
        km_d = kernel_model[r["dtype"]]
        if r["kind"] == "block":
            km = KernelModel(km_d["gemm_flops_per_s"], km_d["gemm_overhead_s"], km_d["attn_flops_per_s"],
                             km_d["attn_overhead_s"], mem_rate, mem_over, source="fit",
                             block_overhead_s=km_d.get("block_overhead_s", 0.0))
            p = r["params"]
            spec = spec_of(p)
            pred_t = float(block_time_s(spec, p.get("batch", 1), p["seq"], km, training=r["mode"] == "fwd_bwd",
                                        dtype_bytes=DTYPE_BYTES[r["dtype"]]))
            if r["mode"] == "fwd_bwd" and r.get("peak_mem_bytes"):
                pred_m = block_training_peak_bytes(spec, p.get("batch", 1), p["seq"], DTYPE_BYTES[r["dtype"]])
                mem_pairs.append((pred_m, r["peak_mem_bytes"]))
        else:
            pre = "gemm" if r["kind"] == "gemm" else "attn"
            pred_t = r["flops_analytic"] / km_d[f"{pre}_flops_per_s"] + _kernels(r) * km_d[f"{pre}_overhead_s"]
        time_pairs.append((pred_t, r["time_s_median"]))
        if power and r.get("energy_j") and r["dtype"] in peaks:
            u = r["flops_analytic"] / pred_t / peaks[r["dtype"]]
            pred_p = min(power["max_w"], power["idle_w"] + power["slope_w"] * u)
            energy_pairs.append((pred_p * pred_t, r["energy_j"]))
    t_med, t_max = _errors(time_pairs)
    errs = [abs(p - m) / m for p, m in time_pairs if m and m > 0 and p is not None and math.isfinite(p)]
    t_p90 = float(np.quantile(errs, 0.9)) if errs else None
    e_med, e_max = _errors(energy_pairs)
    m_med, m_max = _errors(mem_pairs)
    return {"n": len(held), "time_median_abs_rel_err": t_med, "time_p90_abs_rel_err": t_p90,
            "time_worst_abs_rel_err": t_max,
            "energy_median_abs_rel_err": e_med, "energy_worst_abs_rel_err": e_max,
            "memory_median_abs_rel_err": m_med, "memory_worst_abs_rel_err": m_max,
            "basis": ("held-out blocks via estimator.timing.block_time_s" if blocks
                      else "held-out GEMM/attention via the kernel model" if kernels else "none held out"),
            "n_scored": len(used)}


# --- top level ------------------------------------------------------------------------------------

def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40] or "device"


def hardware_identity(run: dict, records: list[dict]) -> dict:
    env = run.get("environment", {})
    device = env.get("device") or (records[0].get("device") if records else "cpu")
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    name = env.get("device_name") or "unknown"
    return {"accelerator_id": match_accelerator(name, device_type), "device_type": device_type, "device_name": name,
            "driver": env.get("driver"), "power_limit_w": env.get("power_limit_w"), "torch": env.get("torch"),
            "cuda": env.get("cuda"), "host": env.get("host")}


def fit_calibration(path: str | Path) -> dict:
    """Build the calibration object (schema v1) from a run directory or measurements file."""
    meas, run = resolve_inputs(path)
    records = read_records(meas)
    if is_imported(records):
        return fit_imported_calibration(meas, records)
    ok = [r for r in records if r.get("status") == "ok" and (r.get("time_s_median") or 0) > 0]
    n_unstable = sum(1 for r in ok if r.get("unstable"))
    ok = [r for r in ok if not r.get("unstable")]
    if not ok:
        raise EstimatorInputError(f"{meas} has no successful measurements",
                                  "run 'profile-gpu sweep' (or --resume it) before fitting")
    hw = hardware_identity(run, ok)
    held_ids = holdout_ids(ok)
    held = [r for r in ok if r["shape_id"] in held_ids]
    fit = [r for r in ok if r["shape_id"] not in held_ids]
    kernel_model, notes = fit_kernel_model(fit)
    if n_unstable:
        notes.append(f"{n_unstable} points flagged unstable by the sweep (spread over its limit) were left out")
    fit_block_overhead(fit, kernel_model, fit_memory(fit))
    if not kernel_model:
        raise EstimatorInputError(f"{meas} has too few GEMM and attention measurements to fit rates",
                                  "run a sweep that includes GEMM and attention shapes (the default grids do)")
    memory = fit_memory(fit)
    peaks = {}
    with_energy = any(r.get("energy_j") is not None for r in ok)
    for dtype in sorted({r["dtype"] for r in ok}):
        peak = peak_flops_per_s(hw["accelerator_id"], dtype)
        if peak is None and dtype in kernel_model:
            peak = kernel_model[dtype]["gemm_flops_per_s"]
            if with_energy:
                notes.append(f"{dtype}: no datasheet peak for this device; u uses the fitted GEMM rate as peak")
        if peak:
            peaks[dtype] = peak
    power = fit_power([r for r in fit if r.get("energy_j") is not None or r["kind"] == "idle"], peaks,
                      hw["power_limit_w"])
    collectives = fit_collectives(ok)
    holdout = holdout_errors(held, kernel_model, memory, power, peaks)
    sha = sha256_file(meas)
    date = utc_now()[:10].replace("-", "")
    mem_out = {"bytes_per_s": memory["bytes_per_s"], "overhead_s": memory["overhead_s"]} if memory else None
    warnings = []
    if holdout["time_median_abs_rel_err"] is not None and holdout["time_median_abs_rel_err"] > HOLDOUT_WARN:
        warnings.append(f"held-out median time error {100 * holdout['time_median_abs_rel_err']:.0f}% is over "
                        f"{100 * HOLDOUT_WARN:.0f}%: re-measure on an idle machine (fewer threads, longer windows)")
    for km_d in kernel_model.values():
        km_d["gemm"] = {"form": "linear", "flops_per_s": km_d["gemm_flops_per_s"],
                        "overhead_s": km_d["gemm_overhead_s"], "bytes_per_s": None, "blend_p": 1.0}
    return {
        "schema": "llm-cost-calibration", "schema_version": 2,
        "id": f"{hw['accelerator_id'] or _slug(hw['device_name'])}-{date}-{sha[:8]}",
        "created_utc": utc_now(), "hardware": hw,
        "measurements": {"file": meas.name, "sha256": sha, "n": len(ok), "n_fit": len(fit), "n_holdout": len(held)},
        "kernel_model": kernel_model, "memory": mem_out, "power": power, "collectives": collectives,
        "holdout": holdout, "warnings": warnings, "notes": notes,
        "data_source": {"dataset": "local sweep", "measured_by": "this machine (profile-gpu sweep)",
                        "torch_threads": run.get("environment", {}).get("torch_threads")},
    }


def write_calibration(cal: dict, out: str | Path) -> Path:
    """Validate with the estimator's own loader rules, then write; bad --out is a user error."""
    from estimator.calibration import validate_calibration

    out = Path(out)
    validate_calibration(cal, str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(cal, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        tmp.replace(out)
    except OSError as err:
        raise EstimatorInputError(f"cannot write {out}: {err.strerror or err}",
                                  "pass --out in a directory you can write to") from None
    return out


# --- imported measurements (Vidur): the kernel model of estimator.kernels -----------------------------

def is_imported(records: list[dict]) -> bool:
    """True when the records came from ``profile-gpu import`` (each names its data set in ``source``)."""
    return bool(records) and all(isinstance(r.get("source"), dict) and r["source"].get("dataset") for r in records)


def default_baseline(accelerator_id: str | None, dtype: str) -> dict | None:
    """Today's documented default kernel model for the device (hardware_db/assumptions.csv): GEMM at
    gemm_efficiency x dense peak + kernel_overhead_s, memory at memory_bw_efficiency x HBM bandwidth + overhead,
    all-reduce as a ring over the scale-up bandwidth. None when the device has no peak."""
    import hardware_db
    from estimator.kernels import CollectiveParams, default_params

    peak, bw = devices.peak_flops_per_s(accelerator_id, dtype), devices.hbm_bytes_per_s(accelerator_id)
    if not peak or not bw:
        return None
    a = {k: hardware_db.assumption(k) for k in ("gemm_efficiency", "memory_bw_efficiency", "kernel_overhead_s")}
    params = default_params(peak, bw, float(a["gemm_efficiency"].value), float(a["memory_bw_efficiency"].value),
                            float(a["kernel_overhead_s"].value))
    up = devices.scaleup_bytes_per_s(accelerator_id)
    return {"params": params, "collective": CollectiveParams(bus_bytes_per_s=up) if up else None,
            "source": "hardware_db/assumptions.csv gemm_efficiency, memory_bw_efficiency, kernel_overhead_s; "
                      "accelerators.csv peak, memory_bw_gb_per_s, scaleup_bw_gb_per_s"}


def _kernel_of(rec: dict) -> str:
    return str(rec.get("kernel") or rec["kind"])


def _group_errors(groups: np.ndarray, errs: np.ndarray) -> dict:
    from profiler.kernel_fit import summary

    return {g: summary(errs[groups == g]) for g in sorted(set(groups.tolist()))}


def fit_imported_gemm(rows: list[dict], wave_slots: int, dtype_bytes: int) -> tuple[dict, dict]:
    """(GemmParams dict fitted on every row, {selection, holdout errors per row}) for one precision."""
    from profiler.kernel_fit import GemmRows, fit_gemm, select_gemm_form

    g = GemmRows.of(rows)
    cand, scores = select_gemm_form(g, wave_slots, dtype_bytes)
    chosen = next(s for s in scores if s["candidate"] == cand)
    params = fit_gemm(g, cand, wave_slots, dtype_bytes)
    selection = {"chosen": cand.label, "rule": "lowest pooled leave-one-model-out median |rel err| (p90 breaks "
                                               "ties within 0.002)",
                 "candidates": [{k: v for k, v in s.items() if k not in ("candidate", "folds")} for s in scores]}
    return params.to_dict(), {"selection": selection, "folds": chosen["folds"]}


def _memory_lomo(rows: list[dict]) -> tuple[dict, np.ndarray, list[dict]]:
    """Memory params per kernel kind (fitted on all rows) and leave-one-model-out errors aligned with ``rows``."""
    from estimator.kernels import memory_time_s
    from profiler.kernel_fit import fit_memory

    kinds = np.array([_kernel_of(r) for r in rows])
    models = np.array([str(r.get("model")) for r in rows])
    by = np.array([r["bytes_moved"] for r in rows], dtype=float)
    t = np.array([r["time_s_median"] for r in rows], dtype=float)
    errs = np.full(len(rows), np.nan)
    params = {}
    folds = []
    for kind in sorted(set(kinds.tolist())):
        sel = kinds == kind
        params[kind] = fit_memory(by[sel], t[sel]).to_dict()
        for m in sorted(set(models[sel].tolist())):
            held, train = sel & (models == m), sel & (models != m)
            if not train.any():
                continue
            p = fit_memory(by[train], t[train])
            errs[held] = np.abs(memory_time_s(by[held], p) / t[held] - 1)
        folds.append(kind)
    return params, errs, folds


def fit_imported_collectives(rows: list[dict]) -> tuple[dict, list[tuple[str, float, float]]]:
    """Per op, per world size inside one node: bus bandwidth, latency and blend fitted on ~80% of buffer sizes;
    returns (collectives block, [(op, predicted_s, measured_s)] for the held-out sizes)."""
    from profiler.kernel_fit import collective_time, fit_collective, held_out_size

    out: dict = {}
    pairs: list[tuple[str, float, float]] = []
    intra = [r for r in rows if r.get("intra_node", True)]
    for op in sorted({r["params"]["op"] for r in intra}):
        by_world = {}
        for world in sorted({int(r["params"]["world_size"]) for r in intra if r["params"]["op"] == op}):
            sel = [r for r in intra if r["params"]["op"] == op and int(r["params"]["world_size"]) == world]
            held = np.array([held_out_size(op, world, int(r["params"]["bytes"])) for r in sel])
            b = np.array([r["params"]["bytes"] for r in sel], dtype=float)
            t = np.array([r["time_s_median"] for r in sel], dtype=float)
            w = np.full(len(sel), float(world))
            p = fit_collective(op, b[~held], w[~held], t[~held])
            pred = collective_time(op, b[held], w[held], p)
            pairs += [(op, float(x), float(y)) for x, y in zip(pred, t[held], strict=True)]
            by_world[str(world)] = {**p.to_dict(), "n_fit": int((~held).sum()), "n_holdout": int(held.sum()),
                                    "nodes": sorted({r.get("node", "") for r in sel})}
        top = by_world[max(by_world, key=int)]
        out[op] = {"bus_bytes_per_s": top["bus_bytes_per_s"], "latency_s": top["latency_s"],
                   "blend_p": top["blend_p"], "world_size": int(max(by_world, key=int)), "backend": "nccl",
                   "by_world_size": by_world}
    return out, pairs


def _predict_default(rec: dict, base: dict) -> float | None:
    from estimator.kernels import allreduce_time_s, gemm_time_s, memory_time_s, send_recv_time_s

    kp = base["params"]
    if rec["kind"] == "gemm":
        p = rec["params"]
        return float(gemm_time_s(p["m"], p["n"], p["k"], kp.gemm))
    if rec["kind"] == "elementwise":
        return float(memory_time_s(rec["bytes_moved"], kp.memory))
    cp = base["collective"]
    if rec["kind"] == "collective" and cp is not None:
        p = rec["params"]
        if p["op"] == "all_reduce":
            return float(allreduce_time_s(p["bytes"], p["world_size"], cp))
        return float(send_recv_time_s(p["bytes"], cp))
    return None


def error_summary(kinds: list[str], pred: list[float], meas: list[float], compute_only: bool = True) -> dict:
    """n, median/p90/worst |rel err| (over per-op compute rows, every kind but collectives, when
    ``compute_only``; else over all rows), and the same per kernel kind under ``by_kind``."""
    from profiler.kernel_fit import summary

    k = np.array(kinds, dtype=str)
    e = np.abs(np.array(pred, dtype=float) / np.array(meas, dtype=float) - 1)
    compute = ~np.isin(k, ["all_reduce", "send_recv", "collective"]) if compute_only else np.ones(len(k), bool)
    return {**summary(e[compute] if compute.any() else e), "by_kind": _group_errors(k, e)}


def fit_imported_calibration(meas: Path, records: list[dict]) -> dict:
    """Calibration (schema v2) from imported measurements: GEMM form chosen and scored leave-one-model-out,
    memory-bound kernels per kind (leave-one-model-out), collectives per world size (held-out sizes)."""
    ok = [r for r in records if r.get("status") == "ok" and (r.get("time_s_median") or 0) > 0]
    accs = sorted({str(r.get("accelerator_id")) for r in ok})
    if len(accs) != 1 or accs[0] in ("None", ""):
        raise EstimatorInputError(f"{meas} mixes devices ({', '.join(accs)}) or names none",
                                  "import one GPU's profiles per file with 'profile-gpu import vidur DIR --gpu ID'")
    acc = accs[0]
    compute = [r for r in ok if r["kind"] in ("gemm", "elementwise")]
    coll = [r for r in ok if r["kind"] == "collective"]
    gemm_rows = [r for r in compute if r["kind"] == "gemm"]
    if not gemm_rows:
        raise EstimatorInputError(f"{meas} has no GEMM rows", "import a Vidur compute folder (mlp.csv) as well")
    models = sorted({str(r.get("model")) for r in compute})
    if len(models) < 2:
        raise EstimatorInputError(f"{meas} holds one model shape ({models[0]}): nothing to score a fit on",
                                  "import a GPU's folder with two or more models")
    slots = devices.sm_count(acc) or 0
    kernel_model, notes, pairs = {}, [], []
    for dtype in sorted({r["dtype"] for r in gemm_rows}):
        rows = [r for r in gemm_rows if r["dtype"] == dtype]
        gp, info = fit_imported_gemm(rows, slots, DTYPE_BYTES[dtype])
        kernel_model[dtype] = {"gemm_flops_per_s": gp["flops_per_s"], "gemm_overhead_s": gp["overhead_s"],
                               "gemm": gp, "gemm_form_selection": info["selection"],
                               "gemm_holdout_folds": info["folds"]}
    # held-out predictions of every compute row, each from a fit that did not see its model
    from estimator.kernels import gemm_time_s
    from profiler.kernel_fit import CANDIDATES, GemmRows, fit_gemm

    for dtype, km in kernel_model.items():
        cand = next(c for c in CANDIDATES if c.label == km["gemm_form_selection"]["chosen"])
        rows = [r for r in gemm_rows if r["dtype"] == dtype]
        g = GemmRows.of(rows)
        for m in models:
            held = g.group == m
            if not held.any():
                continue
            p = fit_gemm(g.take(~held), cand, slots, DTYPE_BYTES[dtype])
            h = g.take(held)
            pairs += [("gemm", float(x), float(y)) for x, y in zip(gemm_time_s(h.m, h.n, h.k, p), h.time_s,
                                                                    strict=True)]
    mem_rows = [r for r in compute if r["kind"] == "elementwise"]
    by_kind, mem_errs, _ = _memory_lomo(mem_rows) if mem_rows else ({}, np.array([]), [])
    pairs += [(_kernel_of(r), float(e + 1) * r["time_s_median"], r["time_s_median"])
              for r, e in zip(mem_rows, mem_errs, strict=True) if math.isfinite(e)]
    memory = None
    if mem_rows:
        from profiler.kernel_fit import fit_memory

        pooled = fit_memory(np.array([r["bytes_moved"] for r in mem_rows], dtype=float),
                            np.array([r["time_s_median"] for r in mem_rows], dtype=float))
        memory = {**pooled.to_dict(), "by_kind": by_kind}
    collectives, coll_pairs = fit_imported_collectives(coll) if coll else ({}, [])
    pairs += coll_pairs
    holdout = error_summary([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs])
    holdout |= {"scheme": "compute: leave-one-model-out (each model's rows predicted by constants fitted on the "
                          "other models); collectives: ~20% of buffer sizes per op and world size held out",
                "models": models}
    base = default_baseline(acc, "fp16")
    if base:
        kinds, pred, mes = [], [], []
        for r in ok:
            if r["kind"] == "collective" and not r.get("intra_node", True):
                continue
            v = _predict_default(r, base)
            if v is not None:
                kinds.append(_kernel_of(r))
                pred.append(v)
                mes.append(r["time_s_median"])
        holdout["baseline_default"] = error_summary(kinds, pred, mes) | {"source": base["source"],
                                                                          "rows": "every imported row"}
    warnings = []
    worst = holdout.get("time_median_abs_rel_err")
    if worst is not None and worst > HOLDOUT_WARN:
        warnings.append(f"held-out median time error {100 * worst:.0f}% is over {100 * HOLDOUT_WARN:.0f}%")
    src = ok[0]["source"]
    files = sorted({r["source"].get("file", "") for r in ok})
    sha = sha256_file(meas)
    return {
        "schema": "llm-cost-calibration", "schema_version": 2,
        "id": f"{acc}-{src['dataset']}-{sha[:8]}", "created_utc": utc_now(),
        "hardware": {"accelerator_id": acc, "device_type": "cuda", "device_name": ok[0].get("device_name") or acc,
                     "sm_count": slots or None},
        "data_source": {"dataset": src["dataset"], "commit": src.get("commit"), "citation": src.get("citation"),
                        "measured_by": src.get("measured_by"), "license": "MIT (LICENSE beside this file)",
                        "files": files},
        "measurements": {"file": meas.name, "sha256": sha, "n": len(ok), "n_fit": len(ok),
                         "n_holdout": len(pairs), "models": models},
        "fit_set": "GEMM and memory constants: every compute row of every model listed; collectives: the sizes not "
                   "held out",
        "kernel_model": kernel_model, "memory": memory, "power": None, "collectives": collectives,
        "holdout": holdout, "warnings": warnings, "notes": notes,
    }
