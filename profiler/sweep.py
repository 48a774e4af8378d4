"""Sweeps: which shapes to measure, and a runner that appends each result as it completes.

A run directory holds ``run.json`` (the run's config and environment, written first) and
``measurements.jsonl`` (one JSON record per shape, appended, flushed and fsync'd as soon
as it is measured), so a killed sweep loses at most the shape in flight. ``--resume``
skips every shape whose stable ``shape_id`` is already in the file. An out-of-memory
shape is recorded with ``status="oom"`` and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from estimator.errors import EstimatorInputError
from profiler.backend import EnergyBackend
from profiler.measure import RepeatConfig, WindowMonitor, peak_memory, rel_diff, time_fn

MEASUREMENTS = "measurements.jsonl"
RUN_FILE = "run.json"
RECORD_SCHEMA = "llm-cost-profile-measurement"
RECORD_VERSION = 1
DONE_STATUSES = ("ok", "oom", "unsupported", "skipped", "error")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- grids ----------------------------------------------------------------------------------

def quick_grid(dtypes: Iterable[str] = ("fp32",)) -> list:
    """Tiny shapes that run on a laptop CPU in seconds (smoke test and fit test)."""
    from profiler.shapes import Shape

    out = []
    for dtype in dtypes:
        for m, n, k in ((64, 64, 64), (128, 128, 128), (256, 256, 256), (256, 512, 128), (512, 256, 256)):
            out.append(Shape.make("gemm", "fwd", dtype, m=m, n=n, k=k))
        for seq in (32, 64, 128, 256):
            for mode in ("fwd", "fwd_bwd"):
                out.append(Shape.make("attention", mode, dtype, d_model=128, heads=4, kv_heads=2, batch=1, seq=seq))
        for seq in (32, 64, 128):
            for batch in (1, 2):
                for mode in ("fwd", "fwd_bwd"):
                    out.append(Shape.make("block", mode, dtype, d_model=128, heads=4, kv_heads=2, batch=batch,
                                          seq=seq))
        for mode in ("fwd", "fwd_bwd"):
            out.append(Shape.make("block", mode, dtype, d_model=128, heads=4, kv_heads=4, batch=1, seq=64, gated=0))
            out.append(Shape.make("block", mode, dtype, d_model=128, heads=4, kv_heads=2, batch=1, seq=64,
                                  experts=4, top_k=2, ffn_dim=128))
        for batch in (1, 4):
            for ctx in (64, 256):
                out.append(Shape.make("decode", "fwd", dtype, d_model=128, heads=4, kv_heads=2, batch=batch,
                                      context=ctx))
        for numel in (1 << 14, 1 << 16, 1 << 18, 1 << 20):
            out.append(Shape.make("elementwise", "fwd", dtype, numel=numel))
    return out


def _gemm_grid(dtypes: list[str]) -> list:
    """Square GEMMs 256..16384 and the GEMMs of a block at 8192 tokens (QKV with GQA, MLP up, MLP down)."""
    from profiler.shapes import Shape, default_ffn

    out = []
    for dtype in dtypes:
        for n in (256, 512, 1024, 2048, 4096, 8192, 16384):
            out.append(Shape.make("gemm", "fwd", dtype, m=n, n=n, k=n))
        for d in (1024, 4096, 8192):
            ffn = default_ffn(d)
            for n, k in ((d + 2 * 8 * 128, d), (2 * ffn, d), (d, ffn)):
                out.append(Shape.make("gemm", "fwd", dtype, m=8192, n=n, k=k))
    return out


def _attention_grid(main: str, dtypes: list[str]) -> list:
    """Attention over seq 512..32768 in the main dtype, and a few lengths in every other one."""
    from profiler.shapes import Shape

    out = [Shape.make("attention", mode, main, d_model=4096, heads=32, kv_heads=8, batch=1, seq=seq)
           for seq in (512, 1024, 2048, 4096, 8192, 16384, 32768) for mode in ("fwd", "fwd_bwd")]
    for dtype in dtypes:  # every precision needs its own attention rate in the calibration
        if dtype not in (main, "fp8"):
            out += [Shape.make("attention", mode, dtype, d_model=4096, heads=32, kv_heads=8, batch=1, seq=seq)
                    for seq in (1024, 4096, 16384) for mode in ("fwd", "fwd_bwd")]
    return out


def _block_grid(main: str) -> list:
    """Dense blocks over d_model, sequence and micro-batch; MHA and MoE blocks."""
    from profiler.shapes import Shape, default_ffn

    out = [Shape.make("block", mode, main, d_model=d, heads=d // 128, kv_heads=8, batch=batch, seq=seq)
           for d in (1024, 2048, 4096, 8192, 16384)
           for seq, batch in ((512, 1), (512, 8), (2048, 1), (2048, 4), (8192, 1), (32768, 1))
           for mode in ("fwd", "fwd_bwd")]
    for mode in ("fwd", "fwd_bwd"):
        for seq in (2048, 8192):
            out.append(Shape.make("block", mode, main, d_model=4096, heads=32, kv_heads=32, batch=1, seq=seq))
            for d, e, k in ((2048, 8, 2), (4096, 16, 2), (4096, 64, 8)):
                out.append(Shape.make("block", mode, main, d_model=d, heads=d // 128, kv_heads=8, batch=1, seq=seq,
                                      experts=e, top_k=k, ffn_dim=(default_ffn(d) * 2) // k // 64 * 64))
    return out


def full_grid(dtypes: Iterable[str] = ("bf16", "fp16", "fp32", "fp8")) -> list:
    """The GPU grid: GEMMs per dtype; blocks, attention, decode and elementwise in bf16 (or the
    first non-fp8 dtype given); idle power. d_model 1024..16384, seq 512..32768."""
    from profiler.shapes import Shape

    dtypes = list(dtypes)
    main = next((d for d in dtypes if d != "fp8"), "bf16")
    out = [Shape.make("idle", "fwd", main, seconds=5), *_gemm_grid(dtypes), *_attention_grid(main, dtypes),
           *_block_grid(main)]
    out += [Shape.make("decode", "fwd", main, d_model=d, heads=d // 128, kv_heads=8, batch=batch, context=ctx)
            for d in (4096, 8192) for batch in (1, 8, 64) for ctx in (512, 4096, 32768)]
    out += [Shape.make("elementwise", "fwd", main, numel=1 << p) for p in range(20, 31, 2)]
    return out


# --- environment and run files -------------------------------------------------------------------

def environment(device: str, backend: EnergyBackend) -> dict:
    """Where the run happens: device identity from NVML/torch, software versions, host."""
    import torch

    info = backend.info().to_dict()
    env = {"device": device, **info, "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "platform": platform.platform(),
           "torch_threads": torch.get_num_threads(), "energy_available": backend.available,
           "energy_why": backend.why or None, "energy_counter_update_period_s": backend.update_period_s}
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        props = torch.cuda.get_device_properties(dev)
        if info.get("device_name") in (None, "unknown"):
            env["device_name"] = torch.cuda.get_device_name(dev)
        env["memory_total_bytes"] = env.get("memory_total_bytes") or int(props.total_memory)
        env["compute_capability"] = f"{props.major}.{props.minor}"
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        env["memory_total_bytes"] = host_memory_bytes()
    return env


def host_memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _finite(v):
    """JSON has no NaN/inf: a non-finite float is written as null (missing), never as a number."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line and make it durable (flush + fsync) before returning."""
    line = json.dumps(_finite(record), sort_keys=True, allow_nan=False, default=str)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair_tail(path: Path) -> int:
    """Cut a partial last line left by a killed writer; returns the bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


def read_records(path: Path) -> list[dict]:
    """Records of a measurements file; raises EstimatorInputError on a corrupt or foreign file.

    A partial last line (a kill mid-write) is ignored, not an error.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise EstimatorInputError(f"cannot read measurements file {path}: {type(err).__name__}",
                                  "pass a measurements.jsonl written by 'profile-gpu sweep'") from None
    partial_tail = lines[-1] != ""
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if partial_tail and i == len(lines) - 1:
                break
            raise EstimatorInputError(f"measurements file {path} line {i + 1} is not valid JSON",
                                      "pass a measurements.jsonl written by 'profile-gpu sweep'") from None
        except (ValueError, RecursionError):  # a number of over 4,300 digits, or nesting too deep to read
            raise EstimatorInputError(f"measurements file {path} line {i + 1} cannot be read (a number too long or "
                                      "nesting too deep)", "pass a measurements.jsonl written by 'profile-gpu sweep'"
                                      ) from None
        if not isinstance(rec, dict) or rec.get("schema") != RECORD_SCHEMA:
            raise EstimatorInputError(f"{path} line {i + 1} is not a profiler measurement (a foreign file?)",
                                      "pass a measurements.jsonl written by 'profile-gpu sweep'")
        problem = record_problem(rec)
        if problem:
            raise EstimatorInputError(f"{path} line {i + 1}: {problem}",
                                      "restore the row as 'profile-gpu sweep' wrote it, or delete that line and "
                                      "re-measure it with --resume")
        out.append(rec)
    return out


