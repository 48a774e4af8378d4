#!/usr/bin/env python3
"""Measure the bytes of saved activations one Hugging Face LlamaDecoderLayer keeps for backward (CPU, bf16).

Method: build one ``transformers`` ``LlamaDecoderLayer`` from a local ``LlamaConfig`` (no hub download),
run one training-mode forward on a gradient-enabled bf16 input under
``torch.autograd.graph.saved_tensors_hooks`` and record every tensor autograd saves for backward,
de-duplicated by storage (``untyped_storage().data_ptr()`` + ``nbytes()``: a view saved twice, or a
tensor saved by several ops, counts once, and a saved view keeps its whole storage alive, so the whole
storage is counted). The layer's parameters are excluded (matched by storage data_ptr), and so are the
RoPE ``cos``/``sin`` tables the layer gets as ``position_embeddings``: a ``LlamaModel`` computes them once
and every layer saves the same storage, so they are not a per-layer cost (their bytes are reported in
their own column). Tensors of shape ``(..., seq, seq)`` with batch*heads*seq^2 elements are counted as the
attention-score (s^2) part. The tensors are then attributed to the autograd node that saved them by walking the graph
(``grad_fn._saved_*``); the walk's total must equal the hook's total.

The estimator's figure for the same shape is ``estimator.memory.block_activation_bytes`` (gated MLP,
RMSNorm, no dropout, tp=1, recompute='none', dtype_bytes=2, flash=True; for the eager rows the
flash=False figure is reported too). Run with a venv that has torch and transformers and put the repo on
the path, e.g.::

    python3 -m venv /tmp/actvenv && /tmp/actvenv/bin/pip install torch==2.13.0 transformers==5.24.0
    PYTHONPATH=. /tmp/actvenv/bin/python scripts/measure_activations.py --crosscheck \
        --out hardware_db/activation_profiles.csv

``--crosscheck`` also measures a whole ``LlamaModel`` with 1 and 2 layers for the smallest shape and
prints the per-layer difference (it includes everything the model does between layers).

``--elementwise`` measures the layer's "fusion" cost instead: one training-mode forward + backward under a
``TorchDispatchMode`` (``make_elementwise_counter``) that sees every aten op; the bytes read and written by
every op that is not a matmul-family / fused-attention op and not a view, per token, forward and backward
apart, with op (kernel launch) counts, against the estimator's ``estimator.timing.elementwise_bytes_per_token``
(forward; 2x for backward as ``block_time_s`` does; ``N_ELEMENTWISE_PER_BLOCK`` = 6 kernels forward)::

    PYTHONPATH=. /tmp/actvenv/bin/python scripts/measure_activations.py --elementwise \
        --out-elementwise hardware_db/elementwise_profiles.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DB_COLUMNS = [
    "implementation", "transformers_version", "torch_version", "device", "dtype", "d_model", "ffn_dim", "heads",
    "kv_heads", "head_dim", "seq", "batch", "measured_bytes_per_token_layer", "measured_linear_bytes_per_token_layer",
    "measured_score_bytes_per_token_layer", "measured_coef_bytes_per_sbh", "measured_linear_coef_bytes_per_sbh",
    "rope_table_bytes_per_token", "estimator_bytes_per_token_layer", "estimator_coef_bytes_per_sbh", "ratio",
    "estimator_noflash_bytes_per_token_layer", "ratio_noflash", "sdpa_backward_node", "method", "source",
    "retrieved", "notes",
]

METHOD = ("bytes of every tensor autograd saves in one training-mode forward of one LlamaDecoderLayer "
          "(torch.autograd.graph.saved_tensors_hooks), de-duplicated by storage, parameters and the shared "
          "RoPE cos/sin tables excluded, divided by batch*seq")

NOTES = {
    "sdpa": ("CPU SDPA ran ScaledDotProductFlashAttentionForCpu, which saves q, k, v, output and an fp32 logsumexp; "
             "torch 2.13's CUDA flash, efficient and cuDNN backward nodes save the same tensors (plus RNG state), "
             "so the count should carry over to CUDA (not measured on a GPU); GQA runs with enable_gqa and K/V are "
             "kept at kv_heads width (a CUDA backend without native GQA would expand them); the o_proj input "
             "is the SDPA output's storage; RMSNorm is HF's eager fp32 one (no hub kernels)"),
    "eager": ("eager attention keeps the fp32 softmax output (4 B) and its bf16 copy for the PV matmul (2 B): "
              "6 B per head per s^2 element on top of the linear part; repeat_kv copies K and V to all heads, "
              "so GQA keeps as much as MHA; the additive causal mask is not saved"),
}


# --- the counter (no transformers needed; tested by tests/test_measure_activations.py) ---------------------------

def _storage_key(t):
    st = t.untyped_storage()
    return st.data_ptr(), st.nbytes()


@dataclass
class SavedStorage:
    """One storage kept for backward: its size and the first tensor that was saved from it."""

    nbytes: int
    shape: tuple
    dtype: str
    module: str
    times_saved: int = 1
    saved_by: list = field(default_factory=list)  # "GradFnName.attr" from the graph walk


class SavedTensorCounter:
    """Record the tensors autograd saves while active, de-duplicated by storage.

    ``exclude`` holds tensors (e.g. parameters) whose storages are not counted; ``separate`` maps a label to
    tensors whose storages are counted under that label instead of the total (e.g. shared RoPE tables).
    ``track_modules`` is an optional ``nn.Module`` whose submodule names label each saved tensor.
    """

    def __init__(self, exclude=(), separate=None, track_modules=None):
        import torch

        self._torch = torch
        self.excluded_ptrs = {t.untyped_storage().data_ptr() for t in exclude}
        self.separate_ptrs = {}
        for label, tensors in (separate or {}).items():
            for t in tensors:
                self.separate_ptrs[t.untyped_storage().data_ptr()] = label
        self.storages: dict[tuple, SavedStorage] = {}
        self.separate: dict[str, dict[tuple, int]] = defaultdict(dict)
        self.excluded_hits = 0
        self._stack = ["<top>"]
        self._handles = []
        self._root = track_modules
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    # module stack, so each saved tensor is labelled by the module whose forward saved it
    def _push(self, name):
        def pre(_m, _args):
            self._stack.append(name)
        return pre

    def _pop(self, _m, _args, _out):
        self._stack.pop()

    def __enter__(self):
        if self._root is not None:
            for name, m in self._root.named_modules():
                self._handles.append(m.register_forward_pre_hook(self._push(name or type(m).__name__)))
                self._handles.append(m.register_forward_hook(self._pop))
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles.clear()
        return False

    def _pack(self, t):
        if not isinstance(t, self._torch.Tensor) or t.device.type == "meta":
            return t
        key = _storage_key(t)
        if key[1] == 0:
            return t
        if key[0] in self.excluded_ptrs:
            self.excluded_hits += 1
            return t
        if key[0] in self.separate_ptrs:
            self.separate[self.separate_ptrs[key[0]]][key] = key[1]
            return t
        rec = self.storages.get(key)
        if rec is None:
            self.storages[key] = SavedStorage(key[1], tuple(t.shape), str(t.dtype).replace("torch.", ""),
                                              self._stack[-1])
        else:
            rec.times_saved += 1
        return t

    @staticmethod
    def _unpack(t):
        return t

    @property
    def total_bytes(self) -> int:
        """Bytes of all counted storages (excluded and separate ones left out)."""
        return sum(r.nbytes for r in self.storages.values())

    def separate_bytes(self, label) -> int:
        """Bytes of the storages counted under ``label``."""
        return sum(self.separate.get(label, {}).values())

    def attribute(self, *outputs) -> int:
        """Walk the autograd graph from ``outputs`` and name the node(s) saving each counted storage.

        Returns the bytes of the counted storages the walk found (equal to ``total_bytes`` when every saved
        tensor is reachable from ``outputs``).
        """
        torch = self._torch
        seen, todo, found = set(), [o.grad_fn for o in outputs if o.grad_fn is not None], set()
        while todo:
            node = todo.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            for attr in dir(node):
                if not attr.startswith("_saved_"):
                    continue
                try:
                    val = getattr(node, attr)
                except Exception:  # noqa: BLE001 - undefined optional saved tensors raise
                    continue
                vals = val if isinstance(val, (tuple, list)) else (val,)
                for v in vals:
                    if isinstance(v, torch.Tensor) and v.untyped_storage().nbytes():
                        key = _storage_key(v)
                        if key in self.storages:
                            self.storages[key].saved_by.append(f"{node.name()}.{attr[len('_saved_'):]}")
                            found.add(key)
            todo.extend(fn for fn, _ in node.next_functions if fn is not None)
        return sum(self.storages[k].nbytes for k in found)

    def table(self):
        """Counted storages, largest first."""
        return sorted(self.storages.values(), key=lambda r: -r.nbytes)


# --- the non-GEMM byte counter (torch only; tested by tests/test_measure_activations.py) -------------------------

# matmul-family ops: their bytes belong to the GEMM/attention roofline, not to the elementwise traffic
MATMUL_OPS = frozenset({
    "mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "addmv", "mv", "dot", "addbmm", "_addmm_activation",
    "convolution", "_convolution", "convolution_backward", "_scaled_mm", "_int_mm",
})
# ops that only make a new view / read metadata / allocate without touching memory: no kernel, no bytes
VIEW_OPS = frozenset({
    "view", "_unsafe_view", "_reshape_alias", "reshape", "expand", "expand_as", "transpose", "t", "permute",
    "unsqueeze", "squeeze", "slice", "select", "as_strided", "detach", "alias", "split", "split_with_sizes",
    "chunk", "unbind", "narrow", "view_as", "unfold", "diagonal", "lift_fresh", "view_as_real", "view_as_complex",
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_", "set_",
    "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_same_size", "_has_compatible_shallow_copy_type",
})
# in-place ops that overwrite ``self`` without reading it
WRITE_ONLY_SELF_OPS = frozenset({"copy_", "fill_", "zero_", "normal_", "uniform_", "random_", "bernoulli_",
                                 "exponential_", "geometric_", "cauchy_", "log_normal_"})
ACCUMULATE_GRAD = "AccumulateGrad"


def op_kind(name: str, is_view: bool = False) -> str:
    """'gemm' (matmul family and fused attention), 'view' (no kernel) or 'elementwise' (everything else)."""
    if name in MATMUL_OPS or "scaled_dot_product" in name or "flash_attention" in name \
            or "efficient_attention" in name or "cudnn_attention" in name:
        return "gemm"
    if is_view or name in VIEW_OPS:
        return "view"
    return "elementwise"


def touched_bytes(t) -> int:
    """Bytes an op reads from ``t``: its elements, counting a broadcast (stride-0) dimension once."""
    n = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            n *= size
    return (n if t.numel() else 0) * t.element_size()


def dense_bytes(t) -> int:
    """numel * element_size of ``t`` as given (a stride-0 broadcast counted at its full size)."""
    return t.numel() * t.element_size()


@dataclass
class PhaseTally:
    """Non-GEMM traffic of one phase ('fwd', 'bwd' or 'accumulate_grad')."""

    read: int = 0
    written: int = 0
    read_dense: int = 0
    ops: int = 0
    gemm_ops: int = 0
    view_ops: int = 0
    by_op: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))  # name -> [ops, read, written]
    by_node: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # autograd node -> [ops, bytes]

    @property
    def bytes(self) -> int:
        """Bytes read + written by the counted (non-GEMM, non-view) ops."""
        return self.read + self.written

    @property
    def bytes_dense(self) -> int:
        return self.read_dense + self.written

    def top(self, n: int = 15):
        """(name, ops, read, written) of the ``n`` ops moving the most bytes."""
        rows = [(k, v[0], v[1], v[2]) for k, v in self.by_op.items()]
        return sorted(rows, key=lambda r: (-(r[2] + r[3]), r[0]))[:n]


def _make_dispatch_counter():
    from torch.utils._python_dispatch import TorchDispatchMode

    class ElementwiseByteCounter(TorchDispatchMode):
        """Count the bytes every non-GEMM aten op reads and writes while active (a ``TorchDispatchMode``).

        Each aten op that reaches the dispatcher (after autograd, before the backend kernel) is classified with
        ``op_kind``. Matmul-family and fused-attention ops are counted in ``gemm_ops`` only, views / metadata /
        allocations in ``view_ops`` only; every other op is one kernel launch that reads its tensor inputs
        (``touched_bytes``: numel * element size, a stride-0 broadcast dimension counted once; ``read_dense``
        keeps numel * element size as given) and writes its tensor outputs. In-place outputs count as written
        (and as read, unless the op only overwrites them: ``copy_``, ``fill_``, ...); ``out=`` arguments count as
        written only. Set ``phase`` ('fwd' / 'bwd') before each pass; ops that run inside an ``AccumulateGrad``
        autograd node (parameter / leaf gradient accumulation into ``.grad``) go to the 'accumulate_grad' tally.
        The op that a composite kernel launches internally is not seen (the mode sees ``slice_backward``, not
        the zero-fill and copy it runs).
        """

        def __init__(self):
            super().__init__()
            import torch

            self._torch = torch
            self.phase = "fwd"
            self.tallies: dict[str, PhaseTally] = defaultdict(PhaseTally)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            torch = self._torch
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = func._schema.name.split("::")[-1]
            if func._overloadname not in ("default", ""):
                label = f"{name}.{func._overloadname}"
            else:
                label = name
            kind = op_kind(name, bool(getattr(func, "is_view", False)))
            node = torch._C._current_autograd_node()
            node_name = node.name() if node is not None else "<forward>"
            phase = "accumulate_grad" if ACCUMULATE_GRAD in node_name else self.phase
            tally = self.tallies[phase]
            if kind == "gemm":
                tally.gemm_ops += 1
                return out
            if kind == "view":
                tally.view_ops += 1
                return out
            read = read_dense = 0
            schema_args = func._schema.arguments
            for i, a in enumerate(args):
                sa = schema_args[i] if i < len(schema_args) else None
                if sa is not None and (sa.is_out or (i == 0 and name in WRITE_ONLY_SELF_OPS)):
                    continue
                for t in _tensors(a, torch):
                    read += touched_bytes(t)
                    read_dense += dense_bytes(t)
            out_names = {sa.name for sa in schema_args if sa.is_out}
            for k, a in kwargs.items():
                if k in out_names:
                    continue
                for t in _tensors(a, torch):
                    read += touched_bytes(t)
                    read_dense += dense_bytes(t)
            written = sum(dense_bytes(t) for t in _tensors(out, torch))
            tally.read += read
            tally.read_dense += read_dense
            tally.written += written
            tally.ops += 1
            rec = tally.by_op[label]
            rec[0] += 1
            rec[1] += read
            rec[2] += written
            nrec = tally.by_node[node_name]
            nrec[0] += 1
            nrec[1] += read + written
            return out

        def tally(self, phase: str) -> PhaseTally:
            return self.tallies[phase]

    return ElementwiseByteCounter


def _tensors(obj, torch):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o, torch)


def make_elementwise_counter():
    """A new ``ElementwiseByteCounter`` dispatch mode (the class is made on first use: importing needs no torch)."""
    global _COUNTER_CLASS
    if _COUNTER_CLASS is None:
        _COUNTER_CLASS = _make_dispatch_counter()
    return _COUNTER_CLASS()


_COUNTER_CLASS = None


# --- the Llama measurement ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """One measured configuration."""

    d_model: int
    ffn_dim: int
    heads: int
    kv_heads: int
    seq: int
    batch: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


def llama_ffn(d: int) -> int:
    """Llama-like SwiGLU width: 2.6875 d (Llama-1/2 7B: 11008 = 2.6875 * 4096), a multiple of 64."""
    return int(round(2.6875 * d / 64) * 64)


def default_shapes(quick: bool = False):
    shapes = []
    dims = (1024, 2048) if quick else (1024, 2048, 4096)
    for d in dims:
        heads = d // 128
        for kv in (heads, max(1, heads // 4)):
            seqs = (256, 512) if quick else (256, 512, 1024)
            for s in seqs:
                for b in (1, 2):
                    shapes.append(Shape(d, llama_ffn(d), heads, kv, s, b))
    return shapes


def _config(shape: Shape, impl: str, layers: int = 1):
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=shape.d_model, intermediate_size=shape.ffn_dim,
                      num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                      num_hidden_layers=layers, vocab_size=256, max_position_embeddings=max(shape.seq, 2048),
                      hidden_act="silu", rms_norm_eps=1e-5, attention_dropout=0.0, attention_bias=False,
                      mlp_bias=False, tie_word_embeddings=False, attn_implementation=impl)
    cfg._attn_implementation = impl
    return cfg


def _is_score(t_shape, shape: Shape) -> bool:
    """An attention-score tensor: (..., seq, seq) holding batch*heads*seq^2 elements (not a (tokens, d) GEMM input)."""
    numel = 1
    for n in t_shape:
        numel *= n
    return (len(t_shape) >= 3 and tuple(t_shape[-2:]) == (shape.seq, shape.seq)
            and numel == shape.batch * shape.heads * shape.seq ** 2)


def _build_layer(shape: Shape, impl: str, seed: int = 0):
    """(cfg, bf16 train-mode LlamaDecoderLayer, its input x needing grad, cos, sin, position ids, causal mask)."""
    import torch
    from transformers.masking_utils import create_causal_mask
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

    torch.manual_seed(seed)
    cfg = _config(shape, impl)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        layer = LlamaDecoderLayer(cfg, layer_idx=0)
    finally:
        torch.set_default_dtype(prev)
    layer = layer.to(torch.bfloat16).train()
    rope = LlamaRotaryEmbedding(cfg)
    x = torch.randn(shape.batch, shape.seq, shape.d_model, dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(shape.seq).unsqueeze(0)  # as LlamaModel does: (1, seq), broadcast over the batch
    cos, sin = rope(x, pos)
    mask = create_causal_mask(config=cfg, inputs_embeds=x, attention_mask=None, cache=None, position_ids=pos)
    return cfg, layer, x, cos, sin, pos, mask


def measure_layer(shape: Shape, impl: str, seed: int = 0):
    """Saved bytes of one LlamaDecoderLayer forward; returns (counter, details dict)."""
    _cfg, layer, x, cos, sin, pos, mask = _build_layer(shape, impl, seed)
    counter = SavedTensorCounter(exclude=list(layer.parameters()), separate={"rope": [cos, sin]},
                                 track_modules=layer)
    t0 = time.perf_counter()
    with counter:
        out = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))
    out = out[0] if isinstance(out, tuple) else out
    fwd_s = time.perf_counter() - t0
    walked = counter.attribute(out)
    if walked != counter.total_bytes:
        print(f"WARNING: graph walk found {walked} of {counter.total_bytes} saved bytes", file=sys.stderr)
    nodes = set()
    for r in counter.storages.values():
        nodes.update(n.split(".")[0] for n in r.saved_by)
    sdpa_node = ",".join(sorted(n for n in nodes if "Attention" in n)) or "none"
    score = sum(r.nbytes for r in counter.storages.values() if _is_score(r.shape, shape))
    details = {"score_bytes": score, "rope_bytes": counter.separate_bytes("rope"), "forward_s": fwd_s,
               "sdpa_node": sdpa_node, "mask": None if mask is None else tuple(mask.shape),
               "param_hits": counter.excluded_hits}
    del out, x
    return counter, details


def measure_model_diff(shape: Shape, impl: str):
    """Per-layer saved bytes from a whole LlamaModel: saved(2 layers) - saved(1 layer)."""
    import torch
    from transformers import LlamaModel

    totals = []
    for layers in (1, 2):
        torch.manual_seed(0)
        cfg = _config(shape, impl, layers=layers)
        prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = LlamaModel(cfg)
        finally:
            torch.set_default_dtype(prev)
        model = model.to(torch.bfloat16).train()
        emb = torch.randn(shape.batch, shape.seq, shape.d_model, dtype=torch.bfloat16, requires_grad=True)
        counter = SavedTensorCounter(exclude=list(model.parameters()))
        with counter:
            out = model(inputs_embeds=emb, use_cache=False).last_hidden_state
        totals.append(counter.total_bytes)
        del out, model
    return totals[1] - totals[0]


def estimator_bytes(shape: Shape, flash: bool = True) -> float:
    """The estimator's bytes for one block, for this shape (tp=1, no recompute, no dropout, bf16)."""
    from estimator.memory import block_activation_bytes
    from estimator.model import ModelSpec, validate

    spec = validate(ModelSpec(layers=1, d_model=shape.d_model, heads=shape.heads, kv_heads=shape.kv_heads,
                              ffn_dim=shape.ffn_dim, vocab=32000, seq_len=shape.seq, name="hf-llama-layer",
                              gated_mlp=True, norm="rmsnorm", position="rope", bias=False))
    return block_activation_bytes(spec, batch=shape.batch, seq=shape.seq, dtype_bytes=2.0, recompute="none",
                                  tp=1, sequence_parallel=True, flash=flash, dropout=False)


