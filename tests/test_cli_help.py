"""The command line explains itself: help for every option, --version, run --help's exit codes,
keys and progress events, "did you mean" for a mistyped name, status's header, simulate's ETA bar.

Every test checks what a user sees: the text `lhlab` prints and its exit code."""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import pty
import re
import struct
import subprocess
import sys
import termios
from importlib.metadata import PackageNotFoundError, version

import pytest

from conftest import LHLAB, REPO, events, run_lhlab
from experiment import errors
from experiment.cli import build_parser, main, subcommands

DEMO = "protocols/demo.yaml"


def _help_of(*argv: str, capsys) -> str:
    """What `lhlab ARGV --help` prints (argparse exits 0 after printing it)."""
    with pytest.raises(SystemExit) as ended:
        main([*argv, "--help"])
    assert ended.value.code == 0
    return capsys.readouterr().out


def _run_help(capsys) -> str:
    return _help_of("run", capsys=capsys)


def _section(text: str, title: str) -> str:
    """The lines of run --help's epilog section that starts with `title` (up to the next blank line)."""
    start = text.index(title)
    end = text.find("\n\n", start)
    return text[start:] if end < 0 else text[start:end]


# --- help for everything -----------------------------------------------------------------

def _options():
    parser = build_parser()
    yield "lhlab", parser
    yield from ((f"lhlab {name}", sub) for name, sub in subcommands(parser).items())


