"""JSON Schema compatibility of object keywords: properties under open and closed content
models, ``required``, ``dependentRequired`` and ``dependentSchemas``.

A property's value must satisfy every schema that governs it: its ``properties`` entry and
each ``patternProperties`` entry whose pattern matches its name, or else
``additionalProperties`` (``true`` when absent: an *open* content model). ``false`` as
``additionalProperties`` closes the model.
"""

from __future__ import annotations

import re

from conveyor.frontend.registry._json_util import Compare, Node, as_list, as_node, describe
from conveyor.frontend.registry.breaking import Breaking, join


def _governing(node: Node, name: str, *, reader: bool) -> list[object]:
    """The schemas a property called ``name`` must satisfy under ``node``.

    A pattern Python cannot compile counts as matching for the reader (one more constraint)
    and makes the writer's property unconstrained (fewer constraints): both conservative.
    """
    found: list[object] = []
    properties = as_node(node.get("properties"))
    if name in properties:
        found.append(properties[name])
    for pattern, schema in as_node(node.get("patternProperties")).items():
        try:
            matches = re.search(pattern, name) is not None
        except re.error:
            if not reader:
                return [True]
            matches = True
        if matches:
            found.append(schema)
    return found or [node.get("additionalProperties", True)]


def _closed(node: Node) -> bool:
    return node.get("additionalProperties", True) is False and not node.get("patternProperties")


def objects(reader: Node, writer: Node, path: str, compare: Compare) -> list[Breaking]:
    """Properties, ``required``, ``dependentRequired`` and ``dependentSchemas``."""
    names = dict.fromkeys([*as_node(reader.get("properties")), *as_node(writer.get("properties"))])
    found: list[Breaking] = []
    for name in names:
        found += _property(reader, writer, name, join(path, "properties", name), compare)
    found += _rest(reader, writer, path, compare)
    found += _required(reader, writer, path)
    return found + _dependent_schemas(reader, writer, path, compare)


def _dependent_schemas(reader: Node, writer: Node, path: str, compare: Compare) -> list[Breaking]:
    """A writer's instance that has the property satisfies the writer's dependent schema for
    it (when there is one), and always the writer itself: either within the reader's
    dependent schema proves it."""
    w_dependent = as_node(writer.get("dependentSchemas"))
    found: list[Breaking] = []
    for name, r_schema in as_node(reader.get("dependentSchemas")).items():
        if any(s is False for s in _governing(writer, name, reader=False)):
            continue  # the writer never writes the property
        at = join(path, "dependentSchemas", name)
        results = [compare(r_schema, writer, at)]
        if name in w_dependent:
            results.insert(0, compare(r_schema, w_dependent[name], at))
        if all(results):
            found += results[0]
    return found


def _property(reader: Node, writer: Node, name: str, path: str, compare: Compare) -> list[Breaking]:
    w_schemas = _governing(writer, name, reader=False)
    if any(s is False for s in w_schemas):
        return []  # the writer never writes this property
    declared_by_writer = name in as_node(writer.get("properties"))
    declared_by_reader = name in as_node(reader.get("properties"))
    found: list[Breaking] = []
    for r_schema in _governing(reader, name, reader=True):
        if r_schema is True:
            continue
        if r_schema is False:
            found.append(
                Breaking(
                    path,
                    "field_removed",
                    old=describe(w_schemas[0]),
                    new=None,
                    message=f"the reader forbids property {name!r}, which the writer allows",
                )
            )
            continue
        # The writer's value satisfies all of w_schemas; one of them within r_schema suffices.
        results = [compare(r_schema, w, path) for w in w_schemas]
        if any(not r for r in results):
            continue
        if not declared_by_writer and declared_by_reader:
            found.append(_added_to_open_model(name, path, w_schemas[0], r_schema))
        elif declared_by_writer and not declared_by_reader:
            found.append(
                Breaking(
                    path,
                    "field_removed",
                    old=describe(w_schemas[0]),
                    new=describe(r_schema),
                    message=f"the reader no longer declares property {name!r} and its other "
                    f"schemas ({describe(r_schema)}) may reject the writer's values",
                )
            )
        else:
            found += sorted(results, key=len)[0]
    return found


def _added_to_open_model(name: str, path: str, writer: object, reader: object) -> Breaking:
    return Breaking(
        path,
        "property_added_to_open_model",
        old=describe(writer),
        new=describe(reader),
        message=f"the reader constrains property {name!r} to {describe(reader)}, but the "
        f"writer's open content model allows it as {describe(writer)}",
    )


def _rest(reader: Node, writer: Node, path: str, compare: Compare) -> list[Breaking]:
    """Properties declared by neither side: patterns, then ``additionalProperties``."""
    if _closed(writer):
        return []
    r_patterns = as_node(reader.get("patternProperties"))
    w_patterns = as_node(writer.get("patternProperties"))
    r_extra = reader.get("additionalProperties", True)
    w_extra = writer.get("additionalProperties", True)
    at = join(path, "additionalProperties")
    if not r_patterns and r_extra is True:
        return []
    if r_patterns and r_patterns.keys() != w_patterns.keys():
        return [
            Breaking(
                path,
                "pattern_properties_changed",
                old=", ".join(w_patterns) or None,
                new=", ".join(r_patterns),
                message="the reader's patternProperties differ from the writer's; which names "
                "they match cannot be compared",
            )
        ]
    found: list[Breaking] = []
    for pattern, r_schema in r_patterns.items():
        found += compare(r_schema, w_patterns[pattern], join(path, "patternProperties", pattern))
    # Without reader patterns, what the writer's patterns govern falls to r_extra.
    others = [w_extra] if r_patterns else [w_extra, *w_patterns.values()]
    if r_extra is False:
        if any(w is not False for w in others):
            found.append(_closed_breaking(at, w_extra))
        return found
    for w_schema in others:
        found += compare(r_extra, w_schema, at)
    return found


def _closed_breaking(path: str, writer_extra: object) -> Breaking:
    return Breaking(
        path,
        "additional_properties_closed",
        old=describe(writer_extra),
        new="nothing",
        message="the reader forbids undeclared properties, which the writer allows",
    )


def _required(reader: Node, writer: Node, path: str) -> list[Breaking]:
    w_required = set(map(str, as_list(writer.get("required"))))
    found = [
        Breaking(
            join(path, "properties", name),
            "required_added",
            old="optional",
            new="required",
            message=f"the reader requires property {name!r}, which the writer may omit",
        )
        for name in map(str, as_list(reader.get("required")))
        if name not in w_required
    ]
    w_dependent = as_node(writer.get("dependentRequired"))
    for name, needs in as_node(reader.get("dependentRequired")).items():
        have = w_required | set(map(str, as_list(w_dependent.get(name))))
        missing = [n for n in map(str, as_list(needs)) if n not in have]
        if missing:
            found.append(
                Breaking(
                    join(path, "properties", name),
                    "dependent_required_added",
                    old=", ".join(sorted(have)) or None,
                    new=", ".join(map(str, as_list(needs))),
                    message=f"with property {name!r} the reader also requires "
                    f"{', '.join(missing)}, which the writer may omit",
                )
            )
    return found
