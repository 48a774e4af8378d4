"""Shapes to measure, torch-free: ids, the one-layer ModelSpec of a shape, and memory needs.

Kept apart from ``profiler.blocks`` (which builds torch modules) so that ``profile-gpu fit``
and the sweep bookkeeping run where torch is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from estimator.hardware import DTYPE_BYTES  # the one dtype-size table
from estimator.memory import block_param_count, block_training_peak_bytes
from estimator.model import ModelSpec, validate

KINDS = ("gemm", "attention", "block", "decode", "elementwise", "idle", "collective")
MODES = ("fwd", "fwd_bwd")


@dataclass(frozen=True)
class Shape:
    """One thing to measure. ``params`` is a sorted tuple of (name, int) pairs."""

    kind: str
    mode: str = "fwd"
    dtype: str = "bf16"
    params: tuple = ()

    @property
    def p(self) -> dict:
        return dict(self.params)

    @property
    def id(self) -> str:
        """Stable key: the same shape always gets the same id (used by --resume)."""
        return f"{self.kind}|{self.mode}|{self.dtype}|" + ",".join(f"{k}={v}" for k, v in self.params)

    @classmethod
    def make(cls, kind: str, mode: str = "fwd", dtype: str = "bf16", **params: int) -> Shape:
        return cls(kind, mode, dtype, tuple(sorted(params.items())))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mode": self.mode, "dtype": self.dtype, "params": self.p}


BLOCK_PARAMS = ("d_model", "heads", "kv_heads", "ffn_dim", "batch", "seq", "experts", "top_k", "gated",
                "context")


def default_ffn(d: int) -> int:
    """Llama-3 recipe FFN width: 3.5 d rounded to a multiple of 64 (Dubey et al. 2024 Table 3)."""
    return max(64, round(3.5 * d / 64) * 64)


def spec_of(p: dict) -> ModelSpec:
    """A one-layer ModelSpec for block/decode/attention params (vocab is irrelevant: 1)."""
    d = int(p["d_model"])
    heads = int(p.get("heads", max(1, d // 128)))
    experts = int(p.get("experts", 1))
    return validate(ModelSpec(layers=1, d_model=d, heads=heads, kv_heads=int(p.get("kv_heads", heads)),
                              ffn_dim=int(p.get("ffn_dim", default_ffn(d))), vocab=1,
                              seq_len=int(p.get("seq", p.get("context", 1) + 1)), name="profiler-block",
                              gated_mlp=bool(p.get("gated", 1)), experts=experts,
                              experts_per_token=int(p.get("top_k", 1)) if experts > 1 else 1))


def estimate_bytes(shape: Shape) -> float:
    """Rough device bytes a shape needs (to skip ones that cannot fit before allocating)."""
    p = shape.p
    by = DTYPE_BYTES.get(shape.dtype, 2)
    if shape.kind == "gemm":
        mult = 2 if shape.mode == "fwd_bwd" else 1
        return mult * (p["m"] * p["k"] + p["k"] * p["n"] + p["m"] * p["n"]) * max(by, 2)
    if shape.kind == "elementwise":
        return 3.0 * p["numel"] * by
    if shape.kind in ("block", "attention", "decode"):
        s = spec_of(p)
        b = p.get("batch", 1)
        if shape.kind == "decode":
            return block_param_count(s) * by + 2 * b * s.kv_heads * (p["context"] + 1) * s.hd * by
        if shape.kind == "attention":
            return 8.0 * b * p["seq"] * s.heads * s.hd * by
        if shape.mode == "fwd_bwd":
            return 1.3 * block_training_peak_bytes(s, b, p["seq"], by)
        return block_param_count(s) * by + 4.0 * b * p["seq"] * max(s.ffn_dim, s.d_model) * by
    return 0.0


