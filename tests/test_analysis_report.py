"""`lhlab analyze` end to end: exit codes, CSV tables, a self-contained report.html, and the
report rendered by headless Chromium (screenshot in test-artifacts/)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiment.cli import main
from test_analysis_cohort import ROOT, simulate_study

ARTIFACTS = ROOT / "test-artifacts"
TABLES = ["outcomes", "deficits", "descriptives", "anova", "welch", "kruskal", "effects", "assumptions", "binary",
          "contrasts", "mannwhitney", "survival", "logrank", "measures", "measure_catalog", "participants", "sessions",
          "trials", "exclusions", "yoking", "load_problems", "provenance"]


@pytest.fixture(scope="module", autouse=True)
def mpl_home(tmp_path_factory):
    old = os.environ.get("MPLCONFIGDIR")
    os.environ["MPLCONFIGDIR"] = str(tmp_path_factory.mktemp("mpl"))
    yield
    if old is None:
        os.environ.pop("MPLCONFIGDIR", None)
    else:
        os.environ["MPLCONFIGDIR"] = old


def lhlab(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    s = simulate_study(tmp_path_factory.mktemp("report"), 24, profile="default,helplessness_effect=0.9", seed=21)
    # one damaged file, so the report has a load problem to show
    victim = sorted(s.glob("sub-*/ses-1/beh/*_task-check_beh.tsv"))[0]
    victim.write_text(victim.read_text(encoding="utf-8")[:-5], encoding="utf-8")
    return s


@pytest.fixture(scope="module")
def analysed(study):
    code, out, err = lhlab("analyze", study, "--include-pilot")
    assert code == 0, err
    return study / "derivatives" / "lhlab-analysis", out, err


def test_writes_every_table_and_the_report(analysed):
    out_dir, stdout, stderr = analysed
    for name in TABLES:
        assert (out_dir / f"{name}.csv").is_file(), name
    assert (out_dir / "report.html").is_file()
    assert str(out_dir / "report.html") in stdout
    assert "24 participants analysed" in stdout or "23 participants analysed" in stdout
    d = pd.read_csv(out_dir / "deficits.csv")
    assert {"measure", "comparison", "deficit", "deficit_ci_low", "deficit_ci_high", "g", "direction"} <= set(d.columns)
    assert all(c.isidentifier() for name in TABLES for c in pd.read_csv(out_dir / f"{name}.csv", nrows=0).columns
               if name not in ("participants", "sessions"))
    desc = (out_dir / "dataset_description.json").read_text()
    assert '"DatasetType": "derivative"' in desc


def test_load_problems_are_printed_and_reported(analysed):
    out_dir, _, stderr = analysed
    assert "load problem" in stderr and "torn last row" in stderr
    probs = pd.read_csv(out_dir / "load_problems.csv")
    assert len(probs) == 2          # the torn row, and the file then short of its recorded rows
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    assert "torn last row" in html


def test_report_is_self_contained(analysed):
    html = (out_dir := analysed[0]) and (analysed[0] / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    srcs = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs), srcs[:3]
    assert html.count("data:image/png;base64,") >= 4     # learning curves, two means panels, survival
    for heading in ("Test-phase deficit", "Statistics: test phase", "Trials to criterion", "Manipulation check",
                    "Yoking check", "Exclusions", "Load problems", "Provenance"):
        assert heading in html
    sessions = pd.read_csv(out_dir / "sessions.csv")
    assert sessions["protocol_sha256"].iloc[0] in html
    prov = pd.read_csv(out_dir / "provenance.csv")
    assert {"protocol", "stimulus_file", "seeds", "analysis_version_pandas", "exclusion_rule"} <= set(prov["key"])
    stim = prov.loc[prov["key"] == "stimulus_file", "value"]
    assert stim.str.contains("patterned-34251.tsv sha256 ").any() and html.count("stimulus_file") == len(stim)


def test_progress_goes_to_stderr_and_quiet_silences_it(study, tmp_path):
    code, out, err = lhlab("analyze", study, "--include-pilot", "--out", tmp_path / "o", "--no-plots",
                           "--no-trials-csv", "--quiet")
    assert code == 0
    assert "lhlab analyze: loaded" not in err
    assert not (tmp_path / "o" / "trials.csv").exists()
    assert "data:image/png" not in (tmp_path / "o" / "report.html").read_text()
    code, out, err = lhlab("analyze", study, "--include-pilot", "--out", tmp_path / "p", "--no-plots")
    assert "lhlab analyze: loaded 24 sessions" in err


def test_a_simulated_only_folder_is_analysed_and_marked_on_every_page(study, tmp_path):
    code, out, err = lhlab("analyze", study, "--out", tmp_path / "o")
    assert code == 0, err
    assert "participants analysed, 0 excluded" in out and "[SIMULATED DATA]" in out
    assert "pilot or simulated data, so they are analysed" in err
    o = tmp_path / "o"
    html = (o / "report.html").read_text(encoding="utf-8")
    assert html.count("SIMULATED DATA") >= 3            # title, and a banner at the top and the bottom
    assert "<title>SIMULATED DATA" in html
    assert (o / "methods.md").read_text(encoding="utf-8").startswith("> **SIMULATED DATA.**")
    for t in sorted((o / "tables").glob("*.*")):
        assert "SIMULATED DATA" in t.read_text(encoding="utf-8"), t.name
    svg = (o / "figures" / "group-means-test.svg").read_text(encoding="utf-8")
    assert "SIMULATED DATA" in svg or "SIMULATED" in svg.replace("<", " ")
    prov = pd.read_csv(o / "provenance.csv")
    assert "SIMULATED DATA" in set(prov["value"])


def test_pilot_data_mixed_with_real_data_are_excluded_by_default(study, tmp_path):
    import json
    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("derivatives"))
    recs = sorted(copy.glob("sub-*/ses-1/*_session.json"))
    for path in recs[:12]:        # as if these had been run by people
        rec = json.loads(path.read_text(encoding="utf-8"))
        rec["pilot"], rec["simulated"] = False, None
        path.write_text(json.dumps(rec), encoding="utf-8")
    code, out, err = lhlab("analyze", copy, "--out", tmp_path / "o", "--no-plots", "--quiet")
    assert code == 0, err
    e = pd.read_csv(tmp_path / "o" / "exclusions.csv")
    assert set(e["reason_code"]) == {"pilot"} and e["participant_id"].nunique() == 12
    assert "SIMULATED DATA" not in (tmp_path / "o" / "report.html").read_text(encoding="utf-8")


def test_everyone_excluded_is_an_error_naming_the_flag(study, tmp_path):
    code, out, err = lhlab("analyze", study, "--out", tmp_path / "o", "--check-rule", "*:test_mean_latency>=0", "--quiet")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "every participant is excluded (failed_check: 24)" in lines[0], err
    assert "--check-rule" in lines[0]
    assert not (tmp_path / "o" / "report.html").exists()


@pytest.mark.parametrize("flag, why", [
    (["--shuttle-criterion", "5"], "--shuttle-criterion 5 does not apply: this study has no shuttle test phase"),
    (["--yoke-tolerance", "0.1"], "--yoke-tolerance 0.1 does not apply: no participant in this study is yoked"),
    (["--include-broken-yokes"], "--include-broken-yokes does not apply"),
])
def test_an_option_that_cannot_apply_is_refused(study, tmp_path, flag, why):
    code, out, err = lhlab("analyze", study, "--out", tmp_path / "o", "--quiet", *flag)
    assert code == 2
    assert err.strip().count("\n") == 0 and why in err, err


def test_every_option_is_in_the_provenance(study, tmp_path):
    code, out, err = lhlab("analyze", study, "--out", tmp_path / "o", "--quiet", "--no-plots", "--by",
                           "condition_kind", "--session-rule", "first-complete", "--include-withdrawn")
    assert code == 0, err
    prov = pd.read_csv(tmp_path / "o" / "provenance.csv")
    kv = dict(zip(prov["key"], prov["value"]))
    assert kv["option_grouping"] == "condition_kind" and kv["option_session_rule"] == "first-complete"
    assert kv["option_shuttle_criterion"].startswith("3 (default") and kv["option_yoke_tolerance"] == "0.05 s (default)"
    assert "withdrawn: kept" in set(prov["value"]) and kv["option_confidence_level"] == "0.95"
    assert kv["analysis_plan"].startswith("primary outcome test.mean_latency (alpha 0.05)")
    assert "noise_dose_percent" not in kv          # an anagram-only study heard no noise
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "option_shuttle_criterion" in html


def test_paper_outputs(analysed):
    out_dir = analysed[0]
    for name in ("learning-curves-test", "group-means-test", "group-means-check", "survival-test_trials_to_criterion"):
        for ext, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")):
            assert (out_dir / "figures" / f"{name}.{ext}").read_bytes().startswith(magic), (name, ext)
    for name in ("outcomes", "deficits", "descriptives", "omnibus"):
        md = (out_dir / "tables" / f"{name}.md").read_text(encoding="utf-8")
        tex = (out_dir / "tables" / f"{name}.tex").read_text(encoding="utf-8")
        assert md.count("\n|") >= 3 and "\\begin{tabular}" in tex and "\\bottomrule" in tex
    md = (out_dir / "tables" / "outcomes.md").read_text(encoding="utf-8")
    # APA precision: 2 decimals, p without the leading zero
    assert re.search(r"\| -?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\] \|", md) and not re.search(r"\| 0\.\d{3} \|", md)
    methods = (out_dir / "methods.md").read_text(encoding="utf-8")
    o = pd.read_csv(out_dir / "outcomes.csv")
    prim = o[o["plan"] == "primary"].iloc[0]
    assert prim["measure"] == "test_mean_latency" and o.index[o["plan"] == "primary"][0] == 0
    assert f"deficit = {prim['deficit']:.2f}" in methods and f"t({prim['df']:.2f}) = {prim['statistic']:.2f}" in methods
    for name in ("NumPy", "pandas", "SciPy", "statsmodels", "PsychoPy", "Peirce", "Holm"):
        assert name in methods
    trials = pd.read_parquet(out_dir / "trials.parquet")
    assert len(trials) == len(pd.read_csv(out_dir / "trials.csv", low_memory=False))
    m = pd.read_parquet(out_dir / "measures.parquet")
    assert list(m["participant_id"]) == list(pd.read_csv(out_dir / "measures.csv")["participant_id"])


def test_check_rule_flag(study, tmp_path):
    code, out, err = lhlab("analyze", study, "--include-pilot", "--out", tmp_path / "o", "--no-plots",
                           "--check-rule", "helpless:check_control>=3", "--by", "condition_kind")
    assert code == 0, err
    e = pd.read_csv(tmp_path / "o" / "exclusions.csv")
    m = pd.read_csv(tmp_path / "o" / "measures.csv")
    expect = set(m.loc[(m["condition_kind"] == "helpless") & (m["check_control"] >= 3), "participant_id"])
    assert set(e.loc[e["reason_code"] == "failed_check", "participant_id"]) == expect
    d = pd.read_csv(tmp_path / "o" / "descriptives.csv")
    assert "condition_kind" in d.columns and set(d["condition_kind"]) <= {"helpless", "controllable", "control"}


@pytest.mark.parametrize("argv, message", [
    (["analyze", "{tmp}/missing"], "is not a folder"),
    (["analyze", "{tmp}"], "not an lhlab study folder"),
    (["analyze", "{empty}"], "holds no sessions"),
    (["analyze", "{study}", "--check-rule", "control>3"], "WHO:MEASURE<OP>VALUE"),
    (["analyze", "{study}", "--check-rule", "*:nonsense>3", "--include-pilot", "--out", "{tmp}/x", "--quiet"],
     "no measure"),
    (["analyze", "{study}", "--out", "{file}"], "is a file"),
])
def test_bad_input_is_one_line_and_exit_2(study, tmp_path, argv, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dataset_description.json").write_text("{}")
    (tmp_path / "f.txt").write_text("x")
    argv = [a.format(tmp=tmp_path, empty=empty, study=study, file=tmp_path / "f.txt") for a in argv]
    code, out, err = lhlab(*argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lhlab analyze: ") and message in lines[0], err


def test_console_script_runs_analyze(study, tmp_path):
    exe = Path(sys.executable).parent / "lhlab"
    if not exe.exists():
        pytest.skip("lhlab console script not installed in this environment")
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    r = subprocess.run([str(exe), "analyze", str(study), "--include-pilot", "--out", str(tmp_path / "o"),
                        "--no-plots", "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "report.html").is_file()


# -- the report in a real browser ------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _png_pixels(data: bytes) -> tuple[int, int, np.ndarray]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, colour, interlace = body[8], body[9], body[12]
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8)
    stride = width * channels
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        f, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        cur = np.zeros(stride, np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:
            for x in range(stride):
                a = cur[x - channels] if x >= channels else 0
                b = prev[x]
                c = prev[x - channels] if x >= channels else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 255
        out[y] = cur
        prev = cur
    return width, height, out.reshape(height, width, channels)[:, :, :3]


def test_report_renders_in_headless_chromium(analysed):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; scripts/setup.sh chromium)")
    report = analysed[0] / "report.html"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "analysis-report.png"
    if shot.exists():
        shot.unlink()
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={shot}",
                            "--window-size=1200,2000", report.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    w, h, px = _png_pixels(shot.read_bytes())
    assert (w, h) == (1200, 2000)
    # Not blank: many distinct colours, dark text pixels, and the red of the helpless group's
    # curve and deficit cells somewhere on the page.
    flat = px.reshape(-1, 3)
    colours = np.unique(flat[::7] // 8, axis=0)
    assert len(colours) > 50
    dark = (flat.sum(axis=1) < 200).mean()
    assert 0.002 < dark < 0.5
    red = ((flat[:, 0] > 150) & (flat[:, 1] < 80) & (flat[:, 2] < 80)).sum()
    assert red > 200
