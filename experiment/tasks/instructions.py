"""Pages of text the participant reads and confirms with the continue key."""

from __future__ import annotations

from experiment.devices import View
from experiment.tasks.base import COMMON_COLUMNS, Column, Param, Task


class Instructions(Task):
    name = "instructions"
    summary = "Pages of text, each confirmed with the continue key."
    default_role = "instructions"
    params = (
        Param("pages", "pages", "the texts, one screen each"),
        Param("min_time", "number", "seconds a page stays before the continue key is accepted", 0, low=0),
    )
    columns = COMMON_COLUMNS + (
        Column("onset", "Session time the page appeared.", "s"),
        Column("rt", "Time from page onset to the continue key.", "s"),
    )

    def plan(self, params, rng, base_dir):
        pages = params["pages"]
        return [{"page": p} for p in ([pages] if isinstance(pages, str) else pages)]

    def expected_duration(self, params, schedule):
        return len(schedule) * max(params["min_time"], 20.0)

    def run(self, ctx, schedule):
        for n, trial in enumerate(schedule, 1):
            onset, rt = show_page(ctx, trial["page"], ctx.params["min_time"])
            ctx.write_row({"trial": n, "onset": onset, "rt": rt})


def show_page(ctx, text: str, min_time: float = 0.0, kind: str = "text") -> tuple[float, float]:
    """Show one page, wait for the continue key; return (onset, rt)."""
    footer = ctx.texts["continue_hint"]
    if ctx.role != "debriefing":      # after a withdrawal and in the debriefing, F12 is not offered "to stop"
        footer += "\n" + ctx.texts["withdraw_hint"]   # one hint per line: no word wraps alone
    view = View(kind, text=text, footer=footer)
    onset = ctx.screen.show(view)
    ctx.progress("page", kind=kind)
    if min_time > 0:
        ctx.clock.wait_until(onset + min_time)
    press = ctx.keyboard.wait_key([ctx.keys["continue"]], since=onset + min_time)   # not a press made earlier
    return onset, press.t - onset
