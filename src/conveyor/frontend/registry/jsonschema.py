"""JSON Schemas (draft 2020-12) for the registry: parsing, fingerprints and compatibility.

``check(reader, writer)`` answers "is every instance valid under ``writer`` also valid under
``reader``?" by a sound, conservative structural comparison (see ``_json_compare``): what it
cannot prove compatible it reports, with a specific rule. Conservative verdicts, by design:

* a property the reader declares and an *open* writer does not is
  ``property_added_to_open_model`` (the writer may already send it with any value), unless
  the writer's ``additionalProperties`` schema fits the reader's, as Confluent does;
* a different ``pattern`` or different ``patternProperties`` keys (regex inclusion is not
  decided), ``oneOf`` branches not provably disjoint (by type, values, a ``const``
  discriminator or the writer's own ``oneOf``), ``unevaluated*`` unless identical, and any
  other keyword (``not``, ``if``…) unless identical;
* ``format`` is an annotation (as the payload validator treats it) and is ignored.
"""

from __future__ import annotations

import hashlib
import json

from conveyor.errors import InvalidRequest
from conveyor.frontend.registry._json_compare import Comparator
from conveyor.frontend.registry._json_document import walk
from conveyor.frontend.registry.breaking import Breaking
from conveyor.frontend.validation import compile_schema

_DRAFT_2020_12 = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2020-12/schema#",
    }
)


def parse(text: str) -> dict[str, object]:
    """Parse a JSON Schema: a JSON object, valid under draft 2020-12, self-contained.

    Raises:
        ValueError: ``text`` is not JSON, not an object, declares another draft, has a
            ``$ref`` outside the document (only ``#…`` references are supported), or is not a
            valid schema; the message names the problem and where it is.
    """
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the schema is not JSON: {e}") from e
    if not isinstance(schema, dict):
        raise ValueError(f"the schema must be a JSON object, not {type(schema).__name__}")
    declared = schema.get("$schema")
    if declared is not None and declared not in _DRAFT_2020_12:
        raise ValueError(
            f"$schema {declared!r} is not draft 2020-12 "
            f"(https://json-schema.org/draft/2020-12/schema)"
        )
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
        where = (e.field or "/schema").removeprefix("/schema") or "/"
        raise ValueError(f"{e.message} (at {where})") from e
    return schema


def check(reader: dict[str, object], writer: dict[str, object]) -> list[Breaking]:
    """Every reason an instance valid under ``writer`` may be invalid under ``reader``.

    Returns:
        The breaking changes, without duplicates; empty when every writer instance is
        proven valid under the reader.
    """
    found = Comparator(reader, writer).compare(reader, writer, "/")
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
