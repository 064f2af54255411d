"""The task types a protocol can name, by name."""

from experiment.tasks.anagram import Anagram
from experiment.tasks.base import Task
from experiment.tasks.consent import Consent
from experiment.tasks.demographics import Demographics
from experiment.tasks.discrimination import Discrimination
from experiment.tasks.instructions import Instructions
from experiment.tasks.noise_escape import NoiseEscape
from experiment.tasks.rating import Rating
from experiment.tasks.shuttle import Shuttle

TASKS: dict[str, Task] = {t.name: t() for t in (Consent, Demographics, Instructions, Anagram, Rating, NoiseEscape,
                                                 Shuttle, Discrimination)}
