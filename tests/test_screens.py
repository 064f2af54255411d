"""What the participant sees, every screen type, in the real PsychoPy window (issue 10).

The views come from the real task code (run on the scripted key source of test_key_queue with
the shipped protocols' texts), are drawn by experiment.devices.window in a child process under
Xvfb and captured from the X server into test-artifacts/screen-*.png; the contact sheet of them
is docs/screens.png, linked from the README, so a lab sees the participant's view."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from conftest import ARTIFACTS, REPO
from experiment.devices.virtual import SilentSpeaker
from experiment.protocol import load_protocol
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from experiment.tasks.instructions import show_page
from experiment.devices.keyqueue import QueuedKeyboard
from test_key_queue import BurstSource, burst, typed

pytestmark = pytest.mark.window

CHILD = r"""
import pickle, sys
from pathlib import Path
import numpy as np
from experiment.devices.window import Display
from x11tools import Keys, save_png
views = pickle.loads(Path(sys.argv[1]).read_bytes())
d = Display({"withdraw": "f12", "abort": "escape", "continue": "space"}, None, True, 0, 1.0)
keys = Keys()
for name, view, typed in views:
    d.set_view(view)
    d.entry_text_override = typed
    for _ in range(3):
        d.flip()
    shot = keys.screenshot()
    ys, xs = np.nonzero(shot.max(axis=2) > 0)             # the window on the black root window
    save_png(shot[ys.min():ys.max() + 1, xs.min():xs.max() + 1], Path(sys.argv[2]) / f"screen-{name}.png")
