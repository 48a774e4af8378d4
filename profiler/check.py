"""``profile-gpu check``: a calibration's predicted time against every measured row, and a summary.

Rows are predicted through ``estimator.kernels`` with the calibration's constants: GEMMs by ``gemm_time_s``,
memory-bound kernels by ``memory_time_s`` (the kernel kind's own constants when the file has them), all-reduce and
send/recv by the constants of the nearest measured world size. Rows the calibration cannot predict (another
precision, a multi-node collective, a block) are counted as skipped, not scored.
"""

from __future__ import annotations

from pathlib import Path

from estimator.calibration import Calibration
from estimator.hardware import DTYPE_BYTES  # the one dtype-size table
from estimator.kernels import allreduce_time_s, gemm_time_s, memory_time_s, send_recv_time_s


def kernel_kind(rec: dict) -> str:
    """The kind a row is summarised under: gemm, norm, rope, activation, add, embedding, all_reduce, send_recv..."""
    if rec.get("kind") == "collective":
        return str(rec.get("params", {}).get("op") or "collective")
    return str(rec.get("kernel") or rec.get("kind"))


def predict(cal: Calibration, rec: dict) -> tuple[float | None, str]:
    """(predicted seconds or None, why not) for one measurement record."""
    kind, p = rec.get("kind"), rec.get("params") or {}
    if kind == "collective":
        if not rec.get("intra_node", True):
            return None, "multi-node collective (the calibration covers one node)"
        world = int(p.get("world_size", 1))
        cp = cal.collective_params(p.get("op", ""), world)
        if cp is None:
            return None, f"no {p.get('op')} in the calibration"
        if p.get("op") == "all_reduce":
            return float(allreduce_time_s(p["bytes"], world, cp)), ""
        return float(send_recv_time_s(p["bytes"], cp)), ""
    kp = cal.kernel_params(str(rec.get("dtype")))
    if kp is None:
        return None, f"no {rec.get('dtype')} kernel model in the calibration"
    if kind == "gemm":
        return float(gemm_time_s(p["m"], p["n"], p["k"], kp.gemm, DTYPE_BYTES.get(rec.get("dtype"), 2))), ""
    if kind == "elementwise" and rec.get("bytes_moved"):
        mp = kp.memory_by_kind.get(kernel_kind(rec), kp.memory)
        return float(memory_time_s(rec["bytes_moved"], mp)), ""
    return None, f"{kind} rows are not predicted by the kernel model"


def check(cal: Calibration, records: list[dict], source: str | Path = "") -> dict:
    """Per-row predictions and the summary (``n``, median/p90/worst |rel err|, ``by_kind``) over scored rows."""
    from profiler.fit import error_summary

    rows, skipped = [], {}
    for rec in records:
        if rec.get("status") != "ok" or not (rec.get("time_s_median") or 0) > 0:
            continue
        pred, why = predict(cal, rec)
        if pred is None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        meas = float(rec["time_s_median"])
        rows.append({"shape_id": rec.get("shape_id"), "kind": kernel_kind(rec), "measured_s": meas,
                     "predicted_s": pred, "rel_err": pred / meas - 1})
    summary = error_summary([r["kind"] for r in rows], [r["predicted_s"] for r in rows],
                            [r["measured_s"] for r in rows], compute_only=False)
    devices = sorted({str(r["accelerator_id"]) for r in records if r.get("accelerator_id")})
    other = [d for d in devices if cal.accelerator_id and d != cal.accelerator_id]
    mismatch = (f"measurements from {', '.join(other)} checked against a calibration for {cal.accelerator_id}"
                if other else None)
    return {**summary, "calibration": cal.id, "measurements": str(source), "skipped": skipped,
            "device_mismatch": mismatch, "rows": rows}