RECORD_DTYPES = ("bf16", "fp16", "fp32", "fp8")
TEXT_PARAMS = ("op",)  # the one shape parameter that is a name (a collective's op); every other one is a number
#: optional numeric fields of a record: when present they are numbers (or null), never text
NUMERIC_FIELDS = ("time_s_median", "time_s_p10", "time_s_p90", "window_s", "flops_analytic", "flops_counted",
                  "bytes_moved", "bytes_on_wire", "energy_j", "avg_power_w", "peak_mem_bytes", "mem_baseline_bytes",
                  "n_iters", "temperature_c", "sm_clock_mhz")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (not isinstance(v, float) or math.isfinite(v))


def record_problem(rec: dict) -> str | None:
    """What makes a measurement row unusable (a missing key, text where a number belongs), or None."""
    for key in ("shape_id", "kind", "status"):
        if not isinstance(rec.get(key), str) or not rec[key]:
            return f"'{key}' is missing or not a string"
    if rec["status"] != "ok":
        return None
    for key in ("mode", "dtype"):
        if not isinstance(rec.get(key), str):
            return f"'{key}' is missing or not a string"
    if not isinstance(rec.get("params"), dict):
        return "'params' is missing or not an object"
    if rec["dtype"] not in RECORD_DTYPES:
        return f"dtype {rec['dtype'][:20]!r} is not one of {', '.join(RECORD_DTYPES)}"
    bad = [k for k, v in rec["params"].items() if not (_is_number(v) or (k in TEXT_PARAMS and isinstance(v, str)))]
    if bad:
        return f"params.{bad[0]} is not a number"
    if not _is_number(rec.get("time_s_median")) or rec["time_s_median"] <= 0:
        return f"time_s_median must be a positive number, got {str(rec.get('time_s_median'))[:40]!r}"
    for key in NUMERIC_FIELDS:
        if rec.get(key) is not None and not _is_number(rec[key]):
            return f"{key} must be a number or null, got {str(rec[key])[:40]!r}"
    return None


