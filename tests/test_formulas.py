"""Direct tests of the published formulas behind the estimate, each computed independently from its source.

Every expected value below is written out from the paper's formula (or the documented constant in
hardware_db/assumptions.csv, read here with the csv module), not from the estimator's own helpers, and the inputs
are chosen so that a plausible slip moves the result far beyond the tolerance. Each test was checked by breaking
the formula once (a one-line edit of the source, run, restore); the mutation it was verified to catch:

- test_ring_allreduce_sends_2_n_minus_1_over_n: ``2.0 * (n - 1) / np.maximum(n, 1)`` -> ``2.0 * n / ...``
  (off-by-one) and -> ``1.0 * (n - 1) / ...`` (missing factor 2), in timing.ring_allreduce_s.
- test_ring_allgather_sends_n_minus_1_over_n: ``(n - 1) / np.maximum(n, 1)`` -> ``n / np.maximum(n, 1)`` in
  timing.ring_allgather_s.
- test_step_time_dp_gradient_allreduce_is_a_ring: ``2.0 * (n - 1)`` -> ``2.0 * n`` in timing.ring_allreduce_s.
- test_pipeline_bubble_s_p_minus_1_over_v: ``(pp - 1) / np.asarray(interleave...)`` -> ``pp / ...`` and the
  ``/ np.asarray(interleave, dtype=float)`` dropped, in timing.pipeline_bubble_s.
- test_step_time_bubble_fraction_of_step: the ``/ interleave`` dropped in timing.pipeline_bubble_s, and
  ``bubble=pipeline_bubble_s(pp, per_microbatch, v)`` -> ``pipeline_bubble_s(pp, t_stage, v)`` in timing.step_time.
- test_estimate_training_bubble_share_vs_pp_and_interleave: the ``/ interleave`` dropped in
  timing.pipeline_bubble_s, and ``(pp - 1)`` -> ``pp`` there.
- test_checkpoint_hours_16_bytes_per_param: ``CHECKPOINT_BYTES_PER_PARAM = 16.0`` -> ``12.0``.
- test_goodput_young_daly: ``np.sqrt(2 * delta / ...)`` -> ``np.sqrt(delta / ...)`` (missing factor 2) and
  ``tau / 2`` -> ``tau`` in timing.goodput_fraction.
- test_estimate_training_goodput_young_daly: ``np.sqrt(2 * delta / ...)`` -> ``np.sqrt(delta / ...)`` and
  ``CHECKPOINT_BYTES_PER_PARAM = 16.0`` -> ``12.0``.
- test_optimizer_step_s_28_bytes_over_shard: ``/ shard`` dropped in timing.optimizer_step_s, and
  ``ADAM_BYTES_PER_PARAM_STEP = 28.0`` -> ``16.0``.
- test_step_time_optimizer_zero_sharding: ``np.where(zero >= 1, dp * cp, 1.0)`` -> ``np.where(zero >= 0, ...)``
  (ZeRO-0 sharded) and -> ``np.where(zero >= 1, dp, 1.0)`` (CP not in the shard), in timing.step_time.
- test_embodied_co2e_linear_amortisation: ``(lifetime_years * HOURS_PER_YEAR)`` -> ``(lifetime_years)`` in
  facility.embodied_co2e_t (lifetime in the wrong unit), and ``HOURS_PER_YEAR = 8766.0`` -> ``8760.0``.
- test_estimate_training_embodied: ``(lifetime_years * HOURS_PER_YEAR) / 1000.0`` -> ``(lifetime_years *
  HOURS_PER_YEAR)`` in facility.embodied_co2e_t (tonnes in kg).
- test_owned_cost_capex_share_plus_electricity: the ``+ facility_energy_mwh * 1000.0 * usd_per_kwh`` term dropped
  and ``capex = gpus * capex_usd_per_gpu * hours / (lifetime_years * HOURS_PER_YEAR)`` -> ``... / lifetime_years``
  in facility.owned_cost_usd.
- test_estimate_training_owned_cost_with_facility_energy: ``energy=e, lifetime_years`` -> ``energy=e / st.pue,
  lifetime_years`` in facility.run_footprint (electricity billed without PUE), and the electricity term dropped.
- test_grid_range_from_assumptions: ``lo, hi = g * (1 - rel), g * (1 + rel)`` -> ``lo, hi = g, g`` and
  ``return Grid(g, g, g, one(...`` -> ``return Grid(g, 0.9 * g, 1.1 * g, one(...`` (a range on a user figure),
  in facility.grid.
- test_estimate_training_co2e_range_uses_grid_range: ``lo, hi = g * (1 - rel), g * (1 + rel)`` -> ``lo, hi = g, g``
  in facility.grid, and the user-figure range mutation above.
- test_1f1b_activations_in_flight_on_first_stage: ``act_layer * layers_per_stage * pp / cp`` ->
  ``act_layer * layers_per_stage / cp`` (one micro-batch in flight) and -> ``* (pp - 1) / cp`` in
  memory.training_memory_per_gpu.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from estimator import facility, timing
from estimator.assumptions import Assumptions
from estimator.hardware import KernelModel, accelerator, link_bandwidths_gb_per_s
from estimator.hardware import grid as grid_lookup
from estimator.memory import training_memory_per_gpu
from estimator.model import ModelSpec, param_count
from estimator.training import estimate_training

HOURS_PER_YEAR = 365.25 * 24  # Julian year, 8766 h
REL = 1e-9
ASSUMPTIONS_CSV = Path(__file__).resolve().parents[1] / "hardware_db" / "assumptions.csv"


def _assumption(key: str) -> float:
    """A documented default read straight from hardware_db/assumptions.csv (not through the estimator)."""
    with ASSUMPTIONS_CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["key"] == key:
                return float(row["value"])
    raise KeyError(key)


# A small dense model whose 32 layers split evenly into 4 stages of 8 (so interleave 2 and 4 are both valid).
SPEC = ModelSpec(layers=32, d_model=2048, heads=16, kv_heads=8, ffn_dim=5632, vocab=32000, seq_len=2048,
                 name="formula-test")
# Round kernel rates with no per-kernel overheads, so the expected values are easy to write down.
KM = KernelModel(gemm_flops_per_s=5e14, gemm_overhead_s=0.0, attn_flops_per_s=3e14, attn_overhead_s=0.0,
                 mem_bytes_per_s=2.5e12, mem_overhead_s=0.0, source="test")
H100 = accelerator("h100-sxm")


def _step(**layout):
    args = dict(tp=1, pp=1, dp=1, ep=1, zero=1, micro_batch=1, recompute="none", global_batch_seqs=64,
                seq=SPEC.seq_len, dtype_bytes=2.0, dp_overlap=0.0, interleave=1, cp=1) | layout
    return timing.step_time(SPEC, H100, KM, **args)


# --------------------------------------------------------------------------- collectives

def test_ring_allreduce_sends_2_n_minus_1_over_n():
    """Ring all-reduce moves 2 (n-1)/n of the buffer per rank in 2 (n-1) steps (Patarasuk & Yuan 2009, JPDC 69(2);
    bandwidth-optimal all-reduce). n = 4: 1.5 x the buffer (n would give 2.0, no factor 2 would give 0.75)."""
    b, bw, alpha = 1e9, 1e11, 1e-5
    for n in (2, 4, 8):
        expected = 2 * (n - 1) / n * b / bw + 2 * (n - 1) * alpha
        assert float(timing.ring_allreduce_s(b, n, bw, alpha)) == pytest.approx(expected, rel=REL)
    assert float(timing.ring_allreduce_s(b, 1, bw, alpha)) == 0.0  # one rank: nothing to reduce
    arr = timing.ring_allreduce_s(b, np.array([1, 4]), bw)
    assert arr.tolist() == pytest.approx([0.0, 1.5 * b / bw], rel=REL)


def test_ring_allgather_sends_n_minus_1_over_n():
    """Ring all-gather / reduce-scatter: (n-1)/n of the buffer crosses each link in n-1 steps (Patarasuk & Yuan
    2009; Thakur, Rabenseifner & Gropp 2005). n = 4: 0.75 x the buffer."""
    b, bw, alpha = 1e9, 1e11, 1e-5
    for n in (2, 4, 8):
        expected = (n - 1) / n * b / bw + (n - 1) * alpha
        assert float(timing.ring_allgather_s(b, n, bw, alpha)) == pytest.approx(expected, rel=REL)
    assert float(timing.ring_allgather_s(b, 1, bw, alpha)) == 0.0


def test_step_time_dp_gradient_allreduce_is_a_ring():
    """The data-parallel gradient sync in step_time is one ring all-reduce of the bf16 gradients over DP x CP ranks
    (Patarasuk & Yuan 2009): 2 (n-1)/n x 2 bytes x params-per-GPU / link bandwidth, times the un-hidden share."""
    dp, overlap = 4, 0.25  # 4 GPUs: inside the 8-GPU NVLink domain
    st = _step(dp=dp, global_batch_seqs=64, dp_overlap=overlap)
    up_bw = link_bandwidths_gb_per_s(H100)[0] * 1e9
    grad_bytes = 2.0 * param_count(SPEC).total
    expected = 2 * (dp - 1) / dp * grad_bytes / up_bw * (1 - overlap)
    assert float(st.dp_comm) == pytest.approx(expected, rel=REL)


# --------------------------------------------------------------------------- pipeline bubble

def test_pipeline_bubble_s_p_minus_1_over_v():
    """Interleaved 1F1B idles (p - 1) / v micro-batch times per step (Narayanan et al. 2021, Sec. 2.2.2)."""
    t = 0.01
    for p, v in ((1, 1), (4, 1), (4, 2), (8, 4)):
        assert float(timing.pipeline_bubble_s(p, t, v)) == pytest.approx((p - 1) / v * t, rel=REL, abs=1e-15)


@pytest.mark.parametrize("pp,v", [(2, 1), (4, 1), (4, 2), (4, 4)])
def test_step_time_bubble_fraction_of_step(pp, v):
    """Bubble share of a pipeline step: (p - 1) / (v m + p - 1) with m micro-batches (Narayanan et al. 2021,
    Sec. 2.2.2), where the busy part is m micro-batch times (stage compute + the per-micro-batch communication)."""
    m, dp = 8, 2
    st = _step(pp=pp, dp=dp, interleave=v, global_batch_seqs=m * dp)
    busy = st.compute + st.tp_comm + st.pp_comm + st.ep_comm + st.cp_comm
    frac = float(st.bubble / (st.bubble + busy))
    assert frac == pytest.approx((pp - 1) / (v * m + pp - 1), rel=1e-9)


def test_estimate_training_bubble_share_vs_pp_and_interleave():
    """Through estimate_training: the bubble share of time_breakdown over the per-micro-batch work is
    (p - 1) / (v m) for the chosen interleave v (Narayanan et al. 2021, Sec. 2.2.2), so the bubble share of the
    pipeline step is (p - 1) / (v m + p - 1); no bubble without pipelining."""
    seen_v = set()
    for pp in (1, 2, 4):
        dp = 8 // pp
        e = estimate_training(SPEC, tokens=1e10, gpus=8, tp=1, pp=pp, dp=dp, micro_batch=1, recompute="none",
                              global_batch_tokens=64 * SPEC.seq_len)
        tb = e.time_breakdown
        v, m = e.layout.interleave, 64 // (dp * e.layout.micro_batch)
        seen_v.add(v)
        busy = tb["compute"] + tb["tp_comm"] + tb["pp_comm"] + tb["ep_comm"] + tb["cp_comm"]
        assert busy > 0
        assert tb["bubble"] / busy == pytest.approx((pp - 1) / (v * m), rel=1e-9, abs=1e-15)
        assert tb["bubble"] / (tb["bubble"] + busy) == pytest.approx((pp - 1) / (v * m + pp - 1), rel=1e-9,
                                                                     abs=1e-15)
    assert seen_v - {1}, "the layout search should pick an interleaved schedule for one of these layouts"


# --------------------------------------------------------------------------- checkpoints and goodput

def test_checkpoint_hours_16_bytes_per_param():
    """A checkpoint is sized as the model states of mixed-precision Adam, 16 bytes/param (Rajbhandari et al. 2020,
    ZeRO Sec. 3.1: 2 fp16/bf16 weights + 2 gradients + 12 fp32 master, momentum, variance).
    1e12 params at 2 TB/s: 1.6e13 B / 2e12 B/s = 8 s."""
    assert timing.checkpoint_hours(1e12, 2000.0) == pytest.approx(8.0 / 3600, rel=REL)
    assert timing.checkpoint_hours(7e10, 500.0) == pytest.approx(7e10 * 16 / 500e9 / 3600, rel=REL)


def test_goodput_young_daly():
    """Checkpoint every tau = sqrt(2 delta / lambda) (Young 1974, CACM 17(9); Daly 2006, FGCS 22(3), first order):
    the waste delta / tau + lambda (R + tau / 2) is then sqrt(2 delta lambda) + lambda R, and that tau minimises it
    (checked on a grid), so goodput = 1 - sqrt(2 delta lambda) - lambda R."""
    gpus, rate, restart, delta = 16384, 2e-5, 0.25, 0.1
    lam = gpus * rate  # job failures per hour
    expected = 1 - math.sqrt(2 * delta * lam) - lam * restart
    got = float(timing.goodput_fraction(gpus, rate, restart, delta))
    assert got == pytest.approx(expected, rel=REL)
    taus = np.linspace(0.05, 3.0, 20001)
    best = np.max(1 - (delta / taus + lam * (restart + taus / 2)))
    assert got == pytest.approx(best, abs=1e-6)
    assert got >= best - 1e-12
    # twice the GPUs: twice lambda
    assert float(timing.goodput_fraction(2 * gpus, rate, restart, delta)) == pytest.approx(
        1 - math.sqrt(4 * delta * lam) - 2 * lam * restart, rel=REL)


def test_estimate_training_goodput_young_daly():
    """Through estimate_training: goodput = 1 - sqrt(2 delta lambda) - lambda R (Young 1974; Daly 2006) with
    delta the time to write 16 bytes/param (ZeRO Sec. 3.1) at the documented checkpoint bandwidth."""
    rate, restart, gpus = 1e-3, 0.5, 64
    e = estimate_training(params=7e9, tokens=1e11, gpus=gpus, tp=2, pp=1, dp=32, micro_batch=1, recompute="none",
                          failure_rate_per_gpu_hour=rate, restart_overhead_hours=restart)
    delta = e.params * 16 / (_assumption("checkpoint_write_bw_gb_per_s") * 1e9) / 3600
    lam = gpus * rate
    assert e.goodput == pytest.approx(1 - math.sqrt(2 * delta * lam) - lam * restart, rel=REL)
    assert e.time_breakdown["downtime"] == pytest.approx(math.sqrt(2 * delta * lam) + lam * restart, rel=1e-7)


# --------------------------------------------------------------------------- optimizer step under ZeRO

def test_optimizer_step_s_28_bytes_over_shard():
    """Adam is memory-bound: read grad, fp32 master, m, v (2 + 4 + 4 + 4), write master, m, v, bf16 weights
    (4 + 4 + 4 + 2) = 28 bytes/param; ZeRO-1+ shards the optimizer states over the DP ranks (Rajbhandari et al.
    2020, Sec. 5.1), so each rank steps 1/shard of them."""
    assert timing.optimizer_step_s(1e9, 1, 2e12) == pytest.approx(1e9 * 28 / 2e12, rel=REL)
    assert timing.optimizer_step_s(1e9, 16, 2e12) == pytest.approx(1e9 * 28 / 16 / 2e12, rel=REL)


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_step_time_optimizer_zero_sharding(zero):
    """step_time: ZeRO-0 steps all of this GPU's parameters; ZeRO >= 1 shards them over DP x CP ranks (ZeRO,
    Rajbhandari et al. 2020 Sec. 5.1; Megatron-Core's distributed optimizer shards over DP x CP)."""
    tp, dp, cp = 2, 4, 2
    st = _step(tp=tp, dp=dp, cp=cp, zero=zero, global_batch_seqs=64)
    shard = dp * cp if zero >= 1 else 1
    expected = param_count(SPEC).total / tp * 28 / shard / KM.mem_bytes_per_s
    assert float(st.optimizer) == pytest.approx(expected, rel=REL)


