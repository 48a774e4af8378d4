"""One definition of a model's shape, used by the estimator, the profiler and the dashboard.

``ModelSpec`` describes a decoder-only transformer (dense or mixture-of-experts,
MHA/GQA/MQA or DeepSeek's multi-head latent attention). Parameter counting lives
here because it is a property of the shape alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

from estimator.errors import EstimatorInputError

POSITIONS = ("rope", "learned", "alibi", "relative")
NORMS = ("rmsnorm", "layernorm")

# Default shape recipe: the Llama 3 family (Dubey et al. 2024, "The Llama 3 Herd of Models",
# Table 3; vocab 128,256 from the released config.json): head_dim 128, 8 KV heads (GQA),
# SwiGLU FFN of 3.5 x d_model (14,336/4,096; 28,672/8,192), and a d_model/n_layers aspect
# ratio near 128 (4096/32 = 128, 8192/80 = 102, 16384/126 = 130).
RECIPE_NAME = "llama3-aspect (Dubey et al. 2024 Table 3: head_dim 128, 8 KV heads, FFN 3.5 d, d/L ~ 128)"
RECIPE_HEAD_DIM = 128
RECIPE_KV_HEADS = 8
RECIPE_FFN_RATIO = 3.5
RECIPE_ASPECT = 128.0
RECIPE_VOCAB = 128_256
RECIPE_SEQ_LEN = 8192


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a decoder-only transformer. Integers are counts; no units needed."""

    layers: int
    d_model: int
    heads: int
    kv_heads: int
    ffn_dim: int
    vocab: int
    seq_len: int
    name: str = "custom"
    head_dim: int | None = None  # default d_model // heads (Gemma and PaLM differ)
    gated_mlp: bool = True  # SwiGLU/GeGLU: 3 matrices; plain GELU MLP: 2
    experts: int = 1  # routed experts per MoE layer (1 = dense)
    experts_per_token: int = 1
    shared_experts: int = 0  # always-on experts (DeepSeek)
    moe_ffn_dim: int | None = None  # width of one expert; default ffn_dim
    dense_layers: int = 0  # leading dense layers of an MoE model (DeepSeek-V3: 3)
    tied_embeddings: bool = False
    position: str = "rope"  # rope | learned | alibi | relative (Transformer-XL: +d^2 per layer)
    norm: str = "rmsnorm"
    bias: bool = False
    # Multi-head latent attention (DeepSeek-V2/V3); active when kv_lora_rank > 0.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    source: str = ""
    notes: dict = field(default_factory=dict, compare=False, hash=False)

    # --- derived shape -------------------------------------------------------------
    @property
    def hd(self) -> int:
        """Per-head dimension of queries and keys (for MLA: the no-RoPE part)."""
        return self.head_dim if self.head_dim else self.d_model // self.heads

    @property
    def is_moe(self) -> bool:
        """True when the MLP layers are routed experts."""
        return self.experts > 1

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank > 0

    @property
    def expert_ffn(self) -> int:
        """FFN width of one routed expert."""
        return self.moe_ffn_dim or self.ffn_dim

    @property
    def moe_layers(self) -> int:
        """Number of layers whose MLP is routed experts."""
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def qk_head_dim(self) -> int:
        """Width of one head's query/key vectors (MLA adds the RoPE part)."""
        return self.hd + self.qk_rope_head_dim if self.is_mla else self.hd

    @property
    def v_dim(self) -> int:
        """Width of one head's value vector."""
        return self.v_head_dim if self.is_mla and self.v_head_dim else self.hd

    def to_dict(self) -> dict:
        """Every field as a plain dict."""
        d = asdict(self)
        d.pop("notes")
        return d

    def with_(self, **changes) -> ModelSpec:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


