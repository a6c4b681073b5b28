"""Data-parallel training over processes: `rnnedge train` under torchrun.

    torchrun --nproc-per-node 2 -m rnnedge.train watch --out artifacts/watch

Every process (rank) holds the whole model, loads the same data and draws, from the same seed, the same global
batches and crops as a single process would; rank r trains on its contiguous slice of each global batch, and
DistributedDataParallel averages the gradients over the ranks. Each rank's loss is its slice's summed loss over the
global batch's count of scored values, times the number of ranks (which DDP's averaging divides out again), so the
averaged gradient is the single-process gradient of the global batch's mean loss, up to float summation order; the
clipping and the Adam step then run on identical gradients in every rank, and the ranks' weights stay identical.
(With a spec "dropout" > 0 the masks are drawn per rank, so that run is equal in distribution only; `rnnedge train`
trains without dropout.) Validation and test metrics are computed by every rank on the whole split (identical
weights give identical metrics, and keep="best" stops every rank at the same epoch without a message); only rank 0
writes the output folder.

Where the ranks train (backend_and_device): on a machine where CUDA is available each rank trains on the GPU of its
LOCAL_RANK (torchrun sets it: rank r of a node takes cuda:r) and the process group uses NCCL, which reduces CUDA
tensors GPU to GPU; elsewhere on the CPU with gloo. CUDA_VISIBLE_DEVICES= (empty) keeps a GPU machine's ranks on
the CPU. A rank whose LOCAL_RANK has no GPU (more processes per node than GPUs) is refused by name. Only the
gradient reduction and the ranks' few sums go through the process group; the data stay numpy arrays, and each
batch is copied to the rank's device as it is trained on. A collective waits at most TIMEOUT for the other ranks;
torchrun itself stops the other ranks as soon as one exits with an error, so a failing rank ends the run rather
than hanging it.

Without torchrun (WORLD_SIZE unset or 1) nothing here runs: world() is SINGLE and training is exactly the one-process
loop.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

CPU = torch.device("cpu")
TIMEOUT = datetime.timedelta(minutes=10)  # an epoch of a large data set on a slow rank stays well inside it


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = CPU  # where this rank trains; a collective's tensors live there too (NCCL: a GPU)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (float64, so a count stays exact)."""
        if self.size == 1:
            return list(values)
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def agree(self, ok: bool) -> bool:
        """True when every rank passes ok=True: a rank that refuses the run stops all of them, not just itself."""
        if self.size == 1:
            return ok
        flag = torch.tensor([1 if ok else 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())


SINGLE = World()


def launched() -> bool:
    """Whether this process was started as one of several by torchrun (or another env:// launcher)."""
    return _env_int("WORLD_SIZE", 1) > 1


def world() -> World:
    """This process's rank, the number of ranks and the device of the initialised process group; SINGLE without
    one."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else CPU
    return World(dist.get_rank(), dist.get_world_size(), device)


def backend_and_device() -> tuple[str, torch.device]:
    """("nccl", this rank's GPU: cuda:LOCAL_RANK) where CUDA is available, else ("gloo", the CPU) (module docstring).
    ValueError when LOCAL_RANK names a GPU this machine does not have."""
    if not torch.cuda.is_available():
        return "gloo", CPU
    local, gpus = _env_int("LOCAL_RANK", 0), torch.cuda.device_count()
    if not 0 <= local < gpus:
        raise ValueError(f"LOCAL_RANK={local} but this machine has {gpus} GPU(s) (cuda:0..cuda:{gpus - 1}): run "
                         f"torchrun --nproc-per-node {gpus} or fewer, or CUDA_VISIBLE_DEVICES= to train on the CPU")
    return "nccl", torch.device("cuda", local)


@contextlib.contextmanager
def session():
    """The process group for a torchrun launch, torn down on leaving (whatever happened); SINGLE otherwise."""
    if not launched():
        yield SINGLE
        return
    if not dist.is_available():
        raise RuntimeError("this torch has no torch.distributed: run rnnedge train without torchrun")
    backend, device = backend_and_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives run on the current device
    dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield world()
    finally:
        dist.destroy_process_group()


class _Logits(torch.nn.Module):
    """The model's logits as forward(): what the loss is computed on (forward() itself applies the activation)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return self.model.logits(x, lengths)


def parallel_logits(model: torch.nn.Module) -> torch.nn.Module:
    """model.logits wrapped in DistributedDataParallel: its backward averages the gradients over the ranks."""
    return torch.nn.parallel.DistributedDataParallel(_Logits(model))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None
