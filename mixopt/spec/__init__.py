"""The search spec: one YAML file that says everything about a mixture-search job.

Each section is a typed pydantic model that validates itself (unknown keys are errors, so a
typo never silently falls back to a default) and builds its component; checks that span
sections live on :class:`JobSpec` and ask the section that owns the rule. Relative paths are
resolved against the spec file's folder by :func:`load_spec`, so a spec can be run from anywhere.

    spec = load_spec("experiments/demo/search.yaml")   # raises SpecError naming the field
    print(spec.to_yaml())                               # the resolved spec (what gets logged)

Modules: ``section`` (the base), ``data`` (domains, tokenizer, data stage, target, groups),
``objective`` (objective, guard rails, space), ``proxy``, ``search`` (sampler, strategy,
fidelities), ``run`` (validation, resources, tracking), ``stages`` (mixture stages over training),
``job`` (the whole spec), ``load``.
"""

from mixopt.spec.data import DataSpec, DomainSpec, GroupsSpec, TargetSpec, TokenizerSpec
from mixopt.spec.errors import format_validation_error
from mixopt.spec.job import JobSpec
from mixopt.spec.load import load_spec, parse_spec
from mixopt.spec.objective import ConstraintSpec, ObjectiveSpec, SpaceSpec
from mixopt.spec.proxy import ProxySpec
from mixopt.spec.run import DEFAULT_BASELINES, ResourcesSpec, TrackingSpec, ValidateSpec
from mixopt.spec.search import FidelitySpec, SamplerSpec, SearchSpec
from mixopt.spec.stages import StageSpec

__all__ = [
    "DEFAULT_BASELINES",
    "ConstraintSpec",
    "DataSpec",
    "DomainSpec",
    "FidelitySpec",
    "GroupsSpec",
    "JobSpec",
    "ObjectiveSpec",
    "ProxySpec",
    "ResourcesSpec",
    "SamplerSpec",
    "SearchSpec",
    "SpaceSpec",
    "StageSpec",
    "TargetSpec",
    "TokenizerSpec",
    "TrackingSpec",
    "ValidateSpec",
    "format_validation_error",
    "load_spec",
    "parse_spec",
]
