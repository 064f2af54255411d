"""The same studies on one process, on a process pool and on a real Dask cluster give the same numbers.

The cluster is real: a scheduler and two worker processes (LocalCluster(processes=True)),
each importing lhlab and running `analysis.power.run_chunk` on pickled tasks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from analysis import power, power_run
from experiment.errors import BadInput
from experiment.protocol import load_protocol

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = REPO / "protocols" / "unsolvable-anagrams.yaml"


def _tasks(n_studies: int = 3):
    proto = load_protocol(PROTOCOL)
    path = str(proto.path.resolve())
    return [power.StudyTask(path, proto.sha256, prof, n, i, 7)
            for prof in ("replication", "no-effect") for n in (3, 4) for i in range(n_studies)]


def test_pool_and_dask_cluster_give_the_same_numbers():
    distributed = pytest.importorskip("dask.distributed")
    tasks = _tasks()
    one = power.results_frame(power_run.run_tasks(tasks, workers=1).chunks)
    pool = power.results_frame(power_run.run_tasks(tasks, workers=2).chunks)
    pd.testing.assert_frame_equal(one, pool)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        run = power_run.run_tasks(tasks, client=client)
        pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids      # really other processes
    pd.testing.assert_frame_equal(power.results_frame(run.chunks), one)
    assert sorted(run.finished_cells) == sorted({(t.profile, t.n_per_group) for t in tasks})
    summary = power.summarise(one)
    assert set(summary["profile"]) == {"replication", "no-effect"}
    assert summary[summary["plan"] == "primary"]["studies"].tolist() == [3, 3, 3, 3]


def test_unreachable_scheduler_is_one_line_within_seconds():
    pytest.importorskip("dask.distributed")
    t0 = time.monotonic()
    with pytest.raises(BadInput, match="cannot reach the Dask scheduler"):
        power_run.dask_client("tcp://127.0.0.1:9", timeout=2)
    assert time.monotonic() - t0 < 10