def _fmt_table(counter: SavedTensorCounter, tokens: int, d: int, top: int):
    lines = [f"    {'bytes/token':>12} {'/d':>7}  {'dtype':8} {'shape':24} {'module':28} saved by"]
    for r in counter.table()[:top]:
        by = ",".join(sorted(set(r.saved_by))) or "?"
        lines.append(f"    {r.nbytes / tokens:12.1f} {r.nbytes / tokens / d:7.3f}  {r.dtype:8} "
                     f"{str(r.shape):24} {r.module:28} {by}")
    return "\n".join(lines)


def _fit(rows):
    """Least squares bytes = c*s*b*h + k*heads*s^2*b over the rows of one implementation."""
    import numpy as np

    a = np.array([[r["seq"] * r["batch"] * r["d_model"], r["heads"] * r["seq"] ** 2 * r["batch"]] for r in rows],
                 dtype=float)
    y = np.array([r["_total"] for r in rows], dtype=float)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ coef
    return coef, float(np.max(np.abs(resid) / y))


def run(shapes, impls, top, verbose):
    import torch
    import transformers

    rows = []
    for impl in impls:
        for sh in shapes:
            counter, det = measure_layer(sh, impl)
            tokens = sh.seq * sh.batch
            total = counter.total_bytes
            score = det["score_bytes"]
            est = estimator_bytes(sh, flash=True)
            est_nf = estimator_bytes(sh, flash=False)
            row = {
                "implementation": f"hf_llama_{impl}", "transformers_version": transformers.__version__,
                "torch_version": torch.__version__, "device": "cpu", "dtype": "bfloat16",
                "d_model": sh.d_model, "ffn_dim": sh.ffn_dim, "heads": sh.heads, "kv_heads": sh.kv_heads,
                "head_dim": sh.head_dim, "seq": sh.seq, "batch": sh.batch,
                "measured_bytes_per_token_layer": total / tokens,
                "measured_linear_bytes_per_token_layer": (total - score) / tokens,
                "measured_score_bytes_per_token_layer": score / tokens,
                "measured_coef_bytes_per_sbh": total / (tokens * sh.d_model),
                "measured_linear_coef_bytes_per_sbh": (total - score) / (tokens * sh.d_model),
                "rope_table_bytes_per_token": det["rope_bytes"] / tokens,
                "estimator_bytes_per_token_layer": est / tokens,
                "estimator_coef_bytes_per_sbh": est / (tokens * sh.d_model),
                "ratio": total / est,
                "estimator_noflash_bytes_per_token_layer": est_nf / tokens,
                "ratio_noflash": total / est_nf,
                "sdpa_backward_node": det["sdpa_node"],
                "method": METHOD,
                "source": "scripts/measure_activations.py (PYTHONPATH=. python scripts/measure_activations.py "
                          "--out hardware_db/activation_profiles.csv)",
                "retrieved": time.strftime("%Y-%m-%d"),
                "notes": NOTES[impl],
                "_total": total,
            }
            rows.append(row)
            print(f"{row['implementation']:15} d={sh.d_model:5} ffn={sh.ffn_dim:5} heads={sh.heads:3} "
                  f"kv={sh.kv_heads:3} s={sh.seq:5} b={sh.batch}  measured {total / tokens:10.1f} B/token "
                  f"= {row['measured_coef_bytes_per_sbh']:.3f} sbh "
                  f"(linear {row['measured_linear_coef_bytes_per_sbh']:.3f}"
                  f", s^2 part {score / tokens:.0f} B/token)  estimator {row['estimator_coef_bytes_per_sbh']:.3f} sbh  "
                  f"ratio {row['ratio']:.4f}  [{det['sdpa_node']}, fwd {det['forward_s']:.1f}s]", flush=True)
            if verbose:
                print(_fmt_table(counter, tokens, sh.d_model, top), flush=True)
            del counter
    return rows


