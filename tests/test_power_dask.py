"""The same studies on one process, on a process pool and on a real Dask cluster give the same numbers.

The cluster is real: a scheduler and two worker processes (LocalCluster(processes=True)),
each importing lhlab and running `analysis.power.run_chunk` on pickled tasks. The workers are
given no file: the protocol and its stimuli travel with the work (power_run.ProtocolBundle), so
in the cluster test the client's copy of the protocol is deleted as soon as the bundle is made.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis import power, power_run
from experiment.errors import BadInput
from experiment.protocol import load_protocol

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = REPO / "protocols" / "unsolvable-anagrams.yaml"


def _tasks(n_studies: int = 3, protocol: Path = PROTOCOL):
    proto = load_protocol(protocol)
    path = str(proto.path.resolve())
    return [power.StudyTask(path, proto.sha256, prof, n, i, 7)
            for prof in ("replication", "no-effect") for n in (3, 4) for i in range(n_studies)]


def _copy_of_the_protocol(tmp_path: Path) -> Path:
    """unsolvable-anagrams.yaml and the stimuli it names, in a folder of their own."""
    shutil.copytree(REPO / "protocols", tmp_path / "protocols")
    shutil.copytree(REPO / "stimuli", tmp_path / "stimuli")
    return tmp_path / "protocols" / PROTOCOL.name


def test_pool_and_dask_cluster_give_the_same_numbers(tmp_path, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    copy = _copy_of_the_protocol(tmp_path)
    tasks = _tasks(protocol=copy)
    one = power.results_frame(power_run.run_tasks(tasks, workers=1).chunks)
    pool = power.results_frame(power_run.run_tasks(tasks, workers=2).chunks)
    pd.testing.assert_frame_equal(one, pool)
    made = power_run.protocol_bundle

    def bundle_then_delete(path, sha256):
        # the client reads the files once; afterwards no worker could find them on disk
        bundle = made(path, sha256)
        shutil.rmtree(tmp_path / "protocols")
        shutil.rmtree(tmp_path / "stimuli")
        return bundle
    monkeypatch.setattr(power_run, "protocol_bundle", bundle_then_delete)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        run = power_run.run_tasks(tasks, client=client)
        pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids      # really other processes
    assert not copy.exists()
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


def test_the_protocol_travels_with_the_work(tmp_path):
    """A worker rebuilds the protocol and its stimulus files from the bundle alone: same bytes,
    same SHA-256, `../stimuli` paths still resolve; a worker with another lhlab refuses."""
    copy = _copy_of_the_protocol(tmp_path)
    proto = load_protocol(copy)
    bundle = power_run.protocol_bundle(str(copy), proto.sha256)
    names = [rel for rel, _ in bundle.files]
    assert names[0] == "protocols/unsolvable-anagrams.yaml"
    assert "stimuli/anagrams/patterned-34251.tsv" in names and "stimuli/anagrams/training.tsv" in names
    shutil.rmtree(tmp_path / "protocols")
    shutil.rmtree(tmp_path / "stimuli")
    there = Path(power_run.materialise(bundle))
    assert load_protocol(there).sha256 == proto.sha256
    assert (there.parent / "../stimuli/anagrams/patterned-34251.tsv").is_file()
    stranger = power_run.ProtocolBundle(bundle.source, bundle.protocol, bundle.files, "0.0.0-other",
                                        bundle.digest + "x")
    with pytest.raises(RuntimeError, match="lhlab 0.0.0-other"):
        power_run.materialise(stranger)
