"""Parallel layouts: validation and the automatic choice of one that fits and runs fastest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from estimator.errors import EstimatorInputError
from estimator.flops import RECOMPUTE
from estimator.hardware import KernelModel
from estimator.memory import training_memory_per_gpu
from estimator.model import ModelSpec
from estimator.software import Stack
from estimator.timing import step_time

DEFAULT_STACK = Stack()

ZERO_STAGES = (0, 1, 2, 3)
MEMORY_HEADROOM = 0.90  # keep 10% of HBM for the allocator's fragmentation, workspaces and NCCL buffers


@dataclass(frozen=True)
class Layout:
    """TP x PP x DP (EP borrows from DP, as in Megatron-Core), ZeRO stage, micro-batch, recomputation."""

    tp: int
    pp: int
    dp: int
    ep: int = 1
    zero: int = 1
    micro_batch: int = 1
    recompute: str = "none"
    interleave: int = 1  # virtual pipeline stages per GPU (Megatron's interleaved 1F1B)
    recompute_fraction: float = 0.0  # with recompute="partial": share of layers fully recomputed (Megatron's
    #                                  --recompute-method block --recompute-num-layers)
    cp: int = 1  # context parallelism: each sequence split over cp GPUs (ring attention, Megatron-Core CP)

    @property
    def gpus(self) -> int:
        """TP x CP x PP x DP."""
        return self.tp * self.cp * self.pp * self.dp

    def to_dict(self) -> dict:
        """Every field as a plain dict."""
        return asdict(self)

    def describe(self) -> str:
        """One line, e.g. 'TP8 x PP1 x DP2048, ZeRO-3, micro-batch 1, recompute full'."""
        ep = f" EP{self.ep}" if self.ep > 1 else ""
        cp = f" x CP{self.cp}" if self.cp > 1 else ""
        il = f" (interleaved x{self.interleave})" if self.interleave > 1 else ""
        rec = (f"full on {self.recompute_fraction:.0%} of layers" if self.recompute == "partial"
               else self.recompute)
        return (f"TP{self.tp}{cp} x PP{self.pp}{il} x DP{self.dp}{ep}, ZeRO-{self.zero}, "
                f"micro-batch {self.micro_batch}, recompute {rec}")


def _shape_problems(s: ModelSpec, lay: Layout) -> list[str]:
    """Reasons the model's shape does not split over the layout (heads, KV heads, FFN, sequence, layers)."""
    out = []
    if s.heads % lay.tp:
        out.append(f"TP={lay.tp} does not divide the {s.heads} attention heads")
    elif not s.is_mla and s.kv_heads % lay.tp and lay.tp % s.kv_heads:
        out.append(f"TP={lay.tp} and the {s.kv_heads} KV heads neither divide nor replicate evenly")
    if s.ffn_dim % lay.tp or (s.is_moe and s.expert_ffn % lay.tp):
        out.append(f"TP={lay.tp} does not divide the FFN width {s.ffn_dim}")
    if lay.cp > 1 and s.seq_len % (2 * lay.cp):
        out.append(f"CP={lay.cp} must divide the sequence length {s.seq_len} into 2 x CP chunks (load-balanced "
                   "causal ring attention)")
    if lay.pp > s.layers:
        out.append(f"PP={lay.pp} exceeds the {s.layers} layers")
    if lay.interleave > 1 and (lay.pp == 1 or (-(-s.layers // lay.pp)) % lay.interleave):
        out.append(f"interleave {lay.interleave} needs PP > 1 and divide the layers per stage")
    return out


def _expert_problems(s: ModelSpec, lay: Layout) -> list[str]:
    """Reasons expert parallelism does not fit the model or the data-parallel group."""
    if lay.ep <= 1:
        return []
    if not s.is_moe:
        return ["EP>1 needs an MoE model (--experts)"]
    out = [f"EP={lay.ep} does not divide the {s.experts} experts"] if s.experts % lay.ep else []
    if lay.dp % lay.ep:
        out.append(f"EP={lay.ep} must divide DP={lay.dp} (expert parallelism borrows data-parallel ranks)")
    return out


def layout_problems(s: ModelSpec, lay: Layout, gpus: int, global_batch_seqs: int) -> list[str]:
    """Reasons a layout is invalid (empty if valid); the scalar twin of ``valid_layouts``, with messages."""
    out = [f"--{name.replace('_', '-')} must be a positive integer (got {getattr(lay, name)!r})"
           for name in ("tp", "cp", "pp", "dp", "ep", "micro_batch")
           if not isinstance(getattr(lay, name), int) or getattr(lay, name) < 1]
    if out:
        return out
    if lay.gpus != gpus:
        out.append(f"TP x CP x PP x DP = {lay.tp} x {lay.cp} x {lay.pp} x {lay.dp} = {lay.gpus}, not the {gpus} "
                   "GPUs asked for")
    out += _shape_problems(s, lay) + _expert_problems(s, lay)
    if lay.zero not in ZERO_STAGES:
        out.append(f"--zero must be one of {ZERO_STAGES}")
    if lay.recompute not in RECOMPUTE and lay.recompute != "partial":
        out.append(f"--recompute must be one of {', '.join(RECOMPUTE)}")
    if global_batch_seqs < lay.dp * lay.micro_batch:
        out.append(f"the global batch ({global_batch_seqs} sequences) is smaller than DP x micro-batch "
                   f"({lay.dp} x {lay.micro_batch}); GPUs would idle")
    return out


def check_layout(s: ModelSpec, lay: Layout, gpus: int, global_batch_seqs: int) -> Layout:
    """The layout itself, or one line listing every reason it is invalid."""
    probs = layout_problems(s, lay, gpus, global_batch_seqs)
    if probs:
        raise EstimatorInputError("invalid parallel layout: " + "; ".join(probs),
                                  "fix --tp/--pp/--dp (or omit them all to let the estimator choose)")
    return lay


def explain_no_layout(s: ModelSpec, gpus: int, global_batch_seqs: int, fixed: dict) -> tuple[str, str]:
    """(problem, fix) when no layout is valid: the reasons the user's fixed sizes fail, where they name enough."""
    tp, pp, cp = fixed.get("tp") or 1, fixed.get("pp") or 1, fixed.get("cp") or 1
    probs = []
    if gpus % (tp * pp * cp) == 0:
        probe = Layout(tp, pp, fixed.get("dp") or gpus // (tp * pp * cp), fixed.get("ep") or 1,
                       1 if fixed.get("zero") is None else fixed["zero"], fixed.get("micro_batch") or 1,
                       fixed.get("recompute") or "none", cp=cp)
        probs = layout_problems(s, probe, gpus, global_batch_seqs)
    if probs and fixed:
        return (f"no valid parallel layout for {gpus} GPUs with {fixed}: " + "; ".join(probs),
                "change the fixed sizes, the GPU count or --global-batch-tokens")
    return (f"no valid parallel layout for {gpus} GPUs with the given constraints {fixed or ''}".rstrip(),
            "use a GPU count with small factors (e.g. a multiple of 8), or relax --tp/--pp/--dp/--ep")


def _divisors(n: int) -> list[int]:
    small = [i for i in range(1, int(n**0.5) + 1) if n % i == 0]
    return sorted(set(small + [n // i for i in small]))


#: Context parallelism is searched only for sequences at least this long; below it CP's extra communication
#: buys nothing a larger DP would not (Megatron-Core recommends CP for long-context training). --cp forces it.
CP_MIN_SEQ = 16384
LAYOUT_KEYS = ("tp", "pp", "dp", "ep", "zero", "micro_batch", "interleave", "cp")


def valid_layouts(s: ModelSpec, gpus, global_batch_seqs, *, tp, pp, dp, cp=1, ep=1, zero=1, micro_batch=1,
                  interleave=1):
    """Boolean mask: which layouts (numpy arrays, broadcast) are valid, by the rules of ``layout_problems``.

    The one vectorised definition of a valid layout, used by the layout search and by ``sweep_training``.
    Recomputation is not an input: every mode is valid for every layout.
    """
    tp, pp, dp, cp, ep, zero, mb, v = (np.asarray(x, dtype=float) for x in
                                       (tp, pp, dp, cp, ep, zero, micro_batch, interleave))
    ok = (tp >= 1) & (pp >= 1) & (dp >= 1) & (cp >= 1) & (ep >= 1) & (mb >= 1) & (tp * cp * pp * dp == gpus)
    ok &= (s.heads % tp == 0) & (s.ffn_dim % tp == 0) & (pp <= s.layers)
    if not s.is_mla:
        ok &= (s.kv_heads % tp == 0) | (tp % s.kv_heads == 0)
    if s.is_moe:
        ok &= (s.expert_ffn % tp == 0) & ((ep == 1) | ((s.experts % ep == 0) & (dp % ep == 0)))
    else:
        ok &= ep == 1
    ok &= (cp == 1) | (s.seq_len % (2 * cp) == 0)
    ok &= (v == 1) | ((pp > 1) & (np.ceil(s.layers / pp) % v == 0))
    ok &= np.isin(zero, (0, 1, 2, 3)) & (global_batch_seqs >= dp * mb)
    return ok


def _axis_values(s: ModelSpec, gpus: int, scaleup_domain: int, fixed: dict) -> dict[str, list]:
    """Values searched on each axis (a superset: ``valid_layouts`` then removes what does not combine)."""
    tps = [fixed["tp"]] if "tp" in fixed else [t for t in (1, 2, 4, 8, 16, 32, 64, 72) if t <= max(8, scaleup_domain)]
    if "cp" in fixed:
        cps = [fixed["cp"]]
    elif s.seq_len >= CP_MIN_SEQ:
        cps = [c for c in (1, 2, 4, 8, 16, 32) if s.seq_len % (2 * c) == 0]
    else:
        cps = [1]
    pps = [fixed["pp"]] if "pp" in fixed else [p for p in _divisors(gpus) if p <= s.layers]
    if "ep" in fixed:
        eps = [fixed["ep"]]
    elif s.is_moe:
        eps = [e for e in (1, 2, 4, 8, 16, 32, 64) if e <= s.experts and s.experts % e == 0]
    else:
        eps = [1]
    zeros = [fixed["zero"]] if "zero" in fixed else list(fixed.get("zero_values", (1, 3)))
    return {"tp": tps, "cp": cps, "pp": pps, "ep": eps, "zero": zeros,
            "recompute": ([fixed["recompute"]] if "recompute" in fixed
                          else list(fixed.get("recompute_modes", RECOMPUTE))),
            "micro_batch": [fixed["micro_batch"]] if "micro_batch" in fixed else [1, 2, 4],
            "interleave": list(fixed.get("interleave_values", (1, 2, 4)))}


@dataclass(frozen=True)
class Candidates:
    """Valid layouts of one recompute mode as arrays (one entry per layout), in search order."""

    recompute: str
    arrays: dict  # LAYOUT_KEYS -> int array
    fraction: object = 0.0  # with recompute="partial": share of layers recomputed, per layout

    def __len__(self) -> int:
        return len(self.arrays["tp"])

    def layout(self, i: int) -> Layout:
        """The i-th layout as a ``Layout``."""
        kw = {k: int(self.arrays[k][i]) for k in LAYOUT_KEYS}
        fractions = np.broadcast_to(np.asarray(self.fraction, dtype=float), (len(self),))
        frac = float(fractions[i]) if self.recompute == "partial" else 0.0
        return Layout(**kw, recompute=self.recompute, recompute_fraction=frac)

    def subset(self, idx, recompute: str, fraction) -> Candidates:
        """The layouts at ``idx`` under another recompute mode (``arrays["_idx"]`` keeps their positions)."""
        return Candidates(recompute, {k: v[idx] for k, v in self.arrays.items()} | {"_idx": idx}, fraction)

    def with_mode(self, recompute: str) -> Candidates:
        """The same layouts under another recompute mode."""
        return Candidates(recompute, self.arrays, self.fraction)


def candidate_layouts(s: ModelSpec, gpus: int, global_batch_seqs: int, scaleup_domain: int,
                      fixed: dict | None = None) -> list[Candidates]:
    """All valid layouts, one ``Candidates`` per recompute mode, honouring the fields the user fixed.

    Order within a mode is the nested order tp, cp, pp, ep, zero, micro-batch, interleave (so ties resolve the
    same way on every run).
    """
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    ax = _axis_values(s, gpus, scaleup_domain, fixed)
    grid = np.meshgrid(*(np.asarray(ax[k], dtype=np.int64) for k in ("tp", "cp", "pp", "ep", "zero", "micro_batch",
                                                                     "interleave")), indexing="ij")
    tp, cp, pp, ep, zero, mb, v = (g.ravel() for g in grid)
    rest, rem = np.divmod(gpus, tp * cp)
    dp = np.where((rem == 0) & (rest % pp == 0), rest // np.maximum(pp, 1), 0)
    ok = (rem == 0) & (rest % pp == 0) & ((v == 1) | (pp > 1))
    if "dp" in fixed:
        ok &= dp == fixed["dp"]
    ok &= valid_layouts(s, gpus, global_batch_seqs, tp=tp, pp=pp, dp=np.maximum(dp, 1), cp=cp, ep=ep, zero=zero,
                        micro_batch=mb, interleave=v)
    if fixed.get("max_zero_with_pp") is not None:  # e.g. DeepSpeed: ZeRO-2/3 are incompatible with its pipeline
        ok &= (pp == 1) | (zero <= fixed["max_zero_with_pp"])
    idx = np.nonzero(ok)[0]
    arrays = {"tp": tp[idx], "pp": pp[idx], "dp": dp[idx], "ep": ep[idx], "zero": zero[idx], "micro_batch": mb[idx],
              "interleave": v[idx], "cp": cp[idx]}
    if not len(idx):
        return []
    return [Candidates(r, arrays) for r in ax["recompute"] if r in RECOMPUTE]


def interpolate(a, b, f):
    """Field-wise a + f (b - a) for two StepTime or MemoryBreakdown records (block recomputation of a share f)."""
    return type(a)(*(getattr(a, x.name) + f * (getattr(b, x.name) - getattr(a, x.name)) for x in fields(a)))


def layout_cost(spec: ModelSpec, *, accel, km: KernelModel, arrays: dict, rec: str, frac, gb_seqs: int, seq: int,
                dtype_bytes: float, dp_overlap: float, stack: Stack = DEFAULT_STACK):
    """(MemoryBreakdown, StepTime) of layouts given as arrays; ``partial`` interpolates none and full per layer."""
    if rec == "partial":
        kw = dict(accel=accel, km=km, arrays=arrays, frac=0.0, gb_seqs=gb_seqs, seq=seq, dtype_bytes=dtype_bytes,
                  dp_overlap=dp_overlap, stack=stack)
        m0, t0 = layout_cost(spec, rec="none", **kw)
        m1, t1 = layout_cost(spec, rec="full", **kw)
        return interpolate(m0, m1, frac), interpolate(t0, t1, frac)
    arr = arrays
    cp = arr.get("cp", 1)
    mem = training_memory_per_gpu(spec, tp=arr["tp"], pp=arr["pp"], dp=arr["dp"], ep=arr["ep"], zero=arr["zero"],
                                  micro_batch=arr["micro_batch"], recompute=rec, seq=seq, cp=cp, flash=stack.flash,
                                  grad_bytes=stack.grad_bytes, sequence_parallel=stack.sequence_parallel,
                                  activation_factor=stack.activation_factor, buffers=stack.buffers)
    st = step_time(spec, accel, km, tp=arr["tp"], pp=arr["pp"], dp=arr["dp"], ep=arr["ep"], zero=arr["zero"],
                   micro_batch=arr["micro_batch"], recompute=rec, global_batch_seqs=gb_seqs, seq=seq,
                   dtype_bytes=dtype_bytes, dp_overlap=dp_overlap, interleave=arr["interleave"], cp=cp,
                   flash=stack.flash, ep_overlap=stack.ep_comm_overlap, elementwise=stack.elementwise)
    return mem, st


def _take(rec, idx, n: int):
    """The entries ``idx`` of a record whose fields are arrays over ``n`` layouts (or scalars, broadcast)."""
    return type(rec)(*(np.broadcast_to(np.asarray(getattr(rec, f.name), dtype=float), (n,))[idx] for f in fields(rec)))


def _partial_group(spec: ModelSpec, none: Candidates, m0, m1, capacity: float) -> Candidates | None:
    """Layouts that fit only with some layers recomputed, with just enough whole layers per stage recomputed
    (``m0``, ``m1``: their memory without and with full recomputation)."""
    arr = none.arrays
    n = len(none)
    a, b = np.asarray(m0.total, float) * np.ones(n), np.asarray(m1.total, float) * np.ones(n)
    per_stage = np.ceil(spec.layers / arr["pp"])
    need = np.where(a > b, (a - capacity) / np.maximum(a - b, 1e-9), 2.0)
    frac = np.ceil(np.clip(need, 0, 1) * per_stage) / per_stage
    sel = np.where((need > 0) & (frac < 1))[0]
    return none.subset(sel, "partial", frac[sel]) if sel.size else None


@dataclass(frozen=True)
class LayoutChoice:
    """The layout search's answer: fastest fitting layout (or None), leanest layout and its bytes, count searched."""

    best: Layout | None
    best_s_per_seq: float | None
    smallest: Layout | None
    smallest_bytes: float
    n_valid: int


def choose_layout(*, spec: ModelSpec, accel, km: KernelModel, n_gpus: int, gb_seqs: int, fixed: dict, seq: int,
                  dtype_bytes: float, dp_overlap: float, capacity: float, stack: Stack = DEFAULT_STACK) -> LayoutChoice:
    """Fastest valid layout that fits in ``capacity`` bytes per GPU.

    All layouts of one recompute mode are evaluated at once as numpy arrays. A layout that does not
    fit without recomputation but fits with full recomputation is also tried with just enough layers
    recomputed (whole layers per stage), so cost grows smoothly with memory pressure. The ``stack`` limits what is
    searched (its framework's axes, ZeRO stages and schedule; its vintage's recomputation modes).
    """
    fixed = stack.search_limits() | {k: v for k, v in fixed.items() if v is not None}
    groups = candidate_layouts(spec, n_gpus, gb_seqs, accel.scaleup_domain or 8, fixed)
    cost_args = dict(accel=accel, km=km, gb_seqs=gb_seqs, seq=seq, dtype_bytes=dtype_bytes, dp_overlap=dp_overlap,
                     stack=stack)
    n_valid = len(groups[0]) * len(groups) if groups else 0
    costs: dict[str, tuple] = {}  # every mode's groups share one set of layouts: each mode is costed once

    def cost(g: Candidates) -> tuple:
        if g.recompute == "partial":  # between no and full recomputation, layer by layer, on the selected layouts
            idx, n = g.arrays["_idx"], len(groups[0])
            m0, t0 = (_take(x, idx, n) for x in cost(groups[0].with_mode("none")))
            m1, t1 = (_take(x, idx, n) for x in cost(groups[0].with_mode("full")))
            return interpolate(m0, m1, g.fraction), interpolate(t0, t1, g.fraction)
        if g.recompute not in costs:
            costs[g.recompute] = layout_cost(spec, arrays=g.arrays, rec=g.recompute, frac=0.0, **cost_args)
        return costs[g.recompute]

    none = next((g for g in groups if g.recompute == "none"), None)
    if none is not None and fixed.get("recompute") is None and fixed.get("partial", True):
        part = _partial_group(spec, none, cost(none)[0], cost(none.with_mode("full"))[0], capacity)
        groups = groups + ([part] if part is not None else [])
    best: tuple[float, Layout] | None = None
    smallest: tuple[float, Layout] | None = None
    for g in groups:
        mem, st = cost(g)
        tot = np.asarray(mem.total, dtype=float) * np.ones(len(g))
        # a step processes floor(gb / (dp mb)) micro-batches per pipeline: compare time per sequence
        used = np.floor(gb_seqs / (g.arrays["dp"] * g.arrays["micro_batch"])) * g.arrays["dp"] * g.arrays["micro_batch"]
        per_seq = np.asarray(st.total) / used
        i_small = int(np.argmin(tot))
        if smallest is None or tot[i_small] < smallest[0]:
            smallest = (float(tot[i_small]), g.layout(i_small))
        ok = np.where(tot <= capacity * (1 + 1e-9))[0]
        if ok.size:
            i = int(ok[np.argmin(per_seq[ok])])
            if best is None or per_seq[i] < best[0]:
                best = (float(per_seq[i]), g.layout(i))
    return LayoutChoice(best[1] if best else None, best[0] if best else None, smallest[1] if smallest else None,
                        smallest[0] if smallest else 0.0, n_valid)
