"""The estimator's one seam to hardware_db: accelerators, precisions, kernel rates, prices and grids.

hardware_db raises its own errors (``hardware_db.errors``); here they become user messages that name
the flag to fix. Kernel rates come from a calibration file when it has them, else from documented
fractions of the datasheet peaks (hardware_db/assumptions.csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from estimator.errors import EstimatorInputError

if TYPE_CHECKING:
    from estimator.calibration import Calibration
    from hardware_db import Accelerator, Assumption, Price
    from hardware_db.regions import GridIntensity

DEFAULT_GPU = "h100-sxm"
#: precisions of training GEMMs; bytes per element of the activations they keep (fp8 GEMMs keep bf16 activations)
TRAINING_PRECISIONS = ("bf16", "fp16", "fp8", "tf32", "fp32")
DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "tf32": 4.0, "fp32": 4.0, "int4": 0.5}
DEFAULT_PRECISION_SOURCE = "default: bf16 mixed precision, fp16 where the chip lacks bf16"


def activation_bytes(precision: str) -> float:
    """Bytes per activation element in training at ``precision`` (fp8 GEMMs keep bf16 activations)."""
    return 2.0 if precision == "fp8" else DTYPE_BYTES[precision]


def accelerator(name: str | None) -> Accelerator:
    """An accelerator by id or alias (``DEFAULT_GPU`` for None), or one line naming close ids."""
    from hardware_db import UnknownNameError, get_accelerator

    if name is not None and not isinstance(name, str):
        raise TypeError(f"gpu must be an accelerator id (str), got {type(name).__name__}")
    try:
        return get_accelerator(name or DEFAULT_GPU)
    except UnknownNameError as err:
        raise EstimatorInputError(f"unknown GPU {err.name!r}", f"{err.hint()} (estimate --list-gpus)") from None


def default_precision(accel: Accelerator) -> str:
    """bf16, or fp16 where the chip has no bf16 tensor mode."""
    return accel.default_precision()


def peak_flops(accel: Accelerator, precision: str) -> float:
    """Dense peak FLOP/s at ``precision``; one line naming the precisions the chip has otherwise."""
    from hardware_db import MissingFigureError

    try:
        return accel.peak_flops(precision)
    except MissingFigureError as err:
        have = ", ".join(err.available) or "none"
        if precision == "bf16" and "fp16" in err.available:
            raise EstimatorInputError(f"{accel.id} has no bf16 tensor mode (it has: {have})",
                                      "use --precision fp16") from None
        raise EstimatorInputError(f"{accel.id} has no published dense {precision} peak (it has: {have})",
                                  "pick one of those precisions or another --gpu") from None


def assumption(key: str) -> Assumption:
    """A documented default from hardware_db/assumptions.csv."""
    from hardware_db import assumption as _assumption

    return _assumption(key)


def price_rows(accel: Accelerator) -> tuple[Price | None, list[Price]]:
    """(default price or None, every listed price) of an accelerator."""
    from hardware_db import default_price, prices

    return default_price(accel.id), prices(accel.id)


def grid(region: str) -> GridIntensity:
    """Grid carbon intensity of a region (codecarbon's packaged data via hardware_db.regions)."""
    from hardware_db.regions import grid_intensity

    return grid_intensity(region)


def link_bandwidths_gb_per_s(accel: Accelerator) -> tuple[float, float]:
    """(scale-up, scale-out) per-GPU unidirectional bandwidth; a missing one falls back to the other."""
    up, out = accel.scaleup_bw_gb_per_s, accel.scaleout_bw_gb_per_s
    if up is None and out is None:
        raise EstimatorInputError(f"{accel.id} has no interconnect bandwidth in hardware_db",
                                  "use a single GPU (--gpus 1) or another --gpu")
    return (up or out), (out or up)  # type: ignore[return-value]


def serving_compute_precision(accel: Accelerator, weight_precision: str) -> tuple[str, str]:
    """Precision of the GEMMs: fp8 weights run fp8 GEMMs where the chip has them; int4 and others at bf16/fp16."""
    half = accel.default_precision()
    if weight_precision == "fp8" and "fp8" in accel.peak_tflops:
        return "fp8", "fp8 weights with fp8 tensor-core GEMMs"
    if weight_precision == "fp16" and "fp16" in accel.peak_tflops:
        return "fp16", "fp16 GEMMs"
    why = {"int4": "int4 weights are dequantised and multiplied at the 16-bit rate (no int4 peak in hardware_db)",
           "fp8": f"{accel.id} has no fp8 tensor peak: fp8 weights dequantised to {half}"}.get(
        weight_precision, f"{half} GEMMs")
    return half, why


# --------------------------------------------------------------------------- kernel rates

@dataclass(frozen=True)
class KernelModel:
    """Sustained rates and per-kernel overheads of one device at one precision (FLOP/s, bytes/s, s)."""

    gemm_flops_per_s: float
    gemm_overhead_s: float
    attn_flops_per_s: float
    attn_overhead_s: float
    mem_bytes_per_s: float
    mem_overhead_s: float
    source: str = "default"
    block_overhead_s: float = 0.0  # per block and pass, not explained by the kernels (calibrated; default 0)

    def to_dict(self) -> dict:
        """The rates as a plain dict (units in the names)."""
        return self.__dict__.copy()


@dataclass(frozen=True)
class Rates:
    """The kernel rates an estimate uses, the calibration they came from (if any), and why."""

    kernel: KernelModel
    kind: str  # "calibrated" | "default"
    calibration: Calibration | None
    source: str
    warnings: tuple[str, ...] = ()


@cache
def _default_fractions() -> tuple[float, float, float, float]:
    return tuple(float(assumption(k).value) for k in  # type: ignore[return-value]
                 ("gemm_efficiency", "attention_efficiency", "memory_bw_efficiency", "kernel_overhead_s"))


def kernel_model_for(accel: Accelerator, precision: str, cal: Calibration | None) -> tuple[KernelModel, str]:
    """Rates for this GPU and precision: from the calibration when it has them, else documented defaults."""
    peak = peak_flops(accel, precision)
    bw = accel.memory_bw_gb_per_s * 1e9
    g, a, m, o = _default_fractions()
    if cal is not None and precision in cal.kernel_model:
        r = cal.kernel_model[precision]
        mem = cal.memory or {}
        mem_bps = float(mem.get("bytes_per_s") or bw * m)
        return KernelModel(r["gemm_flops_per_s"], r["gemm_overhead_s"], r["attn_flops_per_s"], r["attn_overhead_s"],
                           mem_bps, float(mem.get("overhead_s", 0.0)), source=f"calibration {cal.id}",
                           block_overhead_s=float(r.get("block_overhead_s", 0.0))), "calibrated"
    src = (f"default: GEMM {g:.0%}, attention {a:.0%} of the {precision} dense peak, memory {m:.0%} of HBM bandwidth "
           "(hardware_db/assumptions.csv)")
    return KernelModel(g * peak, o, a * peak, o, m * bw, o, source=src), "default"


def resolve_rates(accel: Accelerator, precision: str, calibration: object, force: bool) -> Rates:
    """Kernel rates for a GPU and precision from a calibration (file path or ``Calibration``) or the defaults."""
    from estimator.calibration import Calibration, load_calibration

    cal: Calibration | None = None
    if calibration is not None:
        cal = (calibration if isinstance(calibration, Calibration)
               else load_calibration(str(calibration), accel.id, force))
    km, kind = kernel_model_for(accel, precision, cal)
    source = ("calibration file" if kind == "calibrated" else
              "hardware_db/assumptions.csv: gemm_efficiency, attention_efficiency, memory_bw_efficiency, "
              "kernel_overhead_s")
    warnings: tuple[str, ...] = ()
    if cal is not None and kind != "calibrated":
        warnings = (f"calibration {cal.id} has no {precision} rates; documented defaults used for compute",)
    return Rates(km, kind, cal, source, warnings)
