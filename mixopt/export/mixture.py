"""json and yaml: the mixture in every unit, what it is expected to achieve, and where it is from.

``mixture`` is the recommendation itself: token shares under the job's tokenizer (named with its
hash and vocabulary under ``tokenizer``). Beside it: ``byte_shares`` and ``document_shares`` (the
same mixture of text, tokenizer-independent), each domain's measured size, and with
``--tokenizer`` the token shares under that tokenizer. A unit that cannot be computed (no data
manifest, or one without the counts it needs) is null, and ``notes`` says why.

A staged job adds ``stages`` after ``mixture`` (which stays the searched stage's): each stage's
name, share, start and end (fractions of the run), whether it was searched, its token shares
(``mixture``) and, with ``target.tokens``, its ``tokens`` range of the target run.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from mixopt.errors import MixoptError
from mixopt.export.base import Exporter, provenance
from mixopt.export.blend import Blend
from mixopt.export.units import UNIT_TEXT, byte_shares


def mixture_document(blend: Blend) -> dict[str, Any]:
    """The json/yaml content: the mixture first, then its prediction, units and provenance."""
    rec = blend.recommendation
    notes: list[str] = []
    doc: dict[str, Any] = {
        "mixture": blend.weights,
        "unit": "token shares under the job's tokenizer (see tokenizer)",
        "objective": rec.get("objective"),
        "predicted_objective": rec.get("predicted_objective"),
        "predicted_std": rec.get("predicted_std"),
        "verdict": rec.get("verdict"),
        "job": rec.get("job"),
        "data_hash": blend.data_hash,
        "repetition_caps": rec.get("repetition_caps"),
        "target_epochs": rec.get("target_epochs"),
        "tokenizer": None,
        "byte_shares": None,
        "document_shares": None,
        "domains": None,
    }
    if blend.manifest is None:
        notes.append("no data manifest: byte and document shares cannot be computed")
    else:
        tokenizer = blend.proxy_tokenizer()
        doc["tokenizer"] = tokenizer.to_dict() if tokenizer is not None else None
        doc["domains"] = {
            name: {
                "tokens": m.tokens,
                "bytes": m.bytes,
                "documents": m.documents,
                "tokens_per_document": round(m.tokens_per_document, 3) if m.documents else None,
                "bytes_per_token": round(m.bytes_per_token, 4) if m.tokens else None,
            }
            for name, m in blend.measures.items()
            if name in blend.weights
        }
        for key, convert in (
            ("byte_shares", lambda: byte_shares(blend.weights, blend.measures)),
            ("document_shares", lambda: blend.shares("examples")),
        ):
            try:
                doc[key] = convert()
            except MixoptError as error:
                notes.append(f"{key}: {error}")
    if blend.retokenized is not None:
        r = blend.retokenized
        doc["tokenizer_shares"] = {
            "tokenizer": r.tokenizer.to_dict(),
            "shares": blend.shares("tokens"),
            "measured": {
                name: {
                    "tokens": m.measure.tokens,
                    "bytes": m.measure.bytes,
                    "documents": m.measure.documents,
                    "fraction_read": round(m.fraction, 4),
                }
                for name, m in r.measured.items()
                if name in blend.weights
            },
        }
    doc["units"] = {
        "mixture": UNIT_TEXT["tokens"],
        "byte_shares": "shares of UTF-8 bytes of text (tokenizer-independent)",
        "document_shares": "probabilities per document: " + UNIT_TEXT["examples"],
    }
    doc["provenance"] = provenance(blend)
    doc["notes"] = notes
    if blend.stages:
        stages = []
        for stage in blend.stages:
            tokens = blend.stage_tokens(stage)
            stages.append({**stage.to_dict(), "tokens": None if tokens is None else list(tokens)})
        first, *rest = doc.items()
        doc = dict([first, ("stages", stages), *rest])
        doc["unit"] += "; mixture is the searched stage's, stages the whole schedule"
    return doc


class JsonExport(Exporter):
    staged = True
    name = "json"
    title = "mixopt mixture (JSON)"
    unit = "all"
    needs_data = False

    def render(self, blend: Blend) -> str:
        return json.dumps(mixture_document(blend), indent=2) + "\n"


class YamlExport(Exporter):
    staged = True
    name = "yaml"
    title = "mixopt mixture (YAML)"
    unit = "all"
    needs_data = False

    def render(self, blend: Blend) -> str:
        return self.header(blend) + yaml.safe_dump(mixture_document(blend), sort_keys=False)
