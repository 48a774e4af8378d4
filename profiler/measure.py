"""Measurement windows and repeat-until-long-enough timing.

``WindowMonitor.begin_window(name)`` / ``end_window(name) -> Measurement`` follow zeus's
API (named windows that may overlap); ``window(name)`` is the ``with`` form. Both edges
synchronise the device so queued GPU work is inside the window. ``time_fn`` warms up, then
repeats a step until the window is long enough for the energy counter (``RepeatConfig``),
timing each iteration (CUDA events on GPU, ``perf_counter`` on CPU) and reporting the
median and p10/p90. Energy is the counter's difference over the whole window divided by
the iterations; a missing counter gives ``energy_j=None`` and ``energy_method="unavailable"``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from profiler.backend import EnergyBackend, Sample

ENERGY_METHOD = "nvml_total_energy_consumption"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Measurement:
    """One window: wall time in seconds, energy in joules (None when unavailable)."""

    name: str
    time_s: float
    energy_j: float | None
    energy_method: str
    energy_why: str = ""
    throttle_reasons: tuple[str, ...] = ()
    start: Sample = field(default_factory=Sample)
    end: Sample = field(default_factory=Sample)

    @property
    def avg_power_w(self) -> float | None:
        """Average power over the window in watts (energy / time), None without energy."""
        if self.energy_j is None or self.time_s <= 0:
            return None
        return self.energy_j / self.time_s

    @property
    def throttled(self) -> bool:
        return bool(self.throttle_reasons)


class WindowMonitor:
    """Named measurement windows over one energy backend."""

    def __init__(self, backend: EnergyBackend, sync: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.backend = backend
        self.sync = sync or (lambda: None)
        self.clock = clock
        self._open: dict[str, tuple[float, int | None, Sample]] = {}

    def begin_window(self, name: str) -> None:
        if name in self._open:
            raise ValueError(f"measurement window {name!r} is already open")
        self.sync()
        sample = self.backend.sample()
        self._open[name] = (self.clock(), self.backend.energy_mj(), sample)

    def end_window(self, name: str) -> Measurement:
        if name not in self._open:
            raise ValueError(f"measurement window {name!r} was never begun")
        self.sync()
        t1, e1 = self.clock(), self.backend.energy_mj()
        end = self.backend.sample()
        t0, e0, start = self._open.pop(name)
        if e0 is None or e1 is None:
            energy, method, why = None, UNAVAILABLE, self.backend.why or "energy counter returned nothing"
        else:
            energy, method, why = (e1 - e0) / 1000.0, ENERGY_METHOD, ""
        reasons = tuple(dict.fromkeys(start.throttle_reasons + end.throttle_reasons))
        return Measurement(name=name, time_s=t1 - t0, energy_j=energy, energy_method=method, energy_why=why,
                           throttle_reasons=reasons, start=start, end=end)

    @contextmanager
    def window(self, name: str) -> Iterator[WindowResult]:
        """``with mon.window("x") as w: ...`` then ``w.measurement`` holds the result."""
        holder = WindowResult()
        self.begin_window(name)
        try:
            yield holder
        finally:
            holder.measurement = self.end_window(name)


@dataclass
class WindowResult:
    measurement: Measurement | None = None


@dataclass(frozen=True)
class RepeatConfig:
    """How long to measure. A window lasts at least ``max(min_window_s, counter_periods x
    counter update period)`` when energy is available (else ``min_window_s``), and has at
    least ``min_iters`` iterations, after ``warmup_iters`` untimed ones."""

    warmup_iters: int = 3
    min_iters: int = 5
    max_iters: int = 2_000_000
    min_window_s: float = 1.0
    counter_periods: int = 20
    max_window_s: float = 60.0
    max_spread: float = 0.05  # (p90 - p10) / median above this: measure the window again
    max_windows: int = 3  # at most this many windows per point; the tightest is kept, flagged if still loose

    @classmethod
    def quick(cls) -> RepeatConfig:
        """Short windows for CPU smoke runs (energy is unavailable there anyway)."""
        return cls(warmup_iters=1, min_iters=3, min_window_s=0.02, counter_periods=0, max_window_s=2.0,
                   max_spread=0.10, max_windows=3)

    def target_window_s(self, backend: EnergyBackend) -> float:
        if backend.available:
            return max(self.min_window_s, self.counter_periods * backend.update_period_s)
        return self.min_window_s


@dataclass(frozen=True)
class Timing:
    """Per-iteration statistics of one repeated step. Times in seconds, energy in joules."""

    n_iters: int
    time_s_median: float
    time_s_p10: float
    time_s_p90: float
    time_method: str
    window: Measurement
    windows: int = 1  # windows measured (repeats while the spread was over RepeatConfig.max_spread)
    spread_rel: float = 0.0  # (p90 - p10) / median of the kept window
    unstable: bool = False  # still over max_spread after max_windows: the point is flagged, not trusted

    @property
    def energy_j_per_iter(self) -> float | None:
        e = self.window.energy_j
        return None if e is None else e / self.n_iters

    @property
    def avg_power_w(self) -> float | None:
        return self.window.avg_power_w


def quantile(xs: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of a non-empty list."""
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def cuda_sync() -> None:
    import torch

    torch.cuda.synchronize()


