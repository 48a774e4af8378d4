"""``profile-gpu``: measure this machine, then fit a calibration file for the estimator.

    profile-gpu info
    profile-gpu sweep --quick --device cpu --out runs/cpu
    profile-gpu sweep --device cuda --out runs/h100 [--resume] [--dtype bf16,fp8] [--country FRA]
    profile-gpu collectives --nproc 8 --device cuda --out runs/h100
    profile-gpu fit runs/h100 --out hardware_db/calibrations/h100.json
    profile-gpu import vidur vidur/compute/h100 vidur/network/h100_dgx --gpu h100-sxm --out runs/vidur-h100.jsonl
    profile-gpu check hardware_db/calibrations/h100-sxm.json runs/vidur-h100.jsonl [--json]

Argument parsing and formatting only; the work is in ``profiler.sweep`` / ``profiler.fit``.
A bad input prints one line on stderr and exits 2, and never touches what was measured.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from estimator.errors import EstimatorInputError, suggest
from estimator.inputs import show

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Profile a GPU (or CPU) and fit a calibration for the cost estimator.")

KNOWN_DTYPES = ("bf16", "fp16", "fp32", "fp8")
SHAPE_KEYS = {
    "block": ("d_model", "heads", "kv_heads", "ffn_dim", "batch", "seq", "experts", "top_k", "gated"),
    "attention": ("d_model", "heads", "kv_heads", "batch", "seq"),
    "decode": ("d_model", "heads", "kv_heads", "ffn_dim", "batch", "context", "experts", "top_k", "gated"),
    "gemm": ("m", "n", "k"),
    "elementwise": ("numel",),
}
REQUIRED_KEYS = {"block": ("d_model", "seq"), "attention": ("d_model", "seq"), "decode": ("d_model", "context"),
                 "gemm": ("m", "n", "k"), "elementwise": ("numel",)}
MAX_CPU_PROCS = 64  # gloo processes on one CPU host: beyond this a "collective" measures the scheduler
NO_GPU = "no CUDA GPU visible: torch.cuda.is_available() is False; use --device cpu"


def _fail(err: Exception) -> None:
    typer.echo(f"profile-gpu: error: {err}", err=True)
    raise typer.Exit(2)


def _torch():
    try:
        import torch
    except ImportError:
        raise EstimatorInputError("torch is not installed", "pip install -e .[profiler]") from None
    return torch


def resolve_device(device: str) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device string; a missing GPU is a user error."""
    torch = _torch()
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise EstimatorInputError(NO_GPU)
        idx = int(device.split(":", 1)[1]) if ":" in device and device.split(":", 1)[1].isdigit() else 0
        if idx >= torch.cuda.device_count():
            raise EstimatorInputError(f"{device} does not exist: {torch.cuda.device_count()} GPU(s) visible",
                                      "pick --device cuda:N with N below the count")
        return f"cuda:{idx}"
    raise EstimatorInputError(f"unknown --device {device!r}", "use auto, cpu, cuda or cuda:N")


