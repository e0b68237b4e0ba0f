"""Ask/tell mixture search for teams who train the models themselves (``Study``).

``core``: the study (ask, tell, fail, enqueue, add, best, best_observed); ``records``: what it
records (mixtures and their states, their results at scales, the recommendation, the file
format); ``pending``: proposals that keep away from mixtures still training; ``storage``: the
JSON file and ``StudyFile``, the lock that lets workers share one; ``scale``: recommendations at
a target model size and token count from a scale-aware law.
"""

from mixopt.study.core import DEFAULT_LAW, Study, outside_data, study_strategies
from mixopt.study.records import FORMAT_VERSION, Best, Observed, Result, Scale, Suggestion
from mixopt.study.storage import StudyFile

__all__ = [
    "DEFAULT_LAW",
    "FORMAT_VERSION",
    "Best",
    "Observed",
    "Result",
    "Scale",
    "Study",
    "StudyFile",
    "Suggestion",
    "outside_data",
    "study_strategies",
]
