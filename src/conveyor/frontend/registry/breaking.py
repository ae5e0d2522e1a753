"""What a compatibility check reports: one ``Breaking`` per reason a reader cannot read data.

Every schema type implements one primitive, ``check(reader, writer) -> list[Breaking]``, which
answers "can every datum written with ``writer`` be read with ``reader``?" (an empty list means
yes). The registry's modes (``modes.py``) are compositions of that primitive.

Invariant: rule names describe the *reader* relative to the *writer*. In a BACKWARD check the
reader is the new schema, so ``field_added_without_default`` reads as "the new schema added a
field without a default"; in a FORWARD check the reader is the old schema, so the same rule
means "the new schema no longer writes a field the old schema needs". ``old``/``new`` are
re-oriented by ``modes.breaking_changes`` so that ``old`` always describes the earlier schema.

Rules, shared by both schema types where the concept exists:

=================================  ==========================================================
``type_changed``                   the writer's type cannot be read as the reader's type
``name_changed``                   Avro named type whose name (and aliases) do not match
``size_changed``                   Avro fixed of a different size
``field_added_without_default``    Avro reader field missing from the writer, with no default
``enum_narrowed``                  a value the writer may produce is not in the reader's enum
``union_narrowed``                 a writer union branch (Avro) or ``anyOf``/``oneOf`` branch
                                   (JSON Schema) matches no reader branch
``logical_type_changed``           Avro logical types differ (including decimal scale)
``required_added``                 the reader requires a property the writer may omit
``dependent_required_added``       the reader's ``dependentRequired`` asks for more
``field_removed``                  the reader forbids a property the writer declares
``additional_properties_closed``   the reader constrains undeclared properties the writer allows
``property_added_to_open_model``   the reader constrains a property the writer's open content
                                   model allows with any value
``pattern_properties_changed``     ``patternProperties`` differ (regex inclusion is undecided)
``range_narrowed``                 ``minimum``/``maximum``/exclusive bounds narrowed
``multiple_of_changed``            the writer's numbers need not be multiples of the reader's
``length_narrowed``                a length or count bound narrowed (strings, arrays, objects)
``pattern_changed``                the reader's ``pattern`` differs from the writer's
``unique_items_added``             the reader requires unique items, the writer does not
``one_of_overlap``                 a writer value could match several reader ``oneOf`` branches
``keyword_changed``                any other constraint the reader adds or changes
``unresolvable_ref``               a ``$ref`` that does not point into the same document
=================================  ==========================================================
"""

from __future__ import annotations

import msgspec


class Breaking(msgspec.Struct, frozen=True):
    """One reason data written with one schema cannot be read with another.

    Attributes:
        path: where in the schema, as a JSON pointer through names rather than indexes
            (``/properties/amount``, Avro ``/fields/amount``); ``/`` for the schema itself.
            JSON Schema paths follow ``$ref`` (the instance's shape, not the document's);
            Avro paths name a union branch by its type (``/fields/payment/null``).
        rule: the machine name of the rule broken (see the module docstring).
        old: the earlier schema's type or value at ``path``, when there is one.
        new: the later schema's type or value at ``path``, when there is one.
        message: one human sentence.
    """

    path: str
    rule: str
    old: str | None
    new: str | None
    message: str


def join(path: str, *parts: str) -> str:
    """``path`` extended by ``parts``, each escaped as an RFC 6901 reference token."""
    base = "" if path == "/" else path
    return base + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
