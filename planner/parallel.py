"""Tensor/pipeline/data parallelism: the link bandwidth a tensor-parallel group's all-reduce gets, and checks.

Topologies (hw_specs interconnect.topology):
- switch (NVSwitch): every GPU reaches the others at the full per-direction figure.
- bridge-pairs (PCIe cards with an NVLink bridge): tp 2 uses the bridge; larger groups fall back to PCIe.
- point-to-point / mesh (AMD xGMI, Gaudi RoCE, V100 hybrid cube-mesh): each peer has its own link, so a group
  of n uses n-1 links: per_peer * (n-1), capped at the all-to-all figure (gpu_datasheets.md pitfall 22:
  MI300X TP=2 is ~7x slower on comms than TP=8).
- none: PCIe only.
"""
from __future__ import annotations

from planner.errors import PlannerError
from planner.specs import Accelerator
from planner.units import GB


def allreduce_bandwidth(acc: Accelerator, tp: int) -> float:
    """Per-direction bytes/s a ring all-reduce over ``tp`` GPUs of ``acc`` can use (0 for tp 1)."""
    ic = acc.interconnect
    pcie = ic.pcie_gb_s_per_direction * GB
    if tp <= 1:
        return pcie
    if ic.topology == "switch":
        return ic.all_to_all_gb_s_per_direction * GB
    if ic.topology == "bridge-pairs":
        return (ic.per_peer_gb_s_per_direction or ic.all_to_all_gb_s_per_direction) * GB if tp == 2 else pcie
    if ic.topology in ("point-to-point", "mesh"):
        peer = ic.per_peer_gb_s_per_direction or ic.all_to_all_gb_s_per_direction / (ic.max_gpus_per_node - 1)
        return min(peer * (tp - 1), ic.all_to_all_gb_s_per_direction) * GB
    return pcie


def check_parallel(acc: Accelerator, tp: int, pp: int) -> None:
    """A tensor-parallel group must sit inside one node; pipeline stages may span nodes."""
    if tp > acc.interconnect.max_gpus_per_node:
        raise PlannerError(f"tp {tp} exceeds the {acc.interconnect.max_gpus_per_node} GPUs per node of {acc.id} "
                           f"(hw_specs interconnect.max_gpus_per_node); use pipeline parallelism across nodes")