def validate(spec: ModelSpec) -> ModelSpec:
    """Check a shape; raise EstimatorInputError naming the bad field and the fix."""
    for name in ("layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "seq_len", "experts",
                 "experts_per_token"):
        v = getattr(spec, name)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise EstimatorInputError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}",
                                      f"pass --{name.replace('_', '-')} N with N >= 1")
    if spec.heads % spec.kv_heads:
        raise EstimatorInputError(f"heads ({spec.heads}) is not a multiple of kv-heads ({spec.kv_heads})",
                                  "choose --kv-heads dividing --heads (1 = MQA, heads = MHA)")
    if not spec.head_dim and spec.d_model % spec.heads:
        raise EstimatorInputError(f"d-model ({spec.d_model}) is not divisible by heads ({spec.heads})",
                                  "choose --heads dividing --d-model")
    if spec.experts_per_token > spec.experts:
        raise EstimatorInputError(
            f"experts-per-token ({spec.experts_per_token}) exceeds experts ({spec.experts})",
            "choose --experts-per-token <= --experts")
    if spec.dense_layers >= spec.layers and spec.is_moe:
        raise EstimatorInputError("an MoE model needs at least one MoE layer", "lower dense_layers")
    if spec.position not in POSITIONS:
        raise EstimatorInputError(f"unknown position encoding {spec.position!r}", f"use one of {POSITIONS}")
    if spec.norm not in NORMS:
        raise EstimatorInputError(f"unknown norm {spec.norm!r}", f"use one of {NORMS}")
    return spec


# --- parameter counting ------------------------------------------------------------

@dataclass(frozen=True)
class ParamCount:
    """Parameters by part. ``active`` counts what one token uses (MoE: k routed + shared)."""

    embedding: int
    attention: int
    mlp_dense: int
    mlp_experts_total: int
    mlp_experts_active: int
    router: int
    norms: int
    other: int  # learned positions, relative-position projections
    lm_head: int

    @property
    def total(self) -> int:
        """All parameters, every expert included."""
        return (self.embedding + self.attention + self.mlp_dense + self.mlp_experts_total + self.router
                + self.norms + self.other + self.lm_head)

    @property
    def active(self) -> int:
        """Parameters one token uses (shared parts plus its experts)."""
        return (self.embedding + self.attention + self.mlp_dense + self.mlp_experts_active + self.router
                + self.norms + self.other + self.lm_head)

    @property
    def non_embedding(self) -> int:
        """Parameters outside the embedding and LM head."""
        return self.total - self.embedding - self.lm_head


def attention_params_per_layer(s: ModelSpec) -> int:
    """Weights of one attention block (projections only; biases if the model has them)."""
    d = s.d_model
    if s.is_mla:
        q_out = s.heads * s.qk_head_dim
        q = (d * s.q_lora_rank + s.q_lora_rank + s.q_lora_rank * q_out) if s.q_lora_rank else d * q_out
        kv_down = d * (s.kv_lora_rank + s.qk_rope_head_dim) + s.kv_lora_rank  # + norm on latent
        kv_up = s.kv_lora_rank * s.heads * (s.hd + s.v_dim)
        out = s.heads * s.v_dim * d
        return q + kv_down + kv_up + out
    q = d * s.heads * s.hd
    kv = 2 * d * s.kv_heads * s.hd
    o = s.heads * s.hd * d
    b = (s.heads * s.hd + 2 * s.kv_heads * s.hd + d) if s.bias else 0
    rel = d * d if s.position == "relative" else 0  # Transformer-XL W_R (Dai et al. 2019)
    return q + kv + o + b + rel


def mlp_params(d: int, ffn: int, gated: bool, bias: bool) -> int:
    """One MLP (or one expert): gated = gate, up, down; plain = up, down."""
    mats = 3 if gated else 2
    b = ((2 if gated else 1) * ffn + d) if bias else 0
    return mats * d * ffn + b