def parse_dtypes(values: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        return default
    out = []
    for v in values:
        for d in (x.strip().lower() for x in v.split(",") if x.strip()):
            if d not in KNOWN_DTYPES:
                raise EstimatorInputError(f"unknown --dtype {d!r}", suggest(d, KNOWN_DTYPES))
            out.append(d)
    return tuple(dict.fromkeys(out))


def parse_shape(kind: str, text: str, mode: str, dtype: str):
    """'d_model=4096,seq=8192,batch=1' -> a blocks.Shape; unknown or bad keys are user errors."""
    from profiler.shapes import Shape, spec_of

    if kind not in SHAPE_KEYS:
        raise EstimatorInputError(f"unknown --kind {kind!r}", suggest(kind, SHAPE_KEYS))
    params = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, val = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise EstimatorInputError(f"--shape part {part!r} is not KEY=VALUE", "e.g. --shape d_model=4096,seq=8192")
        if key not in SHAPE_KEYS[kind]:
            raise EstimatorInputError(f"unknown shape parameter {key!r} for a {kind}", suggest(key, SHAPE_KEYS[kind]))
        try:
            f = float(val)
            params[key] = int(f) if math.isfinite(f) and f.is_integer() and f <= 2 ** 40 else None
        except ValueError:
            params[key] = None
        if params[key] is None or params[key] < (0 if key == "gated" else 1):
            raise EstimatorInputError(f"shape parameter {key} must be a positive integer up to 2^40, got "
                                      f"{show(val.strip())}", f"e.g. {key}=1024")
    missing = [k for k in REQUIRED_KEYS[kind] if k not in params]
    if missing:
        raise EstimatorInputError(f"--shape for a {kind} lacks {', '.join(missing)}",
                                  f"give {', '.join(f'{k}=N' for k in REQUIRED_KEYS[kind])}")
    if kind in ("block", "attention", "decode"):
        spec_of(params)  # ModelSpec validation: heads dividing d_model, kv_heads dividing heads ...
    if kind == "decode" and mode != "fwd":
        raise EstimatorInputError("decode is forward-only", "use --mode fwd with --kind decode")
    return Shape.make(kind, mode, dtype, **params)


def check_writable(out: Path) -> None:
    """Create ``out`` and prove a file can be written there (before measuring anything)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise EstimatorInputError(f"cannot write to --out {out}: {err.strerror or err}",
                                  "choose a directory you can write to") from None


@app.command()
def sweep(
    quick: Annotated[bool, typer.Option("--quick", help="tiny grid for a CPU smoke run (seconds)")] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<time>-<device>)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="skip shapes already measured in --out")] = False,
    dtype: Annotated[list[str] | None, typer.Option("--dtype", help="bf16, fp16, fp32, fp8 (repeat or a,b)")] = None,
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-3 code for codecarbon")] = "USA",
    kind: Annotated[str, typer.Option("--kind", help="kind of --shape: block, attention, decode, gemm, "
                                                     "elementwise")] = "block",
    shape: Annotated[list[str] | None, typer.Option("--shape", help="measure only these shapes, e.g. "
                                                                    "d_model=4096,seq=8192")] = None,
    mode: Annotated[str, typer.Option("--mode", help="fwd or fwd_bwd for --shape")] = "fwd_bwd",
    min_window_s: Annotated[float | None, typer.Option("--min-window-s", help="shortest energy window "
                                                                              "(default 1 s; quick 0.02)")] = None,
    counter_periods: Annotated[int | None, typer.Option("--counter-periods", help="energy window >= N x the "
                                                                                  "counter update period (20)")] = None,
    time_budget_s: Annotated[float | None, typer.Option("--time-budget-s", help="start no new shape after this "
                                                                                "many seconds")] = None,
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads, pinned for the run and recorded "
                                                           "(1: steadiest on a shared or loaded machine)")] = 1,
    codecarbon: Annotated[bool, typer.Option("--codecarbon/--no-codecarbon", help="track this run's own "
                                                                                  "emissions")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Measure kernels and blocks, appending each result to OUT/measurements.jsonl."""
    try:
        _sweep(quick, device, out, resume, dtype, country, kind, shape, mode, min_window_s, counter_periods,
               time_budget_s, threads, codecarbon, progress)
    except EstimatorInputError as err:
        _fail(err)


def _check_sweep_numbers(threads: int, min_window_s: float | None, counter_periods: int | None,
                         time_budget_s: float | None) -> None:
    """The sweep's numeric options, refused with one line before anything is measured (never clamped)."""
    if not 1 <= threads <= 4096:
        raise EstimatorInputError(f"--threads {threads} must be between 1 and 4096", "e.g. --threads 1")
    if counter_periods is not None and not 0 <= counter_periods <= 10_000:
        raise EstimatorInputError(f"--counter-periods {counter_periods} must be between 0 and 10000",
                                  "e.g. --counter-periods 20")
    for flag, v in (("--min-window-s", min_window_s), ("--time-budget-s", time_budget_s)):
        if v is not None and not (math.isfinite(v) and 0 < v <= 1e7):
            raise EstimatorInputError(f"{flag} {v:g} must be a positive number of seconds", f"e.g. {flag} 1")


def _sweep(quick, device, out, resume, dtype, country, kind, shape, mode, min_window_s, counter_periods,
           time_budget_s, threads, codecarbon, progress) -> None:
    from dataclasses import replace

    _check_sweep_numbers(threads, min_window_s, counter_periods, time_budget_s)
    torch = _torch()
    dev = resolve_device(device)
    torch.set_num_threads(threads)
    if not (len(country) == 3 and country.isalpha()):
        raise EstimatorInputError(f"--country {country!r} is not an ISO 3166 alpha-3 code", "e.g. --country USA")
    if mode not in ("fwd", "fwd_bwd"):
        raise EstimatorInputError(f"unknown --mode {mode!r}", "use fwd or fwd_bwd")
    default_dtypes = ("fp32",) if (quick or dev == "cpu") else ("bf16", "fp16", "fp32", "fp8")
    dtypes = parse_dtypes(dtype, default_dtypes)

    from profiler import blocks
    from profiler import sweep as sw
    from profiler.backend import open_backend
    from profiler.measure import RepeatConfig

    if shape:
        shapes = [parse_shape(kind, s, mode, dtypes[0]) for s in shape]
        grid = "custom"
    else:
        shapes = sw.quick_grid(dtypes) if quick else sw.full_grid(dtypes)
        grid = "quick" if quick else "full"
    out = out or Path("runs") / f"{dt.datetime.now():%Y%m%d-%H%M%S}-{dev.replace(':', '')}"
    backend = open_backend(dev)
    try:
        capacity = sw.environment(dev, backend).get("memory_total_bytes")
        if shape and capacity:
            for s in shapes:
                if blocks.estimate_bytes(s) > 0.9 * capacity:
                    raise EstimatorInputError(
                        f"shape {s.id} needs about {blocks.estimate_bytes(s) / 2**30:.1f} GiB, more than this "
                        f"device's {capacity / 2**30:.1f} GiB", "lower batch, seq or d_model")
        check_writable(out)
        repeat = RepeatConfig.quick() if (quick or dev == "cpu") else RepeatConfig()
        if min_window_s is not None:
            repeat = replace(repeat, min_window_s=min_window_s)
        if counter_periods is not None:
            repeat = replace(repeat, counter_periods=counter_periods)
        cfg = sw.SweepConfig(grid=grid, device=dev, dtypes=dtypes, repeat=repeat, country_iso_code=country.upper(),
                             time_budget_s=time_budget_s, codecarbon=codecarbon, threads=threads)
        try:
            counts = sw.run_sweep(shapes, out, cfg, backend, resume=resume, progress=progress)
        except OSError as err:  # the disk filled or the run directory went away mid-run: rows written so far stay
            raise EstimatorInputError(f"cannot write to {out}: {err.strerror or err} (the rows measured so far are "
                                      f"kept in {out / sw.MEASUREMENTS})",
                                      f"free space, then rerun with --resume --out {out} to finish") from None
    finally:
        backend.close()
    summary = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    typer.echo(f"{out / sw.MEASUREMENTS}: {summary} (torch threads {threads})")
    unstable = sum(1 for r in sw.read_records(out / sw.MEASUREMENTS) if r.get("unstable"))
    if unstable:
        typer.echo(f"profile-gpu: warning: {unstable} points kept a spread over {100 * repeat.max_spread:.0f}% "
                   f"after {repeat.max_windows} windows (flagged 'unstable'; fit leaves them out)", err=True)
    if not backend.available:
        typer.echo(f"energy not measured: {backend.why}", err=True)


@app.command()
def fit(
    path: Annotated[Path | None, typer.Argument(help="run directory or measurements.jsonl (default: the newest "
                                                     "run under ./runs)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="calibration file (default <run dir>/calibration.json)")]
    = None,
) -> None:
    """Fit a calibration file (docs/calibration-schema.md) from a sweep's measurements."""
    try:
        from profiler.fit import fit_calibration, write_calibration

        if path is None:
            runs = sorted((p for p in Path("runs").glob("*") if (p / "measurements.jsonl").is_file()),
                          key=lambda p: (p / "measurements.jsonl").stat().st_mtime)
            if not runs:
                raise EstimatorInputError("no run directory given and none under ./runs",
                                          "run 'profile-gpu sweep' first, or pass the run directory")
            path = runs[-1]

        cal = fit_calibration(path)
        target = out or ((path if path.is_dir() else path.parent) / "calibration.json")
        written = write_calibration(cal, target)
    except EstimatorInputError as err:
        _fail(err)
        return
    h = cal["holdout"]
    err_t, p90 = h.get("time_median_abs_rel_err"), h.get("time_p90_abs_rel_err")
    typer.echo(f"{written}: {cal['id']}, {cal['measurements']['n']} measurements, held-out time error "
               f"{'n/a' if err_t is None else f'{100 * err_t:.1f}% median'}"
               f"{'' if p90 is None else f', {100 * p90:.1f}% p90'}")
    for kind, s in (h.get("by_kind") or {}).items():
        typer.echo("  " + _summary_line(kind, s))
    for w in cal.get("warnings") or []:
        typer.echo(f"profile-gpu: warning: {w}", err=True)


import_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Convert public profiling data into the profiler's measurement format.")
app.add_typer(import_app, name="import")


@import_app.command("vidur")
def import_vidur_cmd(
    dirs: Annotated[list[Path], typer.Argument(help="Vidur profile folders: compute/<gpu>[/<org>/<model>] and/or "
                                                    "network/<node>")],
    gpu: Annotated[str, typer.Option("--gpu", help="hardware_db accelerator id the profiles were measured on")],
    out: Annotated[Path, typer.Option("--out", help="measurements file to write (.jsonl; a directory gets "
                                                    "measurements.jsonl)")],
) -> None:
    """Import Vidur (microsoft/vidur, MLSys 2024) compute and network profiles, one kernel per row."""
    try:
        import hardware_db
        from profiler.sweep import MEASUREMENTS
        from profiler.vidur import import_vidur

        try:
            acc = hardware_db.get_accelerator(gpu)
        except ValueError as err:
            raise EstimatorInputError(f"unknown --gpu {gpu!r}", "see estimate --list-gpus") from err
        records = import_vidur(dirs, acc.id, acc.name)
        target = out / MEASUREMENTS if out.is_dir() else out
        written = _write_jsonl(records, target)
    except EstimatorInputError as err:
        _fail(err)
        return
    kinds = {}
    for r in records:
        kinds[r.get("kernel", r["kind"])] = kinds.get(r.get("kernel", r["kind"]), 0) + 1
    typer.echo(f"{written}: {len(records)} rows from Vidur ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})"
               f", measured by Vidur's authors on their {acc.id}")


def _write_jsonl(records: list[dict], target: Path) -> Path:
    """Write records as JSON lines, atomically; an unwritable --out is a user error."""
    import json

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=True, allow_nan=False) + "\n")
        tmp.replace(target)
    except OSError as err:
        raise EstimatorInputError(f"cannot write --out {target}: {err.strerror or err}",
                                  "choose a file in a directory you can write to") from None
    return target


@app.command()
def check(
    calibration: Annotated[Path, typer.Argument(help="calibration file (docs/calibration-schema.md)")],
    measurements: Annotated[Path, typer.Argument(help="measurements.jsonl or a run directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object: n, "
                                                          "time_{median,p90,worst}_abs_rel_err, by_kind")] = False,
    rows_out: Annotated[Path | None, typer.Option("--rows", help="also write every row's predicted and measured time "
                                                               "(JSON lines) to this file")] = None,
) -> None:
    """Predicted against measured time for every row, and the median/p90/worst error overall and per kernel kind."""
    try:
        import json

        from estimator.calibration import load_calibration
        from profiler.check import check as run_check
        from profiler.fit import resolve_inputs
        from profiler.sweep import read_records

        cal = load_calibration(calibration)
        meas, _ = resolve_inputs(measurements)
        result = run_check(cal, read_records(meas), meas)
        if not result["n"]:
            raise EstimatorInputError(f"no row of {meas} can be predicted by {calibration.name} "
                                      f"({'; '.join(result['skipped']) or 'no successful rows'})",
                                      "pass measurements of the calibration's kernels and precision")
    except EstimatorInputError as err:
        _fail(err)
        return
    if rows_out is not None:
        try:
            rows_out.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in result["rows"]))
        except OSError as err:
            _fail(EstimatorInputError(f"cannot write {rows_out} ({err.strerror or err})",
                                      "pass a writable --rows path"))
            return
    if as_json:
        keys = ("n", "time_median_abs_rel_err", "time_p90_abs_rel_err", "time_worst_abs_rel_err", "by_kind")
        typer.echo(json.dumps({k: result[k] for k in keys}, allow_nan=False))
        if result.get("device_mismatch"):
            typer.echo(f"profile-gpu: warning: {result['device_mismatch']}", err=True)
        return
    for r in result["rows"]:
        typer.echo(f"{r['shape_id']}\t{r['kind']}\tmeasured {r['measured_s'] * 1e6:.1f} us\tpredicted "
                   f"{r['predicted_s'] * 1e6:.1f} us\t{100 * r['rel_err']:+.1f}%")
    typer.echo(_summary_line("all", result))
    for kind, s in result["by_kind"].items():
        typer.echo(_summary_line(kind, s))
    for why, n in result["skipped"].items():
        typer.echo(f"skipped {n} rows: {why}")
    if result.get("device_mismatch"):
        typer.echo(f"profile-gpu: warning: {result['device_mismatch']}", err=True)


