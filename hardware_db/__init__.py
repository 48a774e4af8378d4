"""Accelerator specs, cloud prices and documented default assumptions, read from CSV.

Files (package data, one row per item, every row cites a source and retrieval date):

* ``accelerators.csv`` — peak DENSE tensor throughput (no 2:4 sparsity) in TFLOP/s, memory in
  decimal GB, bandwidths in GB/s (interconnect: per chip, unidirectional), power in W.
* ``prices.csv`` — USD per GPU-hour, one ``is_default=1`` row per priced accelerator.
* ``assumptions.csv`` — defaults with low/high ranges (PUE, efficiencies, failure rate ...).

Loading is lazy (``functools.cache``) and validated on first use; a malformed file raises
``ValueError`` naming the row. Look-ups by name are case-insensitive and accept aliases.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

from hardware_db.errors import DataError, HardwareDBError, MissingFigureError, UnknownNameError, close_names

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4")


@dataclass(frozen=True)
class Accelerator:
    """One accelerator (per chip/GPU). Peaks are dense TFLOP/s; see ``accelerators.csv`` for sources."""

    id: str
    name: str
    vendor: str
    memory_gb: float
    memory_bw_gb_per_s: float
    peak_tflops: dict[str, float]
    tdp_w: float | None
    idle_w: float | None
    scaleup_bw_gb_per_s: float | None
    scaleup_domain: int
    scaleout_bw_gb_per_s: float | None
    embodied_kgco2e: float | None
    source: str
    retrieved: str
    notes: str
    memory_mib: float | None = None  # capacity the device reports to software (nvidia-smi total), binary MiB
    memory_source: str = ""
    scaleout_source: str = ""  # the reference system whose NICs give scaleout_bw_gb_per_s

    def peak_flops(self, precision: str) -> float:
        """Peak dense throughput in FLOP/s (TFLOP/s x 1e12) for ``precision`` (fp32, tf32, bf16, fp16, fp8, fp4)."""
        p = precision.strip().lower()
        if p in self.peak_tflops:
            return self.peak_tflops[p] * 1e12
        have = tuple(k for k in PRECISIONS if k in self.peak_tflops)
        raise MissingFigureError(self.id, f"dense {precision} peak", have)

    def default_precision(self) -> str:
        """bf16 mixed precision, or fp16 where the chip has no bf16 tensor mode (V100, T4)."""
        return "bf16" if "bf16" in self.peak_tflops else "fp16"

    @property
    def memory_bytes(self) -> float:
        """Memory capacity in bytes as the device reports it (``memory_mib`` x 2^20; an "80 GB" H100 reports
        81,559 MiB = 85.5e9 bytes), else the datasheet's decimal ``memory_gb`` x 1e9 where no reported figure is
        stored."""
        return self.memory_mib * 2**20 if self.memory_mib else self.memory_gb * 1e9

    @property
    def memory_bytes_source(self) -> str:
        """Where ``memory_bytes`` comes from."""
        if self.memory_mib:
            return f"{self.memory_mib:,.0f} MiB reported by the device ({self.memory_source})"
        return f"datasheet {self.memory_gb:g} GB (decimal; no device-reported capacity stored: {self.memory_source})"


@dataclass(frozen=True)
class Price:
    """A cloud price in USD per GPU-hour, with its date and source."""

    accelerator_id: str
    provider: str
    offering: str
    usd_per_gpu_hour: float
    date: str
    source: str
    is_default: bool


@dataclass(frozen=True)
class Assumption:
    """A documented default: value with low/high range (None where no range is given)."""

    key: str
    value: float | str
    low: float | None
    high: float | None
    unit: str
    source: str
    notes: str


def _rows(filename: str) -> list[dict[str, str]]:
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def _num(row: dict[str, str], col: str, where: str) -> float | None:
    """Parse an optional positive number; empty cell -> None."""
    raw = row.get(col, "")
    if raw == "":
        return None
    try:
        x = float(raw)
    except ValueError:
        raise DataError(f"{where}: column {col} is not a number: {raw!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise DataError(f"{where}: column {col} must be positive, got {raw!r}")
    return x


def _required(row: dict[str, str], cols: tuple[str, ...], where: str) -> None:
    missing = [c for c in cols if not row.get(c)]
    if missing:
        raise DataError(f"{where}: missing {', '.join(missing)}")


def _parse_accelerator(row: dict[str, str]) -> Accelerator:
    where = f"accelerators.csv row {row.get('id')!r}"
    _required(row, ("id", "name", "vendor", "memory_gb", "memory_bw_gb_per_s", "scaleup_domain", "source", "retrieved"),
              where)
    peaks = {p: v for p in PRECISIONS if (v := _num(row, f"peak_{p}_dense_tflops", where)) is not None}
    for half in ("bf16", "fp16"):
        if half in peaks and "fp8" in peaks and peaks[half] > peaks["fp8"]:
            raise DataError(f"{where}: {half} dense peak exceeds fp8 dense peak (sparse figure?)")
    domain = _num(row, "scaleup_domain", where)
    if domain is None or domain != int(domain):
        raise DataError(f"{where}: scaleup_domain must be a positive integer")
    return Accelerator(
        id=row["id"],
        name=row["name"],
        vendor=row["vendor"],
        memory_gb=_num(row, "memory_gb", where),  # type: ignore[arg-type]
        memory_bw_gb_per_s=_num(row, "memory_bw_gb_per_s", where),  # type: ignore[arg-type]
        peak_tflops=peaks,
        tdp_w=_num(row, "tdp_w", where),
        idle_w=_num(row, "idle_w", where),
        scaleup_bw_gb_per_s=_num(row, "scaleup_bw_gb_per_s", where),
        scaleup_domain=int(domain),
        scaleout_bw_gb_per_s=_num(row, "scaleout_bw_gb_per_s", where),
        embodied_kgco2e=_num(row, "embodied_kgco2e", where),
        source=row["source"],
        retrieved=row["retrieved"],
        notes=row.get("notes", ""),
        memory_mib=_num(row, "memory_mib", where),
        memory_source=row.get("memory_source", ""),
        scaleout_source=row.get("scaleout_source", ""),
    )


@cache
def _accelerator_table() -> tuple[dict[str, Accelerator], dict[str, str]]:
    """(id -> Accelerator, lower-cased id or alias -> id), validated: ids and aliases unique."""
    accs: dict[str, Accelerator] = {}
    names: dict[str, str] = {}
    for row in _rows("accelerators.csv"):
        acc = _parse_accelerator(row)
        if acc.id != acc.id.lower() or acc.id in accs:
            raise DataError(f"accelerators.csv: id {acc.id!r} is duplicated or not lower-case")
        accs[acc.id] = acc
        aliases = [a.strip() for a in row.get("aliases", "").split(";") if a.strip()]
        for name in {acc.id, *(a.lower() for a in aliases)}:
            if names.get(name, acc.id) != acc.id:
                raise DataError(f"accelerators.csv: alias {name!r} names both {names[name]} and {acc.id}")
            names[name] = acc.id
    return accs, names


def accelerators() -> dict[str, Accelerator]:
    """All accelerators by id."""
    return dict(_accelerator_table()[0])


def get_accelerator(name: str) -> Accelerator:
    """Look up an accelerator by id or alias (case-insensitive)."""
    accs, names = _accelerator_table()
    key = name.strip().lower()
    if key in names:
        return accs[names[key]]
    close = difflib.get_close_matches(key, list(names), n=8, cutoff=0.5)
    ids = tuple(dict.fromkeys(names[c] for c in close))[:3] or close_names(key, accs)
    raise UnknownNameError("GPU", name, ids, tuple(accs))


@cache
def _price_table() -> tuple[Price, ...]:
    accs = _accelerator_table()[0]
    out: list[Price] = []
    defaults: dict[str, int] = {}
    for i, row in enumerate(_rows("prices.csv"), start=2):
        where = f"prices.csv line {i}"
        _required(row, ("accelerator_id", "provider", "usd_per_gpu_hour", "date", "source", "is_default"), where)
        if row["accelerator_id"] not in accs:
            raise DataError(f"{where}: unknown accelerator_id {row['accelerator_id']!r}")
        if row["is_default"] not in ("0", "1"):
            raise DataError(f"{where}: is_default must be 0 or 1")
        price = Price(row["accelerator_id"], row["provider"], row.get("offering", ""),
                      _num(row, "usd_per_gpu_hour", where), row["date"], row["source"],  # type: ignore[arg-type]
                      row["is_default"] == "1")
        defaults[price.accelerator_id] = defaults.get(price.accelerator_id, 0) + price.is_default
        out.append(price)
    bad = sorted(k for k, n in defaults.items() if n != 1)
    if bad:
        raise DataError(f"prices.csv: need exactly one is_default=1 row for {', '.join(bad)}")
    return tuple(out)


def prices(accelerator_id: str) -> list[Price]:
    """All stored prices for an accelerator (id or alias); empty list if none."""
    acc_id = get_accelerator(accelerator_id).id
    return [p for p in _price_table() if p.accelerator_id == acc_id]


def default_price(accelerator_id: str) -> Price | None:
    """The default (is_default=1) price for an accelerator, or None if it has no price."""
    return next((p for p in prices(accelerator_id) if p.is_default), None)


def _parse_value(raw: str) -> float | str:
    try:
        return float(raw)
    except ValueError:
        return raw


@cache
def _assumption_table() -> dict[str, Assumption]:
    out: dict[str, Assumption] = {}
    for row in _rows("assumptions.csv"):
        where = f"assumptions.csv row {row.get('key')!r}"
        _required(row, ("key", "value", "unit", "source"), where)
        if row["key"] in out:
            raise DataError(f"{where}: duplicate key")
        value = _parse_value(row["value"])
        low, high = _num(row, "low", where), _num(row, "high", where)
        if isinstance(value, float) and low is not None and high is not None and not low <= value <= high:
            raise DataError(f"{where}: value {value} outside [{low}, {high}]")
        out[row["key"]] = Assumption(row["key"], value, low, high, row["unit"], row["source"], row.get("notes", ""))
    return out


@dataclass(frozen=True)
class Framework:
    """A training framework: its model-state accounting and the layouts it can run, each with its source.

    ``zero_stages`` are the ZeRO stages the layout search tries; ``max_zero_with_pipeline`` the highest stage the
    framework allows beside pipeline parallelism (None: no limit); ``activation_factor`` scales the saved
    activations of a fused Megatron block (1 = fused; an unfused eager block keeps more, hardware_db/
    activation_profiles.csv).
    """

    id: str
    grad_bytes_per_param: float
    source: str
    notes: str
    tensor_parallel: bool = True
    pipeline: bool = True
    interleaved_pipeline: bool = True
    sequence_parallel: bool = True
    zero_stages: tuple[int, ...] = (1, 3)
    max_zero_with_pipeline: int | None = None
    activation_factor: float = 1.0
    layout_source: str = ""
    buffers_from: str = ""  # whose working buffers (framework_buffers.csv) it allocates: hf runs on FSDP
    ep_comm_overlap: bool = False  # can overlap the MoE all-to-all with another micro-batch (--ep-comm-overlap)
    elementwise_bytes_factor: float = 1.0  # non-GEMM bytes per token relative to the fused block
    elementwise_kernels_factor: float = 1.0  # non-GEMM kernel launches relative to the fused block


def _flag_col(row: dict[str, str], col: str, where: str) -> bool:
    v = (row.get(col) or "").strip()
    if v not in ("0", "1"):
        raise DataError(f"{where}: {col} must be 0 or 1, got {v!r}")
    return v == "1"


def _framework(row: dict[str, str]) -> Framework:
    where = f"frameworks.csv row {row.get('framework')!r}"
    _required(row, ("framework", "grad_bytes_per_param", "source", "zero_stages", "activation_factor",
                    "layout_source"), where)
    try:
        stages = tuple(int(z) for z in row["zero_stages"].split())
    except ValueError:
        raise DataError(f"{where}: zero_stages must be stage numbers separated by spaces") from None
    if not stages or any(z not in (0, 1, 2, 3) for z in stages):
        raise DataError(f"{where}: zero_stages must be among 0 1 2 3")
    zmax = _num(row, "max_zero_with_pipeline", where)
    return Framework(row["framework"], _num(row, "grad_bytes_per_param", where),  # type: ignore[arg-type]
                     row["source"], row.get("notes", ""), _flag_col(row, "tensor_parallel", where),
                     _flag_col(row, "pipeline", where), _flag_col(row, "interleaved_pipeline", where),
                     _flag_col(row, "sequence_parallel", where), stages, None if zmax is None else int(zmax),
                     _num(row, "activation_factor", where), row["layout_source"],  # type: ignore[arg-type]
                     (row.get("buffers_from") or row["framework"]).strip(), _flag_col(row, "ep_comm_overlap", where),
                     _num(row, "elementwise_bytes_factor", where) or 1.0,
                     _num(row, "elementwise_kernels_factor", where) or 1.0)


@cache
def _framework_table() -> dict[str, Framework]:
    return {row["framework"]: _framework(row) for row in _rows("frameworks.csv")}


@dataclass(frozen=True)
class FrameworkBuffer:
    """One working buffer a framework allocates beyond the model states (framework_buffers.csv, from its source).

    ``scales_with``: params_per_gpu_shard / params_total (``amount`` bytes per parameter of this GPU's shard or
    of its unsharded part), fixed_elements (``amount`` elements of ``element_bytes``), fsdp_unit_params
    (``amount`` bytes per parameter of one wrapped layer). ``phase``: persistent, backward (beside the
    activations) or optimizer_step (after the activations are freed); ``zero_stage`` None = every stage.
    """

    framework: str
    zero_stage: int | None
    buffer: str
    scales_with: str
    amount: float
    element_bytes: float
    phase: str
    source: str


_BUFFER_SCALES = ("params_per_gpu_shard", "params_total", "fixed_elements", "fsdp_unit_params")


@cache
def _buffer_table() -> tuple[FrameworkBuffer, ...]:
    out = []
    for i, row in enumerate(_rows("framework_buffers.csv")):
        where = f"framework_buffers.csv row {i + 2}"
        _required(row, ("framework", "buffer", "scales_with", "amount", "element_bytes", "source", "phase",
                        "counted"), where)
        if row["scales_with"] not in _BUFFER_SCALES or row["phase"] not in ("persistent", "backward",
                                                                            "optimizer_step", "transient"):
            raise DataError(f"{where}: scales_with must be one of {_BUFFER_SCALES}, phase persistent|backward|"
                            "optimizer_step|transient")
        if not _flag_col(row, "counted", where):
            continue
        z = (row.get("zero_stage") or "").strip()
        if z not in ("", "0", "1", "2", "3"):
            raise DataError(f"{where}: zero_stage must be blank or 0-3")
        out.append(FrameworkBuffer(row["framework"], int(z) if z else None, row["buffer"],
                                   row["scales_with"], _num(row, "amount", where),  # type: ignore[arg-type]
                                   _num(row, "element_bytes", where), row["phase"], row["source"]))  # type: ignore
    return tuple(out)


def framework_buffers(framework: str) -> tuple[FrameworkBuffer, ...]:
    """The working buffers the estimator counts for a framework (framework_buffers.csv rows with counted = 1)."""
    return tuple(b for b in _buffer_table() if b.framework == framework)


@dataclass(frozen=True)
class AcceleratorEfficiency:
    """An end-to-end efficiency factor for an accelerator without calibrated kernels, with its fit and held-out rows."""

    accelerator_id: str
    factor: float
    n_fit_rows: int
    fit_source: str
    held_out: str
    method: str
    held_out_error: str = ""


@cache
def _accel_eff_table() -> dict[str, AcceleratorEfficiency]:
    out = {}
    for row in _rows("accelerator_efficiency.csv"):
        where = f"accelerator_efficiency.csv row {row.get('accelerator_id')!r}"
        _required(row, ("accelerator_id", "efficiency_factor", "n_fit_rows", "fit_source", "held_out",
                        "held_out_error", "method"), where)
        f = _num(row, "efficiency_factor", where)
        if f is None or not 0 < f <= 2:
            raise DataError(f"{where}: efficiency_factor must be in (0, 2]")
        out[row["accelerator_id"]] = AcceleratorEfficiency(row["accelerator_id"], f, int(row["n_fit_rows"]),
                                                           row["fit_source"], row["held_out"], row["method"],
                                                           row["held_out_error"])
    return out


def accelerator_efficiency(accel_id: str) -> AcceleratorEfficiency | None:
    """The fitted end-to-end efficiency factor of an accelerator (accelerator_efficiency.csv), or None."""
    return _accel_eff_table().get(accel_id)


def frameworks() -> dict[str, Framework]:
    """Training frameworks by id (frameworks.csv)."""
    return dict(_framework_table())


def assumptions() -> dict[str, Assumption]:
    """All documented defaults by key."""
    return dict(_assumption_table())


def assumption(key: str) -> Assumption:
    """One documented default by key."""
    table = _assumption_table()
    if key in table:
        return table[key]
    raise UnknownNameError("assumption", key, close_names(key, table), tuple(table))


__all__ = [
    "PRECISIONS",
    "DataError",
    "HardwareDBError",
    "MissingFigureError",
    "UnknownNameError",
    "Accelerator",
    "Assumption",
    "Framework",
    "Price",
    "accelerators",
    "assumption",
    "assumptions",
    "default_price",
    "accelerator_efficiency",
    "framework_buffers",
    "frameworks",
    "get_accelerator",
    "prices",
]
