"""How well each session kept time, from the timing audit in its session record (issue 14).

    table = timing_table(study)                     # one row per session
    methods_sentence(table)                         # "Displays ran at 60.0 Hz; 0.02% of frames ..."
    timing_exclusions(table, participants, 0.5)     # --max-dropped-frames 0.5

Columns of `timing_table` (identifier-safe): ``participant_id``, ``session``, ``audited``
(the session had a window whose frames were recorded), ``refresh`` (text: "59.95 Hz" or
"unknown (no vsync)"), ``refresh_hz`` (measured; NaN without vsync), ``refresh_nominal_hz``,
``frames``, ``dropped_frames``, ``dropped_percent``, ``worst_frame_ms``, ``trials_with_drops``
(stimulus windows that lost frames), ``audio_server``, ``audio_latency_class``,
``audio_buffer_frames``, ``audio_sample_rate``, ``audio_predicted_latency_ms``,
``audio_onset_error_median_ms`` (reported - scheduled onset), ``audio_stop_to_offset_median_ms``
(stop command -> offset the driver estimated), ``audio_xruns``.
The figures are what experiment.devices.frames and RealSpeaker.timing recorded; nothing is
recomputed here, and a session without an audit (data-only simulation, older lhlab) has NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


TIMING_COLUMNS = ["participant_id", "session", "audited", "refresh", "refresh_hz", "refresh_nominal_hz", "frames",
                  "dropped_frames", "dropped_percent", "worst_frame_ms", "trials_with_drops", "audio_server",
                  "audio_latency_class", "audio_buffer_frames", "audio_sample_rate", "audio_predicted_latency_ms",
                  "audio_onset_error_median_ms", "audio_stop_to_offset_median_ms", "audio_xruns"]
REASON = "timing"


def _num(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return np.nan
    return x if math.isfinite(x) else np.nan


def session_timing(record: dict) -> dict:
    """One session record's timing audit as a row of `timing_table` (without the ids)."""
    timing = record.get("timing") if isinstance(record.get("timing"), dict) else {}
    scr = timing.get("screen") if isinstance(timing.get("screen"), dict) else {}
    aud = timing.get("audio") if isinstance(timing.get("audio"), dict) else {}
    windows = scr.get("stimulus_windows") if isinstance(scr.get("stimulus_windows"), dict) else {}
    audited = scr.get("audited") is True

    def median(key):
        v = aud.get(key)
        return _num(v.get("median")) if isinstance(v, dict) else np.nan
    return {
        "audited": audited,
        "refresh": str(scr.get("refresh")) if audited else "n/a",
        "refresh_hz": _num(scr.get("refresh_measured_hz")),
        "refresh_nominal_hz": _num(scr.get("refresh_nominal_hz")),
        "frames": _num(scr.get("frames")),
        "dropped_frames": _num(scr.get("dropped_frames")),
        "dropped_percent": _num(scr.get("dropped_percent")),
        "worst_frame_ms": _num(scr.get("worst_frame_ms")),
        "trials_with_drops": (sum(_num(w.get("windows_with_drops")) for w in windows.values() if isinstance(w, dict))
                              if audited else np.nan),
        "audio_server": aud.get("server") if aud.get("audited") else None,
        "audio_latency_class": _num(aud.get("latency_class")),
        "audio_buffer_frames": _num(aud.get("buffer_size")),
        "audio_sample_rate": _num(aud.get("sample_rate")),
        "audio_predicted_latency_ms": _num(aud.get("predicted_latency_ms")),
        "audio_onset_error_median_ms": median("onset_error_ms"),
        "audio_stop_to_offset_median_ms": median("stop_to_offset_ms"),
        "audio_xruns": _num(aud.get("xruns_total")) if aud.get("audited") else np.nan,
    }