def param_count(s: ModelSpec) -> ParamCount:
    """Exact parameter count of the shape (weights, biases, norms, embeddings)."""
    d = s.d_model
    norm_w = (2 if s.norm == "layernorm" else 1) * d
    attn = attention_params_per_layer(s) * s.layers
    rel = d * d * s.layers if (s.position == "relative" and not s.is_mla) else 0
    dense_mlp_layers = s.layers - s.moe_layers
    mlp_dense = mlp_params(d, s.ffn_dim, s.gated_mlp, s.bias) * dense_mlp_layers
    one_expert = mlp_params(d, s.expert_ffn, s.gated_mlp, s.bias)
    experts_total = one_expert * (s.experts + s.shared_experts) * s.moe_layers
    experts_active = one_expert * (s.experts_per_token + s.shared_experts) * s.moe_layers
    router = d * s.experts * s.moe_layers
    norms = (2 * s.layers + 1) * norm_w
    other = s.seq_len * d if s.position == "learned" else 0
    emb = s.vocab * d
    head = 0 if s.tied_embeddings else s.vocab * d
    return ParamCount(embedding=emb, attention=attn - rel, mlp_dense=mlp_dense,
                      mlp_experts_total=experts_total, mlp_experts_active=experts_active, router=router,
                      norms=norms, other=other + rel, lm_head=head)


# --- shape from a parameter count ----------------------------------------------------

