"""Load and validate calibration files written by ``profile-gpu fit`` (schema: docs/calibration-schema.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from estimator.errors import EstimatorInputError
from estimator.inputs import show

SCHEMA = "llm-cost-calibration"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
KERNEL_KEYS = ("gemm_flops_per_s", "gemm_overhead_s", "attn_flops_per_s", "attn_overhead_s")  # v1: all required
HOLDOUT_WARN = 0.25  # an estimate warns when the calibration's held-out median time error is over this

# Physical ranges every number must fall in (a value outside is a corrupt or foreign file, not a measurement):
# FLOP/s up to 1e17 (B200 dense fp4 is ~1e16), bytes/s up to 1e14 (HBM3e ~8e12), seconds up to 10.
RANGES = {"flops_per_s": (1e6, 1e17), "bytes_per_s": (1e3, 1e14), "overhead_s": (0.0, 10.0),
          "latency_s": (0.0, 10.0), "blend_p": (1.0, 1e3), "tile_m": (0, 4096), "tile_n": (0, 4096),
          "wave_slots": (0, 100_000), "wave_exponent": (0.0, 10.0), "w": (0.0, 1e5), "max_w": (1.0, 1e5),
          "err": (0.0, 1e6), "count": (0, 1e9)}


@dataclass(frozen=True)
class Calibration:
    """A validated calibration: kernel model per precision, memory rate, power curve, collectives, held-out error."""

    id: str
    path: str
    accelerator_id: str | None
    device_name: str
    device_type: str
    kernel_model: dict  # precision -> {gemm_flops_per_s, gemm_overhead_s, [attn_*], [gemm: GemmParams dict]}
    memory: dict | None
    power: dict | None
    collectives: dict
    holdout: dict
    raw: dict = field(repr=False, compare=False, default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    data_source: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def power_w(self, utilisation):
        """GPU power (W) at compute utilisation u = achieved / peak FLOP/s: min(max_w, idle + slope u)."""
        import numpy as np

        p = self.power
        return np.minimum(p["max_w"], p["idle_w"] + p["slope_w"] * np.asarray(utilisation, dtype=float))

    @property
    def time_rel_error(self) -> float | None:
        """Worst held-out relative time error, used as the efficiency range of an estimate."""
        v = self.holdout.get("time_worst_abs_rel_err")
        return float(v) if v is not None else None

    @property
    def holdout_warning(self) -> str | None:
        """A one-line warning when the held-out median time error is over HOLDOUT_WARN (25%), else None."""
        v = self.holdout.get("time_median_abs_rel_err")
        if v is None or v <= HOLDOUT_WARN:
            return None
        return (f"calibration {self.id}: held-out median time error {100 * v:.0f}% is over "
                f"{100 * HOLDOUT_WARN:.0f}%; its rates may be off by that much")

    def kernel_params(self, precision: str):
        """``estimator.kernels.KernelParams`` for ``precision``, or None when the file has none for it.

        A v1 file (and a v2 file without a ``gemm`` block) gives the linear form: FLOPs / rate + overhead."""
        from estimator.kernels import GemmParams, KernelParams, MemoryParams

        km = self.kernel_model.get(precision)
        if km is None:
            return None
        if isinstance(km.get("gemm"), dict):
            gemm = GemmParams.from_dict(km["gemm"])
        else:
            gemm = GemmParams(flops_per_s=km["gemm_flops_per_s"], overhead_s=km["gemm_overhead_s"])
        mem = self.memory or {}
        memory = MemoryParams(mem["bytes_per_s"], mem.get("overhead_s", 0.0)) if mem else None
        by_kind = {k: MemoryParams(v["bytes_per_s"], v.get("overhead_s", 0.0))
                   for k, v in (mem.get("by_kind") or {}).items()}
        if memory is None:
            return None
        return KernelParams(gemm=gemm, memory=memory, memory_by_kind=by_kind, source=self.id)

    def collective_params(self, op: str, world_size: int | None = None):
        """``estimator.kernels.CollectiveParams`` of ``op`` at ``world_size`` (the nearest measured world size, else
        the op's headline entry), or None when the op was not measured."""
        from estimator.kernels import CollectiveParams

        c = self.collectives.get(op)
        if not c:
            return None
        by = c.get("by_world_size") or {}
        if world_size is not None and by:
            key = min(by, key=lambda w: (abs(int(w) - world_size), -int(w)))
            c = by[key]
        return CollectiveParams(c["bus_bytes_per_s"], c.get("latency_s", 0.0), c.get("blend_p", 1.0))

    def summary(self) -> dict:
        """The calibration's identity and held-out error, as named in every estimate."""
        return {"id": self.id, "path": self.path, "accelerator_id": self.accelerator_id,
                "device_name": self.device_name, "holdout": self.holdout, "data_source": self.data_source,
                "warnings": list(self.warnings)}


def _bad(path: str, problem: str) -> EstimatorInputError:
    return EstimatorInputError(f"calibration file {path}: {problem}",
                               "regenerate it with 'profile-gpu fit' or pass a file that follows "
                               "docs/calibration-schema.md")


def _finite(value) -> float | None:
    """``value`` as a finite float, or None when it is not a number (bool, text, NaN, inf, a 400-digit integer)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


def _positive(path: str, where: str, value) -> float:
    v = _finite(value)
    if v is None or v < 0:
        raise _bad(path, f"{where} must be a non-negative number, got {show(value)}")
    return v


def _in_range(path: str, where: str, value, kind: str, allow_null: bool = False) -> float | None:
    """A finite number inside RANGES[kind] (null allowed where it means 'none' / infinity)."""
    if value is None and allow_null:
        return None
    lo, hi = RANGES[kind]
    v = _finite(value)
    if v is None or not lo <= v <= hi:
        raise _bad(path, f"{where} must be a finite number in [{lo:g}, {hi:g}], got {show(value)}")
    return v


def _check_gemm(path: str, where: str, g: object) -> None:
    from estimator.kernels import GEMM_FORMS

    if not isinstance(g, dict):
        raise _bad(path, f"{where} is not an object")
    if g.get("form") not in GEMM_FORMS:
        raise _bad(path, f"{where}.form is {g.get('form')!r}, expected one of {', '.join(GEMM_FORMS)}")
    _in_range(path, f"{where}.flops_per_s", g.get("flops_per_s"), "flops_per_s")
    _in_range(path, f"{where}.overhead_s", g.get("overhead_s"), "overhead_s")
    _in_range(path, f"{where}.bytes_per_s", g.get("bytes_per_s"), "bytes_per_s", allow_null=g["form"] == "linear")
    _in_range(path, f"{where}.blend_p", g.get("blend_p", 1.0), "blend_p", allow_null=True)
    for k in ("tile_m", "tile_n", "wave_slots", "wave_exponent"):
        if k in g:
            _in_range(path, f"{where}.{k}", g[k], k)


def _check_holdout(path: str, holdout: dict, where: str = "holdout") -> None:
    for k, v in holdout.items():
        if k == "n" and v is not None:
            _in_range(path, f"{where}.n", v, "count")
            if v != int(v):
                raise _bad(path, f"{where}.n must be a whole number, got {show(v)}")
        elif k.endswith("_abs_rel_err"):
            _in_range(path, f"{where}.{k}", v, "err", allow_null=True)
        elif k in ("by_kind", "baseline_default") and isinstance(v, dict):
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    _check_holdout(path, vv, f"{where}.{k}.{kk}")
                elif kk.endswith("_abs_rel_err"):
                    _in_range(path, f"{where}.{k}.{kk}", vv, "err", allow_null=True)


def _check_kernel_model(path: str, km: object, version: int) -> None:
    if not isinstance(km, dict) or not km:
        raise _bad(path, "missing 'kernel_model' (rates per precision)")
    required = KERNEL_KEYS if version == 1 else KERNEL_KEYS[:2]
    for prec, rates in km.items():
        if not isinstance(rates, dict):
            raise _bad(path, f"kernel_model.{prec} is not an object")
        for k in required:
            if k not in rates:
                raise _bad(path, f"kernel_model.{prec} lacks {k}")
        for k in KERNEL_KEYS + ("block_overhead_s",):
            if k in rates:
                _in_range(path, f"kernel_model.{prec}.{k}", rates[k],
                          "flops_per_s" if k.endswith("flops_per_s") else "overhead_s")
        if "gemm" in rates:
            _check_gemm(path, f"kernel_model.{prec}.gemm", rates["gemm"])


def _check_memory(path: str, mem: object) -> None:
    if mem is None:
        return
    if not isinstance(mem, dict) or "bytes_per_s" not in mem:
        raise _bad(path, "'memory' must hold bytes_per_s and overhead_s")
    entries = {"memory": mem, **{f"memory.by_kind.{k}": v for k, v in (mem.get("by_kind") or {}).items()}}
    for where, v in entries.items():
        if not isinstance(v, dict):
            raise _bad(path, f"{where} is not an object")
        _in_range(path, f"{where}.bytes_per_s", v.get("bytes_per_s"), "bytes_per_s")
        _in_range(path, f"{where}.overhead_s", v.get("overhead_s", 0.0), "overhead_s")


def _check_collectives(path: str, coll: object) -> dict:
    coll = coll or {}
    if not isinstance(coll, dict):
        raise _bad(path, "'collectives' must be an object")
    for op, v in coll.items():
        if not isinstance(v, dict) or "bus_bytes_per_s" not in v:
            raise _bad(path, f"collectives.{op} lacks bus_bytes_per_s")
        by = v.get("by_world_size") or {}
        if not isinstance(by, dict) or not all(str(w).isdigit() and 0 < int(w) <= 10 ** 7 for w in by):
            raise _bad(path, f"collectives.{op}.by_world_size must map world sizes (whole numbers) to entries")
        entries = {f"collectives.{op}": v, **{f"collectives.{op}.by_world_size.{w}": x for w, x in by.items()}}
        for where, x in entries.items():
            if not isinstance(x, dict):
                raise _bad(path, f"{where} is not an object")
            _in_range(path, f"{where}.bus_bytes_per_s", x.get("bus_bytes_per_s"), "bytes_per_s")
            _in_range(path, f"{where}.latency_s", x.get("latency_s", 0.0), "latency_s")
            _in_range(path, f"{where}.blend_p", x.get("blend_p", 1.0), "blend_p")
    return coll


def validate_calibration(data: object, path: str = "<calibration>") -> Calibration:
    """Check a parsed calibration object against schema v2 (or v1) and return it typed; every number must be
    finite and inside RANGES."""
    if not isinstance(data, dict):
        raise _bad(path, "not a JSON object")
    if data.get("schema") != SCHEMA:
        raise _bad(path, f"'schema' is {data.get('schema')!r}, expected {SCHEMA!r} (a foreign file?)")
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise _bad(path, f"schema_version {version!r} is not supported (this version reads "
                         f"{', '.join(map(str, READABLE_VERSIONS))})")
    hw = data.get("hardware")
    if not isinstance(hw, dict) or not isinstance(hw.get("device_type"), str):
        raise _bad(path, "missing 'hardware' with 'device_type' (a string)")
    for k in ("accelerator_id", "device_name"):
        if hw.get(k) is not None and not isinstance(hw[k], str):
            raise _bad(path, f"hardware.{k} must be a string, got {show(hw[k])}")
    if data.get("id") is not None and not isinstance(data["id"], str):
        raise _bad(path, f"'id' must be a string, got {show(data['id'])}")
    km = data.get("kernel_model")
    _check_kernel_model(path, km, version)
    mem = data.get("memory")
    _check_memory(path, mem)
    power = data.get("power")
    if power is not None:
        if not isinstance(power, dict):
            raise _bad(path, "'power' must be an object or null")
        for k in ("idle_w", "slope_w", "max_w"):
            if k not in power:
                raise _bad(path, f"power lacks {k}")
            _in_range(path, f"power.{k}", power[k], "max_w" if k == "max_w" else "w")
        if power["idle_w"] > power["max_w"]:
            raise _bad(path, f"power.idle_w ({power['idle_w']:g} W) is above power.max_w ({power['max_w']:g} W)")
    coll = _check_collectives(path, data.get("collectives"))
    holdout = data.get("holdout") or {}
    if not isinstance(holdout, dict):
        raise _bad(path, "'holdout' must be an object")
    _check_holdout(path, holdout)
    src = data.get("data_source") or {}
    warnings = data.get("warnings") or []
    if not isinstance(src, dict) or not isinstance(warnings, list):
        raise _bad(path, "'data_source' must be an object and 'warnings' a list")
    return Calibration(id=str(data.get("id", Path(path).stem)), path=str(path), accelerator_id=hw.get("accelerator_id"),
                       device_name=str(hw.get("device_name", "")), device_type=str(hw["device_type"]),
                       kernel_model=km or {}, memory=mem, power=power, collectives=coll, holdout=holdout, raw=data,
                       schema_version=int(version), data_source=src, warnings=tuple(str(w) for w in warnings))


def load_calibration(path: str | Path, accelerator_id: str | None = None, force: bool = False) -> Calibration:
    """Read a calibration file; refuse one measured on another accelerator unless ``force``."""
    p = Path(path)
    if not p.is_file():
        raise EstimatorInputError(f"calibration file {p} not found",
                                  "check the path, or create one with 'profile-gpu sweep' then 'profile-gpu fit'")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(str(p), f"not valid JSON ({type(err).__name__}: {str(err).splitlines()[0][:80]})") from None
    except RecursionError:
        raise _bad(str(p), "nested too deeply to be a calibration") from None
    except (ValueError, OverflowError):  # a number of more than 4,300 digits
        raise _bad(str(p), "holds a number too long to read (over 4,300 digits)") from None
    cal = validate_calibration(data, str(p))
    if accelerator_id and not force and cal.accelerator_id != accelerator_id:
        measured = cal.accelerator_id or f"{cal.device_type} '{cal.device_name}'"
        raise EstimatorInputError(f"calibration {p.name} was measured on {measured}, not {accelerator_id}",
                                  f"pass --gpu {cal.accelerator_id or '<its gpu>'} to match it, or "
                                  "--force-calibration to apply it anyway")
    return cal