# --- the non-GEMM (fusion) traffic of one LlamaDecoderLayer --------------------------------------------------------

EW_COLUMNS = [
    "implementation", "transformers_version", "torch_version", "device", "dtype", "d_model", "ffn_dim", "heads",
    "kv_heads", "head_dim", "seq", "batch", "measured_fwd_bytes_per_token", "measured_bwd_bytes_per_token",
    "measured_fwd_read_bytes_per_token", "measured_fwd_write_bytes_per_token", "measured_bwd_read_bytes_per_token",
    "measured_bwd_write_bytes_per_token", "measured_fwd_ops", "measured_bwd_ops",
    "measured_fwd_dense_bytes_per_token", "measured_bwd_dense_bytes_per_token", "accumulate_grad_bytes_per_token",
    "accumulate_grad_ops", "gemm_attention_fwd_ops", "gemm_attention_bwd_ops", "estimator_fwd_bytes_per_token",
    "estimator_bwd_bytes_per_token", "estimator_fwd_ops", "estimator_bwd_ops", "ratio_fwd", "ratio_bwd",
    "ratio_total", "ratio_ops_total", "top_ops", "method", "source", "retrieved", "notes",
]

EW_METHOD = ("one training-mode forward + backward (grad_output given) of one bf16 LlamaDecoderLayer under a "
             "TorchDispatchMode: every aten op that is not matmul-family (mm/addmm/bmm/...), not fused attention "
             "(_scaled_dot_product_*) and not a view/metadata/allocation op counts as one kernel that reads its "
             "tensor inputs (numel*element size, stride-0 broadcast dims once) and writes its tensor outputs; "
             "forward and backward apart, ops inside AccumulateGrad nodes apart; RoPE cos/sin computed outside "
             "(once per model), their reads inside the layer counted; bytes divided by batch*seq")

