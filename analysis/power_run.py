"""Running many simulated studies: on a local process pool, or on a Dask distributed cluster.

The unit of work is `analysis.power.run_study(StudyTask)`: a pure function of the protocol
file (path + SHA-256), the profile, n per group, the study's index and the run's seed. Tasks are
sent in small chunks (`run_chunk`) cell by cell (profile, n), so cells finish one after the other
and an interrupted run keeps every finished cell. Because a study's seed never depends on the
worker, the numbers are the same for any number of processes and on Dask (tests/test_power_dask.py).

Dask: `dask_client("tcp://host:8786")` connects to a running scheduler whose workers have lhlab
installed and can read the protocol and stimulus files at the same paths (a shared folder);
`dask_client("local")` starts a LocalCluster of worker processes on this machine.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from experiment.errors import BadInput

from analysis.power import StudyTask, run_chunk

CHUNK = 4       # studies per submission: few enough round trips, small enough for a fair spread


@dataclass
class Run:
    """What came back: study results (as run_study returns them), the cells whose every study
    finished, and whether the run was stopped early."""

    chunks: list[dict] = field(default_factory=list)
    finished_cells: list[tuple] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0


def chunked(tasks: list[StudyTask], size: int = CHUNK) -> list[list[StudyTask]]:
    """Tasks in submission chunks that never mix two cells (profile, n)."""
    out: list[list[StudyTask]] = []
    for t in tasks:
        if out and len(out[-1]) < size and (out[-1][0].profile, out[-1][0].n_per_group) == (t.profile, t.n_per_group):
            out[-1].append(t)
        else:
            out.append([t])
    return out


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_tasks(tasks: list[StudyTask], workers: int | None = None, client=None,
              progress: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> Run:
    """Run every task: in this process (workers=1), on a process pool (workers>1), or on the
    Dask `client`. `progress(k)` is called with the number of studies just finished. On
    KeyboardInterrupt or `stop`, pending work is cancelled and the finished part returned."""
    t0 = time.monotonic()
    per_cell = Counter((t.profile, t.n_per_group) for t in tasks)
    done: Counter = Counter()
    run = Run()

    def collect(results: list[dict], chunk: list[StudyTask]) -> None:
        run.chunks.extend(results)
        cell = (chunk[0].profile, chunk[0].n_per_group)
        done[cell] += len(chunk)
        if done[cell] == per_cell[cell]:
            run.finished_cells.append(cell)
        if progress is not None:
            progress(len(chunk))

    chunks = chunked(tasks)
    try:
        if client is not None:
            _run_dask(client, chunks, collect, stop)
        elif (workers or default_workers()) <= 1:
            for chunk in chunks:
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                collect(run_chunk(chunk), chunk)
        else:
            _run_pool(workers or default_workers(), chunks, collect, stop)
    except KeyboardInterrupt:
        run.stopped = True
    run.seconds = time.monotonic() - t0
    return run


def _run_pool(workers: int, chunks, collect, stop) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint)
    try:
        todo = iter(chunks)
        pending = {}
        for chunk in todo:                     # keep a few chunks per worker in flight, in cell order
            pending[pool.submit(run_chunk, chunk)] = chunk
            if len(pending) >= 3 * workers:
                break
        while pending:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in finished:
                chunk = pending.pop(fut)
                collect(fut.result(), chunk)
                nxt = next(todo, None)
                if nxt is not None:
                    pending[pool.submit(run_chunk, nxt)] = nxt
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _ignore_sigint() -> None:
    """Workers leave Ctrl+C to the parent, which cancels the pending work and keeps what finished."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_dask(client, chunks, collect, stop) -> None:
    from dask.distributed import as_completed
    futures = client.map(run_chunk, chunks, pure=False)
    chunk_of = {f.key: chunk for f, chunk in zip(futures, chunks)}
    try:
        for fut in as_completed(futures):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            collect(fut.result(), chunk_of[fut.key])
    except BaseException:
        client.cancel(futures)
        raise


def dask_client(address: str, workers: int | None = None, timeout: float = 5.0):
    """A dask.distributed Client: `local` starts a LocalCluster of `workers` processes; any other
    value is a scheduler address (tcp://host:8786). BadInput (exit 2) within `timeout` seconds
    when the scheduler cannot be reached. Returns (client, closer)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BadInput("--dask needs dask.distributed: pip install 'dask[distributed]'") from None
    if address == "local":
        cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()
        return client, close
    if "://" not in address:
        raise BadInput(f"--dask {address!r}: give a scheduler address such as tcp://HOST:8786, or 'local'")
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise BadInput(f"--dask {address}: cannot reach the Dask scheduler within {timeout:g} s "
                       f"({type(e).__name__}); start it with `dask scheduler` or check the address") from None
    return client, client.close
