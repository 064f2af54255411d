"""Benchmark the registry: assignment throughput and latency with concurrent stations.

    .venv/bin/python benchmarks/bench_registry.py [--stations 8] [--per-station 100] [--backend both]

Each station is a process that registers participants one after the other through
`Registry.add_participant` (label, permuted-block slot, assignment log, then the participant
read back), as the launcher's "New participant" does, and times every call.
- postgresql: a throwaway local server (tests/pgserver.py, unix socket; run as root it runs as
  the `postgres` user), every station with its own study folder, as separate PCs would be.
  Over a lab network add about 15 round trips per assignment.
- sqlite: every station on one study folder on this PC (WAL, BEGIN IMMEDIATE).
A 1-station run of each backend is the baseline. Prints one JSON line per run and a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
PROTOCOL = ROOT / "protocols" / "unsolvable-anagrams.yaml"


def _station(url: str, folder: str, n: int, barrier, out) -> None:
    os.environ["LHLAB_REGISTRY"] = url
    from experiment import datafile
    from experiment.protocol import load_protocol
    from experiment.registry import Registry
    proto = load_protocol(PROTOCOL)
    study = datafile.study_dir(Path(folder), proto.study_id)
    with Registry.open(study, proto, seed=1) as reg:
        barrier.wait()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            reg.add_participant(proto)
            times.append(time.perf_counter() - t0)
    out.put(times)


def run(url: str, stations: int, per_station: int, work: Path, backend: str) -> dict:
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(stations + 1), ctx.Queue()
    folders = [work / f"{backend}-{stations}-s{i}" for i in range(stations)] if backend == "postgresql" \
        else [work / f"{backend}-{stations}"] * stations
    procs = [ctx.Process(target=_station, args=(url, str(f), per_station, barrier, out)) for f in folders]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    times = [t for _ in procs for t in out.get(timeout=600)]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    times.sort()
    q = statistics.quantiles(times, n=100)
    return {"backend": backend, "stations": stations, "assignments": len(times), "wall_s": round(wall, 2),
            "per_s": round(len(times) / wall, 1), "p50_ms": round(q[49] * 1e3, 1), "p95_ms": round(q[94] * 1e3, 1),
            "p99_ms": round(q[98] * 1e3, 1), "max_ms": round(times[-1] * 1e3, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=8)
    ap.add_argument("--per-station", type=int, default=100)
    ap.add_argument("--backend", choices=("both", "sqlite", "postgresql"), default="both")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lhlab-bench-registry-"))
    results = []
    server = None
    try:
        if args.backend in ("both", "postgresql"):
            from pgserver import PgServer
            server = PgServer()
            for n in (1, args.stations):
                url = server.create_database(f"bench{n}")
                results.append(run(url, n, args.per_station, work, "postgresql"))
                print(json.dumps(results[-1]), flush=True)
        if args.backend in ("both", "sqlite"):
            for n in (1, args.stations):
                results.append(run("sqlite", n, args.per_station, work, "sqlite"))
                print(json.dumps(results[-1]), flush=True)
    finally:
        if server is not None:
            server.destroy()
    print(f"\n{'backend':<11}{'stations':>9}{'assignments':>12}{'per s':>8}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'p99 ms':>8}{'max ms':>8}")
    for r in results:
        print(f"{r['backend']:<11}{r['stations']:>9}{r['assignments']:>12}{r['per_s']:>8}{r['p50_ms']:>8}"
              f"{r['p95_ms']:>8}{r['p99_ms']:>8}{r['max_ms']:>8}")
    print(f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