EW_NOTES = {
    "sdpa": ("CPU run, not measured on a GPU: the layer's Python code and autograd formulas are device-"
             "independent, so CUDA eager should dispatch the same aten ops except the attention op "
             "(_scaled_dot_product_flash_attention_for_cpu here, the CUDA flash/efficient/cuDNN op there; "
             "excluded either way; GQA runs with enable_gqa, HF's choice on CPU and CUDA when there is no mask); "
             "op counts are dispatcher-level ops, a composite op such as "
             "slice_backward may launch 2 CUDA kernels (zero-fill + copy); HF RMSNorm upcasts to fp32 (the fp32 "
             "copy, pow, mean, mul, downcast are all counted, and their backward), RoPE is rotate_half "
             "(slice, neg, cat, 2 mul, add per q and k), the residual-gradient sums the autograd engine runs "
             "are counted; AccumulateGrad only stole the gradients (0 bytes); the estimator's figure is "
             "elementwise_bytes_per_token (forward) and 2x that (backward), 6 and 12 kernels"),
    "eager": ("as sdpa, but the eager attention's softmax (fp32), mask add, downcast and repeat_kv copies are "
              "counted as non-GEMM traffic (they scale with heads*seq^2 per sequence, so the ratio grows with "
              "seq); the estimator models that traffic separately (unfused_attention_bytes, flash=False), "
              "not in elementwise_bytes_per_token"),
}
EW_SOURCE = ("scripts/measure_activations.py (PYTHONPATH=. python scripts/measure_activations.py --elementwise "
             "--out-elementwise hardware_db/elementwise_profiles.csv)")


