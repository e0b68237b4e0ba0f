"""mkdocs hooks: the reference pages generated from mixopt itself, so the docs cannot drift.

- ``reference/spec.md``: every section and field of the job spec (type, default, description)
  from ``JobSpec.model_json_schema()`` (what ``mixopt spec schema`` prints), with the demo spec's
  resolved values as the example;
- ``strategies/<name>.md``: one page per registered search strategy (its registry description
  and ``docs/_catalog.yaml``'s "when to use");
- ``predictors/<name>.md``: one page per registered predictor (its module's docstring, its
  hyperparameters read from its ``__init__``, and the catalog's "when to use");
- ``reference/exports.md``: every export format from the export registry, with its unit;
- ``changelog.md``: ``CHANGELOG.md``.

A strategy or predictor missing from the catalog (or a catalog entry for an unknown one) fails
the build, which the test command runs with ``--strict``. Nothing is imported that needs an
optional package: classes are read with ``ast``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "docs" / "_catalog.yaml"
DEMO_SPEC = ROOT / "experiments" / "demo" / "search.yaml"


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, content in generated_pages().items():
        files.append(File.generated(config, path, content=content))
    return files


def generated_pages() -> dict[str, str]:
    """Every generated page: its path under docs/ → its Markdown."""
    catalog = yaml.safe_load(CATALOG.read_text())
    pages = {
        "reference/spec.md": spec_reference(),
        "reference/exports.md": export_reference(),
        "changelog.md": (ROOT / "CHANGELOG.md").read_text(),
    }
    pages.update(strategy_pages(catalog["strategies"]))
    pages.update(predictor_pages(catalog["predictors"]))
    return pages


# ------------------------------------------------------------------------------------ spec


def spec_reference() -> str:
    from mixopt.spec import JobSpec, load_spec

    schema = JobSpec.model_json_schema()
    demo = load_spec(DEMO_SPEC).to_dict()
    lines = [
        "# Spec reference",
        "",
        "Generated from `mixopt spec schema` (the JSON schema of `mixopt.spec.JobSpec`), so it "
        "lists every field the code accepts. Examples are the demo spec "
        "(`experiments/demo/search.yaml`) as `mixopt run --dry-run` resolves it.",
        "",
    ]
    lines += _model_section("Top level", schema, schema, None, anchor="top-level")
    lines += [
        "The demo spec, as written:",
        "",
        "```yaml",
        DEMO_SPEC.read_text().rstrip(),
        "```",
        "",
    ]
    for name, definition in sorted(schema.get("$defs", {}).items()):
        if definition.get("type") == "object" and "properties" in definition:
            example = _example_for(name, schema, demo)
            lines += _model_section(name, definition, schema, example, anchor=name.lower())
    return "\n".join(lines) + "\n"


def _model_section(
    title: str, model: dict[str, Any], schema: dict[str, Any], example: Any, anchor: str
) -> list[str]:
    required = set(model.get("required", []))
    lines = [f"## {title} {{#{anchor}}}", ""]
    if model.get("description"):
        lines += [_one_paragraph(model["description"]), ""]
    lines += ["| field | type | default | description |", "|---|---|---|---|"]
    for field, prop in model["properties"].items():
        section = _refs(prop)
        if field in required:
            default = "*required*"
        elif section and prop.get("default") is None and "$ref" in str(prop):
            default = "its section's defaults"
        else:
            default = _code(prop.get("default"))
        description = prop.get("description") or ""
        if not description and section:  # a section: its model's first line
            description = schema["$defs"][section].get("description", "").split("\n\n")[0]
        description = _one_line(description)
        lines.append(f"| `{field}` | {_type(prop)} | {default} | {description} |")
    lines.append("")
    if example is not None:
        text = yaml.safe_dump(example, sort_keys=False).rstrip().replace(f"{ROOT}/", "")
        lines += ["Example (the demo spec, resolved):", "", "```yaml", text]
        lines += ["```", ""]
    return lines


def _example_for(definition: str, schema: dict[str, Any], demo: dict[str, Any]) -> Any:
    """The demo's value of the first top-level field whose type is ``definition``."""
    for field, prop in schema["properties"].items():
        if _refs(prop) == definition and field in demo:
            value = demo[field]
            return value[0] if isinstance(value, list) and value else value
    return None


