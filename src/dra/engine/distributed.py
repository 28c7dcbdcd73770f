"""Multi-process training through torchrun + DistributedDataParallel (no home-made launcher).

    torchrun --nproc_per_node 8 -m dra base2new --dataset imagenet ...      # one node, 8 GPUs
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m dra ...

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `setup()` joins the process group (NCCL on CUDA,
gloo on CPU). Without torchrun everything runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dra.errors import SettingsError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """The one device resolution: None/"" = cuda when available, else cpu; "cuda" without an index is
    this process's GPU (`local_rank`) under torchrun. A device that does not exist is a SettingsError."""
    if device is None or str(device) == "":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SettingsError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"device '{device}' asked for, but CUDA is not available here; use --device cpu")
        if dev.index is None and local_rank is not None:
            dev = torch.device("cuda", local_rank)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SettingsError(f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise SettingsError(f"device '{device}' is not supported; use cpu, cuda or cuda:N")
    return dev


def setup(device: str | None = None) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if there is one; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device, info.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return info, dev


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
