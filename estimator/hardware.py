"""The estimator's one seam to hardware_db: accelerators, precisions, kernel rates, prices and grids.

hardware_db raises its own errors (``hardware_db.errors``); here they become user messages that name
the flag to fix. Kernel rates come from a calibration file when it has them, else from documented
fractions of the datasheet peaks (hardware_db/assumptions.csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

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


def accelerator_efficiency(accel_id: str, rates_kind: str, user: float | None = None):
    """(factor, Assumptions) on the end-to-end efficiency of an accelerator whose kernels are not calibrated
    (hardware_db/accelerator_efficiency.csv, fitted on published throughput of other organisations than the runs
    it is scored on); 1 for a calibrated GPU, for a user's own calibration, or when the table has no row."""
    from estimator.assumptions import Assumptions, one
    from hardware_db import accelerator_efficiency as table

    if user is not None:
        return user, one("accelerator_efficiency", user, "", "user input")
    row = table(accel_id)
    if row is None or rates_kind not in ("scaled", "default"):
        return 1.0, Assumptions()
    return row.factor, one("accelerator_efficiency", row.factor, "", f"fitted for {accel_id} on {row.n_fit_rows} "
                           f"published throughput rows ({row.fit_source}), scored on {row.held_out}: "
                           f"{row.held_out_error}; {row.method}")


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
    """Sustained rates and per-kernel overheads of one device at one precision (FLOP/s, bytes/s, s).

    ``gemm`` (``estimator.kernels.GemmParams``), when set, times every GEMM by the calibrated per-kernel roofline
    (weight reads, FLOP/s, the transition, tile/wave quantisation); without it a GEMM takes FLOPs / rate +
    overhead (the linear form). ``mem_*`` time elementwise kernels; ``stream_bytes_per_s`` large streaming reads
    (KV cache, optimizer states; None: the elementwise rate); ``allreduce`` maps a world size inside one node to
    measured all-reduce constants (``estimator.kernels.CollectiveParams``; None: a ring at datasheet bandwidth).
    """

    gemm_flops_per_s: float
    gemm_overhead_s: float
    attn_flops_per_s: float
    attn_overhead_s: float
    mem_bytes_per_s: float
    mem_overhead_s: float
    source: str = "default"
    block_overhead_s: float = 0.0  # per block and pass, not explained by the kernels (calibrated; default 0)
    stream_bytes_per_s: float | None = None
    gemm: Any = None
    allreduce: Any = None
    precision: str = ""  # the GEMM precision these rates are for

    @property
    def stream_bps(self) -> float:
        """Bytes/s of large streaming reads (KV cache, optimizer states)."""
        return self.stream_bytes_per_s or self.mem_bytes_per_s

    def to_dict(self) -> dict:
        """The rates as a plain dict (units in the names)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("gemm", "allreduce")}
        if self.gemm is not None:
            d["gemm"] = self.gemm.to_dict()
        return d


@dataclass(frozen=True)
class Rates:
    """The kernel rates an estimate uses, the calibration they came from (if any), and why.

    ``kind``: "calibrated" (a calibration of this accelerator, the user's or the shipped one), "scaled" (a shipped
    calibration of another accelerator transferred by peak and bandwidth ratios) or "default" (datasheet fractions).
    """

    kernel: KernelModel
    kind: str
    calibration: Calibration | None
    source: str
    warnings: tuple[str, ...] = ()
    transfer: str = ""  # "same_generation" | "other_generation" for kind "scaled"


@cache
def _default_fractions() -> tuple[float, float, float, float]:
    return tuple(float(assumption(k).value) for k in  # type: ignore[return-value]
                 ("gemm_efficiency", "attention_efficiency", "memory_bw_efficiency", "kernel_overhead_s"))


def default_kernel_model(accel: Accelerator, precision: str) -> KernelModel:
    """Documented datasheet fractions (hardware_db/assumptions.csv) of this accelerator's peaks."""
    peak, bw = peak_flops(accel, precision), accel.memory_bw_gb_per_s * 1e9
    g, a, m, o = _default_fractions()
    src = (f"default: GEMM {g:.0%}, attention {a:.0%} of the {precision} dense peak, memory {m:.0%} of HBM bandwidth "
           "(hardware_db/assumptions.csv)")
    return KernelModel(g * peak, o, a * peak, o, m * bw, o, source=src)