@pytest.mark.parametrize("prog,parser", list(_options()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_of_every_subcommand_has_help_text(prog, parser, capsys):
    undocumented = [a.option_strings or a.dest for a in parser._actions
                    if not isinstance(a, argparse._SubParsersAction)
                    and (not a.help or a.help == argparse.SUPPRESS or not a.help.strip())]
    assert not undocumented, f"{prog}: options without help text: {undocumented}"
    # ... and the user sees that text next to the option in `--help`
    shown = re.sub(r"\s+", "", _help_of(*prog.split()[1:], capsys=capsys))    # argparse wraps at spaces and hyphens
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            continue
        name = a.option_strings[-1] if a.option_strings else (a.metavar or a.dest)
        assert name in shown, f"{prog} --help does not show {name}"
        first_words = "".join(a.help.split()[:3]) % {"default": a.default, "prog": prog}
        assert first_words in shown, f"{prog} --help does not show the help of {name}: {a.help!r}"


def test_every_subcommand_is_described_in_the_top_level_help(capsys):
    shown = _help_of(capsys=capsys)
    for name in subcommands(build_parser()):
        line = next((ln for ln in shown.splitlines() if ln.strip().startswith(name)), None)
        assert line is not None, f"lhlab --help does not list {name}"
    assert "lhlab run --help" in " ".join(shown.split())          # where the exit codes and keys are


# --- --version ---------------------------------------------------------------------------------

def test_version_names_lhlab_python_and_psychopy():
    out = run_lhlab("--version", check_rc=0)
    try:
        psychopy = f"psychopy-lib {version('psychopy-lib')}"
    except PackageNotFoundError:
        psychopy = "psychopy-lib not installed"
    assert out.stdout == f"lhlab {version('lhlab')} (Python {platform.python_version()}, {psychopy})\n"
    assert out.stderr == ""


def test_version_does_not_import_psychopy():
    code = ("import sys\nfrom experiment.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n"
            "    pass\nprint('imported psychopy' if any(m.split('.')[0] == 'psychopy' for m in sys.modules) else 'no')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "no"


# --- run --help: exit codes, keys, progress events -------------------------------------------

def test_run_help_lists_every_exit_code(capsys):
    from experiment.session import EXIT_FOR_STATUS
    codes = _section(_run_help(capsys), "exit codes:")
    listed = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\s+(\d+)\s+(\w+)", codes, re.M)}
    for name in ("EXIT_COMPLETE", "EXIT_ERROR", "EXIT_BAD_INPUT", "EXIT_ABORTED", "EXIT_WITHDRAWN"):
        assert getattr(errors, name) in listed, f"run --help does not list {name} = {getattr(errors, name)}"
    for status, code in EXIT_FOR_STATUS.items():      # the status each code stands for, by name
        assert listed[code] == status, f"exit {code} is described as {listed[code]!r}, the session says {status!r}"
    assert 130 in listed                              # Ctrl-C before the session exists (cli.main)


def test_run_help_names_the_withdraw_and_abort_keys(capsys):
    from experiment.protocol import DEFAULT_KEYS
    keys = " ".join(_section(_run_help(capsys), "keys (").split())
    withdraw, abort = DEFAULT_KEYS["withdraw"], DEFAULT_KEYS["abort"]
    assert withdraw == "f12" and abort == "escape"    # what the participant and experimenter are told
    assert re.search(r"F12 the participant withdraws.*debriefing is still shown", keys), keys
    assert re.search(r"Escape the experimenter aborts.*no debriefing", keys), keys
    assert f"exit {errors.EXIT_WITHDRAWN}" in keys and f"exit {errors.EXIT_ABORTED}" in keys


def _documented_events(help_text: str) -> tuple[set[str], dict[str, str]]:
    """(fields every event has, {event: the text describing its other fields}) from run --help."""
    progress = help_text[help_text.index("progress on stdout"):]
    common_text = " ".join(progress[progress.index("every event has:"):progress.index("event          ")].split())
    common = set(re.findall(r"[a-z_]+", common_text))
    table: dict[str, str] = {}
    name = None
    for line in progress[progress.index("event          "):].splitlines()[1:]:
        if m := re.match(r"  ([a-z_]+)\s{2,}(.*)", line):
            name = m.group(1)
            table[name] = m.group(2)
        elif line.startswith("    ") and name:
            table[name] += " " + line.strip()
        else:
            break
    return common, table


def test_run_help_documents_every_progress_event_a_session_prints(tmp_path, capsys):
    """Every event (and every field of it) that a real `lhlab run` prints is in run --help."""
    common, table = _documented_events(_run_help(capsys))
    out = run_lhlab("run", DEMO, "--participant", "h1", "--condition", "solvable", "--data-dir", tmp_path,
                    "--simulate", "default", "--seed", "3", check_rc=0)
    seen = events(out.stdout)
    assert {e["event"] for e in seen} >= {"session_start", "phase_start", "page", "trial_start", "trial",
                                          "phase_end", "debriefing", "session_end"}
    for ev in seen:
        assert ev["event"] in table, f"run --help does not document the event {ev['event']!r}"
        for field in ev:
            assert field in common or re.search(rf"\b{field}\b", table[ev["event"]]), \
                f"run --help does not document the field {field!r} of {ev['event']!r}: {table[ev['event']]!r}"


# --- did you mean ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv,expected", [
    (["simualte", DEMO, "--participants", "1"], "lhlab: 'simualte' is not an lhlab command; did you mean 'simulate'?"),
    (["stauts", "data"], "lhlab: 'stauts' is not an lhlab command; did you mean 'status'?"),
    (["run", DEMO, "--participant", "d1", "--condition", "solvabel"],
     "lhlab run: --condition: 'solvabel' is not a condition of protocols/demo.yaml; did you mean 'solvable'?"),
    (["plan", DEMO, "--condition", "unsolveable"],
     "lhlab plan: --condition: 'unsolveable' is not a condition of protocols/demo.yaml; did you mean 'unsolvable'?"),
    (["run", DEMO, "--participant", "d1", "--condition", "solvable", "--simulate", "defualt"],
     "lhlab run: --simulate: unknown profile 'defualt'; did you mean 'default'?"),
    (["simulate", DEMO, "--participants", "1", "--profile", "strnog"],
     "lhlab simulate: --simulate: unknown profile 'strnog'; did you mean 'strong'?"),
], ids=["subcommand", "subcommand-status", "run-condition", "plan-condition", "run-profile", "simulate-profile"])
def test_a_mistyped_name_gets_one_line_with_a_suggestion(argv, expected, tmp_path):
    data = tmp_path / "data"
    if argv[0] in ("run", "simulate"):
        argv = [*argv, "--data-dir", str(data)]
    out = run_lhlab(*argv, check_rc=errors.EXIT_BAD_INPUT)
    assert out.stderr.startswith(expected), out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    assert "(choose one of: " in out.stderr               # and every valid name, for when the guess is wrong
    assert out.stdout == "" and not data.exists()         # refused before anything was written


def test_a_name_nothing_like_any_choice_gets_the_list_only():
    out = run_lhlab("frobnicate", check_rc=errors.EXIT_BAD_INPUT)
    assert out.stderr.startswith("lhlab: 'frobnicate' is not an lhlab command; choose one of: validate, plan, run")
    assert "did you mean" not in out.stderr and len(out.stderr.splitlines()) == 1


# --- status header ----------------------------------------------------------------------------

def test_status_prints_a_header_row_over_its_columns(tmp_path):
    run_lhlab("simulate", DEMO, "--participants", "2", "--data-dir", tmp_path, "--seed", "1", check_rc=0)
    lines = run_lhlab("status", tmp_path / "demo", check_rc=0).stdout.splitlines()
    assert lines[0].split("\t") == ["participant", "session", "condition", "status", "started", "reason"]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert len(rows) == 2 and all(len(r) == 6 for r in rows)
    assert [r[0] for r in rows] == ["sub-P001", "sub-P002"] and {r[3] for r in rows} == {"complete"}


# --- simulate: progress with an ETA on a terminal only ----------------------------------------

def _simulate_with_stderr_on_a_terminal(tmp_path) -> tuple[str, str]:
    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))     # a terminal has a size
    proc = subprocess.Popen([*LHLAB, "simulate", DEMO, "--participants", "3", "--data-dir", str(tmp_path),
                             "--seed", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=term_fd, text=True)
    os.close(term_fd)
    stdout, _ = proc.communicate(timeout=120)
    seen = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:          # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main_fd)
    assert proc.returncode == 0, seen.decode(errors="replace")
    return stdout, seen.decode(errors="replace")


def test_simulate_shows_progress_with_eta_on_a_terminal_and_keeps_stdout_clean(tmp_path):
    stdout, terminal = _simulate_with_stderr_on_a_terminal(tmp_path)
    final = terminal.replace("\r\n", "\r").split("\r")
    assert any(re.match(r"simulate: 100%\|.*\| 3/3 \[\d\d:\d\d<\d\d:\d\d", s) for s in final), terminal
    assert any(re.match(r"simulate:\s+\d+%.*\d/3 \[\d\d:\d\d<(\d\d:\d\d|\?)", s) for s in final)   # elapsed<ETA
    lines = stdout.splitlines()          # stdout: one line per participant and the summary, no bar
    assert len(lines) == 4 and all("%|" not in ln for ln in lines)
    assert lines[0].split()[:3] == ["P001", "solvable", "complete"]


def test_simulate_prints_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    out = run_lhlab("simulate", DEMO, "--participants", "2", "--data-dir", tmp_path, "--seed", "1", check_rc=0)
    assert "%|" not in out.stderr and "participants/s" not in out.stderr and "%|" not in out.stdout
    assert len(out.stdout.splitlines()) == 3