def done_ids(path: Path) -> set[str]:
    if not Path(path).exists():
        return set()
    return {r["shape_id"] for r in read_records(path) if r.get("status") in DONE_STATUSES}


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- measuring one shape ----------------------------------------------------------------------------

OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def is_oom(err: BaseException) -> bool:
    import torch

    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                  getattr(torch.cuda, "OutOfMemoryError", None)) if t)
    if isinstance(err, (*oom_types, MemoryError)):
        return True
    # CUDA says "out of memory"; torch's CPU allocator says "can't allocate memory" / "not enough memory"
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(m in text for m in OOM_MESSAGES)


def _free(device: str, collect: bool = False) -> None:
    """Return freed memory to the device. ``gc.collect`` (a few 100 ms with torch loaded) runs
    only after a failure, when a traceback may hold the failed shape's tensors."""
    if collect:
        gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def base_record(shape, device: str) -> dict:
    return {"schema": RECORD_SCHEMA, "schema_version": RECORD_VERSION, "shape_id": shape.id, **shape.to_dict(),
            "device": device, "t_utc": utc_now()}


def measure_idle(shape, backend: EnergyBackend, device: str) -> dict:
    """Idle power: an energy window with nothing queued (after synchronising)."""
    rec = base_record(shape, device)
    if not backend.available:
        return rec | {"status": "unsupported", "reason": f"idle power needs the energy counter: {backend.why}",
                      "energy_j": None, "energy_method": "unavailable"}
    from profiler.measure import cuda_sync

    sync = cuda_sync if device.startswith("cuda") else None
    mon = WindowMonitor(backend, sync=sync)
    with mon.window("idle") as w:
        time.sleep(float(shape.p.get("seconds", 5)))
    m = w.measurement
    return rec | {"status": "ok", "time_s_median": m.time_s, "window_s": m.time_s, "n_iters": 1, "energy_j": m.energy_j,
                  "energy_method": m.energy_method, "avg_power_w": m.avg_power_w, "throttled": m.throttled,
                  "throttle_reasons": list(m.throttle_reasons)}


