"""Data-parallel meta-training across processes, on ``torch.distributed``.

A script that calls ``meta_fit``, launched with ``torchrun --nproc_per_node=N``,
trains one model with N processes: every process draws the same meta-batch (their
task generators start from rank 0's state), computes the meta-gradient of its
contiguous share of the tasks, and one all-reduce sums the shares. Every process then
takes the same optimiser step on the same numbers, so all end with identical
parameters, equal to a single-process run up to the order of floating-point sums.

The process group is the one the script initialised, or, under ``torchrun`` (its
environment variables set), one this module initialises: gloo on the CPU, NCCL on
CUDA devices.
"""

import os

import torch
import torch.distributed as dist


class Processes:
    """The processes that share each meta-batch: this one's rank and their number."""

    def __init__(self, rank, world_size):
        self.rank = rank
        self.world_size = world_size

    def share(self, n_tasks):
        """The slice of a meta-batch of ``n_tasks`` tasks that this process computes."""
        if n_tasks < self.world_size:
            raise ValueError(
                f"A meta-batch of {n_tasks} tasks cannot be shared by {self.world_size} "
                "processes: set meta_batch_size (and the number of tasks) to at least "
                "the number of processes."
            )
        lo = n_tasks * self.rank // self.world_size
        hi = n_tasks * (self.rank + 1) // self.world_size
        return slice(lo, hi)

    def count(self, n_tasks):
        """How many tasks of a meta-batch of ``n_tasks`` this process computes."""
        share = self.share(n_tasks)
        return share.stop - share.start

    def run(self, compute, batch):
        """``compute`` (a per-batch function returning ``(tensors, task_losses,
        task_norms)``, tensors a mean over tasks) on this process's share of ``batch``;
        returns the same for the whole batch, identical on every process.

        The shares' means are weighted by their sizes and summed in one all-reduce of
        one flat buffer (with the per-task losses and norms, each process filling its
        own slots of zero vectors).
        """
        n_tasks = batch[0].shape[0]
        share = self.share(n_tasks)
        tensors, losses, norms = compute(tuple(t[share] for t in batch))
        names = list(tensors)
        weight = self.count(n_tasks) / n_tasks
        per_task = losses.new_zeros(2, n_tasks)
        per_task[0, share], per_task[1, share] = losses.detach(), norms.detach()
        flat = torch.cat([tensors[k].reshape(-1) * weight for k in names]
                         + [per_task.reshape(-1).to(tensors[names[0]].dtype)])
        dist.all_reduce(flat)
        out, offset = {}, 0
        for k in names:
            n = tensors[k].numel()
            out[k] = flat[offset:offset + n].view_as(tensors[k])
            offset += n
        per_task = flat[offset:].view(2, n_tasks).to(losses.dtype)
        return out, per_task[0], per_task[1]

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process (plain Python objects)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def current_processes(device):
    """The processes meta-training is shared with, or None when it runs alone.

    Joins (initialises) the default process group when the script was launched by
    ``torchrun`` and has not done so itself.
    """
    if not dist.is_available():
        return None
    if not dist.is_initialized():
        if not _launched_by_torchrun():
            return None
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() == 1:
        return None
    return Processes(dist.get_rank(), dist.get_world_size())


def local_device(device, processes):
    """Each process its own GPU: ``cuda`` means ``cuda:LOCAL_RANK`` under torchrun."""
    if processes is None or device.type != "cuda" or device.index is not None:
        return device
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    return device