def timing_table(study) -> pd.DataFrame:
    """One row per session of `study` (analysis.loading.Study, whose loader kept each session
    record's audit in `study.timing`); see the module docstring."""
    rows = [{"participant_id": pid, "session": int(n), **(study.timing.get((pid, int(n))) or session_timing({}))}
            for pid, n in study.sessions[["participant_id", "session"]].itertuples(index=False)]
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def methods_sentence(table: pd.DataFrame) -> str:
    """A sentence for the methods section from the audited sessions of `table` ("" if none)."""
    a = table[table["audited"].astype(bool)] if len(table) else table
    if a.empty:
        return ""
    hz = a["refresh_hz"].dropna()
    if len(hz) == len(a):
        rate = (f"Displays ran at {hz.iloc[0]:.1f} Hz" if hz.round(1).nunique() == 1 else
                f"Displays ran at {hz.min():.1f}-{hz.max():.1f} Hz (measured at the start of each session)")
    elif len(hz):
        rate = (f"Displays ran at {hz.min():.1f}-{hz.max():.1f} Hz where a refresh rate could be measured "
                f"({len(a) - len(hz)} of {len(a)} sessions had no vsync, frames paced to 60 Hz)")
    else:
        rate = "The displays reported no vsync, so no refresh rate was measured (frames were paced to 60 Hz)"
    frames, dropped = a["frames"].sum(), a["dropped_frames"].sum()
    pct = 100.0 * dropped / (frames + dropped) if frames + dropped > 0 else 0.0
    worst = a["worst_frame_ms"].max()
    trials = int(a["trials_with_drops"].fillna(0).sum())
    out = (f"{rate}; {_pct(pct)} of frames were dropped across {len(a)} session{'s' if len(a) != 1 else ''} "
           f"(worst single frame {worst:.1f} ms); {trials} trial{'s' if trials != 1 else ''} lost frames while "
           f"the stimulus was shown and {'were' if trials != 1 else 'was'} flagged (timing_ok = 0)")
    au = a[a["audio_server"].notna()]
    if len(au):
        servers = " and ".join(sorted({str(s) for s in au["audio_server"]}))
        stop = au["audio_stop_to_offset_median_ms"].dropna()
        onset = au["audio_onset_error_median_ms"].dropna()
        bits = [f"noise played through psychtoolbox on {servers} (latency class "
                f"{'/'.join(str(int(x)) for x in sorted(au['audio_latency_class'].dropna().unique()))}, "
                f"{_range(au['audio_buffer_frames'], '{:.0f}')}-frame buffers at "
                f"{_range(au['audio_sample_rate'] / 1000, '{:g}')} kHz)"]
        if len(onset):
            bits.append(f"reported onsets were {_range(onset, '{:.2f}')} ms after the scheduled ones (session medians)")
        if len(stop):
            bits.append(f"the noise ended {_range(stop, '{:.1f}')} ms after the stop command (driver estimate, "
                        "session medians)")
        bits.append(f"{int(au['audio_xruns'].fillna(0).sum())} audio underruns")
        out += "; " + "; ".join(bits)
    return out + "."


def _pct(p: float) -> str:
    return f"{p:.2f}%" if p >= 0.01 or p == 0 else "< 0.01%"


def _range(values: pd.Series, fmt: str) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "?"
    lo, hi = fmt.format(v.min()), fmt.format(v.max())
    return lo if lo == hi else f"{lo}-{hi}"


def timing_exclusions(table: pd.DataFrame, participants: pd.DataFrame, max_dropped_percent: float | None
                      ) -> list[dict]:
    """Exclusion rows (analysis.exclusions.EXCLUSION_COLUMNS) for the analysed session of each
    participant whose dropped frames exceed `max_dropped_percent` (% of frames); a session
    without a timing audit is never excluded by this rule (it is listed as unaudited)."""
    if max_dropped_percent is None or participants.empty:
        return []
    t = table.set_index(["participant_id", "session"])
    out = []
    for p in participants.itertuples():
        key = (p.participant_id, int(p.session))
        if key not in t.index:
            continue
        pct = t.at[key, "dropped_percent"]
        if bool(t.at[key, "audited"]) and np.isfinite(pct) and pct > max_dropped_percent:
            out.append({"participant_id": p.participant_id, "condition": p.condition,
                        "condition_kind": p.condition_kind, "reason_code": REASON,
                        "reason": f"ses-{key[1]} dropped {pct:.2f}% of frames (more than --max-dropped-frames "
                                  f"{max_dropped_percent:g}%)"})
    return out


def html_section(table: pd.DataFrame, sentence: str, esc, render_table) -> str:
    """The report's "Timing" section: the methods sentence and one row per session."""
    out = ['<h2 id="timing">Timing</h2>']
    if table.empty or not table["audited"].astype(bool).any():
        out.append('<p class="note">No session recorded a timing audit (data-only simulation, or data from an '
                   'lhlab before the audit).</p>')
        return "\n".join(out)
    out.append(f"<p>{esc(sentence)}</p>")

    def f(v, fmt):
        return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)
    rows = [[r.participant_id, str(r.session), r.refresh, f(r.dropped_percent, "{:.3f}"), f(r.worst_frame_ms, "{:.1f}"),
             f(r.trials_with_drops, "{:.0f}"), str(r.audio_server or "n/a"),
             f(r.audio_stop_to_offset_median_ms, "{:.1f}"), f(r.audio_xruns, "{:.0f}")]
            for r in table.itertuples()]
    out.append(render_table(rows, ["participant", "session", "refresh", "% dropped frames", "worst frame (ms)",
                                   "trials flagged", "audio", "stop -> offset (ms)", "underruns"], (0, 2, 6)))
    return "\n".join(out)