def _summary_line(name: str, s: dict) -> str:
    return (f"{name}: n {s['n']}, |error| median {100 * s['time_median_abs_rel_err']:.1f}%, p90 "
            f"{100 * s['time_p90_abs_rel_err']:.1f}%, worst {100 * s['time_worst_abs_rel_err']:.1f}%")


@app.command()
def collectives(
    out: Annotated[Path, typer.Option("--out", help="run directory; appends to its measurements.jsonl")],
    nproc: Annotated[int, typer.Option("--nproc", help="processes (GPUs) on this node")] = 2,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    ops: Annotated[str, typer.Option("--ops", help="comma-separated subset of the four ops")] = (
        "all_reduce,all_gather,reduce_scatter,all_to_all"),
    sizes: Annotated[str | None, typer.Option("--sizes", help="total buffer bytes, comma-separated")] = None,
    iters: Annotated[int, typer.Option("--iters")] = 20,
    repeats: Annotated[int, typer.Option("--repeats")] = 5,
    resume: Annotated[bool, typer.Option("--resume")] = False,
) -> None:
    """Time collectives through torch.distributed, launched here with torchrun."""
    try:
        from profiler.collectives import OPS

        dev = resolve_device(device)
        for op in (o.strip() for o in ops.split(",") if o.strip()):
            if op not in OPS:
                raise EstimatorInputError(f"unknown collective {op!r}", suggest(op, OPS))
        if not [o for o in ops.split(",") if o.strip()]:
            raise EstimatorInputError("--ops names no collective", f"pass some of {', '.join(OPS)}")
        if nproc < 2:
            raise EstimatorInputError(f"--nproc {nproc}: a collective needs at least 2 processes", "pass --nproc 2")
        most = _torch().cuda.device_count() if dev.startswith("cuda") else min(MAX_CPU_PROCS, 4 * (os.cpu_count() or 1))
        if nproc > most:
            raise EstimatorInputError(f"--nproc {nproc} is more processes than this machine can run ({most} on "
                                      f"{'its GPUs' if dev.startswith('cuda') else 'its CPU cores'})",
                                      f"pass --nproc {max(2, most)} or fewer")
        for flag, v, hi in (("--iters", iters, 1_000_000), ("--repeats", repeats, 10_000)):
            if not 1 <= v <= hi:
                raise EstimatorInputError(f"{flag} {v} must be between 1 and {hi:,}", f"e.g. {flag} 20")
        if sizes:
            parts = [x.strip() for x in sizes.split(",") if x.strip()]
            if not parts or not all(x.isdigit() and len(x) <= 14 and 0 < int(x) <= 2 ** 40 for x in parts):
                raise EstimatorInputError(f"--sizes {show(sizes)} must be positive whole numbers of bytes up to 2^40",
                                          "e.g. --sizes 1024,1048576")
        check_writable(out)
    except EstimatorInputError as err:
        _fail(err)
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "profiler.collectives", "--out", str(out), "--device", "cuda" if dev.startswith("cuda") else "cpu",
           "--ops", ops, "--iters", str(iters), "--repeats", str(repeats)]
    if sizes:
        cmd += ["--sizes", sizes]
    if resume:
        cmd.append("--resume")
    env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rc = subprocess.call(cmd, env=env)
    if rc:
        typer.echo(f"profile-gpu: error: torchrun exited with status {rc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{out / 'measurements.jsonl'}: collectives appended")


