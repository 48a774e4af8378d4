"""Kernel-time model: how long one GEMM, memory-bound kernel or collective takes on one device (numpy, no units).

The form is chosen by held-out error on measured kernels (``profile-gpu fit``; docs/calibration-schema.md):

- GEMM ``out[m, n] = in[m, k] @ W[k, n]`` (m = tokens): a roofline blended by a p-norm,
  ``t = (t_flop**p + t_byte**p)**(1/p) + overhead_s``, with ``t_byte = bytes moved / bytes_per_s`` (weights
  ``k n`` plus activations ``m k + m n``, each ``dtype_bytes``) and ``t_flop = 2 m' n k / flops_per_s / u**w``.
  A small-token GEMM is bound by reading its weights, a large one by FLOP/s, and p (>= 1) sets how sharp the
  transition is (p -> inf is the plain max, p = 1 the sum). With tiles (``tile_m``, ``tile_n``) and ``wave_slots``
  (streaming multiprocessors), ``m'`` is m padded to the tile and ``u`` the fraction of the last wave of tiles that
  is busy (wave quantisation), softened by the exponent ``w``; without tiles ``m' = m`` and ``u = 1``.
- memory-bound (elementwise) kernel: ``t = bytes / bytes_per_s + overhead_s``.
- collectives: all-reduce over n ranks ``t = ((2 (n-1)/n bytes / bus_bytes_per_s)**p + latency_s**p)**(1/p)``
  (nccl-tests' bus-bandwidth convention; p = 1 is the latency-bandwidth sum), send/recv with factor 1.

All inputs are floats or numpy arrays (broadcast); times in seconds, sizes in bytes, rates per second.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

GEMM_FORMS = ("linear", "roofline_max", "roofline_pnorm", "roofline_pnorm_waves")


@dataclass(frozen=True)
class GemmParams:
    """Fitted GEMM constants of one device at one precision.

    flops_per_s: sustained FLOP/s of the compute-bound regime; bytes_per_s: sustained bytes/s of the weight-read
    regime (``inf`` for the form without a byte term); overhead_s: fixed time per kernel (launch, tail);
    blend_p: p-norm exponent (``inf`` = max); tile_m, tile_n, wave_slots, wave_exponent: tile/wave quantisation
    (0 = off).
    """

    flops_per_s: float
    overhead_s: float
    bytes_per_s: float = math.inf
    blend_p: float = 1.0
    tile_m: int = 0
    tile_n: int = 0
    wave_slots: int = 0
    wave_exponent: float = 0.0
    form: str = "linear"

    def to_dict(self) -> dict:
        """JSON-ready dict (``inf`` values written as null)."""
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> GemmParams:
        """Inverse of ``to_dict`` (null bytes_per_s / blend_p -> inf)."""
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("bytes_per_s", "blend_p"):
            if kw.get(k, 0) is None:
                kw[k] = math.inf
        return cls(**kw)


@dataclass(frozen=True)
class MemoryParams:
    """Memory-bound kernel constants: sustained bytes/s and fixed seconds per kernel."""

    bytes_per_s: float
    overhead_s: float = 0.0

    def to_dict(self) -> dict:
        """The parameters as a plain dict (units in the names)."""
        return asdict(self)


@dataclass(frozen=True)
class CollectiveParams:
    """Collective constants for one op and world size: bus bytes/s, latency seconds, blend exponent p (1 = sum)."""

    bus_bytes_per_s: float
    latency_s: float = 0.0
    blend_p: float = 1.0

    def to_dict(self) -> dict:
        """The parameters as a plain dict (units in the names)."""
        return asdict(self)


@dataclass(frozen=True)
class KernelParams:
    """Everything the kernel model needs for one device at one precision; ``source`` names the calibration."""

    gemm: GemmParams
    memory: MemoryParams
    memory_by_kind: dict[str, MemoryParams] = field(default_factory=dict)
    source: str = "default"


def _blend(a, b, p):
    """(a**p + b**p)**(1/p) for p >= 1, the max for p = inf; computed scaled by max(a, b) to stay finite."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    hi = np.maximum(a, b)
    if math.isinf(p):
        return hi
    safe = np.where(hi > 0, hi, 1.0)
    return np.where(hi > 0, safe * ((a / safe) ** p + (b / safe) ** p) ** (1.0 / p), 0.0)


def padded_m(m, tile_m: int):
    """Rows a GEMM computes when m is padded to its tile: small m uses the next power of two (>= 16) below the
    tile, as cuBLAS picks narrower tiles for skinny GEMMs; 0 = no padding."""
    m = np.asarray(m, dtype=float)
    if tile_m <= 0:
        return m
    small = np.maximum(16.0, 2.0 ** np.ceil(np.log2(np.maximum(m, 1.0))))
    return np.where(m >= tile_m, np.ceil(m / tile_m) * tile_m, np.minimum(small, tile_m))