def measure_elementwise(shape: Shape, impl: str = "sdpa", seed: int = 0):
    """Non-GEMM bytes and ops of one LlamaDecoderLayer forward + backward; returns (counter, seconds)."""
    import torch

    _cfg, layer, x, cos, sin, pos, mask = _build_layer(shape, impl, seed)
    grad_out = torch.randn(shape.batch, shape.seq, shape.d_model, dtype=torch.bfloat16)
    counter = make_elementwise_counter()
    t0 = time.perf_counter()
    with counter:
        out = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))
        out = out[0] if isinstance(out, tuple) else out
        counter.phase = "bwd"
        out.backward(grad_out)
    secs = time.perf_counter() - t0
    del out, x, layer
    return counter, secs


def estimator_elementwise(shape: Shape):
    """The estimator's (forward, backward) elementwise bytes per token and kernels for one block of this shape."""
    from estimator.model import ModelSpec, validate
    from estimator.timing import N_ELEMENTWISE_PER_BLOCK, elementwise_bytes_per_token

    spec = validate(ModelSpec(layers=1, d_model=shape.d_model, heads=shape.heads, kv_heads=shape.kv_heads,
                              ffn_dim=shape.ffn_dim, vocab=32000, seq_len=shape.seq, name="hf-llama-layer",
                              gated_mlp=True, norm="rmsnorm", position="rope", bias=False))
    fwd = elementwise_bytes_per_token(spec, moe_layer=False, dtype_bytes=2.0)
    # block_time_s: bwd = 2 * (gemm + attn + mem_fwd + overhead), mem_fwd holding N_ELEMENTWISE_PER_BLOCK launches
    return fwd, 2.0 * fwd, N_ELEMENTWISE_PER_BLOCK, 2 * N_ELEMENTWISE_PER_BLOCK


