"""The study registry: participants, sessions, condition assignment and yoking.

One interface (`Registry`, in core.py), two backends chosen by a URL (location.py):
SQLite in the study folder (the default; sqlite.py) and PostgreSQL for a lab whose testing
rooms share one study (postgres.py). Every rule below is written once, in core.py, and holds
on both: unique labels, seeded permuted blocks, the yoke queue, a partner never used twice,
a slot never handed out twice, manual overrides with reasons, and the assignment log, across
processes and (PostgreSQL) across PCs. Unique indexes in the schema (schema.py) back each
"never twice" up, so even a bug in the rules cannot write a duplicate.

The other modules: vocab.py (statuses, timestamps), sync.py (session records on disk -> the
registry), live.py (heartbeats, live sessions, planned N, the yoke queue: the lab monitor),
partner.py (training schedules for yoking across stations), station.py (what `lhlab run` does
around a session: heartbeats, then the registry and the central copy), keyfile.py (a SQLite
study's identity key, outside the study folder), admin.py and commands.py (`lhlab registry
init|check|migrate`, `--registry`), dataset.py (`lhlab export`, `lhlab erase`), central.py
(`lhlab sync` to the central data folder).

Assignment
----------
Permuted blocks: block k holds every condition `block_size / n_conditions` times in an order
drawn from `random.Random(f"lhlab-blocks:{seed}:{k}")`; the seed is fixed when the registry is
created and written into every assignment log row, so the whole sequence can be recomputed.
A new participant takes the first free slot in block order. A slot of a yoked condition
(`yoked_to: <partner condition>` in the protocol) is only taken when a partner is free: a
participant of the partner condition whose training is complete (a session record in which
every phase with role `training` has status `complete`; for a condition without training
phases, a complete session) and who has not been used for another yoke, oldest registration
first. What the partner did after training (withdrawn in the test, crashed) does not matter:
their training schedule exists and can be replayed. Otherwise that slot waits at the front of
the queue and the next slot that is not yoked is used (in the same block, or the next one if
the block has none left). Manual assignments (`condition=...` with a typed reason) and
participants found on disk that `lhlab run` created (rule `command-line`) use no block slot.

A participant who declines consent never took part (no manipulation, no data but the
decision, and a declined participant can never run again): their block slot is given to the
next new participant, whose assignment row names whom they replace (`replaces`, schema 6; each
decliner is replaced once), so declines do not unbalance the conditions. A yoked decliner's
partner is released for the next yoked participant (audited "yoke released").

Otherwise the registry never frees a partner: once a yoke is made it stays, whatever happens
to either participant. A participant keeps their condition for every session; a crashed
session is re-run as the next session of the same participant.

The session records on disk stay the truth about sessions; `sync_sessions()` copies them into
the registry (with the effective status, so a killed session shows as `crashed`). With a
server registry each station syncs the sessions in its own study folder.

Concurrency
-----------
Every change is one transaction that takes the study's single write lock with its first
statement (SQLite `BEGIN IMMEDIATE`; PostgreSQL a row lock, see postgres.py for why row locks
and not SERIALIZABLE + retry), so assignments are serialised, each one sees every earlier one,
and a process killed inside a transaction leaves nothing behind.
"""

from experiment.registry.core import (LABEL_PREFIX, PARTICIPANT_STATUSES, RULES, Assignment, LiveSession,
                                      Participant, Registry, SessionEntry, block_order, now_iso)
from experiment.registry.postgres import RegistryUnavailable
from experiment.registry.schema import SCHEMA_VERSION
from experiment.registry.sqlite import BUSY_TIMEOUT_S, REGISTRY_FILE

__all__ = ["Assignment", "BUSY_TIMEOUT_S", "LABEL_PREFIX", "LiveSession", "PARTICIPANT_STATUSES", "Participant",
           "REGISTRY_FILE", "RULES", "RegistryUnavailable", "Registry", "SCHEMA_VERSION", "SessionEntry", "block_order", "now_iso"]