def _cal_precision(cal: Calibration, precision: str) -> str | None:
    """The calibration's precision to use for ``precision``: the same, else (v2 files) a 16-bit one to scale."""
    if precision in cal.kernel_model:
        return precision
    if cal.schema_version >= 2:
        return next((p for p in ("bf16", "fp16") if p in cal.kernel_model), None)
    return None


def _allreduce_params(cal: Calibration, scale: float) -> dict | None:
    from estimator.kernels import CollectiveParams

    ar = (cal.collectives or {}).get("all_reduce") or {}
    by = ar.get("by_world_size") or {}
    if not by:
        return None
    return {int(w): CollectiveParams(c["bus_bytes_per_s"] * scale, c.get("latency_s", 0.0), c.get("blend_p", 1.0))
            for w, c in by.items()}


def calibrated_kernel_model(accel: Accelerator, precision: str, cal: Calibration,
                            ref: Accelerator | None = None) -> tuple[KernelModel, str] | None:
    """Kernel model of ``accel`` at ``precision`` from ``cal`` (measured on ``ref``, default ``accel``): the same
    precision as measured, else the calibration's 16-bit constants at the peak ratio; another accelerator's by
    peak and HBM-bandwidth ratios (``estimator.kernels.scale_params``). None when the file cannot serve it."""
    from estimator.kernels import GemmParams, scale_params

    ref = ref or accel
    p0 = _cal_precision(cal, precision)
    if p0 is None:
        return None
    base = default_kernel_model(accel, precision)
    r = cal.kernel_model[p0]
    flops_ratio = peak_flops(accel, precision) / peak_flops(ref, p0)
    bw_ratio = accel.memory_bw_gb_per_s / ref.memory_bw_gb_per_s
    kp = cal.kernel_params(p0)
    how = [f"calibration {cal.id}" + (f" ({p0} constants at the {precision}/{p0} dense-peak ratio)" if p0 != precision
                                       else "")]
    if ref.id != accel.id:
        how.append(f"scaled from {ref.id} by dense peak x{flops_ratio:.3g} and HBM bandwidth x{bw_ratio:.3g}")
    gemm = None
    if isinstance(r.get("gemm"), dict) and kp is not None:
        from hardware_db.devices import sm_count

        gemm = scale_params(kp, flops_ratio, bw_ratio, sm_count(accel.id) if ref.id != accel.id else
                            GemmParams.from_dict(r["gemm"]).wave_slots).gemm
    mem = cal.memory or {}
    attn = ("attn_flops_per_s" in r)
    up = (accel.scaleup_bw_gb_per_s or 0) / (ref.scaleup_bw_gb_per_s or 1) if ref.id != accel.id else 1.0
    km = KernelModel(
        gemm_flops_per_s=r["gemm_flops_per_s"] * flops_ratio, gemm_overhead_s=r["gemm_overhead_s"],
        attn_flops_per_s=r["attn_flops_per_s"] * flops_ratio if attn else base.attn_flops_per_s,
        attn_overhead_s=r["attn_overhead_s"] if attn else base.attn_overhead_s,
        mem_bytes_per_s=float(mem["bytes_per_s"]) * bw_ratio if mem.get("bytes_per_s") else base.mem_bytes_per_s,
        mem_overhead_s=float(mem.get("overhead_s", 0.0)) if mem.get("bytes_per_s") else base.mem_overhead_s,
        source="; ".join(how), block_overhead_s=float(r.get("block_overhead_s", 0.0)), precision=precision,
        stream_bytes_per_s=base.mem_bytes_per_s if gemm is not None else None, gemm=gemm,
        allreduce=_allreduce_params(cal, up) if up > 0 else None)
    parts = ["GEMM " + ("per-kernel roofline" if gemm is not None else "linear form") + " calibrated"]
    if not attn:
        parts.append("attention at the documented default (the calibration has no attention kernels)")
    if gemm is not None:
        parts.append("KV-cache and optimizer streaming at the documented HBM fraction")
        key = "moe_expert_gemm_efficiency_fp8" if precision == "fp8" else "moe_expert_gemm_efficiency_fp16"
        parts.append(f"MoE layers' GEMMs at {float(assumption(key).value):g} of the dense rate ({key}, fitted on "
                     "serving rows, hardware_db/assumptions.csv)")
    return km, ", ".join(parts)