d.close()
"""


def _run(task, params, events, proto, role="training", speaker=None):
    t = TASKS[task]
    p = {prm.name: prm.default for prm in t.params}
    p.update(params)
    src = BurstSource(events)
    if speaker is not None:
        speaker.clock = src
    ctx = PhaseContext("p", role, p, src, src, QueuedKeyboard(src), speaker, proto.texts, proto.keys,
                       lambda row: None, lambda *a, **k: None, proto.base_dir, {})
    import random
    t.run(ctx, t.plan(p, random.Random(2), proto.base_dir))
    return [v for _, v in src.views]


def collect_views() -> list[tuple[str, object, str | None]]:
    """(name, View, text typed into the box) of every screen type, from the real task code."""
    noise = load_protocol(REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml")
    problems = load_protocol(REPO / "protocols" / "hiroto-seligman-problems-anagrams.yaml")
    out = []
    pages = noise.phases["consent"].params["pages"]
    consent = _run("consent", noise.phases["consent"].params,
                   [e for n in range(len(pages)) for e in burst(2.5 * (n + 1), ["space" if n < len(pages) - 1 else "y"])],
                   noise, role="consent")
    out.append(("1-consent", consent[-1], None))                 # the last page: contact, question, keys
    about = _run("demographics", noise.phases["demographics"].params,
                 typed(1.0, "150\n") + typed(2.0, "23\n") + burst(3.0, ["2", "return"], gap=0.3)
                 + burst(4.0, ["1", "return"], gap=0.3) + burst(5.0, ["f1", "return"], gap=0.3), noise, role="demographics")
    out.append(("2-demographics-choice", next(v for v in about if v.data["field"] == "sex" and v.selected == 1), None))
    out.append(("3-demographics-typed", next(v for v in about if v.data["field"] == "age" and v.message), "23"))
    page = _run("instructions", {"pages": noise.phases["welcome"].params["pages"][1:]}, burst(0.5, ["space"]), noise,
                role="instructions")
    out.append(("4-instructions", page[0], None))
    cards = _run("discrimination", {**problems.phases["problemssoluble"].params, "n_problems": 1, "trials_per_problem": 1},
                 burst(4.0, ["left"]), problems)
    out.append(("5-cards", next(v for v in cards if v.kind == "card"), None))
    out.append(("6-cards-feedback", next(v for v in cards if v.kind == "card_feedback"), None))
    training = _run("noise_escape", {**noise.phases["noiseescapable"].params, "n_trials": 1},
                    burst(30.0, ["space"]), noise, speaker=SilentSpeaker())
    out.append(("7-noise-training", next(v for v in training if v.kind == "noise" and v.light), None))
    rating = _run("rating", noise.phases["check"].params, burst(0.5, ["right", "right", "return"], gap=0.3)
                  + burst(3.0, ["left", "return"], gap=0.3), noise, role="check")
    out.append(("8-rating", next(v for v in rating if v.kind == "rating" and not v.data["must_move"]), None))
    anagrams = _run("anagram", {**problems.phases["anagrams"].params, "n_trials": 1},
                    burst(2.0, list("bric")) + burst(3.0, ["k", "return"]), problems, role="test")
    out.append(("9-anagram", next(v for v in anagrams if v.kind == "anagram"), "bric"))
    out.append(("10-anagram-feedback", next(v for v in anagrams if v.kind == "feedback"), None))
    shuttle = _run("shuttle", {**noise.phases["shuttle"].params, "n_trials": 1}, burst(31.0, ["right"]), noise,
                   role="test", speaker=SilentSpeaker())
    out.append(("11-shuttle-warning", next(v for v in shuttle if v.data.get("state") == "warning"), None))
    out.append(("12-shuttle-feedback", next(v for v in shuttle if v.data.get("state") == "feedback"), None))
    stop = _run("instructions", {"pages": [noise.texts["withdrawn"]]}, burst(0.5, ["space"]), noise, role="debriefing")
    out.append(("13-withdrawn", stop[0], None))
    deb = _run("instructions", {"pages": noise.debriefing_for("escapable")}, burst(0.5, ["space"]) + burst(2, ["space"]), noise,
               role="debriefing")
    out.append(("14-debriefing", deb[0], None))
    out.append(("15-goodbye", replace(deb[0], text=noise.texts["goodbye"], footer=""), None))
    return out


def test_screens_of_every_type_and_the_contact_sheet(x_display, tmp_path):
    views = collect_views()
    names = [n for n, _, _ in views]
    assert "F12" not in views[names.index("14-debriefing")][1].footer       # no "to stop" in the debriefing
    assert "F12" in views[names.index("4-instructions")][1].footer
    consent = views[names.index("1-consent")][1]
    assert "F12" in consent.footer and "Press Y to agree" in consent.footer      # the withdraw key works here too
    assert "[E-MAIL ADDRESS]" in consent.text and consent.text.endswith("Do you agree to take part in this study?")
    typed_view = views[names.index("3-demographics-typed")][1]
    assert typed_view.entry and "16 to 99" in typed_view.message and "F1" in typed_view.footer
    (tmp_path / "views.pkl").write_bytes(pickle.dumps(views))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "views.pkl"), str(ARTIFACTS)], cwd=REPO, env=env,
                   check=True, timeout=120)
    shots = [ARTIFACTS / f"screen-{n}.png" for n in names]
    contact_sheet(shots, ARTIFACTS / "screens.png")
    if os.environ.get("LHLAB_UPDATE_DOCS"):
        contact_sheet(shots, REPO / "docs" / "screens.png")
    import matplotlib.image as mpimg
    for path in shots:
        img = mpimg.imread(path)
        assert img.shape[0] > 300 and len(np.unique((img.reshape(-1, img.shape[2]) * 255).astype(int), axis=0)) > 5, path


def contact_sheet(paths, out) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    cols = 3
    rows = (len(paths) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 3.4), dpi=90)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path in zip(axes.flat, paths):
        ax.imshow(mpimg.imread(path))
        ax.set_title(path.stem.replace("screen-", "").split("-", 1)[1].replace("-", " "), fontsize=11)
    fig.suptitle("lhlab: the participant's screens (PsychoPy window, shipped Hiroto & Seligman protocols)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))     # room for the title above the first row
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