def _top_ops_string(fwd: PhaseTally, bwd: PhaseTally, tokens: int, n: int = 5) -> str:
    merged = defaultdict(lambda: [0, 0, 0, 0])  # name -> [fwd ops, fwd bytes, bwd ops, bwd bytes]
    for k, (ops, r, w) in fwd.by_op.items():
        merged[k][0] += ops
        merged[k][1] += r + w
    for k, (ops, r, w) in bwd.by_op.items():
        merged[k][2] += ops
        merged[k][3] += r + w
    top = sorted(merged.items(), key=lambda kv: (-(kv[1][1] + kv[1][3]), kv[0]))[:n]
    return "; ".join(f"{k} {v[0]}+{v[2]} ops {(v[1] + v[3]) / tokens:.0f} B/token" for k, v in top)


def _fmt_phase(tally: PhaseTally, tokens: int, d: int, top: int) -> str:
    lines = [f"      {'op':40} {'ops':>4} {'read B/tok':>11} {'write B/tok':>11} {'/d':>7}"]
    for name, ops, r, w in tally.top(top):
        lines.append(f"      {name:40} {ops:4d} {r / tokens:11.1f} {w / tokens:11.1f} {(r + w) / tokens / d:7.2f}")
    return "\n".join(lines)


def run_elementwise(shapes, impls, top, verbose):
    import torch
    import transformers

    rows = []
    for impl in impls:
        for sh in shapes:
            counter, secs = measure_elementwise(sh, impl)
            tokens = sh.seq * sh.batch
            fwd, bwd, acc = counter.tally("fwd"), counter.tally("bwd"), counter.tally("accumulate_grad")
            e_fwd, e_bwd, e_fops, e_bops = estimator_elementwise(sh)
            row = {
                "implementation": f"hf_llama_{impl}", "transformers_version": transformers.__version__,
                "torch_version": torch.__version__, "device": "cpu", "dtype": "bfloat16",
                "d_model": sh.d_model, "ffn_dim": sh.ffn_dim, "heads": sh.heads, "kv_heads": sh.kv_heads,
                "head_dim": sh.head_dim, "seq": sh.seq, "batch": sh.batch,
                "measured_fwd_bytes_per_token": fwd.bytes / tokens,
                "measured_bwd_bytes_per_token": bwd.bytes / tokens,
                "measured_fwd_read_bytes_per_token": fwd.read / tokens,
                "measured_fwd_write_bytes_per_token": fwd.written / tokens,
                "measured_bwd_read_bytes_per_token": bwd.read / tokens,
                "measured_bwd_write_bytes_per_token": bwd.written / tokens,
                "measured_fwd_ops": fwd.ops, "measured_bwd_ops": bwd.ops,
                "measured_fwd_dense_bytes_per_token": fwd.bytes_dense / tokens,
                "measured_bwd_dense_bytes_per_token": bwd.bytes_dense / tokens,
                "accumulate_grad_bytes_per_token": acc.bytes / tokens, "accumulate_grad_ops": acc.ops,
                "gemm_attention_fwd_ops": fwd.gemm_ops, "gemm_attention_bwd_ops": bwd.gemm_ops,
                "estimator_fwd_bytes_per_token": e_fwd, "estimator_bwd_bytes_per_token": e_bwd,
                "estimator_fwd_ops": e_fops, "estimator_bwd_ops": e_bops,
                "ratio_fwd": fwd.bytes / tokens / e_fwd, "ratio_bwd": bwd.bytes / tokens / e_bwd,
                "ratio_total": (fwd.bytes + bwd.bytes) / tokens / (e_fwd + e_bwd),
                "ratio_ops_total": (fwd.ops + bwd.ops) / (e_fops + e_bops),
                "top_ops": _top_ops_string(fwd, bwd, tokens),
                "method": EW_METHOD, "source": EW_SOURCE, "retrieved": time.strftime("%Y-%m-%d"),
                "notes": EW_NOTES[impl],
                "_counter": counter,
            }
            rows.append(row)
            print(f"{row['implementation']:15} d={sh.d_model:5} ffn={sh.ffn_dim:5} heads={sh.heads:3} "
                  f"kv={sh.kv_heads:3} s={sh.seq:5} b={sh.batch}  fwd {fwd.bytes / tokens:9.0f} B/token "
                  f"({fwd.ops} ops) bwd {bwd.bytes / tokens:9.0f} B/token ({bwd.ops} ops)  estimator "
                  f"{e_fwd:8.0f}/{e_bwd:8.0f}  ratio fwd {row['ratio_fwd']:.3f} bwd {row['ratio_bwd']:.3f} "
                  f"total {row['ratio_total']:.3f}  [acc-grad {acc.ops} ops {acc.bytes} B, {secs:.1f}s]", flush=True)
            if verbose:
                print(f"    forward, top {top}:\n{_fmt_phase(fwd, tokens, sh.d_model, top)}", flush=True)
                print(f"    backward, top {top}:\n{_fmt_phase(bwd, tokens, sh.d_model, top)}", flush=True)
    return rows


