"""Fit the kernel-time model of ``estimator.kernels`` to measured kernels, and pick its form by held-out error.

Every fit minimises the squared log ratio predicted / measured (each kernel weighs the same whatever its duration)
with a small Levenberg-Marquardt loop over log-parameters (numpy only). The GEMM form is chosen among
``CANDIDATES`` by leave-one-model-out error: each model's rows are predicted by a fit on the other models' rows, and
the form with the lowest pooled median |relative error| wins (p90 breaks near-ties). Collectives are scored on a
deterministic ~20% of buffer sizes held out of the fit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from estimator.kernels import (
    CollectiveParams,
    GemmParams,
    MemoryParams,
    allreduce_time_s,
    gemm_time_s,
    memory_time_s,
    send_recv_time_s,
)

TIE_MEDIAN = 0.002  # medians closer than this count as tied; the lower p90 then wins


@dataclass(frozen=True)
class Candidate:
    """One GEMM form: its name, tiles (0 = none), and how log-parameters map to GemmParams."""

    form: str
    tile_m: int = 0
    tile_n: int = 0

    @property
    def label(self) -> str:
        return f"{self.form}(tile {self.tile_m}x{self.tile_n})" if self.tile_m else self.form

    def x0(self, rows: GemmRows) -> np.ndarray:
        """Start: 60% of the best measured FLOP/s and bytes/s, 5 us overhead, p = 2, w = 0.3."""
        rate = float(np.max(rows.flops / rows.time_s))
        bw = float(np.max(rows.bytes / rows.time_s))
        base = [math.log(0.6 * rate), math.log(5e-6)]
        if self.form == "linear":
            return np.array(base)
        base.insert(1, math.log(0.6 * bw))
        if self.form == "roofline_max":
            return np.array(base)
        base.append(0.0)  # p = 1 + e^0 = 2
        if self.form == "roofline_pnorm_waves":
            base.append(math.log(0.3))
        return np.array(base)

    def params(self, x: np.ndarray, wave_slots: int) -> GemmParams:
        """GemmParams from log-parameters x."""
        e = np.exp(np.clip(x, -200, 200))
        if self.form == "linear":
            return GemmParams(flops_per_s=e[0], overhead_s=e[1], form=self.form)
        kw = {"flops_per_s": e[0], "bytes_per_s": e[1], "overhead_s": e[2], "form": self.form}
        if self.form == "roofline_max":
            return GemmParams(blend_p=math.inf, **kw)
        kw["blend_p"] = 1.0 + float(e[3])
        if self.form == "roofline_pnorm_waves":
            return GemmParams(tile_m=self.tile_m, tile_n=self.tile_n, wave_slots=wave_slots,
                              wave_exponent=float(e[4]), **kw)
        return GemmParams(**kw)


CANDIDATES = (Candidate("linear"), Candidate("roofline_max"), Candidate("roofline_pnorm"),
              Candidate("roofline_pnorm_waves", 64, 128), Candidate("roofline_pnorm_waves", 128, 128),
              Candidate("roofline_pnorm_waves", 128, 256))


@dataclass(frozen=True)
class GemmRows:
    """Measured GEMMs as arrays: m, n, k, FLOPs, bytes moved, seconds, and the model each came from."""

    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    time_s: np.ndarray
    group: np.ndarray

    @classmethod
    def of(cls, records: list[dict]) -> GemmRows:
        get = lambda f: np.array([f(r) for r in records], dtype=float)  # noqa: E731
        return cls(get(lambda r: r["params"]["m"]), get(lambda r: r["params"]["n"]), get(lambda r: r["params"]["k"]),
                   get(lambda r: r["flops_analytic"]), get(lambda r: r["bytes_moved"]),
                   get(lambda r: r["time_s_median"]), np.array([group_of(r) for r in records]))

    def take(self, mask: np.ndarray) -> GemmRows:
        return GemmRows(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def group_of(rec: dict) -> str:
    """The model shape a record belongs to (imported rows), else its shape id (local sweeps)."""
    return str(rec.get("model") or rec.get("shape_id"))


def levenberg_marquardt(residual: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, iters: int = 100,
                        tol: float = 1e-8) -> np.ndarray:
    """Minimise ||residual(x)||^2 from x0 (forward-difference Jacobian, adaptive damping)."""
    x = np.asarray(x0, dtype=float).copy()
    r = residual(x)
    cost = float(r @ r)
    lam = 1e-3
    for _ in range(iters):
        jac = np.empty((r.size, x.size))
        for j in range(x.size):
            dx = np.zeros_like(x)
            dx[j] = 1e-6
            jac[:, j] = (residual(x + dx) - r) / 1e-6
        a, g = jac.T @ jac, jac.T @ r
        while True:
            step = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
            r_new = residual(x + step)
            c_new = float(r_new @ r_new)
            if math.isfinite(c_new) and c_new < cost:
                x, r, improvement, cost = x + step, r_new, cost - c_new, c_new
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
            if lam > 1e10:
                return x
        if improvement < tol * max(cost, 1e-12):
            break
    return x


def _log_ratio(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.log(np.maximum(pred, 1e-30) / meas)
    return np.where(np.isfinite(out), out, 50.0)


def fit_gemm(rows: GemmRows, cand: Candidate, wave_slots: int, dtype_bytes: float = 2.0) -> GemmParams:
    """Least squares on log(predicted / measured) for one candidate form."""
    def resid(x: np.ndarray) -> np.ndarray:
        return _log_ratio(gemm_time_s(rows.m, rows.n, rows.k, cand.params(x, wave_slots), dtype_bytes), rows.time_s)

    return cand.params(levenberg_marquardt(resid, cand.x0(rows)), wave_slots)


def abs_rel_errors(pred, meas) -> np.ndarray:
    """|predicted / measured - 1| per row."""
    return np.abs(np.asarray(pred, dtype=float) / np.asarray(meas, dtype=float) - 1.0)


def summary(errs: np.ndarray) -> dict:
    """n, median, p90 and worst |relative error| (the keys of ``profile-gpu check --json``)."""
    errs = np.asarray(errs, dtype=float)
    if errs.size == 0:
        return {"n": 0, "time_median_abs_rel_err": None, "time_p90_abs_rel_err": None,
                "time_worst_abs_rel_err": None}
    return {"n": int(errs.size), "time_median_abs_rel_err": float(np.median(errs)),
            "time_p90_abs_rel_err": float(np.quantile(errs, 0.9)), "time_worst_abs_rel_err": float(np.max(errs))}


def leave_one_group_out(rows: GemmRows, fit_fn: Callable[[GemmRows], object],
                        predict: Callable[[GemmRows, object], np.ndarray]) -> tuple[np.ndarray, list[dict]]:
    """Pooled held-out errors and one fold record per group: each group predicted by a fit on the others."""
    groups = sorted(set(rows.group.tolist()))
    errs, folds = [], []
    for g in groups:
        held = rows.group == g
        params = fit_fn(rows.take(~held))
        e = abs_rel_errors(predict(rows.take(held), params), rows.time_s[held])
        errs.append(e)
        folds.append({"held_out": g, "fit_on": [x for x in groups if x != g], **summary(e)})
    return (np.concatenate(errs) if errs else np.array([])), folds


def select_gemm_form(rows: GemmRows, wave_slots: int, dtype_bytes: float = 2.0,
                     candidates: tuple[Candidate, ...] = CANDIDATES) -> tuple[Candidate, list[dict]]:
    """The candidate with the lowest pooled leave-one-model-out median error (p90 breaks near-ties), and the
    scores of all candidates. Forms with waves are skipped when ``wave_slots`` is unknown (0)."""
    scores = []
    for cand in candidates:
        if cand.form == "roofline_pnorm_waves" and wave_slots <= 0:
            continue
        errs, folds = leave_one_group_out(
            rows, lambda r, c=cand: fit_gemm(r, c, wave_slots, dtype_bytes),
            lambda r, p: gemm_time_s(r.m, r.n, r.k, p, dtype_bytes))
        scores.append({"form": cand.label, "candidate": cand, **summary(errs), "folds": folds})
    best_median = min(s["time_median_abs_rel_err"] for s in scores)
    near = [s for s in scores if s["time_median_abs_rel_err"] <= best_median + TIE_MEDIAN]
    best = min(near, key=lambda s: s["time_p90_abs_rel_err"])
    return best["candidate"], scores


# --- memory-bound kernels ----------------------------------------------------------------------------

def fit_memory(bytes_: np.ndarray, time_s: np.ndarray) -> MemoryParams:
    """time = bytes / bytes_per_s + overhead_s, least squares on log ratio."""
    bw0 = float(np.max(bytes_ / time_s))

    def resid(x: np.ndarray) -> np.ndarray:
        return _log_ratio(memory_time_s(bytes_, MemoryParams(*np.exp(x))), time_s)

    x = levenberg_marquardt(resid, np.array([math.log(0.6 * bw0), math.log(float(np.min(time_s)))]))
    return MemoryParams(*(float(v) for v in np.exp(x)))


# --- collectives ----------------------------------------------------------------------------------------

def held_out_size(op: str, world: int, size_bytes: int) -> bool:
    """Deterministic ~20% of (op, world, size) points held out of the collective fit."""
    h = hashlib.sha256(f"{op}|{world}|{size_bytes}".encode()).digest()
    return h[0] % 5 == 0


def collective_time(op: str, bytes_: np.ndarray, world: np.ndarray, p: CollectiveParams) -> np.ndarray:
    """Predicted seconds of ``op`` (all_reduce or send_recv)."""
    return allreduce_time_s(bytes_, world, p) if op == "all_reduce" else send_recv_time_s(bytes_, p)


def fit_collective(op: str, bytes_: np.ndarray, world: np.ndarray, time_s: np.ndarray) -> CollectiveParams:
    """Bus bandwidth, latency and blend exponent p >= 1 of one op at one world size (least squares on log ratio)."""
    def params(x: np.ndarray) -> CollectiveParams:
        e = np.exp(np.clip(x, -200, 200))
        return CollectiveParams(bus_bytes_per_s=float(e[0]), latency_s=float(e[1]), blend_p=1.0 + float(e[2]))

    def resid(x: np.ndarray) -> np.ndarray:
        return _log_ratio(collective_time(op, bytes_, world, params(x)), time_s)

    bw0 = float(np.max(bytes_ / time_s))
    return params(levenberg_marquardt(resid, np.array([math.log(bw0), math.log(float(np.min(time_s))), 0.0])))
