"""JSON Schemas for the registry: parsing, fingerprints and compatibility.

A document is written in draft 4, 6, 7, 2019-09 or 2020-12, as its ``$schema`` says. Without
``$schema`` it is 2020-12, unless it is not a valid 2020-12 schema but a valid draft-7 one
(array-form ``items``, say), the draft Confluent's registry assumes: then it is draft 7.

``check(reader, writer)`` answers "is every instance valid under ``writer`` also valid under
``reader``?" by a sound, conservative structural comparison (see ``_json_compare``) of the
two documents restated in 2020-12 keywords (``_json_drafts.normalize``): what it cannot
prove compatible it reports, with a specific rule. Conservative verdicts, by design:

* a property the reader declares and an *open* writer does not is
  ``property_added_to_open_model`` (the writer may already send it with any value), unless
  the writer's ``additionalProperties`` schema fits the reader's, as Confluent does;
* a different ``pattern`` or different ``patternProperties`` keys (regex inclusion is not
  decided), ``oneOf`` branches not provably disjoint (by type, values, a ``const``
  discriminator or the writer's own ``oneOf``), ``unevaluated*`` unless identical, and any
  other keyword (``not``, ``if``…) unless identical;
* ``format`` is an annotation in 2019-09 and 2020-12 (as the payload validator treats it) and
  is ignored there; up to draft 7 the validator asserts it, so a reader's ``format`` must be
  the writer's, asserted too.
"""

from __future__ import annotations

import hashlib
import json

from conveyor.codecs.validation import compile_schema
from conveyor.errors import InvalidRequest
from conveyor.frontend.registry._json_compare import Comparator
from conveyor.frontend.registry._json_document import walk
from conveyor.frontend.registry._json_drafts import DRAFT_7_URI, declared_draft, normalize
from conveyor.frontend.registry.breaking import Breaking


def parse(text: str) -> dict[str, object]:
    """Parse a JSON Schema: a JSON object, valid under its draft, self-contained.

    Returns:
        The document; one read as draft 7 for want of a ``$schema`` gets that ``$schema``, so
        that a validator built from it checks payloads under draft 7.

    Raises:
        ValueError: ``text`` is not JSON, not an object, declares a draft not accepted, has
            a ``$ref`` outside the document (only ``#…`` references are supported), or is not
            a valid schema; the message names the problem and where it is.
    """
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the schema is not JSON: {e}") from e
    if not isinstance(schema, dict):
        raise ValueError(f"the schema must be a JSON object, not {type(schema).__name__}")
    declared = declared_draft(schema)
    for node in walk(schema):
        for keyword in ("$ref", "$dynamicRef"):
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                raise ValueError(
                    f"{keyword} {ref!r} points outside the schema; only references within "
                    f"the same document ('#/$defs/…') are supported"
                )
    try:
        compile_schema(schema)
    except InvalidRequest as e:
        if declared is None:
            as_draft_7 = {"$schema": DRAFT_7_URI, **schema}
            try:
                compile_schema(as_draft_7)
            except InvalidRequest:
                pass
            else:
                return as_draft_7
        where = (e.field or "/schema").removeprefix("/schema") or "/"
        raise ValueError(f"{e.message} (at {where})") from e
    return schema


def check(reader: dict[str, object], writer: dict[str, object]) -> list[Breaking]:
    """Every reason an instance valid under ``writer`` may be invalid under ``reader``.

    Returns:
        The breaking changes, without duplicates; empty when every writer instance is
        proven valid under the reader.
    """
    r, w = normalize(reader), normalize(writer)
    found = Comparator(r, w).compare(r, w, "/")
    return list(dict.fromkeys(found))


def fingerprint(text: str) -> str:
    """The SHA-256 (hex) of the schema's canonical JSON (sorted keys, no whitespace).

    Raises:
        ValueError: ``text`` is not JSON.
    """
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the schema is not JSON: {e}") from e
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
