"""Benchmark `lhlab analyze`: wall time and peak memory for 100, 1,000 and 10,000 participants.

    .venv/bin/python benchmarks/bench_analysis.py [--sizes 100 1000 10000] [--data DIR] [--jobs 2]

Studies are simulated once with the real task code (data-only, default profile) into
--data (default /tmp/lhlab-bench-analysis) and reused on later runs. Each analysis runs in a
fresh process (`analyze` + `write_outputs`: every CSV including trials.csv, Parquet, the APA
tables, methods.md, the figures as PNG/SVG/PDF and report.html, pilot data included, and the
trial-level models, which `--trial-models auto` fits up to 10,000 participants) so its peak
RSS is its own. Targets: 1,000 participants in under 10 s and 10,000 in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
STUDY_ID = "unsolvable-anagrams"


def _generate_slice(args):
    data, start, n, seed = args
    os.fsync = lambda fd: None      # generating only (not measured): the files are the same without fsync
    from test_analysis_cohort import run_sessions
    run_sessions(Path(data), n, "default", seed=seed, start=start)
    return n


def ensure_study(data: Path, n: int, jobs: int) -> Path:
    """A study of `n` simulated participants under data/n<n>/ (made once, then reused)."""
    base = data / f"n{n}"
    study = base / STUDY_ID
    done = base / ".complete"
    if done.exists():
        return study
    if base.exists():
        import shutil
        shutil.rmtree(base)
    base.mkdir(parents=True)
    t0 = time.monotonic()
    per = -(-n // jobs)
    slices = [(str(base), 1 + k * per, min(per, n - k * per), 1000 + k) for k in range(jobs) if k * per < n]
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        list(ex.map(_generate_slice, slices))
    done.write_text(f"{n}\n")
    print(f"  generated {n} participants in {time.monotonic() - t0:.0f} s ({study})", file=sys.stderr)
    return study


def child(study: Path, out: Path) -> None:
    """Run one analysis in this process and print its figures as JSON."""
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="lhlab-bench-mpl-"))
    import matplotlib  # noqa: F401  (imports are not part of the analysis time)
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    from analysis.exclusions import ExclusionRules
    from analysis.pipeline import Options, analyze, write_outputs
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    marks = {}
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        for key in ("loaded", "writing tables", "drawing plots"):
            if msg.startswith(key):
                marks.setdefault(key, time.perf_counter() - t0)

    result = analyze(study, Options(rules=ExclusionRules(pilot=False)), progress=progress)
    t_analyze = time.perf_counter() - t0
    write_outputs(result, out, progress=progress)
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "participants": len(result.study.participants), "trials": len(result.study.trials),
        "files": int(result.study.sessions["phases"].str.count(";").add(1).sum()),
        "load_s": marks.get("loaded"), "measures_stats_s": t_analyze - marks.get("loaded", 0),
        "tables_s": marks.get("drawing plots", total) - marks.get("writing tables", t_analyze),
        "plots_report_s": total - marks.get("drawing plots", total), "total_s": total,
        "peak_rss_mb": peak / 1024, "rss_before_mb": base_rss / 1024,
    }))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lhlab-bench-analysis")
    ap.add_argument("--jobs", type=int, default=2, help="processes for generating the studies")
    ap.add_argument("--child", nargs=2, type=Path, metavar=("STUDY", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    print(f"lhlab analyze benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", file=sys.stderr)
    rows = []
    for n in sorted(args.sizes):
        study = ensure_study(args.data, n, args.jobs)
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, __file__, "--child", str(study), out], capture_output=True,
                               text=True, cwd=ROOT)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"{'participants':>12} {'trials':>9} {'files':>7} {'load s':>7} {'stats s':>8} {'csv s':>6} "
          f"{'report s':>9} {'total s':>8} {'s/1000':>7} {'peak MB':>8} {'(start MB)':>10}")
    for r in rows:
        print(f"{r['participants']:>12} {r['trials']:>9} {r['files']:>7} {r['load_s']:>7.2f} "
              f"{r['measures_stats_s']:>8.2f} {r['tables_s']:>6.2f} {r['plots_report_s']:>9.2f} {r['total_s']:>8.2f} "
              f"{1000 * r['total_s'] / r['participants']:>7.2f} {r['peak_rss_mb']:>8.0f} {r['rss_before_mb']:>10.0f}")
    for n, target in ((1000, 10), (10000, 60)):
        hit = [r for r in rows if r["participants"] == n]
        if hit:
            t = hit[0]["total_s"]
            print(f"{n:,} participants: {t:.1f} s ({'meets' if t < target else 'MISSES'} the {target} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
