"""Import Vidur's public profiling CSVs as profiler measurement records (one kernel per row).

Vidur (Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024;
microsoft/vidur, MIT licence) times every op of a decoder layer on one GPU with CUDA events, fp16, forward only, at
1..4,096+ tokens and tensor-parallel shards 1..8 (each op given its 1/TP shard). Its files:

- ``compute/<gpu>/<org>/<model>/mlp.csv``: columns ``time_stats.<op>.{min,max,mean,median,std}`` in milliseconds
  and the shape ``n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size, use_gated_mlp, num_tokens,
  num_tensor_parallel_workers``. Each op becomes its own record here: the four GEMMs (``attn_pre_proj``,
  ``attn_post_proj``, ``mlp_up_proj``, ``mlp_down_proj``) as ``kind="gemm"`` with m, n, k, and the memory-bound ops
  (norms, activation, rope, residual add, embedding) as ``kind="elementwise"``, each with its FLOPs and bytes moved.
- ``network/<node>/{all_reduce,send_recv}.csv``: ``time_stats.<collective>.*`` in ms, ``num_workers``, ``size`` in
  fp16 elements (bytes = 2 x size), ``devices_per_node``. Each row becomes a ``kind="collective"`` record.

Every record carries ``source`` (data set, commit, file, row), the accelerator id and the TP shard. The op shapes
follow Vidur's README (``vidur/profiling/mlp``): column-parallel QKV and up-projection, row-parallel output and
down-projection.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from estimator.errors import EstimatorInputError
from profiler.sweep import RECORD_SCHEMA, RECORD_VERSION

VIDUR_COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"
CITATION = "Agrawal et al., 'Vidur: A Large-Scale Simulation Framework for LLM Inference', MLSys 2024"
MEASURED_BY = "Vidur's authors on their hardware (not by this project)"
SHAPE_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
                 "num_tensor_parallel_workers")
NETWORK_COLUMNS = ("num_workers", "size", "devices_per_node")
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
# Vidur op -> kernel kind of the memory-bound ops
ELEMENTWISE_OPS = {"input_layernorm": "norm", "post_attention_layernorm": "norm", "attn_rope": "rope",
                   "mlp_act": "activation", "add": "add", "emb": "embedding"}
DTYPE = "fp16"
DTYPE_BYTES = 2
MS = 1e-3
STATS = ("min", "max", "mean", "median", "std")


def _bad(path: Path, what: str) -> EstimatorInputError:
    return EstimatorInputError(f"{path}: {what}", "pass a Vidur profiling folder (compute/<gpu>/... mlp.csv or "
                                                  "network/<node>/all_reduce.csv, send_recv.csv)")


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV that must hold ``required`` columns; a foreign or unreadable file is a user error."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise _bad(path, f"not a Vidur profile (no column {', '.join(missing[:3])})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise _bad(path, f"cannot read it ({type(err).__name__})") from None
    if not rows:
        raise _bad(path, "has no rows")
    return rows


def _num(row: dict[str, str], col: str, path: Path, i: int) -> float:
    try:
        v = float(row[col])
    except (KeyError, TypeError, ValueError):
        raise _bad(path, f"row {i}: {col} is not a number ({row.get(col)!r})") from None
    if not math.isfinite(v) or v < 0:
        raise _bad(path, f"row {i}: {col} must be finite and >= 0, got {v}")
    return v


def _int(row: dict[str, str], col: str, path: Path, i: int) -> int:
    v = _num(row, col, path, i)
    if v != int(v) or v < 1:
        raise _bad(path, f"row {i}: {col} must be a positive integer, got {row[col]!r}")
    return int(v)


def _stats(row: dict[str, str], op: str, path: Path, i: int) -> dict | None:
    """Vidur's ms statistics of one op as seconds; None when the op is absent from the file."""
    if f"time_stats.{op}.median" not in row:
        return None
    out = {f"time_s_{s}": _num(row, f"time_stats.{op}.{s}", path, i) * MS for s in STATS
           if f"time_stats.{op}.{s}" in row and row[f"time_stats.{op}.{s}"] != ""}
    if out.get("time_s_median", 0) <= 0:
        raise _bad(path, f"row {i}: time_stats.{op}.median must be > 0")
    return out