# --------------------------------------------------------------------------- embodied carbon and owned cost

def test_embodied_co2e_linear_amortisation():
    """Embodied carbon amortised linearly over the hardware life: share = hours / (lifetime x 8766 h), tonnes =
    GPUs x kgCO2e per GPU slot x share / 1000 (linear depreciation; ecologits methodology, 3-year life)."""
    gpus, kg, hours, life = 1024, 2500.0, 720.0, 3.0
    expected = gpus * kg * hours / (life * HOURS_PER_YEAR) / 1000
    assert facility.embodied_co2e_t(gpus, kg, hours, life) == pytest.approx(expected, rel=REL)
    emb = facility.Embodied(kg, life, Assumptions())
    assert emb.tonnes(gpus, hours) == pytest.approx(expected, rel=REL)
    assert facility.Embodied(None, life, Assumptions()).tonnes(gpus, hours) is None
    # a whole life: every tonne of the fleet
    assert facility.embodied_co2e_t(gpus, kg, life * HOURS_PER_YEAR, life) == pytest.approx(gpus * kg / 1000, rel=REL)


def test_estimate_training_embodied():
    """Through estimate_training: (GPU figure + server share per GPU) x GPUs x wall-clock / (life x 8766 h), in t."""
    e = estimate_training(params=7e9, tokens=1e11, gpus=64, tp=2, pp=1, dp=32, micro_batch=1, recompute="none")
    kg = H100.embodied_kgco2e + _assumption("server_embodied_kgco2e_per_gpu")
    life = _assumption("hardware_lifetime_years")
    expected = 64 * kg * e.wall_clock_h / (life * HOURS_PER_YEAR) / 1000
    assert e.embodied_co2e_t == pytest.approx(expected, rel=REL)


