"""Device identity for the profiler: NVML/torch device names -> accelerator ids, SM counts and peaks.

``device_names.csv`` (one row per NVML device name, each with its source) maps the names NVML reports to
``accelerators.csv`` ids where the name is not one of that file's aliases (NVML calls the SXM H100 "NVIDIA H100
80GB HBM3"), and gives the streaming-multiprocessor count used by the kernel model's wave quantisation
(``estimator.kernels``). Peaks and bandwidths come from ``hardware_db.get_accelerator`` (the one parser of
``accelerators.csv``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from hardware_db.errors import DataError


@dataclass(frozen=True)
class DeviceName:
    """One NVML device name, the accelerator id it is, its SM count (None where no source was read), its source."""

    device_name: str
    accelerator_id: str
    sm_count: int | None
    source: str


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower().replace("nvidia", "").replace("tesla", ""))


@cache
def device_names() -> dict[str, DeviceName]:
    """Rows of device_names.csv by lower-cased device name; validated (known id, positive SM count, source)."""
    import hardware_db

    text = resources.files("hardware_db").joinpath("device_names.csv").read_text(encoding="utf-8")
    out: dict[str, DeviceName] = {}
    known = hardware_db.accelerators()
    for row in csv.DictReader(io.StringIO(text)):
        name, acc, sms = (row.get(c, "").strip() for c in ("device_name", "accelerator_id", "sm_count"))
        where = f"device_names.csv row {name!r}"
        if not name or acc not in known or not row.get("source", "").strip():
            raise ValueError(f"{where}: needs a device name, a known accelerator id and a source")
        if sms and (not sms.isdigit() or int(sms) < 1):
            raise ValueError(f"{where}: sm_count must be a positive integer, got {sms!r}")
        if name.lower() in out:
            raise ValueError(f"{where}: duplicated")
        out[name.lower()] = DeviceName(name, acc, int(sms) if sms else None, row["source"].strip())
    return out


def accelerator_for_device(device_name: str | None, device_type: str = "cuda") -> str | None:
    """hardware_db accelerator id for an NVML/torch device name, or None (always None on a CPU or when unknown).

    Order: the device_names.csv table, then accelerators.csv ids, names and aliases (case and punctuation
    ignored, "NVIDIA"/"Tesla" dropped)."""
    import hardware_db

    if device_type != "cuda" or not device_name:
        return None
    row = device_names().get(device_name.strip().lower())
    if row is not None:
        return row.accelerator_id
    for candidate in (device_name.strip(), re.sub(r"^(nvidia|tesla)\s+", "", device_name.strip(), flags=re.I)):
        try:
            return hardware_db.get_accelerator(candidate).id
        except ValueError:  # EstimatorInputError or hardware_db.errors.HardwareDBError (both ValueErrors)
            pass
    target = _norm(device_name)
    for acc in hardware_db.accelerators().values():
        if target and target in (_norm(acc.id), _norm(acc.name)):
            return acc.id
    return None


def sm_count(accelerator_id: str | None) -> int | None:
    """Streaming multiprocessors of an accelerator (from device_names.csv), or None where no source was read."""
    if not accelerator_id:
        return None
    counts = {r.sm_count for r in device_names().values() if r.accelerator_id == accelerator_id and r.sm_count}
    return counts.pop() if len(counts) == 1 else None


def _accelerator(accelerator_id: str | None):
    """The hardware_db accelerator, or None for no id or an unknown one."""
    import hardware_db

    if not accelerator_id:
        return None
    try:
        return hardware_db.get_accelerator(accelerator_id)
    except hardware_db.UnknownNameError:
        return None


def peak_flops_per_s(accelerator_id: str | None, dtype: str) -> float | None:
    """Dense datasheet peak FLOP/s of ``accelerator_id`` at ``dtype`` (hardware_db), or None when unknown."""
    from hardware_db.errors import MissingFigureError

    acc = _accelerator(accelerator_id)
    try:
        return acc.peak_flops(dtype) if acc is not None else None
    except MissingFigureError:
        return None


def hbm_bytes_per_s(accelerator_id: str | None) -> float | None:
    """Datasheet memory bandwidth in bytes/s (hardware_db's GB/s x 1e9), or None when unknown."""
    acc = _accelerator(accelerator_id)
    return acc.memory_bw_gb_per_s * 1e9 if acc is not None else None


def scaleup_bytes_per_s(accelerator_id: str | None) -> float | None:
    """Datasheet scale-up (NVLink) bandwidth per GPU, one direction, in bytes/s, or None when unknown."""
    acc = _accelerator(accelerator_id)
    return acc.scaleup_bw_gb_per_s * 1e9 if acc is not None and acc.scaleup_bw_gb_per_s else None


def default_calibration(accelerator_id: str | None):
    """Path (importlib.resources Traversable) of the shipped calibration for an accelerator
    (``hardware_db/calibrations/<id>.json``), or None when none is shipped."""
    if not accelerator_id:
        return None
    p = resources.files("hardware_db").joinpath("calibrations").joinpath(f"{accelerator_id}.json")
    return p if p.is_file() else None


@dataclass(frozen=True)
class Transfer:
    """Which shipped calibration another accelerator's kernel model is scaled from, and how close the two are."""

    accelerator_id: str
    reference: str
    relation: str  # "same_generation" | "other_generation"
    source: str
    notes: str


@cache
def _transfers() -> dict[str, Transfer]:
    text = resources.files("hardware_db").joinpath("calibration_transfer.csv").read_text(encoding="utf-8")
    out: dict[str, Transfer] = {}
    for row in csv.DictReader(io.StringIO(text)):
        acc, ref, rel = row["accelerator_id"].strip(), row["reference"].strip(), row["relation"].strip()
        if rel not in ("same_generation", "other_generation") or not row["source"].strip() or acc in out:
            raise DataError(f"calibration_transfer.csv: bad row for {acc!r} (relation, source, unique id)")
        out[acc] = Transfer(acc, ref, rel, row["source"].strip(), (row.get("notes") or "").strip())
    return out


def calibration_transfer(accelerator_id: str | None) -> Transfer | None:
    """The shipped calibration an accelerator without its own is scaled from (calibration_transfer.csv), or None
    (other vendors: no NVIDIA kernel measurements are transferred to them)."""
    return _transfers().get(accelerator_id or "")
