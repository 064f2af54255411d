"""The task types a protocol can name, by name."""

from experiment.tasks.anagram import Anagram
from experiment.tasks.base import Task
from experiment.tasks.instructions import Instructions
from experiment.tasks.rating import Rating

TASKS: dict[str, Task] = {t.name: t() for t in (Instructions, Anagram, Rating)}
