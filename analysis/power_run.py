"""Running many simulated studies: on a local process pool, or on a Dask distributed cluster.

The unit of work is `analysis.power.run_study(StudyTask)`: a pure function of the protocol
file (path + SHA-256), the profile, n per group, the study's index and the run's seed. Tasks are
sent in small chunks (`run_chunk`) cell by cell (profile, n), so cells finish one after the other
and an interrupted run keeps every finished cell. Because a study's seed never depends on the
worker, the numbers are the same for any number of processes and on Dask (tests/test_power_dask.py).

Dask: `dask_client("tcp://host:8786")` connects to a running scheduler; `dask_client("local")`
starts a LocalCluster of worker processes on this machine. A remote worker needs the same lhlab
version installed (and its dependencies: numpy, pandas, scipy, statsmodels, dask.distributed),
nothing else: the protocol file and every stimulus file it names travel with the work
(`ProtocolBundle`, scattered once to every worker), and each worker writes them into a private
temporary folder of its own (`materialise`), so workers need no shared folder and may run in
any directory. A worker whose lhlab differs from the client's refuses the work with a one-line
error naming both versions (a different simulator would give different numbers).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
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
    """Tasks in submission chunks that never mix two cells (profile, n) or two protocols."""
    out: list[list[StudyTask]] = []

    def key(t: StudyTask) -> tuple:
        return t.protocol, t.sha256, t.profile, t.n_per_group
    for t in tasks:
        if out and len(out[-1]) < size and key(out[-1][0]) == key(t):
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


# -- the protocol travels with the work -------------------------------------------------------------

@dataclass(frozen=True)
class ProtocolBundle:
    """A protocol file and every stimulus file it names, as bytes with their paths relative to a
    common folder (so `../stimuli/...` still resolves), the lhlab version that made the bundle
    and a digest of all of it (the worker's cache folder)."""

    source: tuple           # (path, sha256) of the protocol on the client: what StudyTask names
    protocol: str           # the protocol's path inside the bundle (POSIX, relative)
    files: tuple            # ((relative POSIX path, bytes), ...), the protocol file first
    lhlab: str | None
    digest: str


def protocol_bundle(path: str, sha256: str) -> ProtocolBundle:
    """The bundle of the protocol at `path` (refused when its SHA-256 is not `sha256`)."""
    from experiment.tasks import TASKS
    from experiment.versions import package_version
    from analysis.power import _protocol
    proto = _protocol(path, sha256)
    main = proto.path.resolve()
    names = [main]
    for ph in proto.phases.values():
        for prm in TASKS[ph.task].params:
            if prm.kind == "file" and isinstance(ph.params.get(prm.name), str):
                f = (proto.base_dir / ph.params[prm.name]).resolve()
                if f not in names:
                    names.append(f)
    root = Path(os.path.commonpath([str(f.parent) for f in names]))
    files = tuple((f.relative_to(root).as_posix(), f.read_bytes()) for f in names)
    if hashlib.sha256(files[0][1]).hexdigest() != sha256:
        raise BadInput(f"{path} changed while the power analysis started; start it again")
    version = package_version("lhlab")
    h = hashlib.sha256(f"lhlab {version}".encode())
    for rel, data in files:
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return ProtocolBundle((path, sha256), files[0][0], files, version, h.hexdigest())


_MATERIALISED: dict[str, str] = {}


def materialise(bundle: ProtocolBundle) -> str:
    """Write the bundle into this machine's temporary folder (once per bundle and machine;
    several worker processes may race: the first complete copy wins) and return the path of
    its protocol file. Refuses a bundle made by another lhlab version."""
    from experiment.versions import package_version
    mine = package_version("lhlab")
    if bundle.lhlab != mine:
        raise RuntimeError(f"this Dask worker has lhlab {mine}, the client lhlab {bundle.lhlab}: install the "
                           "same lhlab version on every worker (a different simulator gives different numbers)")
    if bundle.digest in _MATERIALISED and Path(_MATERIALISED[bundle.digest]).is_file():
        return _MATERIALISED[bundle.digest]     # (a long-lived worker's temp folder may be cleaned)
    base = Path(tempfile.gettempdir()) / f"lhlab-protocols-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    final = base / bundle.digest
    if not (final / ".complete").exists():
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=base))
        for rel, data in bundle.files:
            parts = PurePosixPath(rel).parts
            if PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
                raise RuntimeError(f"protocol bundle: refusing the path {rel!r}")
            out = work.joinpath(*parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        (work / ".complete").write_bytes(b"")
        try:
            os.rename(work, final)
        except OSError:             # another process finished first: use its copy
            import shutil
            shutil.rmtree(work, ignore_errors=True)
            if not (final / ".complete").exists():
                raise
    path = str(final.joinpath(*PurePosixPath(bundle.protocol).parts))
    _MATERIALISED[bundle.digest] = path
    return path


def run_chunk_remote(chunk: list[StudyTask], bundles: list[ProtocolBundle]) -> list[dict]:
    """`run_chunk` on a worker that has only the bundles: each task's protocol is read from
    the worker's own copy (same bytes, so the same SHA-256 and the same numbers)."""
    where = {b.source: materialise(b) for b in bundles}
    return run_chunk([replace(t, protocol=where[(t.protocol, t.sha256)]) for t in chunk])


def _run_dask(client, chunks, collect, stop) -> None:
    from dask.distributed import as_completed
    sources = sorted({(t.protocol, t.sha256) for chunk in chunks for t in chunk})
    bundles = [protocol_bundle(path, sha) for path, sha in sources]
    scattered = client.scatter(bundles, broadcast=True, hash=False)
    futures = client.map(run_chunk_remote, chunks, bundles=scattered, pure=False)
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