def gemm_shape(op: str, tokens: int, d: int, heads: int, kv_heads: int, ffn: int, gated: bool,
               tp: int) -> tuple[int, int, int]:
    """(m, n, k) of one TP shard of a Vidur projection: out[m, n] = in[m, k] @ W[k, n]."""
    hd = d // heads
    if op == "attn_pre_proj":
        return tokens, (heads + 2 * kv_heads) * hd // tp, d
    if op == "attn_post_proj":
        return tokens, d, heads * hd // tp
    if op == "mlp_up_proj":
        return tokens, ffn * (2 if gated else 1) // tp, d
    if op == "mlp_down_proj":
        return tokens, d, ffn // tp
    raise ValueError(op)


def elementwise_traffic(op: str, tokens: int, d: int, heads: int, kv_heads: int, ffn: int, gated: bool,
                        tp: int) -> tuple[float, float, int]:
    """(bytes read + written, FLOPs, elements written) of one memory-bound op of a TP shard, fp16.

    Norm: read and write d per token (+ the d-element weight); rope: read and write q and k of this shard; activation:
    SiLU-and-multiply reads 2 ffn/tp and writes ffn/tp (GeLU reads and writes ffn/tp); add: reads two d-vectors and
    writes one; embedding: reads one d-row per token and writes it. FLOPs are rough (a few per element) and only
    reported, not fitted.
    """
    hd = d // heads
    if op in ("input_layernorm", "post_attention_layernorm"):
        elems, flops_per = tokens * d, 5
        moved = 2 * elems + d
    elif op == "attn_rope":
        elems, flops_per = tokens * (heads + kv_heads) * hd // tp, 3
        moved = 2 * elems
    elif op == "mlp_act":
        elems = tokens * ffn // tp
        flops_per = 6 if gated else 8
        moved = (3 if gated else 2) * elems
    elif op == "add":
        elems, flops_per = tokens * d, 1
        moved = 3 * elems
    elif op == "emb":
        elems, flops_per = tokens * d, 0
        moved = 2 * elems
    else:
        raise ValueError(op)
    return float(moved * DTYPE_BYTES), float(flops_per * elems), int(elems)


def _source(path: Path, root: Path, i: int) -> dict:
    """Where a row came from: the path from Vidur's ``compute/`` or ``network/`` folder on (else from ``root``)."""
    parts = path.resolve().parts
    anchor = max((j for j, x in enumerate(parts) if x in ("compute", "network")), default=None)
    if anchor is not None:
        rel = Path(*parts[anchor:])
    else:
        try:
            rel = path.resolve().relative_to(root.resolve())
        except ValueError:
            rel = Path(path.name)
    return {"dataset": "vidur", "commit": VIDUR_COMMIT, "file": str(rel), "row": i, "citation": CITATION,
            "measured_by": MEASURED_BY}


def _record(kind: str, params: dict, shape_id: str, device: dict, stats: dict, source: dict, **extra) -> dict:
    return {"schema": RECORD_SCHEMA, "schema_version": RECORD_VERSION, "shape_id": shape_id, "kind": kind,
            "mode": "fwd", "dtype": DTYPE, "params": params, "device": "cuda", **device, "status": "ok",
            "time_method": "cuda_events (Vidur)", "n_iters": None, **stats, "energy_j": None,
            "energy_method": "unavailable", "energy_why": "imported timings carry no energy", "source": source,
            **extra}


def model_name(path: Path) -> str:
    """'<org>/<model>' from .../compute/<gpu>/<org>/<model>/mlp.csv (the folder names)."""
    return f"{path.parent.parent.name}/{path.parent.name}"