def measure_shape(shape, device: str, backend: EnergyBackend, cfg: RepeatConfig, free_bytes: float | None = None,
                  count: bool = True) -> dict:
    """Measure one shape; never raises for OOM or an unsupported shape (the record says so)."""
    from profiler import blocks

    if shape.kind == "idle":
        return measure_idle(shape, backend, device)
    rec = base_record(shape, device)
    need = blocks.estimate_bytes(shape)
    if free_bytes is not None and need > free_bytes:
        return rec | {"status": "skipped", "reason": f"needs about {need / 2**30:.1f} GiB, device has "
                                                     f"{free_bytes / 2**30:.1f} GiB"}
    built = None
    try:
        built = blocks.build(shape, device)
        counted = blocks.count_flops(built.step) if count and built.flops_analytic else None
        t = time_fn(built.step, backend, cfg, "cuda" if device.startswith("cuda") else "cpu", name=shape.id)
        mem = peak_memory(built.step, "cuda" if device.startswith("cuda") else "cpu")  # warm: workspaces exist
    except blocks.Unsupported as err:
        return rec | {"status": "unsupported", "reason": str(err)}
    except Exception as err:  # noqa: BLE001 - one shape's failure must not end the sweep
        del built
        _free(device, collect=True)
        if is_oom(err):
            return rec | {"status": "oom", "reason": str(err).splitlines()[0][:300] if str(err) else "out of memory"}
        return rec | {"status": "error", "reason": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
    w = t.window
    out = rec | {
        "status": "ok", "n_iters": t.n_iters, "time_s_median": t.time_s_median, "time_s_p10": t.time_s_p10,
        "time_s_p90": t.time_s_p90, "time_method": t.time_method, "window_s": w.time_s,
        "windows": t.windows, "time_spread_rel": t.spread_rel, "unstable": t.unstable, "torch_threads": _threads(),
        "energy_j": t.energy_j_per_iter, "energy_method": w.energy_method, "energy_why": w.energy_why or None,
        "avg_power_w": t.avg_power_w, "throttled": w.throttled, "throttle_reasons": list(w.throttle_reasons),
        "sm_clock_mhz": w.end.sm_clock_mhz, "temperature_c": w.end.temperature_c,
        "peak_mem_bytes": mem.peak_bytes, "mem_baseline_bytes": mem.baseline_bytes, "mem_method": mem.method,
        "mem_why": mem.why or None, "flops_analytic": built.flops_analytic, "flops_counted": counted,
        "flops_rel_diff": rel_diff(counted, built.flops_analytic), "bytes_moved": built.bytes_moved,
    }
    del built
    _free(device)
    return out


def _threads() -> int | None:
    """torch's intra-op CPU threads now (recorded on every record: a loaded CPU with many threads is noisy)."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


# --- the runner ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """One frozen record of a run's settings, written to run.json beside its measurements."""

    grid: str
    device: str
    dtypes: tuple[str, ...]
    repeat: RepeatConfig
    country_iso_code: str | None = "USA"
    time_budget_s: float | None = None
    codecarbon: bool = True
    threads: int | None = None  # torch CPU threads pinned for the run (None: left as found)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def carbon_tracker(run_dir: Path, country: str | None, enabled: bool = True) -> Iterator[dict]:
    """codecarbon's OfflineEmissionsTracker around the run; failures are recorded, never raised."""
    result: dict = {"tool": "codecarbon", "country_iso_code": country}
    tracker = None
    if not enabled:
        result["why"] = "disabled (--no-codecarbon)"
    else:
        try:
            from codecarbon import OfflineEmissionsTracker

            tracker = OfflineEmissionsTracker(country_iso_code=country or "USA", output_dir=str(run_dir),
                                              save_to_file=True, log_level="error", project_name="profile-gpu")
            tracker.start()
        except Exception as err:  # noqa: BLE001 - the profiler's own footprint is secondary
            tracker = None
            result["why"] = f"codecarbon failed to start: {type(err).__name__}: {err}"
    try:
        yield result
    finally:
        if tracker is not None:
            try:
                kg = tracker.stop()
                data = getattr(tracker, "final_emissions_data", None)
                result["emissions_kgco2e"] = kg
                result["energy_kwh"] = getattr(data, "energy_consumed", None)
                result["version"] = getattr(data, "codecarbon_version", None)
            except Exception as err:  # noqa: BLE001
                result["why"] = f"codecarbon failed to stop: {type(err).__name__}: {err}"


def prepare_run_dir(run_dir: Path, cfg: SweepConfig, env: dict, resume: bool) -> Path:
    """Create/check the run directory; refuses to mix hardware or to overwrite measurements."""
    run_dir.mkdir(parents=True, exist_ok=True)
    meas = run_dir / MEASUREMENTS
    run_file = run_dir / RUN_FILE
    if meas.exists() and meas.stat().st_size and not resume:
        raise EstimatorInputError(f"{meas} already holds measurements",
                                  "pass --resume to continue that run, or a new --out directory")
    if resume and run_file.exists():
        try:
            old = json.loads(run_file.read_text())
            if not isinstance(old.get("sessions"), list) or not isinstance(old.get("environment", {}), dict):
                raise TypeError("not a run file")  # a run file always has its list of sessions
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise EstimatorInputError(f"{run_file} is corrupt or not a profiler run file",
                                      "restore it, or use a new --out directory") from None
        old_name = old.get("environment", {}).get("device_name")
        if old_name and old_name != env.get("device_name"):
            raise EstimatorInputError(f"{run_dir} was measured on {old_name!r}, this is {env.get('device_name')!r}",
                                      "resume on the same device, or use a new --out directory")
        runs = old.get("sessions", [])
    else:
        runs = []
    runs.append({"started_utc": utc_now(), "config": cfg.to_dict(), "environment": env})
    write_json_atomic(run_file, {"schema": "llm-cost-profile-run", "schema_version": 1, "config": cfg.to_dict(),
                                 "environment": env, "sessions": runs, "measurements": MEASUREMENTS})
    repair_tail(meas)
    meas.touch()
    return meas


def run_sweep(shapes: list, run_dir: Path, cfg: SweepConfig, backend: EnergyBackend, resume: bool = False,
              progress: bool = True, on_record: Callable[[dict], None] | None = None) -> dict:
    """Measure ``shapes`` into ``run_dir``; returns counts by status. See the module docstring."""
    if cfg.threads:
        import torch

        torch.set_num_threads(max(1, cfg.threads))
    env = environment(cfg.device, backend)
    meas = prepare_run_dir(run_dir, cfg, env, resume)
    done = done_ids(meas) if resume else set()
    todo = [s for s in shapes if s.id not in done]
    free = env.get("memory_total_bytes")
    free = 0.9 * free if free else None
    counts: dict[str, int] = {"already_done": len(shapes) - len(todo)}
    started = time.monotonic()
    with carbon_tracker(run_dir, cfg.country_iso_code, cfg.codecarbon) as carbon, _progress(progress) as bar:
        task = bar.add_task("profiling", total=len(todo))
        for shape in todo:
            if cfg.time_budget_s is not None and time.monotonic() - started > cfg.time_budget_s:
                counts["not_started_time_budget"] = counts.get("not_started_time_budget", 0) + 1
                continue
            bar.update(task, description=shape.id[:60])
            rec = measure_shape(shape, cfg.device, backend, cfg.repeat, free)
            append_record(meas, rec)
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
            if on_record:
                on_record(rec)
            bar.advance(task)
    _finish_run_file(run_dir / RUN_FILE, carbon, counts)
    return counts


def _finish_run_file(run_file: Path, carbon: dict, counts: dict) -> None:
    data = json.loads(run_file.read_text())
    data["sessions"][-1].update({"finished_utc": utc_now(), "emissions": carbon, "counts": counts})
    write_json_atomic(run_file, data)


@contextlib.contextmanager
def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=not enabled, transient=False) as bar:
        yield bar
