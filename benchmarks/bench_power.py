"""Benchmark `lhlab power`'s unit of work: 1,000 studies of 3 x 20 participants of
protocols/unsolvable-anagrams.yaml, each simulated in memory and analysed with the planned test.

    .venv/bin/python benchmarks/bench_power.py [--studies 1000] [--per-group 20] [--workers K]
                                               [--profile replication] [--dask URL|local]

Runs the studies exactly as `lhlab power` does (analysis.power_run.run_tasks over a process pool
of every core, or a Dask cluster) and prints the wall time, the throughput, and the per-study
split into simulation (60 sessions through Session and the task code, in memory) and analysis
(tidy tables by the loader's reader, measures, exclusions, planned tests). Target: 1,000 studies
in under 5 minutes on 2 cores. The machine's load average is printed too: other processes on
the same cores slow the run down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=1000, help="simulated studies (default 1000)")
    ap.add_argument("--per-group", type=int, default=20, help="participants per group (default 20)")
    ap.add_argument("--workers", type=int, help="processes (default: every core)")
    ap.add_argument("--profile", default="replication", help="simulated participant profile (default replication)")
    ap.add_argument("--dask", help="run on a Dask cluster: scheduler address or 'local'")
    ap.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    args = ap.parse_args()

    from analysis import power, power_run
    from experiment.protocol import load_protocol
    proto = load_protocol(ROOT / "protocols" / "unsolvable-anagrams.yaml")
    path = str(proto.path.resolve())
    tasks = [power.StudyTask(path, proto.sha256, args.profile, args.per_group, i, args.seed)
             for i in range(args.studies)]
    workers = args.workers or power_run.default_workers()
    client, close = (None, lambda: None)
    if args.dask:
        client, close = power_run.dask_client(args.dask, workers)
    load0 = os.getloadavg()
    cpu0 = os.times()
    t0 = time.perf_counter()
    try:
        run = power_run.run_tasks(tasks, workers=workers, client=client)
    finally:
        close()
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    load1 = os.getloadavg()
    sim = [c["simulate_s"] for c in run.chunks]
    ana = [c["analyse_s"] for c in run.chunks]
    n = len(run.chunks)
    summary = power.summarise(power.results_frame(run.chunks))
    prim = summary[summary["plan"] == "primary"].iloc[0]
    cpu_children = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system)
    print(f"{n} studies of {len(proto.conditions)} x {args.per_group} participants "
          f"({n * len(proto.conditions) * args.per_group} simulated sessions), profile {args.profile}, "
          f"{'dask ' + args.dask if args.dask else f'{workers} worker processes'}")
    print(f"wall time: {wall:.1f} s ({n / wall:.2f} studies/s; target: {args.studies} in < 300 s)")
    print(f"per study (inside a worker): simulate {statistics.mean(sim) * 1000:.0f} ms "
          f"(median {statistics.median(sim) * 1000:.0f}), analyse {statistics.mean(ana) * 1000:.0f} ms "
          f"(median {statistics.median(ana) * 1000:.0f}); "
          f"per session {statistics.mean(sim) / (len(proto.conditions) * args.per_group) * 1000:.1f} ms")
    sim_cpu = [c["simulate_cpu_s"] for c in run.chunks]
    ana_cpu = [c["analyse_cpu_s"] for c in run.chunks]
    per_cpu = statistics.mean(sim_cpu) + statistics.mean(ana_cpu)
    print(f"per study, CPU time: simulate {statistics.mean(sim_cpu) * 1000:.0f} ms, analyse "
          f"{statistics.mean(ana_cpu) * 1000:.0f} ms; on {workers} otherwise idle cores {args.studies} studies "
          f"would take about {per_cpu * args.studies / workers:.0f} s")
    print(f"CPU time of the worker processes: {cpu_children:.0f} s "
          f"({cpu_children / max(wall, 1e-9):.2f} cores busy on average)")
    print(f"load average before/after: {load0[0]:.1f} / {load1[0]:.1f} on {os.cpu_count()} cores "
          "(above the core count: other processes shared the CPU)")
    print(f"result: power of {proto.raw['analysis']['primary']} = {prim['power']:.3f} "
          f"[{prim['ci_low']:.3f}, {prim['ci_high']:.3f}], mean g {prim['mean_g']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