def time_fn(step: Callable[[], object], backend: EnergyBackend, cfg: RepeatConfig, device_type: str = "cpu",
            name: str = "step") -> Timing:
    """Warm up, size the window, then time ``step`` repeatedly inside one energy window."""
    on_gpu = device_type == "cuda"
    sync = cuda_sync if on_gpu else (lambda: None)
    for _ in range(cfg.warmup_iters):
        step()
    probe_s = _probe(step, sync)
    target = min(cfg.target_window_s(backend), cfg.max_window_s)
    n = int(min(cfg.max_iters, max(cfg.min_iters, math.ceil(target / probe_s))))
    mon = WindowMonitor(backend, sync=sync)
    if on_gpu:
        chunks = min(n, GPU_CHUNKS)
        n = chunks * math.ceil(n / chunks)
    best: tuple[float, list[float], Measurement] | None = None
    windows = 0
    for windows in range(1, max(1, cfg.max_windows) + 1):  # noqa: B007 - the count is reported
        times, m = _timed_cuda(step, n, mon, name) if on_gpu else _timed_cpu(step, n, mon, name)
        sp = spread(times)
        if best is None or sp < best[0]:
            best = (sp, times, m)
        if sp <= cfg.max_spread:
            break
    sp, times, m = best
    return Timing(n_iters=n, time_s_median=statistics.median(times), time_s_p10=quantile(times, 0.1),
                  time_s_p90=quantile(times, 0.9), time_method="cuda_events" if on_gpu else "perf_counter",
                  window=m, windows=windows, spread_rel=sp, unstable=sp > cfg.max_spread)


def spread(times: list[float]) -> float:
    """Relative spread (p90 - p10) / median of per-iteration times (0 for fewer than 2)."""
    if len(times) < 2:
        return 0.0
    med = statistics.median(times)
    return (quantile(times, 0.9) - quantile(times, 0.1)) / med if med > 0 else math.inf


def _probe(step: Callable[[], object], sync: Callable[[], None], min_s: float = 0.01, max_k: int = 1024) -> float:
    """Seconds per step, from back-to-back batches of 1, 4, 16... steps until one lasts ``min_s``
    (a single synchronised step overstates a microsecond kernel by the launch + sync latency)."""
    k = 1
    while True:
        sync()
        t0 = time.perf_counter()
        for _ in range(k):
            step()
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_s or k >= max_k:
            return max(dt / k, 1e-7)
        k *= 4


def _timed_cpu(step: Callable[[], object], n: int, mon: WindowMonitor, name: str) -> tuple[list[float], Measurement]:
    times = []
    mon.begin_window(name)
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times, mon.end_window(name)


GPU_CHUNKS = 32  # CUDA-event pairs per window; each brackets n / GPU_CHUNKS back-to-back steps


def _timed_cuda(step: Callable[[], object], n: int, mon: WindowMonitor, name: str) -> tuple[list[float], Measurement]:
    """Per-step times from CUDA events around chunks of steps: one event pair per step would add
    its own launch cost to microsecond kernels. The spread is over chunks."""
    import torch

    chunks = min(n, GPU_CHUNKS)
    per = math.ceil(n / chunks)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(chunks)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(chunks)]
    mon.begin_window(name)
    for c in range(chunks):
        starts[c].record()
        for _ in range(per):
            step()
        ends[c].record()
    m = mon.end_window(name)  # synchronises, so every event has completed
    return [s.elapsed_time(e) / 1000.0 / per for s, e in zip(starts, ends, strict=True)], m


@dataclass(frozen=True)
class PeakMemory:
    """Peak bytes allocated by the framework during one step (None on CPU, with why)."""

    peak_bytes: int | None
    baseline_bytes: int | None
    method: str
    why: str = ""


CPU_MEMORY_WHY = ("CPU: torch's CPU allocator keeps no peak counter and tracemalloc does not see tensor "
                  "storage, so peak memory is measured on CUDA only")


def peak_memory(step: Callable[[], object], device_type: str) -> PeakMemory:
    """Run ``step`` once and report the allocator's peak (CUDA: torch.cuda.max_memory_allocated)."""
    if device_type != "cuda":
        return PeakMemory(None, None, UNAVAILABLE, CPU_MEMORY_WHY)
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return PeakMemory(int(torch.cuda.max_memory_allocated()), int(base), "torch.cuda.max_memory_allocated")


def rel_diff(counted: float | None, analytic: float | None) -> float | None:
    """(counted - analytic) / analytic, or None when either is missing or analytic is 0."""
    if counted is None or analytic is None or analytic == 0:
        return None
    return (counted - analytic) / analytic
