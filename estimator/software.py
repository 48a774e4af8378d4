"""The training software stack: framework and vintage, and what they allow the layout search and cost.

A ``Stack`` gathers everything the software (not the hardware) decides for a training run:

- the framework's model-state accounting and the layouts it can run (hardware_db/frameworks.csv, each row
  sourced): gradient bytes per parameter, tensor and pipeline parallelism, the interleaved schedule, sequence
  parallelism, the ZeRO stages it offers and the highest one it allows beside pipeline parallelism, and how many
  activation bytes its blocks keep relative to a fused Megatron block;
- the vintage: software before mid-2022 has no FlashAttention (Dao et al. 2022, arXiv 2205.14135), and none of
  what Korthikanti et al. 2022 (arXiv 2205.05198) introduced in the same month: sequence parallelism, selective
  recomputation, recomputing only some layers. Such runs keep every activation or recompute every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from estimator.assumptions import Assumptions, one
from estimator.errors import EstimatorInputError

DEFAULT_FRAMEWORK = "megatron"


@dataclass(frozen=True)
class Stack:
    """What the software allows and costs (defaults: Megatron-LM with FlashAttention, today's stack)."""

    framework: str = DEFAULT_FRAMEWORK
    grad_bytes: float = 4.0
    flash: bool = True
    sequence_parallel: bool = True
    partial_recompute: bool = True  # selective recomputation and recomputing only some layers
    tensor_parallel: bool = True
    pipeline: bool = True
    interleaved_pipeline: bool = True
    zero_stages: tuple[int, ...] = (1, 3)
    max_zero_with_pipeline: int | None = None
    activation_factor: float = 1.0
    buffers: tuple = ()  # hardware_db.FrameworkBuffer rows the memory model counts
    ep_comm_overlap: bool = False  # MoE all-to-all hidden under another micro-batch's computation (opt-in)
    elementwise: tuple[float, float] = (1.0, 1.0)  # non-GEMM bytes and kernel launches relative to the fused block
    can_overlap_ep: bool = False  # the framework offers the all-to-all overlap (--ep-comm-overlap)

    def search_limits(self) -> dict:
        """Entries for the layout search's ``fixed`` dict: the axes and modes this stack can run."""
        out: dict = {"zero_values": list(self.zero_stages),
                     "interleave_values": [1, 2, 4] if self.interleaved_pipeline else [1],
                     "partial": self.partial_recompute, "max_zero_with_pp": self.max_zero_with_pipeline}
        if not self.partial_recompute:
            out["recompute_modes"] = ("none", "full")
        if not self.tensor_parallel:
            out["tp"] = 1
        if not self.pipeline:
            out["pp"] = 1
        return out


def framework_stack(name: str | None) -> tuple[Stack, str]:
    """The stack of a framework of hardware_db/frameworks.csv (today's vintage) and the sentence citing it."""
    from hardware_db import framework_buffers, frameworks

    table = frameworks()
    key = (name or DEFAULT_FRAMEWORK).strip().lower()
    if key not in table:
        raise EstimatorInputError(f"unknown --framework {name!r}", f"use one of {', '.join(table)}")
    f = table[key]
    stack = Stack(f.id, f.grad_bytes_per_param, sequence_parallel=f.sequence_parallel,
                  tensor_parallel=f.tensor_parallel, pipeline=f.pipeline, interleaved_pipeline=f.interleaved_pipeline,
                  zero_stages=f.zero_stages, max_zero_with_pipeline=f.max_zero_with_pipeline,
                  activation_factor=f.activation_factor, buffers=framework_buffers(f.buffers_from),
                  elementwise=(f.elementwise_bytes_factor, f.elementwise_kernels_factor),
                  can_overlap_ep=f.ep_comm_overlap)
    src = f"{f.grad_bytes_per_param:g}-byte gradients per parameter: {f.source}; layouts: {f.layout_source}"
    if stack.buffers:
        src += ("; working buffers " + ", ".join(sorted({b.buffer for b in stack.buffers}))
                + " (hardware_db/framework_buffers.csv, from the framework's source)")
    return stack, (src if name else f"default framework ({DEFAULT_FRAMEWORK}, pass --framework): {src}")


def _check_user_layout(stack: Stack, tp: int | None, pp: int | None, zero: int | None) -> None:
    """Refuse a user-fixed layout the framework cannot run."""
    fix = "choose --framework megatron (or deepspeed for pipelines with ZeRO-1)"
    if pp is not None and pp > 1 and not stack.pipeline:
        raise EstimatorInputError(f"--framework {stack.framework} has no pipeline parallelism (--pp {pp})",
                                  f"drop --pp or {fix}")
    if tp is not None and tp > 1 and not stack.tensor_parallel:
        raise EstimatorInputError(f"--framework {stack.framework} has no tensor parallelism (--tp {tp})",
                                  f"drop --tp or {fix}")
    limit = stack.max_zero_with_pipeline
    if limit is not None and zero is not None and zero > limit and pp is not None and pp > 1:
        raise EstimatorInputError(f"--framework {stack.framework} allows ZeRO stage {limit} at most with pipeline "
                                  f"parallelism (--zero {zero} --pp {pp})", f"use --zero {limit} or --pp 1")


def training_stack(cfg) -> tuple[Stack, Assumptions]:
    """The stack of a TrainingConfig (framework, FlashAttention, sequence parallelism) and its assumptions."""
    stack, src = framework_stack(cfg.framework)
    _check_user_layout(stack, cfg.tp, cfg.pp, cfg.zero)
    rec = one("framework", stack.framework, "", src)
    if not cfg.flash_attention:
        stack = replace(stack, flash=False, sequence_parallel=False, partial_recompute=False, ep_comm_overlap=False)
        rec = rec | one("flash_attention", False, "", "user input (--no-flash-attention): the stack before mid-2022 "
                        "(Dao et al. 2022; Korthikanti et al. 2022): attention scores in HBM, no sequence "
                        "parallelism, no selective or per-layer recomputation, so memory may force full "
                        "recomputation of every layer")
    if cfg.ep_comm_overlap:
        if not stack.can_overlap_ep:
            raise EstimatorInputError(f"--framework {stack.framework} has no overlap of the expert all-to-all "
                                      "(--ep-comm-overlap)", "drop --ep-comm-overlap or use --framework megatron")
        stack = replace(stack, ep_comm_overlap=True)
        rec = rec | one("ep_comm_overlap", True, "", "user input (--ep-comm-overlap): Megatron-Core's batch-level "
                        "overlap hides each micro-batch's expert all-to-all under another's computation "
                        "(hardware_db/frameworks.csv)")
    if cfg.sequence_parallel is False and stack.sequence_parallel:
        stack = replace(stack, sequence_parallel=False)
        rec = rec | one("sequence_parallel", False, "", "user input (--no-sequence-parallel): the norm and dropout "
                        "activations are replicated on every tensor-parallel rank")
    return stack, rec