def _recipe_spec(d: int, layers: int, seq_len: int, vocab: int) -> ModelSpec:
    heads = max(1, d // RECIPE_HEAD_DIM)
    kv = RECIPE_KV_HEADS if heads % RECIPE_KV_HEADS == 0 else heads
    ffn = int(round(RECIPE_FFN_RATIO * d / 256.0)) * 256 or 256
    return ModelSpec(layers=layers, d_model=d, heads=heads, kv_heads=kv, ffn_dim=ffn, vocab=vocab,
                     seq_len=seq_len, name="derived", head_dim=d // heads, source=RECIPE_NAME)


def shape_from_params(n_params: float, seq_len: int = RECIPE_SEQ_LEN, vocab: int = RECIPE_VOCAB) -> ModelSpec:
    """A plausible dense decoder of about ``n_params`` parameters, by the Llama 3 recipe.

    d_model is chosen so that d/L is near 128 with head_dim 128 (d a multiple of 1024 for
    models of d >= 2048, so 8 KV heads divide the heads; of 128 below); the layer count is
    then the one that brings the total closest to ``n_params``.
    """
    if not math.isfinite(n_params) or n_params <= 0:
        raise EstimatorInputError(f"--params must be a positive number, got {n_params!r}", "e.g. --params 70e9")
    return _shape_from_params(float(n_params), int(seq_len), int(vocab))


@lru_cache(maxsize=512)
def _shape_from_params(n_params: float, seq_len: int, vocab: int) -> ModelSpec:
    """The recipe search of ``shape_from_params``, cached: it is most of a fixed-layout estimate's time."""
    best: tuple[float, ModelSpec] | None = None
    for step in (128, 1024):
        for d in range(step, 131_072 + 1, step):
            if (d >= 2048) != (step == 1024):
                continue
            probe = _recipe_spec(d, 1, seq_len, vocab)
            pc = param_count(probe)
            per_layer = pc.attention + pc.mlp_dense + 2 * d
            fixed = pc.total - per_layer
            layers = max(1, round((n_params - fixed) / per_layer))
            spec = _recipe_spec(d, layers, seq_len, vocab)
            err = abs(param_count(spec).total - n_params) / n_params
            aspect = abs(math.log((d / layers) / RECIPE_ASPECT))
            score = aspect + 20 * err
            if best is None or score < best[0]:
                best = (score, spec)
    assert best is not None
    return best[1].with_(notes={"requested_params": n_params})


def moe_from_total(n_total: float, experts: int, experts_per_token: int, seq_len: int = RECIPE_SEQ_LEN,
                   vocab: int = RECIPE_VOCAB) -> ModelSpec:
    """An MoE decoder of about ``n_total`` parameters: recipe attention, every layer routed."""
    if experts < 2 or experts_per_token < 1 or experts_per_token > experts:
        raise EstimatorInputError(f"invalid MoE: experts={experts}, experts-per-token={experts_per_token}",
                                  "pass --experts E >= 2 and 1 <= --experts-per-token <= E")
    # Find the dense model whose per-layer MLP, replicated E times, gives the total.
    lo, hi = 1e6, n_total
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        spec = shape_from_params(mid, seq_len, vocab).with_(experts=experts, experts_per_token=experts_per_token)
        if param_count(spec).total > n_total:
            hi = mid
        else:
            lo = mid
    spec = shape_from_params(lo, seq_len, vocab).with_(experts=experts, experts_per_token=experts_per_token,
                                                       name="derived-moe")
    return spec


def _recipe_candidates() -> list[int]:
    """d_model values ``shape_from_params`` tries, in its order (128-steps below 2048, then 1024-steps)."""
    return [d for step in (128, 1024) for d in range(step, 131_072 + 1, step) if (d >= 2048) == (step == 1024)]


def _recipe_spec_array(d, layers, seq_len: int, vocab: int) -> ModelSpec:
    """``_recipe_spec`` over numpy arrays of d_model and layers (head_dim left implicit: d // heads = 128)."""
    import numpy as np

    d = np.asarray(d, dtype=np.int64)
    heads = np.maximum(1, d // RECIPE_HEAD_DIM)
    kv = np.where(heads % RECIPE_KV_HEADS == 0, RECIPE_KV_HEADS, heads)
    ffn = np.maximum(np.round(RECIPE_FFN_RATIO * d / 256.0).astype(np.int64) * 256, 256)
    arrays: dict[str, Any] = dict(layers=np.asarray(layers, dtype=np.int64), d_model=d, heads=heads, kv_heads=kv,
                                  ffn_dim=ffn)  # a ModelSpec whose shape fields are arrays (one model per entry)
    return ModelSpec(**arrays, vocab=vocab, seq_len=seq_len, name="derived", source=RECIPE_NAME)


def shape_from_params_array(n_params, seq_len: int = RECIPE_SEQ_LEN, vocab: int = RECIPE_VOCAB,
                            chunk: int = 4096) -> ModelSpec:
    """Vectorised ``shape_from_params``: the same search, evaluated for a numpy array of parameter counts.

    Returns one ModelSpec whose shape fields (layers, d_model, heads, kv_heads, ffn_dim) are int64
    arrays shaped like ``n_params``; element i equals ``shape_from_params(n_params[i])``. Works because a
    recipe model's parameter count is affine in its layer count (fixed + per_layer x layers), so the
    score of every candidate d_model can be computed for all inputs at once.
    """
    import numpy as np

    n = np.asarray(n_params, dtype=float)
    if n.size == 0 or not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise EstimatorInputError("--params must be positive finite numbers", "e.g. --params 70e9")
    cand = np.array(_recipe_candidates(), dtype=np.int64)
    probe = param_count(_recipe_spec_array(cand, np.ones_like(cand), seq_len, vocab))
    per_layer = probe.attention + probe.mlp_dense + 2 * cand
    fixed = probe.total - per_layer
    uniq, inverse = np.unique(n.ravel(), return_inverse=True)
    best_d = np.empty(uniq.size, dtype=np.int64)
    best_l = np.empty(uniq.size, dtype=np.int64)
    for i in range(0, uniq.size, chunk):
        u = uniq[i:i + chunk, None]
        layers = np.maximum(1, np.round((u - fixed) / per_layer)).astype(np.int64)
        total = fixed + per_layer * layers
        err = np.abs(total - u) / u
        aspect = np.abs(np.log((cand / layers) / RECIPE_ASPECT))
        k = np.argmin(aspect + 20 * err, axis=1)  # first minimum, as the scalar loop's strict '<'
        best_d[i:i + chunk] = cand[k]
        best_l[i:i + chunk] = layers[np.arange(k.size), k]
    shape = n.shape
    return _recipe_spec_array(best_d[inverse].reshape(shape), best_l[inverse].reshape(shape), seq_len, vocab)
