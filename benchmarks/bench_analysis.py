"""Benchmark `lhlab analyze`: wall time and peak memory for 100, 1,000 and 10,000 participants.

    .venv/bin/python benchmarks/bench_analysis.py [--sizes 100 1000 10000] [--data DIR] [--jobs 2]

Studies are simulated once with the real task code (data-only, default profile) into
--data (default /tmp/lhlab-bench-analysis) and reused on later runs. Each analysis runs in a
fresh process (`analyze` + `write_outputs`: every CSV including trials.csv, Parquet, the APA
tables, methods.md, the figures as PNG/SVG/PDF and report.html, pilot data included, and the
trial-level models, which `--trial-models auto` fits up to 10,000 participants) so its peak
RSS is its own. Targets: 1,000 participants in under 10 s and 10,000 in under 60 s on 2 cores.

Page cache: by default every file of the study is read once before the timed run (`warm`: the
files are in the OS cache, as when a study is analysed on the PC that just wrote or copied it, or
analysed again). `--cache cold` drops the page cache first (root only: /proc/sys/vm/drop_caches),
so the figure includes waiting on the disk: on a virtual disk that answers ~2,000 small random
reads a second, the 86,667 files of 10,000 participants cost ~40 s of waiting alone. `both`
prints both.
The "models s" column is the trial-level models' share of the analysis (the logistic mixed model is
fitted up to 2,000 participants in auto mode).

First, the trial-level mixed models alone (analysis/glmm.py) on a synthetic test phase of 60
participants x 20 items (3 groups, participant and item effects): the logistic GLMM (Laplace) and
the crossed LMM, best of 3. Target: the GLMM under 2 s. `--glmm-only` prints just that, with
`--glmm-sizes` for other numbers of participants.
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


def bench_glmm(participants: int = 60, items: int = 20, repeats: int = 3, seed: int = 1) -> dict:
    """Seconds (best of `repeats`) of glmm.glmm and glmm.lmm on a synthetic crossed test phase."""
    import numpy as np
    from analysis import glmm
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(participants), items)
    item = np.tile(np.arange(items), participants)
    grp = pid % 3
    X = (grp[:, None] == np.arange(3)).astype(float)
    eta = np.array([-0.3, -1.0, -1.0])[grp] + rng.normal(0, 0.7, participants)[pid] + rng.normal(0, 0.6, items)[item]
    y = (rng.random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(float)
    lat = 2.5 + 0.4 * eta + rng.normal(0, 0.5, len(eta))
    out = {"participants": participants, "items": items, "trials": len(y), "glmm_s": np.inf, "lmm_s": np.inf}
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = glmm.glmm(y, X, [pid, item], ["participant", "item"])
        t1 = time.perf_counter()
        glmm.lmm(lat, X, [pid, item], ["participant", "item"])
        t2 = time.perf_counter()
        out["glmm_s"], out["lmm_s"] = min(out["glmm_s"], t1 - t0), min(out["lmm_s"], t2 - t1)
    out.update(converged=m["converged"], evals=m["evals"])
    return out


def print_glmm(sizes: list[int]) -> None:
    for n in sizes:
        g = bench_glmm(n)
        print(f"trial-level models, {g['participants']:,} participants x {g['items']} items ({g['trials']:,} trials): "
              f"logistic GLMM (Laplace) {g['glmm_s']:.2f} s ({g['evals']} deviance evaluations, "
              f"{'converged' if g['converged'] else 'NOT converged'}"
              + (f"; {'meets' if g['glmm_s'] < 2 else 'MISSES'} the 2 s target" if n == 60 else "")
              + f"), crossed LMM (REML) {g['lmm_s']:.2f} s; best of 3")


def warm_cache(study: Path) -> tuple[int, float]:
    """Read once (into the OS page cache) every file `lhlab analyze` reads: session records,
    trial files and the study's own files, not the JSON sidecars or frame logs (a VM's page
    cache may not hold the whole folder). (files, seconds)."""
    t0, n = time.monotonic(), 0
    for root, _dirs, files in os.walk(study):
        for name in files:
            if root != str(study) and not name.endswith(("_beh.tsv", "_session.json")):
                continue
            with open(os.path.join(root, name), "rb") as f:
                while f.read(1 << 16):
                    pass
            n += 1
    return n, time.monotonic() - t0


def drop_cache() -> bool:
    """Empty the OS page cache (Linux, root); False when this process may not."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


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
        for key in ("loaded", "fitting trial-level models", "writing tables", "drawing plots"):
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
        "models_s": t_analyze - marks["fitting trial-level models"] if "fitting trial-level models" in marks else 0.0,
        "peak_rss_mb": peak / 1024, "rss_before_mb": base_rss / 1024,
    }))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lhlab-bench-analysis")
    ap.add_argument("--jobs", type=int, default=2, help="processes for generating the studies")
    ap.add_argument("--child", nargs=2, type=Path, metavar=("STUDY", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--cache", choices=("warm", "cold", "both"), default="warm",
                    help="files in the OS page cache before the run (warm, default), dropped first (cold, root "
                         "only), or both")
    ap.add_argument("--glmm-only", action="store_true", help="time the trial-level mixed models only")
    ap.add_argument("--glmm-sizes", type=int, nargs="+", default=[60], help="participants (x 20 items) for that")
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    print_glmm(args.glmm_sizes)
    if args.glmm_only:
        return 0
    print(f"lhlab analyze benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", file=sys.stderr)
    rows = []
    modes = ("cold", "warm") if args.cache == "both" else (args.cache,)
    for n in sorted(args.sizes):
        study = ensure_study(args.data, n, args.jobs)
        for mode in modes:
            if mode == "cold" and not drop_cache():
                print("--cache cold needs root (writes /proc/sys/vm/drop_caches); skipped", file=sys.stderr)
                continue
            if mode == "warm":
                dropped = drop_cache()      # so that the read below measures the disk (when allowed)
                files, secs = warm_cache(study)
                print(f"  {n} participants: read the {files} files analyze reads into the page cache in {secs:.1f} s "
                      f"({'from a cold cache: the disk' if dropped else 'cache state unknown'}; not timed)",
                      file=sys.stderr)
            with tempfile.TemporaryDirectory() as out:
                r = subprocess.run([sys.executable, __file__, "--child", str(study), out], capture_output=True,
                                   text=True, cwd=ROOT)
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return 1
            rows.append({**json.loads(r.stdout.strip().splitlines()[-1]), "cache": mode})
    print(f"{'participants':>12} {'cache':>5} {'trials':>9} {'files':>7} {'load s':>7} {'stats s':>8} {'models s':>9} "
          f"{'csv s':>6} {'report s':>9} {'total s':>8} {'s/1000':>7} {'peak MB':>8} {'(start MB)':>10}")
    for r in rows:
        print(f"{r['participants']:>12} {r['cache']:>5} {r['trials']:>9} {r['files']:>7} {r['load_s']:>7.2f} "
              f"{r['measures_stats_s']:>8.2f} {r['models_s']:>9.2f} {r['tables_s']:>6.2f} {r['plots_report_s']:>9.2f} {r['total_s']:>8.2f} "
              f"{1000 * r['total_s'] / r['participants']:>7.2f} {r['peak_rss_mb']:>8.0f} {r['rss_before_mb']:>10.0f}")
    for n, target in ((1000, 10), (10000, 60)):
        for r in rows:
            if r["participants"] == n:
                t = r["total_s"]
                print(f"{n:,} participants, {r['cache']} cache: {t:.1f} s "
                      f"({'meets' if t < target else 'MISSES'} the {target} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
