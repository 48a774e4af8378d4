"""What is known: accelerators, regions and model presets, as rows (for ``--json``) or rich tables."""

from __future__ import annotations

from typing import Any

TITLES = {"gpus": "Known accelerators (hardware_db/accelerators.csv)",
          "regions": "Regions with grid carbon intensity (codecarbon's packaged data)",
          "presets": "Model presets (hardware_db/models.csv)"}


def _gpu_rows() -> list[dict]:
    from hardware_db import accelerators, default_price

    out = []
    for a in accelerators().values():
        p = default_price(a.id)
        out.append({"id": a.id, "name": a.name, "memory_gb": a.memory_gb,
                    "peak_bf16_dense_tflops": a.peak_tflops.get("bf16"),
                    "peak_fp16_dense_tflops": a.peak_tflops.get("fp16"),
                    "peak_fp8_dense_tflops": a.peak_tflops.get("fp8"), "tdp_w": a.tdp_w,
                    "default_usd_per_gpu_hour": p.usd_per_gpu_hour if p else None, "source": a.source})
    return out


def _region_rows() -> list[dict]:
    from hardware_db.regions import list_regions

    return [{"region": r.region, "name": r.name, "kind": r.kind, "g_per_kwh": r.g_per_kwh, "source": r.source}
            for r in list_regions()]


def _preset_rows() -> list[dict]:
    from estimator.presets import preset_rows

    return [{"preset": r["name"], "params_reported": r.get("params_reported"), "source": r.get("source", "")}
            for r in preset_rows()]


def rows(kind: str) -> list[dict]:
    """The rows of one listing: ``gpus``, ``regions`` or ``presets``."""
    return {"gpus": _gpu_rows, "regions": _region_rows, "presets": _preset_rows}[kind]()


def _cell(v: Any) -> str:

    return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def print_table(kind: str, data: list[dict]) -> None:
    """Print one listing as a table (missing figures as '-', never 0)."""
    import sys

    from rich.console import Console
    from rich.table import Table

    cols = {"gpus": ("id", "name", "memory_gb", "peak_bf16_dense_tflops", "peak_fp8_dense_tflops", "tdp_w",
                     "default_usd_per_gpu_hour"),
            "regions": ("region", "name", "kind", "g_per_kwh"), "presets": ("preset", "params_reported", "source")}
    t = Table(title=TITLES[kind], title_justify="left")
    for c in cols[kind]:
        t.add_column(c, overflow="fold")
    for r in data:
        t.add_row(*(_cell(round(r[c]) if c == "g_per_kwh" else r[c]) for c in cols[kind]))
    Console(width=None if sys.stdout.isatty() else 140, markup=False).print(t)