def test_owned_cost_capex_share_plus_electricity():
    """Owned hardware: capex x hours / (lifetime x 8766 h) plus facility MWh x 1000 kWh/MWh x USD/kWh."""
    gpus, hours, capex, life, mwh, usd_kwh = 1024, 720.0, 30000.0, 3.0, 900.0, 0.08
    capex_share = gpus * capex * hours / (life * HOURS_PER_YEAR)
    expected = capex_share + mwh * 1000 * usd_kwh  # ~841k + 72k
    assert facility.owned_cost_usd(gpus, hours, capex, life, mwh, usd_kwh) == pytest.approx(expected, rel=REL)
    rc = facility.run_cost(1.0, 1.0, 1.0, None, facility.Owned(capex, usd_kwh), gpus=gpus, wall_h=hours, energy=mwh,
                           lifetime_years=life)
    assert rc.usd == pytest.approx(expected, rel=REL)
    assert rc.low == rc.high == rc.usd


def test_estimate_training_owned_cost_with_facility_energy():
    """Through estimate_training(owned=True): capex share of the wall-clock plus electricity for the facility energy,
    i.e. (GPU average power + host share) x GPUs x PUE x hours (PUE per The Green Grid; host and PUE defaults from
    hardware_db/assumptions.csv)."""
    gpus, capex, usd_kwh = 64, 30000.0, 0.10
    e = estimate_training(params=7e9, tokens=1e11, gpus=gpus, tp=2, pp=1, dp=32, micro_batch=1, recompute="none",
                          owned=True, capex_per_gpu=capex, electricity_usd_per_kwh=usd_kwh)
    pue, host = _assumption("pue"), _assumption("host_power_w_per_gpu")
    facility_mwh = (e.gpu_avg_power_w + host) * gpus * pue * e.wall_clock_h / 1e6
    assert e.energy_mwh == pytest.approx(facility_mwh, rel=REL)
    life = _assumption("hardware_lifetime_years")
    expected = gpus * capex * e.wall_clock_h / (life * HOURS_PER_YEAR) + facility_mwh * 1000 * usd_kwh
    assert e.cost_usd == pytest.approx(expected, rel=REL)
    assert e.to_dict()["ranges"]["cost_usd"] == pytest.approx([expected, expected], rel=REL)


