"""Headphone calibrations: which digital level gives which dB(A) at the ear, per machine.

Where: $XDG_CONFIG_HOME/lhlab/calibrations.json (default ~/.config/lhlab/; LHLAB_CALIBRATIONS
names another file). A calibration belongs to the audio chain of one machine (sound card or
PulseAudio sink, its volume, the headphones), not to a study: every study run on that PC
uses it, and a data folder shared by several PCs must not carry one PC's figure to another.
Each session copies the calibration it used into its session JSON, so the data stay
self-describing after the file changes.

A record: {id, date, device: {device, pulse_sink}, headphone, reading_dba, reference_dbfs,
output_volume, sample_rate, experimenter}. `reading_dba` is what the sound-level meter showed
while the reference noise played at `reference_dbfs` RMS.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from experiment.errors import BadInput
from experiment.labconfig import config_dir
from experiment.noise import HEADROOM_DBFS, LabLimits, level_dbfs, sound_name

REFERENCE_DBFS = -20.0          # RMS of the reference noise played during calibration
SCHEMA = 1


def calibrations_path() -> Path:
    return Path(os.environ.get("LHLAB_CALIBRATIONS") or config_dir() / "calibrations.json")


def load_all(path: Path | None = None) -> list[dict]:
    path = path or calibrations_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("calibrations", []), list):
            raise ValueError("not an object with a list of calibrations")
    except (OSError, ValueError, RecursionError) as e:     # RecursionError: absurdly nested JSON
        raise BadInput(f"{path}: cannot read the calibrations ({type(e).__name__}: {str(e)[:200]}); fix the file "
                       "or move it away and calibrate again with `lhlab calibrate`") from None
    return list(data.get("calibrations", []))


def add(record: dict, path: Path | None = None) -> dict:
    """Append `record` (gets an id) and rewrite the file atomically; returns the stored record."""
    path = path or calibrations_path()
    records = load_all(path)
    record = dict(record)
    record["id"] = f"cal-{len(records) + 1:03d}-{record['date'][:10]}"
    records.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calibrations.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"schema": SCHEMA, "calibrations": records}, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return record


def new_record(device: dict, headphone: str, reading_dba: float, reference_dbfs: float = REFERENCE_DBFS,
               sample_rate: int | None = None, experimenter: str = "", note: str = "", sound: str = "noise") -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_key(device),
            "sound": sound,     # what played: 'noise' or 'tone <Hz> Hz' (experiment.noise.sound_name)
            "headphone": headphone, "reading_dba": float(reading_dba), "reference_dbfs": float(reference_dbfs),
            "output_volume": device.get("output_volume"), "sample_rate": sample_rate,
            "experimenter": experimenter or None, "note": note or None}


def device_key(device: dict) -> dict:
    """The part of an output's identity a calibration is bound to."""
    return {"device": device.get("device"), "pulse_sink": device.get("pulse_sink")}


def how_to_calibrate(device: dict, sound: str = "noise") -> str:
    option = "" if sound == "noise" else f" --sound tone --tone-hz {sound.split()[1]}"
    return (f"calibrate it first: put the headphones on the sound-level meter and run "
            f"`lhlab calibrate --headphone MODEL{option}` (device {device.get('device')!r}"
            + (f", PulseAudio sink {device['pulse_sink']!r}" if device.get("pulse_sink") else "") + ")")


def current(device: dict, limits: LabLimits, levels: list[float] = (), path: Path | None = None,
            sound: str = "noise") -> dict:
    """The calibration in force for `device` and `sound` ('noise' or 'tone <Hz> Hz'; the latest
    one), checked; raises BadInput saying how to calibrate when there is none, it is too old,
    the output volume changed, or it cannot reach the loudest level the protocol asks for."""
    key = device_key(device)
    matches = [r for r in load_all(path) if r.get("device") == key and r.get("sound", "noise") == sound]
    where = path or calibrations_path()
    if not matches:
        raise BadInput(f"no calibration for this audio output (of the {sound}) in {where}; noise phases cannot "
                       "start: " + how_to_calibrate(device, sound))
    cal = matches[-1]
    try:
        when = datetime.fromisoformat(cal["date"])
    except (KeyError, ValueError):
        raise BadInput(f"calibration {cal.get('id')} in {where} has no valid date; " + how_to_calibrate(device)) from None
    age = (datetime.now(timezone.utc) - when).total_seconds() / 86400
    if age > limits.calibration_max_age_days:
        raise BadInput(f"calibration {cal['id']} ({cal.get('headphone')}) is {age:.0f} days old "
                       f"(limit {limits.calibration_max_age_days:g}); " + how_to_calibrate(device))
    now_vol, cal_vol = device.get("output_volume"), cal.get("output_volume")
    if now_vol and cal_vol and now_vol != cal_vol:
        raise BadInput(f"the output volume changed since calibration {cal['id']} (was {cal_vol}, now {now_vol}); "
                       "set it back, or " + how_to_calibrate(device))
    for level in levels:
        need = level_dbfs(level, cal)
        if need > HEADROOM_DBFS:
            raise BadInput(f"calibration {cal['id']} ({cal['reading_dba']:g} dB(A) at {cal['reference_dbfs']:g} dBFS) "
                           f"needs {need:.1f} dBFS for {level:g} dB(A), above the {HEADROOM_DBFS:g} dBFS headroom; "
                           "raise the system output volume and " + how_to_calibrate(device))
    return cal