def mlp_records(path: Path, root: Path, device: dict) -> Iterator[dict]:
    """One record per (row, op) of a Vidur mlp.csv."""
    rows = read_csv(path, SHAPE_COLUMNS + ("time_stats.attn_pre_proj.median",))
    model = model_name(path)
    for i, row in enumerate(rows):
        heads, kv, d = (_int(row, c, path, i) for c in ("n_head", "n_kv_head", "n_embd"))
        ffn, tokens, tp = (_int(row, c, path, i) for c in ("n_expanded_embd", "num_tokens",
                                                           "num_tensor_parallel_workers"))
        gated = str(row["use_gated_mlp"]).strip().lower() in ("true", "1")
        if d % heads or heads % kv:
            raise _bad(path, f"row {i}: n_embd {d} / n_head {heads} / n_kv_head {kv} do not divide")
        shape = {"model": model, "tp": tp, "tokens": tokens, "d_model": d, "heads": heads, "kv_heads": kv,
                 "ffn_dim": ffn, "gated": int(gated)}
        for op in GEMM_OPS:
            st = _stats(row, op, path, i)
            if st is None:
                continue
            m, n, k = gemm_shape(op, tokens, d, heads, kv, ffn, gated, tp)
            moved = float(DTYPE_BYTES * (m * k + k * n + m * n))
            yield _record("gemm", {"m": m, "n": n, "k": k}, f"vidur|{model}|{op}|tp={tp}|tokens={tokens}|row={i}",
                          device, st, _source(path, root, i), kernel="gemm", op=op, model=model, tp=tp, shape=shape,
                          flops_analytic=2.0 * m * n * k, bytes_moved=moved)
        for op, kernel in ELEMENTWISE_OPS.items():
            st = _stats(row, op, path, i)
            if st is None:
                continue
            moved, flops, elems = elementwise_traffic(op, tokens, d, heads, kv, ffn, gated, tp)
            yield _record("elementwise", {"numel": elems}, f"vidur|{model}|{op}|tp={tp}|tokens={tokens}|row={i}",
                          device, st, _source(path, root, i), kernel=kernel, op=op, model=model, tp=tp, shape=shape,
                          flops_analytic=flops, bytes_moved=moved)


def bus_factor(op: str, world: int) -> float:
    """Bytes each rank sends per buffer byte (nccl-tests' busbw / algbw): 2 (n-1)/n for all-reduce, 1 for send/recv."""
    return 2.0 * (world - 1) / world if op == "all_reduce" else 1.0


def network_records(path: Path, root: Path, device: dict) -> Iterator[dict]:
    """One record per row of a Vidur all_reduce.csv or send_recv.csv."""
    op = path.stem
    rows = read_csv(path, NETWORK_COLUMNS + (f"time_stats.{op}.median",))
    node = path.parent.name
    for i, row in enumerate(rows):
        world, per_node = _int(row, "num_workers", path, i), _int(row, "devices_per_node", path, i)
        size_bytes = _int(row, "size", path, i) * DTYPE_BYTES
        st = _stats(row, op, path, i)
        params = {"op": op, "bytes": size_bytes, "world_size": world, "devices_per_node": per_node}
        sid = f"vidur|{node}|{op}|world={world}|per_node={per_node}|bytes={size_bytes}|row={i}"
        yield _record("collective", params, sid, device, st, _source(path, root, i), kernel=op, node=node,
                      backend="nccl",
                      intra_node=per_node >= world, bytes_on_wire=size_bytes * bus_factor(op, world),
                      flops_analytic=None, bytes_moved=float(size_bytes))


def find_profiles(root: Path) -> list[Path]:
    """Vidur profile files under ``root`` (a model folder, a GPU folder, a node folder or the data set), sorted."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise EstimatorInputError(f"{root} does not exist", "pass a folder of Vidur profiles")
    names = ("mlp.csv", "all_reduce.csv", "send_recv.csv")
    return sorted(p for p in root.rglob("*.csv") if p.name in names)


def import_vidur(dirs: list[Path], accelerator_id: str, device_name: str | None = None) -> list[dict]:
    """Records of every Vidur profile under ``dirs``, all tagged with ``accelerator_id``.

    A folder with no Vidur profile, a foreign CSV named like one, or a bad value raises EstimatorInputError.
    """
    device = {"accelerator_id": accelerator_id, "device_name": device_name or accelerator_id}
    out: list[dict] = []
    seen: set[Path] = set()
    for root in dirs:
        files = find_profiles(Path(root))
        if not files:
            raise EstimatorInputError(f"{root} holds no Vidur profile (mlp.csv, all_reduce.csv or send_recv.csv)",
                                      "pass compute/<gpu>[/<org>/<model>] or network/<node> from Vidur's "
                                      "data/profiling")
        base = Path(root) if Path(root).is_dir() else Path(root).parent
        for f in files:
            if f.resolve() in seen:
                raise EstimatorInputError(f"{f} was given twice (overlapping folders)", "pass each folder once")
            seen.add(f.resolve())
            gen = mlp_records(f, base, device) if f.name == "mlp.csv" else network_records(f, base, device)
            out.extend(gen)
    return out