@app.command()
def info() -> None:
    """What is detected: torch, CUDA, NVML, the GPU, and why energy is unavailable."""
    try:
        import torch
    except ImportError:
        typer.echo("torch: not installed (pip install -e .[profiler])")
        torch = None
    from profiler.backend import open_backend

    if torch is not None:
        typer.echo(f"torch: {torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        typer.echo(f"cuda available: {torch.cuda.is_available()}; GPUs visible: {n}")
        for i in range(n):
            typer.echo(f"  cuda:{i}: {torch.cuda.get_device_name(i)}")
        device = "cuda:0" if n else "cpu"
    else:
        device = "cpu"
    backend = open_backend(device if device != "cpu" else "cuda:0")
    try:
        d = backend.info()
        if backend.available:
            typer.echo(f"NVML: {d.device_name}, driver {d.driver}, power limit {d.power_limit_w} W; "
                       f"energy counter available")
        else:
            typer.echo(f"energy: unavailable ({backend.why})")
    finally:
        backend.close()
    try:
        from importlib.metadata import version

        typer.echo(f"codecarbon: {version('codecarbon')}")
    except Exception:  # noqa: BLE001
        typer.echo("codecarbon: not installed")


def main(argv: list[str] | None = None) -> None:
    """Entry point: typer's usage errors become one line on stderr and exit code 2, like every bad input."""
    from estimator.errors import click_error_types

    errs = click_error_types()
    try:
        rc = app(args=argv, standalone_mode=False)  # without standalone mode, typer.Exit(n) comes back as n
    except errs["UsageError"] as err:  # NoSuchOption is a UsageError
        msg = err.format_message().strip().rstrip(".")
        if not msg:  # no sub-command: click printed the help and raised with an empty message
            ctx = getattr(err, "ctx", None)
            names = sorted(getattr(getattr(ctx, "command", None), "commands", {}) or ())
            msg = "no command given" + (f" (one of: {', '.join(names)})" if names else "")
        sys.stderr.write(f"profile-gpu: error: {msg[:300]}; "
                         "see profile-gpu --help\n")
        raise SystemExit(2) from None
    except errs["Abort"]:
        sys.stderr.write("profile-gpu: error: aborted\n")
        raise SystemExit(2) from None
    if isinstance(rc, int) and rc:
        raise SystemExit(rc)


if __name__ == "__main__":
    main()