def wave_utilisation(m, n, tile_m: int, tile_n: int, wave_slots: int, padded=None):
    """Busy fraction of the tile waves: tiles / (waves x slots), in (0, 1]; 1 when quantisation is off.
    ``padded``: ``padded_m(m, tile_m)`` when the caller has it already."""
    m = np.asarray(m, dtype=float)
    if tile_m <= 0 or tile_n <= 0 or wave_slots <= 0:
        return np.ones_like(m + np.asarray(n, dtype=float))
    tiles = np.ceil((padded_m(m, tile_m) if padded is None else padded) / tile_m) * np.ceil(
        np.asarray(n, dtype=float) / tile_n)
    return tiles / (np.ceil(tiles / wave_slots) * wave_slots)


def gemm_bytes(m, n, k, dtype_bytes: float = 2.0):
    """Bytes a GEMM moves: weights k n, input m k, output m n, each ``dtype_bytes``."""
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    return dtype_bytes * (k * n + m * k + m * n)


def gemm_time_s(m, n, k, params: GemmParams, dtype_bytes: float = 2.0):
    """Seconds for ``out[m, n] = in[m, k] @ W[k, n]`` (2 m n k FLOPs) under ``params`` (module docstring)."""
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    mp = padded_m(m, params.tile_m)
    util = wave_utilisation(m, n, params.tile_m, params.tile_n, params.wave_slots, mp)
    t_flop = 2.0 * mp * n * k / params.flops_per_s / util ** params.wave_exponent
    if math.isinf(params.bytes_per_s):
        return t_flop + params.overhead_s
    t_byte = gemm_bytes(m, n, k, dtype_bytes) / params.bytes_per_s
    return _blend(t_flop, t_byte, params.blend_p) + params.overhead_s


def memory_time_s(bytes_, params: MemoryParams):
    """Seconds for a memory-bound kernel moving ``bytes_`` (read + written): bytes / bytes_per_s + overhead_s."""
    return np.asarray(bytes_, dtype=float) / params.bytes_per_s + params.overhead_s


def allreduce_time_s(bytes_, n, params: CollectiveParams):
    """Seconds for an all-reduce of a ``bytes_`` buffer over ``n`` ranks (0 for n <= 1): each rank sends
    2 (n-1)/n of the buffer at ``bus_bytes_per_s``, blended with ``latency_s`` (module docstring)."""
    n = np.asarray(n, dtype=float)
    wire = 2.0 * (n - 1) / np.maximum(n, 1.0) * np.asarray(bytes_, dtype=float)
    t = _blend(wire / params.bus_bytes_per_s, params.latency_s, params.blend_p)
    return np.where(n > 1, t, 0.0)


def send_recv_time_s(bytes_, params: CollectiveParams):
    """Seconds to send ``bytes_`` from one rank to another (the whole buffer crosses the link once)."""
    return _blend(np.asarray(bytes_, dtype=float) / params.bus_bytes_per_s, params.latency_s, params.blend_p)


def default_params(peak_flops_per_s: float, hbm_bytes_per_s: float, gemm_efficiency: float,
                   memory_efficiency: float, overhead_s: float) -> KernelParams:
    """Today's documented default (hardware_db/assumptions.csv): GEMM at ``gemm_efficiency`` x peak FLOP/s plus a
    per-kernel overhead (no byte term), memory-bound kernels at ``memory_efficiency`` x HBM bandwidth plus overhead."""
    return KernelParams(gemm=GemmParams(flops_per_s=gemm_efficiency * peak_flops_per_s, overhead_s=overhead_s),
                        memory=MemoryParams(bytes_per_s=memory_efficiency * hbm_bytes_per_s, overhead_s=overhead_s),
                        source="default")


def scale_params(params: KernelParams, flops_ratio: float, bandwidth_ratio: float,
                 wave_slots: int | None = None, source: str | None = None) -> KernelParams:
    """Transfer a calibration to another device by hardware ratios: FLOP/s x ``flops_ratio`` (target / calibrated
    dense peak at the precision), every bytes/s x ``bandwidth_ratio`` (target / calibrated HBM bandwidth);
    overheads, blend and tiles kept; ``wave_slots`` set to the target's SM count (None: quantisation off)."""
    if not (flops_ratio > 0 and bandwidth_ratio > 0 and math.isfinite(flops_ratio)
            and math.isfinite(bandwidth_ratio)):
        raise ValueError(f"hardware ratios must be finite and > 0, got {flops_ratio}, {bandwidth_ratio}")
    g = params.gemm
    gemm = GemmParams(**{**asdict(g), "flops_per_s": g.flops_per_s * flops_ratio,
                         "bytes_per_s": g.bytes_per_s * bandwidth_ratio,
                         "wave_slots": int(wave_slots or 0) if g.wave_slots else 0})

    def mem(m: MemoryParams) -> MemoryParams:
        return MemoryParams(m.bytes_per_s * bandwidth_ratio, m.overhead_s)

    return KernelParams(gemm=gemm, memory=mem(params.memory),
                        memory_by_kind={k: mem(v) for k, v in params.memory_by_kind.items()},
                        source=source or f"scaled from {params.source}")