# --------------------------------------------------------------------------- grid intensity range

def test_grid_range_from_assumptions():
    """A region's intensity carries the documented +/- grid_intensity_rel_range (hardware_db/assumptions.csv);
    a user --grid-intensity is taken as given, with no range."""
    rel = _assumption("grid_intensity_rel_range")
    g0 = grid_lookup("FRA").g_per_kwh
    gr = facility.grid("FRA")
    assert (gr.g_per_kwh, gr.low, gr.high) == pytest.approx((g0, g0 * (1 - rel), g0 * (1 + rel)), rel=REL)
    user = facility.grid("FRA", grid_intensity=400)
    assert (user.g_per_kwh, user.low, user.high) == (400.0, 400.0, 400.0)


def test_estimate_training_co2e_range_uses_grid_range():
    """Through estimate_training: the CO2e range is the energy range's corners x the grid's low / high intensity
    (tCO2e = MWh x g/kWh / 1000); a user --grid-intensity keeps the intensity fixed."""
    rel = _assumption("grid_intensity_rel_range")
    kw = dict(params=7e9, tokens=1e11, gpus=64, tp=2, pp=1, dp=32, micro_batch=1, recompute="none")
    d = estimate_training(region="USA", **kw).to_dict()
    g0 = grid_lookup("USA").g_per_kwh
    e_lo, e_hi = d["ranges"]["energy_mwh"]
    assert d["ranges"]["co2e_tonnes"] == pytest.approx([e_lo * g0 * (1 - rel) / 1000, e_hi * g0 * (1 + rel) / 1000],
                                                       rel=REL)
    u = estimate_training(grid_intensity=400, **kw).to_dict()
    e_lo, e_hi = u["ranges"]["energy_mwh"]
    assert u["ranges"]["co2e_tonnes"] == pytest.approx([e_lo * 0.4, e_hi * 0.4], rel=REL)
    assert u["co2e_tonnes"] == pytest.approx(u["energy_mwh"] * 0.4, rel=REL)


# --------------------------------------------------------------------------- 1F1B activations in flight

@pytest.mark.parametrize("pp", [2, 4, 8])
def test_1f1b_activations_in_flight_on_first_stage(pp):
    """Under 1F1B the first stage holds up to p micro-batches of its layers' activations (Narayanan et al. 2021,
    Sec. 2.2.1), so its activations are ceil(L / p) x p layers of one micro-batch, i.e. ceil(L / p) x p / L times
    the unpipelined model's. L = 30 so that the rounding shows (p = 4: 32 / 30)."""
    spec = SPEC.with_(layers=30)
    base = training_memory_per_gpu(spec, tp=1, pp=1, dp=1, zero=1, micro_batch=1, recompute="none").activations
    act = training_memory_per_gpu(spec, tp=1, pp=pp, dp=1, zero=1, micro_batch=1, recompute="none").activations
    assert float(act) / float(base) == pytest.approx(math.ceil(30 / pp) * pp / 30, rel=REL)