def _refs(prop: dict[str, Any]) -> str | None:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "allOf", "oneOf"):
        for option in prop.get(key, []):
            found = _refs(option)
            if found:
                return found
    if "items" in prop:
        return _refs(prop["items"])
    return None


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = str(prop["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in prop:
            return " \\| ".join(_type(option) for option in prop[key])
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"mapping to {_type(values)}" if isinstance(values, dict) else "mapping"
    return str(kind or "any")


def _code(value: Any) -> str:
    return f"`{json.dumps(value)}`".replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------- strategies and predictors


def strategy_pages(catalog: dict[str, Any]) -> dict[str, str]:
    from mixopt.proposers import STRATEGIES

    registry = {name: strategy.description for name, strategy in STRATEGIES.items()}
    _same_names("strategies", registry, catalog)
    pages = {}
    for name, description in registry.items():
        entry = catalog[name]
        pages[f"strategies/{name}.md"] = "\n".join(
            [
                f"# Strategy `{name}`",
                "",
                f"*{description}* (`search.strategy: {name}`)",
                "",
                "## When to use it",
                "",
                entry["when"].strip(),
                "",
                f"Needs: {entry.get('needs') or 'the core install'}.",
                "",
            ]
        )
    pages["strategies/index.md"] = _index(
        "Strategies", "search.strategy", registry, "strategies", catalog
    )
    return pages


def predictor_pages(catalog: dict[str, Any]) -> dict[str, str]:
    from mixopt.predictors import _REGISTRY

    _same_names("predictors", _REGISTRY, catalog)
    pages, summaries = {}, {}
    for name, target in _REGISTRY.items():
        module, cls = target.split(":")
        doc, params = _read_class(module, cls)
        summaries[name] = doc.split("\n\n")[0].replace("\n", " ")
        table = ["| parameter | default |", "|---|---|"]
        table += [f"| `{p}` | `{d}` |" for p, d in params]
        entry = catalog[name]
        pages[f"predictors/{name}.md"] = "\n".join(
            [
                f"# Predictor `{name}`",
                "",
                f"`{target}`",
                "",
                "## When to use it",
                "",
                entry["when"].strip(),
                "",
                f"Needs: {entry.get('needs') or 'the core install'}.",
                "",
                "## How it works",
                "",
                doc,
                "",
                "## Hyperparameters",
                "",
                *table,
                "",
            ]
        )
    pages["predictors/index.md"] = _index(
        "Predictors", "search.predictor", summaries, "predictors", catalog
    )
    return pages


def _index(
    title: str, field: str, summaries: dict[str, str], folder: str, catalog: dict[str, Any]
) -> str:
    lines = [
        f"# {title}",
        "",
        f"Set with `{field}`.",
        "",
        "| name | what | needs |",
        "|---|---|---|",
    ]
    for name, summary in summaries.items():
        needs = catalog[name].get("needs") or "core"
        lines.append(f"| [`{name}`]({name}.md) | {_one_line(summary)} | {needs} |")
    return "\n".join(lines) + "\n"


def _same_names(what: str, registry: Any, catalog: dict[str, Any]) -> None:
    missing, unknown = set(registry) - set(catalog), set(catalog) - set(registry)
    if missing or unknown:
        raise ValueError(
            f"docs/_catalog.yaml {what}: no entry for {sorted(missing)}; "
            f"entries for unregistered {sorted(unknown)}"
        )


def _read_class(module: str, cls: str) -> tuple[str, list[tuple[str, str]]]:
    """A predictor's module docstring and its ``__init__`` parameters with their defaults,
    read from the source (the module may need an optional package to import)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    node = classes[cls]
    init = None
    while init is None:
        init = next(
            (f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None
        )
        bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes]
        if init is None and not bases:
            break
        if init is None:
            node = classes[bases[0]]
    params: list[tuple[str, str]] = []
    if init is not None:
        args = init.args.args[1:] + init.args.kwonlyargs
        defaults = [None] * (len(init.args.args) - 1 - len(init.args.defaults))
        defaults += list(init.args.defaults) + list(init.args.kw_defaults)
        params = [
            (a.arg, ast.unparse(d) if d is not None else "required")
            for a, d in zip(args, defaults, strict=True)
        ]
    return (ast.get_docstring(tree) or ast.get_docstring(classes[cls]) or "").strip(), params


# ---------------------------------------------------------------------------------- exports


def export_reference() -> str:
    from mixopt.export import registered_exporters
    from mixopt.export.units import UNIT_TEXT

    lines = [
        "# Export formats",
        "",
        "Generated from the export registry (`mixopt.export.registry`). `mixopt export JOB -f "
        "FORMAT` writes one; every export opens with a header naming mixopt's version, the job, "
        "the data hash, the unit and the tokenizer. See [Exports and units](../exports.md).",
        "",
        "| format | unit | writes data (`--data-dir`) | what |",
        "|---|---|---|---|",
    ]
    sections = []
    for exporter in registered_exporters():
        module = importlib.import_module(type(exporter).__module__)
        doc = (module.__doc__ or "").strip()
        writes = "yes" if exporter.writes_data else ""
        lines.append(f"| `{exporter.name}` | {exporter.unit} | {writes} | {exporter.title} |")
        sections += [f"## `{exporter.name}`", "", f"Unit: {UNIT_TEXT[exporter.unit]}.", "", doc, ""]
    return "\n".join([*lines, "", *sections]) + "\n"
