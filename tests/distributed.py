"""Real multi-process runs for the distributed tests: ``run_workers(fn, world_size, *args)``
starts ``world_size`` processes on this machine (gloo over loopback, a free port), runs
``fn(rank, world_size, *args)`` in each, and returns what each returned, in rank order.

Every run is bounded in time; a worker that raises makes the run fail with that worker's
traceback. ``fn`` must be a module-level function (it is pickled into the workers), and what it
returns must pickle (tensors are fine).
"""

from __future__ import annotations

import os
import pickle
import socket
import traceback

import torch.multiprocessing as mp

TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, fn, args, queue):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        try:
            # pickled here into bytes: torch's queue would share tensors through file
            # descriptors, which die with the worker before the parent reads them
            queue.put((rank, "ok", pickle.dumps(fn(rank, world_size, *args))))
        finally:
            dist.destroy_process_group()
    except BaseException:  # reported to the parent, which fails the test with it
        queue.put((rank, "error", traceback.format_exc()))


def run_workers(fn, world_size: int, *args, timeout: float = TIMEOUT_S) -> list:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, world_size, port, fn, args, queue))
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    results: dict[int, object] = {}
    errors = []
    try:
        for _ in range(world_size):
            rank, status, value = queue.get(timeout=timeout)
            if status == "error":
                errors.append(f"rank {rank}:\n{value}")
                break
            results[rank] = pickle.loads(value)
    except Exception as e:  # queue.Empty: a worker hung or died without a word
        errors.append(f"no answer from every rank within {timeout:.0f} s ({e!r})")
    finally:
        for p in procs:
            p.join(timeout=10 if not errors else 1)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise AssertionError("distributed run failed: " + "\n".join(errors))
    return [results[r] for r in range(world_size)]