def kernel_model_for(accel: Accelerator, precision: str, cal: Calibration | None) -> tuple[KernelModel, str]:
    """Rates for this GPU and precision: from the calibration when it can serve them, else documented defaults."""
    got = calibrated_kernel_model(accel, precision, cal) if cal is not None else None
    if got is not None:
        return got[0], "calibrated"
    return default_kernel_model(accel, precision), "default"


def load_user_calibration(calibration: object, accelerator_id: str, force: bool) -> Calibration | None:
    """The user's calibration (a path or a ``Calibration``), checked against the accelerator; None if none given."""
    from estimator.calibration import Calibration, load_calibration

    if calibration is None or isinstance(calibration, Calibration):
        return calibration
    return load_calibration(str(calibration), accelerator_id, force)


@cache
def _shipped(accelerator_id: str) -> Calibration | None:
    from estimator.calibration import load_calibration
    from hardware_db.devices import default_calibration

    path = default_calibration(accelerator_id)
    return load_calibration(str(path), accelerator_id) if path is not None else None


def resolve_rates(accel: Accelerator, precision: str, calibration: object, force: bool) -> Rates:
    """Kernel rates for a GPU and precision: the user's calibration (file path or ``Calibration``), else the one
    shipped for this accelerator, else a shipped one of a related accelerator scaled by hardware ratios
    (hardware_db/calibration_transfer.csv), else the documented defaults."""
    from estimator.calibration import Calibration, load_calibration
    from hardware_db.devices import calibration_transfer

    if calibration is not None:
        cal = (calibration if isinstance(calibration, Calibration)
               else load_calibration(str(calibration), accel.id, force))
        got = calibrated_kernel_model(accel, precision, cal)
        if got is None:
            return Rates(default_kernel_model(accel, precision), "default", cal, _DEFAULT_SOURCE,
                         (f"calibration {cal.id} has no {precision} rates; documented defaults used for compute",))
        return Rates(got[0], "calibrated", cal, got[1], _cal_warnings(cal))
    own = _shipped(accel.id)
    if own is not None and (got := calibrated_kernel_model(accel, precision, own)) is not None:
        return Rates(got[0], "calibrated", own, "shipped default for this GPU: " + got[1], _cal_warnings(own))
    t = calibration_transfer(accel.id)
    ref_cal = _shipped(t.reference) if t is not None else None
    if t is not None and ref_cal is not None:
        got = calibrated_kernel_model(accel, precision, ref_cal, accelerator(t.reference))
        if got is not None:
            rel = ("same generation: trusted as far as the measured A100 <-> H100 transfer (hardware_db/calibrations/"
                   "README.md, 'How the estimator uses them')" if t.relation == "same_generation" else
                   f"another generation ({t.source}): not validated, indicative only")
            warn = () if t.relation == "same_generation" else (
                f"kernel rates of {accel.id} are scaled from the {t.reference} calibration, another GPU generation: "
                "indicative only (pass --calibration FILE measured on this GPU)",)
            return Rates(got[0], "scaled", ref_cal, f"scaled from {ref_cal.id}: {got[1]}; {rel}", warn, t.relation)
    return Rates(default_kernel_model(accel, precision), "default", None, _DEFAULT_SOURCE)


_DEFAULT_SOURCE = ("hardware_db/assumptions.csv: gemm_efficiency, attention_efficiency, memory_bw_efficiency, "
                   "kernel_overhead_s")


def _cal_warnings(cal: Calibration) -> tuple[str, ...]:
    w = cal.holdout_warning
    return (w,) if w else ()
