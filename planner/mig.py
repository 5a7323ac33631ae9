"""MIG slices in a capacity plan: "k slices of one GPU" with NVIDIA's smallest MIG profile (1g).

A slice is an Accelerator of its own (``<gpu>-mig1g``), registered with planner.catalog for the length of a
plan, so that the vectorised screen, the service tables and the simulator evaluate it unchanged. Its figures
are the physical GPU's scaled by the 1g profile's share:

* compute (every peak_dense figure): 1 / mig_max_slices of the GPU (7 on A100/H100/H200/B200/GH200);
* memory capacity, bandwidth and L2: 1/8 of the GPU (A100-80GB / H100 1g.10gb: 10 GB; H200 1g.18gb);
* power (TDP and idle), purchase price, server share and cloud price: the compute share, 1 / mig_max_slices.

The first two are facts from NVIDIA's MIG user guide that are not in shared/reference (MIG_ASSUMPTION); the
third is our own assumption (MIG_COST_ASSUMPTION). No tensor parallelism across slices (max_gpus_per_node 1).
A plan costs k slices as k / mig_max_slices of one physical GPU (as_physical), and lists them with
``gpu`` = the physical id, ``mig`` = "1g", ``slices`` = k and a fractional ``count`` (relabel).
"""
from __future__ import annotations

import contextlib

from planner import catalog
from planner.specs import Accelerator

PROFILE = "1g"
MEMORY_SLICES = 8          # assumption (MIG user guide): a 1g profile gets 1/8 of memory and bandwidth
MIG_ASSUMPTION = ("assumption: NVIDIA MIG 1g profile = 1/7 of SMs, 1/8 of memory and bandwidth "
                  "(MIG user guide; not in shared/reference)")
MIG_COST_ASSUMPTION = ("assumption: a MIG 1g slice draws and costs its compute share (1/7) of the GPU's TDP, idle "
                       "power, purchase price, server share and cloud price; a plan buys k slices as k/7 of one GPU")

_physical: dict[str, str] = {}         # slice id -> physical GPU id (every slice this process has built)


def slice_id(gpu_id: str) -> str:
    return f"{gpu_id}-mig{PROFILE}"


def slice_accelerator(acc: Accelerator) -> Accelerator | None:
    """The 1g MIG slice of ``acc`` as an Accelerator, or None if ``acc`` has no MIG (no mig_max_slices)."""
    n = acc.mig_max_slices
    if not n or n < 2:
        return None
    c, m = 1.0 / n, 1.0 / MEMORY_SLICES          # compute share (1/7) and memory share (1/8): MIG_ASSUMPTION
    pk = {k: v * c for k, v in acc.peak_dense.model_dump().items() if isinstance(v, (int, float)) and v is not None}
    mem = acc.memory
    memory = mem.model_copy(update={"capacity_gb": mem.capacity_gb * m, "bandwidth_gb_s": mem.bandwidth_gb_s * m,
                                    "l2_mb": None if mem.l2_mb is None else mem.l2_mb * m})
    interconnect = acc.interconnect.model_copy(update={   # a slice is one tp-1 replica: no NVLink group
        "link": "none (MIG slice)", "topology": "none", "max_gpus_per_node": 1,
        "all_to_all_gb_s_per_direction": None, "per_peer_gb_s_per_direction": None})
    power = acc.power.model_copy(update={"tdp_w": acc.power.tdp_w * c, "idle_w": acc.power.idle_w * c})
    pr = acc.price                                         # MIG_COST_ASSUMPTION: the compute share of the price
    price = pr.model_copy(update={k: None if getattr(pr, k) is None else getattr(pr, k) * c
                                  for k in ("purchase_usd", "cloud_usd_per_gpu_hour", "cloud_usd_per_gpu_hour_high")})
    sources = {**acc.sources, "peak_dense": MIG_ASSUMPTION, "memory": MIG_ASSUMPTION,
               "interconnect": "MIG slices run tensor-parallel degree 1 only", "power": MIG_COST_ASSUMPTION,
               "price": MIG_COST_ASSUMPTION}
    sid = slice_id(acc.id)
    _physical[sid] = acc.id
    return acc.model_copy(update={
        "id": sid, "name": f"{acc.name} MIG {PROFILE} slice", "peak_dense": acc.peak_dense.model_copy(update=pk),
        "memory": memory, "interconnect": interconnect, "power": power, "price": price, "mig_max_slices": None,
        "sources": sources,
        "notes": f"MIG {PROFILE} slice of {acc.id} (1/{n} of compute, 1/{MEMORY_SLICES} of memory)"})


def physical(gpu_id: str) -> tuple[Accelerator, int] | None:
    """(physical accelerator, slices per GPU) of a slice id; None for any other id."""
    if gpu_id not in _physical:
        return None
    acc = catalog.load_gpu(_physical[gpu_id])
    return acc, acc.mig_max_slices


def max_slices(gpu_id: str) -> int | None:
    """Most slices a MIG option may use: fewer than a whole GPU (a workload that needs all of them is better
    served by the whole GPU: all of its memory, no partitioning); None for a non-slice id."""
    p = physical(gpu_id)
    return None if p is None else p[1] - 1


def as_physical(acc: Accelerator, count):
    """(accelerator, count) to cost: k slices are k / mig_max_slices of the physical GPU (its capex, server
    share, host power and cloud price); any other accelerator is returned unchanged."""
    p = physical(acc.id)
    return (acc, count) if p is None else (p[0], count / p[1])


@contextlib.contextmanager
def registered(slices: list[Accelerator]):
    """Register slice accelerators with the catalog for the duration of a plan, then remove them again (so
    that list_gpus() and later plans do not see them as whole GPUs)."""
    added = [s for s in slices if s.id not in catalog.accelerators()]
    for s in added:
        catalog.register_accelerator(s)
    try:
        yield
    finally:
        for s in added:
            catalog.unregister_accelerator(s.id)


def relabel(opt: dict) -> dict:
    """A plan option (and its workload rows) on slices: ``gpu`` the physical id, ``mig`` the profile,
    ``slices`` k and ``count`` k / mig_max_slices of a GPU. Other options are returned unchanged."""
    p = physical(opt["gpu"])
    if p is None:
        return opt
    acc, n = p
    for row in [opt] + opt.get("workloads", []):
        if "gpu" in row and physical(row["gpu"]) is not None:
            row.update(gpu=acc.id, mig=PROFILE, slices=row["count"], count=row["count"] / n)
    return opt


def fleet_label(o: dict) -> str:
    """'3 x MIG 1g slices of a100-sxm-80gb' or '2 x h100-sxm' for messages and reports."""
    if o.get("mig"):
        return f"{o['slices']} x MIG {o['mig']} slice(s) of {o['gpu']}"
    return f"{o['count']} x {o['gpu']}"
