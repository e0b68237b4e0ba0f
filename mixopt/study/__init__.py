"""Ask/tell mixture search for teams who train the models themselves (``Study``).

``core``: the study (ask, tell, add, best, save/load); ``records``: what it records (mixtures,
their results at scales, the recommendation, the file format); ``scale``: recommendations at a
target model size and token count from a scale-aware law.
"""

from mixopt.study.core import DEFAULT_LAW, Study, outside_data, study_strategies
from mixopt.study.records import FORMAT_VERSION, Best, Result, Scale, Suggestion

__all__ = [
    "DEFAULT_LAW",
    "FORMAT_VERSION",
    "Best",
    "Result",
    "Scale",
    "Study",
    "Suggestion",
    "outside_data",
    "study_strategies",
]