def _summarize_elementwise(rows, top):
    import statistics

    for impl in sorted({r["implementation"] for r in rows}):
        sel = [r for r in rows if r["implementation"] == impl]
        for col in ("ratio_fwd", "ratio_bwd", "ratio_total", "ratio_ops_total"):
            vals = [r[col] for r in sel]
            print(f"{impl} {col}: median {statistics.median(vals):.3f} (min {min(vals):.3f}, max {max(vals):.3f}, "
                  f"{len(vals)} shapes)")
        ops = sorted({(r["measured_fwd_ops"], r["measured_bwd_ops"]) for r in sel})
        print(f"{impl} ops (fwd, bwd): {ops}; estimator (6, 12)")
        big = max(sel, key=lambda r: (r["d_model"], r["seq"], r["batch"], r["kv_heads"]))
        tokens = big["seq"] * big["batch"]
        c = big["_counter"]
        print(f"{impl} d={big['d_model']} kv={big['kv_heads']} s={big['seq']} b={big['batch']}: forward top {top}\n"
              f"{_fmt_phase(c.tally('fwd'), tokens, big['d_model'], top)}\n  backward top {top}\n"
              f"{_fmt_phase(c.tally('bwd'), tokens, big['d_model'], top)}")


def _write(path, rows, columns):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in columns})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--impl", nargs="+", default=None, choices=["sdpa", "eager"],
                   help="attention implementation(s); default sdpa and eager, sdpa only with --elementwise")
    p.add_argument("--quick", action="store_true", help="d_model 1024/2048 and seq 256/512 only")
    p.add_argument("--shape", action="append", default=[],
                   help="d_model,ffn,heads,kv_heads,seq,batch (repeatable; replaces the default grid)")
    p.add_argument("--top", type=int, default=14, help="largest saved storages listed per shape with -v")
    p.add_argument("-v", "--verbose", action="store_true", help="list the saved storages of every shape")
    p.add_argument("--crosscheck", action="store_true",
                   help="also diff a whole LlamaModel of 2 vs 1 layers on the smallest shape")
    p.add_argument("--out", help="write the rows as CSV (the hardware_db/activation_profiles.csv layout)")
    p.add_argument("--elementwise", action="store_true",
                   help="instead of saved activations, count the bytes and ops of the non-GEMM kernels of one "
                        "forward + backward (TorchDispatchMode) against estimator.timing.elementwise_bytes_per_token")
    p.add_argument("--out-elementwise", help="with --elementwise: write the rows as CSV "
                                             "(the hardware_db/elementwise_profiles.csv layout)")
    args = p.parse_args(argv)
    if args.elementwise and (args.out or args.crosscheck):
        p.error("--out and --crosscheck belong to the activation measurement; use --out-elementwise")
    if args.out_elementwise and not args.elementwise:
        p.error("--out-elementwise needs --elementwise")
    if args.impl is None:
        args.impl = ["sdpa"] if args.elementwise else ["sdpa", "eager"]

    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    shapes = [Shape(*map(int, s.split(","))) for s in args.shape] if args.shape else default_shapes(args.quick)
    if args.elementwise:
        ew_rows = run_elementwise(shapes, args.impl, args.top, args.verbose)
        print()
        _summarize_elementwise(ew_rows, max(args.top, 15))
        if args.out_elementwise:
            _write(args.out_elementwise, ew_rows, EW_COLUMNS)
        return 0
    rows = run(shapes, args.impl, args.top, args.verbose)

    print()
    for impl in args.impl:
        sel = [r for r in rows if r["implementation"] == f"hf_llama_{impl}"]
        for kv_kind in ("MHA", "GQA"):
            sub = [r for r in sel if (r["kv_heads"] == r["heads"]) == (kv_kind == "MHA")]
            if not sub:
                continue
            lin = sorted({round(r["measured_linear_coef_bytes_per_sbh"], 3) for r in sub})
            sq = sorted({round(r["measured_score_bytes_per_token_layer"] / (r["heads"] * r["seq"]), 3) for r in sub})
            rat = [r["ratio"] for r in sub]
            print(f"hf_llama_{impl} {kv_kind}: linear coef {lin} bytes/(s*b*h); score part {sq} bytes/(heads*s^2*b); "
                  f"ratio measured/estimator {min(rat):.4f}..{max(rat):.4f}")
            if len({(r["seq"], r["d_model"]) for r in sub}) >= 2:
                (c, k), err = _fit(sub)
                groups = sorted({f"{r['kv_heads']}/{r['heads']}" for r in sub})
                print(f"  least-squares fit: bytes = {c:.4f}*s*b*h + {k:.4f}*heads*s^2*b "
                      f"(max rel. residual {err:.1e}; kv_heads/heads {', '.join(groups)})")

    if args.crosscheck:
        sh = min(shapes, key=lambda s: (s.d_model * s.seq * s.batch))
        for impl in args.impl:
            diff = measure_model_diff(sh, impl)
            one = next(r for r in rows if r["implementation"] == f"hf_llama_{impl}" and
                       Shape(r["d_model"], r["ffn_dim"], r["heads"], r["kv_heads"], r["seq"], r["batch"]) == sh)
            print(f"crosscheck hf_llama_{impl} {sh}: LlamaModel(2 layers) - LlamaModel(1 layer) = "
                  f"{diff / (sh.seq * sh.batch):.1f} B/token; single layer = {one['_total'] / (sh.seq * sh.batch):.1f}")

    if args.out:
        _write(args.out, rows, DB_COLUMNS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