# -- `lhlab calibrate` ------------------------------------------------------------------------------

CALIBRATE_HELP = """\
Calibrate the headphones of this PC:
  1. set the system output volume to where it will stay for the study (it is recorded;
     a later change refuses noise sessions until you recalibrate);
  2. put the headphones on the sound-level meter's coupler or artificial ear (NOT on a person),
     meter on dB(A), slow response;
  3. the reference noise plays for {seconds:g} s at {dbfs:g} dBFS; type the meter reading.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="play reference noise and store the sound-level meter reading (dB(A)) "
                                         "for this PC's headphones")
    p.add_argument("--headphone", help="headphone model, e.g. HD280 (asked for when missing)")
    p.add_argument("--reading", type=float, help="meter reading in dB(A); skips the prompt (scripts, tests)")
    p.add_argument("--device", help="audio output (default: $LHLAB_AUDIO_DEVICE, lab.json audio_device, 'default')")
    p.add_argument("--seconds", type=float, help="how long the reference plays (default 60 s; 2 s with --reading)")
    p.add_argument("--experimenter", default="", help="who calibrated")
    p.add_argument("--note", default="", help="free text stored with the calibration (meter model, coupler, ...)")
    p.add_argument("--sound", choices=("noise", "tone"), default="noise",
                   help="what to calibrate: white noise (default) or a tone (each tone frequency on its own)")
    p.add_argument("--tone-hz", type=float, default=1000.0, help="the tone's frequency with --sound tone (Hz)")
    p.add_argument("--list", action="store_true", help="list the stored calibrations and exit")
    p.add_argument("--latency", action="store_true",
                   help="measure the output instead of calibrating it: play short noise bursts, stop each, record "
                        "the sink's monitor and print how long the sound went on after the stop command (ms); "
                        "stores nothing")
    p.add_argument("--probes", type=int, default=10, metavar="N", help="bursts played with --latency (default 10)")


def run(args) -> int:
    import sys

    from experiment.devices import output
    from experiment.noise import lab_limits
    if args.list:
        path = calibrations_path()
        records = load_all(path)
        print(f"{path}: {len(records)} calibration(s)")
        for r in records:
            print(f"{r.get('id')}\t{r.get('date')}\t{r.get('device')}\t{r.get('headphone')}\t{r.get('sound', 'noise')}\t"
                  f"{r.get('reading_dba')} dB(A) at {r.get('reference_dbfs')} dBFS\tvolume {r.get('output_volume')}")
        return 0
    if args.latency:
        from experiment import latency
        return latency.run(args)
    limits = lab_limits()
    device_name = args.device or output.configured_device()
    device = output.output_identity(device_name)
    headphone = args.headphone
    if not headphone:
        if args.reading is not None or not sys.stdin.isatty():
            raise BadInput("--headphone is required (the headphone model the reading is for)")
        headphone = input("Headphone model: ").strip()
        if not headphone:
            raise BadInput("a headphone model is required")
    seconds = args.seconds if args.seconds is not None else (2.0 if args.reading is not None else 60.0)
    if not 0 < seconds <= 600:
        raise BadInput(f"--seconds must be > 0 and <= 600 (got {seconds:g})")
    if args.sound == "tone" and not 20 <= args.tone_hz <= 16000:
        raise BadInput(f"--tone-hz must be from 20 to 16000 Hz (got {args.tone_hz:g})")
    from experiment.devices import audio     # the real audio output (imports PsychoPy, no window)
    speaker = audio.open_speaker(device, limits=limits, calibration=None,
                                            latency_class=output.configured_latency_class())
    try:
        print(CALIBRATE_HELP.format(seconds=seconds, dbfs=REFERENCE_DBFS), file=sys.stderr)
        reading = args.reading
        while True:
            speaker.play_reference(REFERENCE_DBFS, seconds, sound=args.sound, tone_hz=args.tone_hz)
            if reading is not None:
                speaker.wait_reference()
                break
            answer = input("Meter reading in dB(A) (Enter: play again, q: cancel): ").strip()
            speaker.silence()
            if answer.lower() == "q":
                print("cancelled; nothing stored", file=sys.stderr)
                return 1
            if answer:
                try:
                    reading = float(answer.replace(",", "."))
                except ValueError:
                    print(f"not a number: {answer!r}", file=sys.stderr)
                    continue
                break
    finally:
        speaker.close()
    if not 30 <= reading <= 130:
        raise BadInput(f"--reading {reading:g} dB(A) is not a plausible meter reading (30-130)")
    record = add(new_record(device, headphone, reading, REFERENCE_DBFS, speaker.sample_rate, args.experimenter,
                            args.note, sound_name(args.sound, args.tone_hz)))
    top = limits.max_level_dba
    need = level_dbfs(top, record)
    print(f"stored {record['id']} in {calibrations_path()}: {headphone} on {device_name}"
          + (f" (PulseAudio sink {device['pulse_sink']}, volume {device['output_volume']})" if device["pulse_sink"] else "")
          + f": {reading:g} dB(A) at {REFERENCE_DBFS:g} dBFS; the lab maximum {top:g} dB(A) plays at {need:.1f} dBFS")
    if need > HEADROOM_DBFS:
        print(f"warning: {top:g} dB(A) needs {need:.1f} dBFS, above the {HEADROOM_DBFS:g} dBFS headroom: "
              "raise the output volume and calibrate again to play the loudest levels", file=sys.stderr)
    return 0
