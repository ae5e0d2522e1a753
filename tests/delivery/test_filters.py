"""Subscription filters: the pattern language (every matcher, EventBridge's documented examples,
``$or``, arrays, missing fields, types, null), the errors that name the place in the pattern,
and fuzzing of both compiling and matching."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from conveyor.delivery.filters import (
    MAX_DEPTH,
    MAX_STRING,
    MAX_VALUES,
    Filter,
    FilterError,
    compile_filter,
)
from conveyor.errors import InvalidRequest


def compile_json(pattern: object) -> Filter:
    """Compile any JSON value, as the API would hand it over."""
    return compile_filter(cast("Mapping[str, object]", pattern))


@dataclass(frozen=True)
class Ev:
    """An event as a filter sees it."""

    payload: object = None
    attributes: Mapping[str, str] | None = None
    key: str | None = None


def matches(pattern: object, event: Ev) -> bool:
    return compile_json(pattern).matches(event.attributes, event.payload, event.key)


def on(field_name: str, *matchers: object) -> dict[str, object]:
    """A pattern over one payload field."""
    return {"payload": {field_name: list(matchers)}}


# The sample event of EventBridge's content-filtering documentation, as a payload.
AWS_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running",
    },
}
EMPLOYEES = {
    "employees": [
        {"firstName": "John", "lastName": "Doe"},
        {"firstName": "Anna", "lastName": "Smith"},
        {"firstName": "Peter", "lastName": "Jones"},
    ]
}
EMPLOYEES_NESTED = {
    "employees": [
        [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
        [{"firstName": "Peter", "lastName": "Jones"}],
    ]
}
METRIC_OR = {
    "payload": {
        "source": ["aws.cloudwatch"],
        "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2"]}],
    }
}
NESTED_OR = {
    "payload": {
        "source": ["aws.cloudwatch"],
        "$or": [
            {"metricName": ["CPUUtilization"]},
            {
                "metricType": ["MetricType"],
                "namespace": ["AWS/EC2", "AWS/ES"],
                "$or": [{"metricId": [1234]}, {"spaceId": [1000]}],
            },
            {"scope": ["Service"]},
        ],
    }
}
PARALLEL_OR = {
    "payload": {
        "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        "detail": {"$or": [{"source": ["aws.cloudwatch"]}, {"detail-type": ["Alarm"]}]},
    }
}
CROSS_SECTION_OR = {
    "$or": [{"attributes": {"tier": ["gold"]}}, {"key": [{"prefix": "vip-"}]}],
    "payload": {"kind": ["order"]},
}
ANNA = {"payload": {"employees": {"firstName": ["Anna"]}}}
ANNA_JONES = {"payload": {"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}}
ANNA_SMITH = {"payload": {"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}}
B_IS_MISSING = {"payload": {"a": {"b": [{"exists": False}]}}}

# (id, pattern, event, whether it matches)
MATCHES: list[tuple[str, object, Ev, bool]] = [
    # --- exact values: strings, numbers, booleans, null; OR within an array, AND across fields
    ("exact-string", on("state", "running"), Ev({"state": "running"}), True),
    ("exact-other", on("state", "running"), Ev({"state": "stopped"}), False),
    ("exact-any-of-array", on("state", "a", "b"), Ev({"state": "b"}), True),
    ("exact-has-case", on("state", "Running"), Ev({"state": "running"}), False),
    ("exact-int", on("n", 5), Ev({"n": 5}), True),
    ("exact-number-by-value", on("n", 5), Ev({"n": 5.0}), True),
    ("exact-300-is-3e2", on("n", 300), Ev({"n": 3e2}), True),
    ("exact-number-not-string", on("n", 5), Ev({"n": "5"}), False),
    ("exact-string-not-number", on("n", "5"), Ev({"n": 5}), False),
    ("exact-1-not-true", on("n", 1), Ev({"n": True}), False),
    ("exact-true-not-1", on("n", True), Ev({"n": 1}), False),
    ("exact-false-not-0", on("n", False), Ev({"n": 0}), False),
    ("exact-true", on("n", True), Ev({"n": True}), True),
    ("exact-string-true-not-true", on("n", "true"), Ev({"n": True}), False),
    ("null-matches-null", on("n", None), Ev({"n": None}), True),
    ("null-not-missing", on("n", None), Ev({}), False),
    ("null-not-empty-string", on("n", None), Ev({"n": ""}), False),
    ("null-not-string-null", on("n", None), Ev({"n": "null"}), False),
    ("empty-string", on("n", ""), Ev({"n": ""}), True),
    ("empty-string-not-null", on("n", ""), Ev({"n": None}), False),
    ("exact-big-ints-differ", on("n", 2**60), Ev({"n": 2**60 + 1}), False),
    ("and-all", {"payload": {"a": ["x"], "b": ["y"]}}, Ev({"a": "x", "b": "y"}), True),
    ("and-one-off", {"payload": {"a": ["x"], "b": ["y"]}}, Ev({"a": "x", "b": "z"}), False),
    ("and-one-missing", {"payload": {"a": ["x"], "b": ["y"]}}, Ev({"a": "x"}), False),
    # --- prefix and suffix, with and without case
    ("prefix-eventbridge", on("time", {"prefix": "2017-10-02"}), Ev(AWS_EVENT), True),
    ("prefix-other", on("t", {"prefix": "2017"}), Ev({"t": "2016-1"}), False),
    ("prefix-not-number", on("t", {"prefix": "2017"}), Ev({"t": 2017}), False),
    ("prefix-empty", on("t", {"prefix": ""}), Ev({"t": ""}), True),
    (
        "prefix-ignore-case",
        on("s", {"prefix": {"equals-ignore-case": "EventB"}}),
        Ev({"s": "eventbridge"}),
        True,
    ),
    (
        "prefix-ignore-case-short",
        on("s", {"prefix": {"equals-ignore-case": "EventB"}}),
        Ev({"s": "Event"}),
        False,
    ),
    ("suffix", on("f", {"suffix": ".png"}), Ev({"f": "a.png"}), True),
    ("suffix-has-case", on("f", {"suffix": ".png"}), Ev({"f": "a.PNG"}), False),
    (
        "suffix-ignore-case",
        on("f", {"suffix": {"equals-ignore-case": ".png"}}),
        Ev({"f": "a.PNG"}),
        True,
    ),
    ("suffix-eventbridge", on("source", {"suffix": "ec2"}), Ev(AWS_EVENT), True),
    # --- equals-ignore-case
    ("ignore-case", on("n", {"equals-ignore-case": "alice"}), Ev({"n": "ALICE"}), True),
    ("ignore-case-no", on("n", {"equals-ignore-case": "alice"}), Ev({"n": "alicia"}), False),
    (
        "ignore-case-casefolds",
        on("n", {"equals-ignore-case": "straße"}),
        Ev({"n": "STRASSE"}),
        True,
    ),
    ("ignore-case-not-number", on("n", {"equals-ignore-case": "5"}), Ev({"n": 5}), False),
    # --- wildcard
    ("wc", on("s", {"wildcard": "Simple*Service"}), Ev({"s": "SimpleQueueService"}), True),
    ("wc-empty", on("s", {"wildcard": "Simple*Service"}), Ev({"s": "SimpleService"}), True),
    ("wc-whole-value", on("s", {"wildcard": "Simple*Service"}), Ev({"s": "SimpleServices"}), False),
    ("wc-slashes", on("p", {"wildcard": "dir/*/file"}), Ev({"p": "dir/a/b/file"}), True),
    ("wc-in-order", on("p", {"wildcard": "*a*b*c*"}), Ev({"p": "xcxbxa-a-b-c"}), True),
    ("wc-out-of-order", on("p", {"wildcard": "*a*b*c*"}), Ev({"p": "cba"}), False),
    ("wc-no-overlap", on("p", {"wildcard": "ab*ba"}), Ev({"p": "aba"}), False),
    ("wc-star-empty", on("p", {"wildcard": "*"}), Ev({"p": ""}), True),
    ("wc-not-number", on("p", {"wildcard": "*"}), Ev({"p": 1}), False),
    ("wc-no-star", on("p", {"wildcard": "abc"}), Ev({"p": "abc"}), True),
    ("wc-escaped-star", on("p", {"wildcard": "a\\*b"}), Ev({"p": "a*b"}), True),
    ("wc-literal-star", on("p", {"wildcard": "a\\*b"}), Ev({"p": "axb"}), False),
    ("wc-backslash", on("p", {"wildcard": "a\\\\*"}), Ev({"p": "a\\bc"}), True),
    (
        "wc-no-backtracking",
        on("p", {"wildcard": "a*a*a*a*a*a*a*a*a*a*b"}),
        Ev({"p": "a" * 5000}),
        False,
    ),
    # --- numeric
    ("num-range", on("c", {"numeric": [">", 0, "<=", 5]}), Ev({"c": 5}), True),
    ("num-open", on("c", {"numeric": [">", 0, "<=", 5]}), Ev({"c": 0}), False),
    ("num-above", on("c", {"numeric": [">", 0, "<=", 5]}), Ev({"c": 5.000001}), False),
    ("num-range-reversed", on("c", {"numeric": ["<=", 5, ">", 0]}), Ev({"c": 3}), True),
    ("num-closed-point", on("c", {"numeric": [">=", 5, "<=", 5]}), Ev({"c": 5}), True),
    ("num-less", on("c", {"numeric": ["<", 10]}), Ev({"c": -3.5}), True),
    ("num-at-least", on("c", {"numeric": [">=", 10]}), Ev({"c": 10}), True),
    ("num-equal", on("x", {"numeric": ["=", 3.018e2]}), Ev({"x": 301.8}), True),
    ("num-not-string", on("c", {"numeric": [">", 0]}), Ev({"c": "3"}), False),
    ("num-not-bool", on("c", {"numeric": [">", 0]}), Ev({"c": True}), False),
    ("num-not-null", on("c", {"numeric": [">", 0]}), Ev({"c": None}), False),
    ("num-huge-int", on("c", {"numeric": [">", 1e308]}), Ev({"c": 10**400}), True),
    ("num-nan-event", on("c", {"numeric": ["<", 1]}), Ev({"c": float("nan")}), False),
    (
        "num-eventbridge",
        {
            "payload": {
                "detail": {
                    "c-count": [{"numeric": [">", 0, "<=", 5]}],
                    "d-count": [{"numeric": ["<", 10]}],
                    "x-limit": [{"numeric": ["=", 3.018e2]}],
                }
            }
        },
        Ev(AWS_EVENT),
        True,
    ),
    # --- cidr
    ("cidr", on("ip", {"cidr": "10.0.0.0/24"}), Ev({"ip": "10.0.0.33"}), True),
    ("cidr-out", on("ip", {"cidr": "10.0.0.0/24"}), Ev({"ip": "10.0.1.1"}), False),
    ("cidr-not-ip", on("ip", {"cidr": "10.0.0.0/24"}), Ev({"ip": "nope"}), False),
    ("cidr-int", on("ip", {"cidr": "10.0.0.0/24"}), Ev({"ip": 167772161}), False),
    ("cidr-v6-in-v4", on("ip", {"cidr": "10.0.0.0/24"}), Ev({"ip": "::a00:1"}), False),
    ("cidr-v6", on("ip", {"cidr": "2001:db8::/32"}), Ev({"ip": "2001:db8::1"}), True),
    ("cidr-host-bits", on("ip", {"cidr": "10.0.0.7/24"}), Ev({"ip": "10.0.0.1"}), True),
    # --- exists
    ("exists", on("c", {"exists": True}), Ev({"c": 1}), True),
    ("exists-null", on("c", {"exists": True}), Ev({"c": None}), True),
    ("exists-missing", on("c", {"exists": True}), Ev({}), False),
    ("exists-leaf-only", on("c", {"exists": True}), Ev({"c": {"c1": 1}}), False),
    ("exists-empty-array", on("c", {"exists": True}), Ev({"c": []}), False),
    ("exists-array-null", on("c", {"exists": True}), Ev({"c": [None]}), True),
    ("not-exists", on("c", {"exists": False}), Ev({}), True),
    ("not-exists-present", on("c", {"exists": False}), Ev({"c": 0}), False),
    ("not-exists-null", on("c", {"exists": False}), Ev({"c": None}), False),
    ("not-exists-eventbridge", on("c", {"exists": False}), Ev({"c": {"c1": 100}}), True),
    ("not-exists-empty-array", on("c", {"exists": False}), Ev({"c": []}), True),
    ("exists-or-value", on("c", "x", {"exists": False}), Ev({"c": "x"}), True),
    ("exists-or-other", on("c", "x", {"exists": False}), Ev({"c": "y"}), False),
    # --- anything-but
    ("ab", on("state", {"anything-but": "initializing"}), Ev(AWS_EVENT["detail"]), True),
    ("ab-same", on("s", {"anything-but": "initializing"}), Ev({"s": "initializing"}), False),
    ("ab-not-missing", on("s", {"anything-but": "x"}), Ev({}), False),
    ("ab-other-type", on("s", {"anything-but": "x"}), Ev({"s": 5}), True),
    ("ab-null", on("s", {"anything-but": "x"}), Ev({"s": None}), True),
    ("ab-object", on("s", {"anything-but": "x"}), Ev({"s": {"x": 1}}), False),
    ("ab-number", on("x", {"anything-but": 123}), Ev({"x": 124}), True),
    ("ab-number-same", on("x", {"anything-but": 123}), Ev({"x": 123.0}), False),
    ("ab-list", on("s", {"anything-but": ["stopped", "overloaded"]}), Ev({"s": "running"}), True),
    (
        "ab-list-listed",
        on("s", {"anything-but": ["stopped", "overloaded"]}),
        Ev({"s": "stopped"}),
        False,
    ),
    ("ab-numbers", on("x-limit", {"anything-but": [100, 200, 300]}), Ev(AWS_EVENT["detail"]), True),
    ("ab-numbers-listed", on("x", {"anything-but": [100, 200, 300]}), Ev({"x": 200}), False),
    ("ab-prefix", on("s", {"anything-but": {"prefix": "init"}}), Ev({"s": "initial"}), False),
    ("ab-prefix-no", on("s", {"anything-but": {"prefix": "init"}}), Ev({"s": "running"}), True),
    ("ab-prefixes", on("s", {"anything-but": {"prefix": ["a", "b"]}}), Ev({"s": "bc"}), False),
    ("ab-suffix", on("f", {"anything-but": {"suffix": ".png"}}), Ev({"f": "a.jpg"}), True),
    ("ab-suffix-is", on("f", {"anything-but": {"suffix": ".png"}}), Ev({"f": "a.png"}), False),
    (
        "ab-ignore-case",
        on("s", {"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}),
        Ev({"s": "STOPPED"}),
        False,
    ),
    (
        "ab-ignore-case-other",
        on("s", {"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}),
        Ev({"s": "running"}),
        True,
    ),
    (
        "ab-wildcard",
        on("p", {"anything-but": {"wildcard": "*/lib/*"}}),
        Ev({"p": "/usr/lib/libc.so"}),
        False,
    ),
    (
        "ab-wildcard-other",
        on("p", {"anything-but": {"wildcard": "*/lib/*"}}),
        Ev({"p": "/usr/bin/env"}),
        True,
    ),
    ("ab-array-any", on("t", {"anything-but": "a"}), Ev({"t": ["a", "b"]}), True),
    ("ab-array-only", on("t", {"anything-but": "a"}), Ev({"t": ["a"]}), False),
    ("ab-empty-array", on("t", {"anything-but": "a"}), Ev({"t": []}), False),
    # --- EventBridge's complex example
    (
        "eventbridge-complex",
        {
            "payload": {
                "time": [{"prefix": "2017-10-02"}],
                "detail": {
                    "state": [{"anything-but": "initializing"}],
                    "c-count": [{"numeric": [">", 0, "<=", 5]}],
                    "d-count": [{"numeric": ["<", 10]}],
                    "x-limit": [{"anything-but": [100, 200, 300]}],
                    "source-ip": [{"cidr": "10.0.0.0/8"}],
                },
            }
        },
        Ev(AWS_EVENT),
        True,
    ),
    (
        "eventbridge-simple",
        {
            "payload": {
                "detail-type": ["EC2 Instance State-change Notification"],
                "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
                "detail": {"state": ["initializing", "running"]},
            }
        },
        Ev(AWS_EVENT),
        True,
    ),
    # --- $or
    ("or", METRIC_OR, Ev({"source": "aws.cloudwatch", "namespace": "AWS/EC2"}), True),
    ("or-1st", METRIC_OR, Ev({"source": "aws.cloudwatch", "metricName": "ReadLatency"}), True),
    ("or-none", METRIC_OR, Ev({"source": "aws.cloudwatch"}), False),
    ("or-and-the-rest", METRIC_OR, Ev({"namespace": "AWS/EC2"}), False),
    (
        "or-nested-inner-unmet",
        NESTED_OR,
        Ev({"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/ES"}),
        False,
    ),
    (
        "or-nested-inner-met",
        NESTED_OR,
        Ev(
            {
                "source": "aws.cloudwatch",
                "metricType": "MetricType",
                "namespace": "AWS/ES",
                "spaceId": 1000,
            }
        ),
        True,
    ),
    ("or-nested-3rd", NESTED_OR, Ev({"source": "aws.cloudwatch", "scope": "Service"}), True),
    (
        "or-parallel",
        PARALLEL_OR,
        Ev({"namespace": "AWS/EC2", "detail": {"detail-type": "Alarm"}}),
        True,
    ),
    (
        "or-parallel-one-unmet",
        PARALLEL_OR,
        Ev({"namespace": "AWS/EC2", "detail": {"detail-type": "Other"}}),
        False,
    ),
    ("or-top-level-attributes", CROSS_SECTION_OR, Ev({"kind": "order"}, {"tier": "gold"}), True),
    ("or-top-level-key", CROSS_SECTION_OR, Ev({"kind": "order"}, key="vip-7"), True),
    ("or-top-none", CROSS_SECTION_OR, Ev({"kind": "order"}, {"tier": "free"}, "k"), False),
    ("or-top-and-payload", CROSS_SECTION_OR, Ev({"kind": "refund"}, key="vip-7"), False),
    (
        "or-in-attributes",
        {"attributes": {"$or": [{"a": ["1"]}, {"b": ["2"]}]}},
        Ev(attributes={"b": "2"}),
        True,
    ),
    # --- arrays in the event
    ("array-any", on("tags", "a"), Ev({"tags": ["b", "a"]}), True),
    ("array-none", on("tags", "a"), Ev({"tags": ["b", "c"]}), False),
    ("array-nested", on("tags", "a"), Ev({"tags": [["x", ["a"]]]}), True),
    ("array-empty", on("tags", "a"), Ev({"tags": []}), False),
    ("array-of-objects", on("tags", "a"), Ev({"tags": [{"a": 1}]}), False),
    ("array-of-objects-nil", on("tags", {"exists": False}), Ev({"tags": [{"a": 1}]}), True),
    ("array-numeric", on("n", {"numeric": [">", 10]}), Ev({"n": [1, "50", 50]}), True),
    ("array-types-kept", on("n", 1), Ev({"n": [True, "1"]}), False),
    ("array-objects-any", ANNA, Ev(EMPLOYEES), True),
    ("array-consistent", ANNA_JONES, Ev(EMPLOYEES), False),
    ("array-consistent-same-element", ANNA_SMITH, Ev(EMPLOYEES), True),
    ("array-multi-level", ANNA_SMITH, Ev(EMPLOYEES_NESTED), True),
    ("array-multi-level-consistent", ANNA_JONES, Ev(EMPLOYEES_NESTED), False),
    (
        "array-empty-fields-missing",
        {"payload": {"employees": {"firstName": [{"exists": False}]}}},
        Ev({"employees": []}),
        True,
    ),
    (
        "array-element-lacks-field",
        {"payload": {"items": {"discount": [{"exists": False}]}}},
        Ev({"items": [{"discount": 5}, {"sku": "x"}]}),
        True,
    ),
    (
        "array-no-element-lacks-field",
        {"payload": {"items": {"discount": [{"exists": False}]}}},
        Ev({"items": [{"discount": 5}]}),
        False,
    ),
    # --- missing fields and values that are not objects
    ("missing-parent", {"payload": {"a": {"b": ["x"]}}}, Ev({}), False),
    ("nested", {"payload": {"a": {"b": ["x"]}}}, Ev({"a": {"b": "x"}}), True),
    ("missing-parent-not-exists", B_IS_MISSING, Ev({}), True),
    ("scalar-parent-not-exists", B_IS_MISSING, Ev({"a": 5}), True),
    ("null-parent-not-exists", B_IS_MISSING, Ev({"a": None}), True),
    ("nested-present", B_IS_MISSING, Ev({"a": {"b": "x"}}), False),
    ("payload-string", {"payload": {"a": ["x"]}}, Ev("a"), False),
    ("payload-null", {"payload": {"a": ["x"]}}, Ev(None), False),
    ("payload-array", {"payload": {"a": ["x"]}}, Ev([{"a": "x"}]), True),
    ("payload-leaf", {"payload": ["hello"]}, Ev("hello"), True),
    ("payload-leaf-number", {"payload": [{"numeric": [">", 1]}]}, Ev(2), True),
    ("payload-leaf-null", {"payload": [{"exists": True}]}, Ev(None), True),
    ("payload-leaf-object", {"payload": [None]}, Ev({"a": None}), False),
    ("slash-in-name", {"payload": {"a/b": ["x"]}}, Ev({"a/b": "x"}), True),
    ("dot-is-a-char", {"payload": {"a.b": ["x"]}}, Ev({"a": {"b": "x"}}), False),
    # --- attributes and the key
    (
        "attribute",
        {"attributes": {"region": ["eu-west-1"]}},
        Ev(attributes={"region": "eu-west-1"}),
        True,
    ),
    ("attribute-none", {"attributes": {"region": ["eu"]}}, Ev(), False),
    ("attribute-none-not-exists", {"attributes": {"region": [{"exists": False}]}}, Ev(), True),
    ("attributes-not-payload", {"attributes": {"n": ["1"]}}, Ev({"n": "1"}), False),
    ("payload-not-attributes", on("n", "1"), Ev(attributes={"n": "1"}), False),
    (
        "attribute-anything-but",
        {"attributes": {"n": [{"anything-but": ["1", "2"]}]}},
        Ev(attributes={"n": "3"}),
        True,
    ),
    (
        "attribute-cidr",
        {"attributes": {"ip": [{"cidr": "10.0.0.0/8"}]}},
        Ev(attributes={"ip": "10.1.2.3"}),
        True,
    ),
    ("key", {"key": [{"prefix": "customer-"}]}, Ev(key="customer-7"), True),
    ("key-other", {"key": [{"prefix": "customer-"}]}, Ev(key="order-7"), False),
    ("key-none", {"key": ["k"]}, Ev(), False),
    ("keyless-not-exists", {"key": [{"exists": False}]}, Ev(), True),
    ("key-empty-exists", {"key": [{"exists": True}]}, Ev(key=""), True),
    ("keyless-anything-but", {"key": [{"anything-but": "k"}]}, Ev(), False),
    (
        "all-sections",
        {"attributes": {"a": ["1"]}, "payload": {"b": [2]}, "key": ["k"]},
        Ev({"b": 2}, {"a": "1"}, "k"),
        True,
    ),
    (
        "all-sections-key-off",
        {"attributes": {"a": ["1"]}, "payload": {"b": [2]}, "key": ["k"]},
        Ev({"b": 2}, {"a": "1"}, "j"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("pattern", "event", "expected"), [row[1:] for row in MATCHES], ids=[row[0] for row in MATCHES]
)
def test_a_pattern_matches_exactly_the_events_the_language_says(
    pattern: object, event: Ev, expected: bool
) -> None:
    # Given a compiled pattern, when an event is tested, then the answer is the documented one
    assert matches(pattern, event) is expected


def _deep(levels: int) -> dict[str, object]:
    """A pattern whose objects nest ``levels`` deep, the pattern itself included."""
    inner: dict[str, object] = {"x": ["v"]}
    for _ in range(levels - 2):
        inner = {"a": inner}
    return {"payload": inner}


def _deep_or(levels: int) -> dict[str, object]:
    """A pattern nested ``levels`` deep by ``$or`` branches alone."""
    inner: dict[str, object] = {"x": ["v"]}
    for _ in range(levels - 2):
        inner = {"$or": [inner, {"y": ["w"]}]}
    return {"payload": inner}


def _pointer(levels: int, step: str) -> str:
    return "/payload" + step * (levels - 2)


NUMERIC = "/payload/amount/0/numeric"
LONG = "x" * (MAX_STRING + 1)

# (id, pattern, JSON pointer to the offending place, rule)
INVALID: list[tuple[str, object, str, str]] = [
    ("not-an-object", [], "", "type"),
    ("a-string", "payload", "", "type"),
    ("empty", {}, "", "empty"),
    ("unknown-top", {"payloads": {"a": ["x"]}}, "/payloads", "unknown_key"),
    ("eventbridge-style-top", {"detail": {"a": ["x"]}}, "/detail", "unknown_key"),
    ("attributes-array", {"attributes": ["x"]}, "/attributes", "type"),
    ("attributes-empty", {"attributes": {}}, "/attributes", "empty"),
    ("attr-nested", {"attributes": {"a": {"b": ["x"]}}}, "/attributes/a", "type"),
    ("attr-number", {"attributes": {"n": [5]}}, "/attributes/n/0", "string_only"),
    ("attr-null", {"attributes": {"n": [None]}}, "/attributes/n/0", "string_only"),
    (
        "attr-numeric",
        {"attributes": {"n": [{"numeric": [">", 1]}]}},
        "/attributes/n/0/numeric",
        "string_only",
    ),
    (
        "attr-anything-but-number",
        {"attributes": {"n": [{"anything-but": ["a", 5]}]}},
        "/attributes/n/0/anything-but/1",
        "string_only",
    ),
    ("key-object", {"key": {"a": ["x"]}}, "/key", "type"),
    ("key-string", {"key": "k"}, "/key", "type"),
    ("key-bool", {"key": [True]}, "/key/0", "string_only"),
    ("payload-empty", {"payload": {}}, "/payload", "empty"),
    ("payload-string", {"payload": "x"}, "/payload", "type"),
    ("empty-array", {"payload": {"a": []}}, "/payload/a", "empty"),
    ("bare-string", {"payload": {"a": "x"}}, "/payload/a", "type"),
    ("bare-number", {"payload": {"a": 5}}, "/payload/a", "type"),
    ("bare-null", {"payload": {"a": None}}, "/payload/a", "type"),
    ("empty-nested", {"payload": {"a": {}}}, "/payload/a", "empty"),
    ("matcher-outside", {"payload": {"prefix": "x"}}, "/payload/prefix", "type"),
    ("array-in-array", {"payload": {"a": [[1]]}}, "/payload/a/0", "type"),
    ("empty-matcher", {"payload": {"a": [{}]}}, "/payload/a/0", "matcher"),
    (
        "two-key-matcher",
        {"payload": {"a": [{"prefix": "x", "suffix": "y"}]}},
        "/payload/a/0",
        "matcher",
    ),
    ("unknown", {"payload": {"a": [{"contains": "x"}]}}, "/payload/a/0/contains", "matcher"),
    ("prefix", {"payload": {"a": [{"prefix": 5}]}}, "/payload/a/0/prefix", "type"),
    (
        "prefix-ignore-case-type",
        {"payload": {"a": [{"prefix": {"equals-ignore-case": 5}}]}},
        "/payload/a/0/prefix/equals-ignore-case",
        "type",
    ),
    (
        "suffix-bad-modifier",
        {"payload": {"a": [{"suffix": {"wildcard": "x"}}]}},
        "/payload/a/0/suffix",
        "matcher",
    ),
    (
        "ignore-case-array",
        {"payload": {"a": [{"equals-ignore-case": ["a"]}]}},
        "/payload/a/0/equals-ignore-case",
        "type",
    ),
    ("num-type", {"payload": {"amount": [{"numeric": ">"}]}}, NUMERIC, "type"),
    (
        "num-unknown-op",
        {"payload": {"amount": [{"numeric": [">>", 0]}]}},
        f"{NUMERIC}/0",
        "numeric_operator",
    ),
    (
        "num-arity",
        {"payload": {"amount": [{"numeric": [">", 0, "<"]}]}},
        NUMERIC,
        "numeric_operator",
    ),
    ("num-empty", {"payload": {"amount": [{"numeric": []}]}}, NUMERIC, "numeric_operator"),
    (
        "num-two-lower",
        {"payload": {"amount": [{"numeric": [">", 0, ">", 5]}]}},
        f"{NUMERIC}/2",
        "numeric_operator",
    ),
    (
        "num-equal-in-range",
        {"payload": {"amount": [{"numeric": ["<", 5, "=", 0]}]}},
        f"{NUMERIC}/2",
        "numeric_operator",
    ),
    (
        "num-equal-first",
        {"payload": {"amount": [{"numeric": ["=", 0, "<", 5]}]}},
        f"{NUMERIC}/0",
        "numeric_operator",
    ),
    (
        "num-string-bound",
        {"payload": {"amount": [{"numeric": [">", "0"]}]}},
        f"{NUMERIC}/1",
        "type",
    ),
    ("num-bool-bound", {"payload": {"amount": [{"numeric": [">", True]}]}}, f"{NUMERIC}/1", "type"),
    (
        "num-empty-range",
        {"payload": {"amount": [{"numeric": [">", 5, "<", 1]}]}},
        NUMERIC,
        "numeric_range",
    ),
    (
        "num-empty-point",
        {"payload": {"amount": [{"numeric": [">", 5, "<=", 5]}]}},
        NUMERIC,
        "numeric_range",
    ),
    (
        "num-infinite",
        {"payload": {"amount": [{"numeric": [">", float("inf")]}]}},
        f"{NUMERIC}/1",
        "finite",
    ),
    ("exact-nan", {"payload": {"a": [float("nan")]}}, "/payload/a/0", "finite"),
    ("exists-type", {"payload": {"a": [{"exists": "yes"}]}}, "/payload/a/0/exists", "type"),
    (
        "wildcard-double-star",
        {"payload": {"a": [{"wildcard": "a**b"}]}},
        "/payload/a/0/wildcard",
        "wildcard",
    ),
    (
        "wildcard-bad-escape",
        {"payload": {"a": [{"wildcard": "a\\b"}]}},
        "/payload/a/0/wildcard",
        "wildcard",
    ),
    (
        "wildcard-trailing-backslash",
        {"payload": {"a": [{"wildcard": "a\\"}]}},
        "/payload/a/0/wildcard",
        "wildcard",
    ),
    ("cidr-mask", {"payload": {"a": [{"cidr": "10.0.0.0/33"}]}}, "/payload/a/0/cidr", "cidr"),
    ("cidr", {"payload": {"a": [{"cidr": "nope"}]}}, "/payload/a/0/cidr", "cidr"),
    ("cidr-type", {"payload": {"a": [{"cidr": 10}]}}, "/payload/a/0/cidr", "type"),
    ("ab-empty", {"payload": {"a": [{"anything-but": []}]}}, "/payload/a/0/anything-but", "empty"),
    (
        "ab-bool",
        {"payload": {"a": [{"anything-but": [True]}]}},
        "/payload/a/0/anything-but/0",
        "type",
    ),
    ("ab-null", {"payload": {"a": [{"anything-but": None}]}}, "/payload/a/0/anything-but", "type"),
    (
        "ab-numeric",
        {"payload": {"a": [{"anything-but": {"numeric": [">", 1]}}]}},
        "/payload/a/0/anything-but",
        "matcher",
    ),
    (
        "ab-prefix-type",
        {"payload": {"a": [{"anything-but": {"prefix": 5}}]}},
        "/payload/a/0/anything-but/prefix",
        "type",
    ),
    (
        "ab-prefix-list-type",
        {"payload": {"a": [{"anything-but": {"prefix": ["a", 5]}}]}},
        "/payload/a/0/anything-but/prefix/1",
        "type",
    ),
    (
        "ab-ignore-case-empty",
        {"payload": {"a": [{"anything-but": {"equals-ignore-case": []}}]}},
        "/payload/a/0/anything-but/equals-ignore-case",
        "empty",
    ),
    (
        "ab-wildcard",
        {"payload": {"a": [{"anything-but": {"wildcard": "**"}}]}},
        "/payload/a/0/anything-but/wildcard",
        "wildcard",
    ),
    ("or-object", {"payload": {"$or": {"a": ["x"]}}}, "/payload/$or", "type"),
    ("or-empty", {"payload": {"$or": []}}, "/payload/$or", "empty"),
    ("or-1", {"payload": {"$or": [{"a": ["x"]}]}}, "/payload/$or", "or_branches"),
    ("or-not-object", {"payload": {"$or": [{"a": ["x"]}, "b"]}}, "/payload/$or/1", "type"),
    ("or-empty-branch", {"payload": {"$or": [{"a": ["x"]}, {}]}}, "/payload/$or/1", "empty"),
    (
        "or-top-level-branch",
        {"$or": [{"payload": {"a": ["x"]}}, {"detail": {}}]},
        "/$or/1/detail",
        "unknown_key",
    ),
    ("too-deep-objects", _deep(MAX_DEPTH + 1), _pointer(MAX_DEPTH + 1, "/a"), "depth"),
    ("too-deep-or", _deep_or(MAX_DEPTH + 1), _pointer(MAX_DEPTH + 1, "/$or/0"), "depth"),
    ("too-many", on("a", *range(MAX_VALUES + 1)), f"/payload/a/{MAX_VALUES}", "values"),
    (
        "too-many-fields",
        {"payload": {f"f{i}": [i] for i in range(MAX_VALUES + 1)}},
        f"/payload/f{MAX_VALUES}/0",
        "values",
    ),
    (
        "too-many-excluded",
        on("a", {"anything-but": list(range(MAX_VALUES + 1))}),
        f"/payload/a/0/anything-but/{MAX_VALUES}",
        "values",
    ),
    ("long-string", on("a", LONG), "/payload/a/0", "length"),
    ("long-name", {"payload": {LONG: ["x"]}}, f"/payload/{LONG}", "length"),
    ("long-prefix", on("a", {"prefix": LONG}), "/payload/a/0/prefix", "length"),
    ("pointer-escaped", {"payload": {"a/b~c": "x"}}, "/payload/a~1b~0c", "type"),
    ("non-string-name", {"payload": {1: ["x"]}}, "/payload/1", "type"),
]


@pytest.mark.parametrize(
    ("pattern", "pointer", "rule"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_an_invalid_pattern_is_refused_naming_the_place_and_the_rule(
    pattern: object, pointer: str, rule: str
) -> None:
    # When an invalid pattern is compiled
    with pytest.raises(FilterError) as caught:
        compile_json(pattern)

    # Then the error points at the offending place and names the rule, in its message too
    assert (caught.value.field, caught.value.rule) == (pointer, rule)
    assert (pointer or "top level") in caught.value.message


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(_deep(MAX_DEPTH), id="deep-objects"),
        pytest.param(_deep_or(MAX_DEPTH), id="deep-or"),
        pytest.param(on("a", *range(MAX_VALUES)), id="many-values"),
        pytest.param(on("a", "x" * MAX_STRING), id="long-string"),
        pytest.param({"payload": {"x" * MAX_STRING: ["x"]}}, id="long-name"),
    ],
)
def test_a_pattern_at_each_limit_is_accepted(pattern: dict[str, object]) -> None:
    # When a pattern exactly at a limit is compiled, then it compiles
    assert isinstance(compile_json(pattern), Filter)


def test_a_pattern_at_the_depth_limit_still_matches_its_deepest_field() -> None:
    # Given a pattern nested as deep as allowed
    pattern = _deep(MAX_DEPTH)
    event: dict[str, object] = {"x": "v"}
    for _ in range(MAX_DEPTH - 2):
        event = {"a": event}

    # Then it matches an event with the value at the bottom, and not one without
    assert matches(pattern, Ev(event))
    assert not matches(pattern, Ev({"a": {}}))


def test_a_filter_error_is_an_invalid_request_and_a_value_error() -> None:
    # When a pattern is refused
    with pytest.raises(FilterError) as caught:
        compile_filter({"payload": {"a": [{"numeric": [">", 5, "<", 1]}]}})

    # Then the API can answer it as any bad input (HTTP 400), and callers may catch ValueError
    error = caught.value
    assert isinstance(error, InvalidRequest)
    assert isinstance(error, ValueError)
    assert error.status == 400
    assert "no number is > 5 and < 1" in str(error)


def test_a_compiled_filter_does_not_follow_later_changes_to_its_pattern() -> None:
    # Given a filter compiled from a dict
    pattern: dict[str, Any] = {"payload": {"state": ["running"]}}
    compiled = compile_filter(pattern)

    # When the dict is changed afterwards (as a new pattern is being prepared)
    pattern["payload"]["state"].append("stopped")
    pattern["payload"]["other"] = ["x"]

    # Then the compiled filter still matches as it was compiled; a new filter sees the change
    assert compiled.matches(None, {"state": "running"})
    assert not compiled.matches(None, {"state": "stopped"})
    assert compile_filter(pattern).matches(None, {"state": "stopped", "other": "x"})


# --- fuzzing ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
WORDS = st.sampled_from(
    [
        "attributes",
        "payload",
        "key",
        "$or",
        "prefix",
        "suffix",
        "equals-ignore-case",
        "wildcard",
        "numeric",
        "exists",
        "anything-but",
        "cidr",
        "<",
        ">=",
        "=",
        "a",
        "b",
        "*",
        "a*\\*",
        "10.0.0.0/8",
        "::1/128",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | WORDS
    | st.sampled_from(["10.0.0.1", "::1", "A", "a"])
)
ANY_JSON: st.SearchStrategy[object] = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(WORDS | NAMES | st.text(max_size=4), inner)
    ),
    max_leaves=25,
)
PAYLOADS: st.SearchStrategy[object] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=20,
)
ATTRIBUTES = st.none() | st.dictionaries(NAMES, st.text(max_size=4) | WORDS, max_size=3)
KEYS = st.none() | st.text(max_size=4) | WORDS

EXACT = st.one_of(
    st.text(max_size=3),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
STRING_OPERAND = st.text(alphabet="aAbB.", max_size=3)
WILDCARD = (
    st.lists(STRING_OPERAND, min_size=1, max_size=3).map("*".join).filter(lambda s: "**" not in s)
)
BOUND = st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False)
RANGE = st.builds(
    lambda low, width, op: {"numeric": [op, low, "<=", low + width]},
    st.integers(-5, 5),
    st.integers(1, 5),
    st.sampled_from([">", ">="]),
)
EXCLUDED: st.SearchStrategy[object] = st.one_of(
    st.text(max_size=3),
    st.integers(-3, 3),
    st.lists(st.text(max_size=3) | st.integers(-3, 3), min_size=1, max_size=3),
    st.builds(lambda s: {"prefix": s}, STRING_OPERAND),
    st.builds(lambda s: {"suffix": s}, STRING_OPERAND),
    st.builds(lambda s: {"equals-ignore-case": s}, STRING_OPERAND),
    st.builds(lambda s: {"wildcard": s}, WILDCARD),
)
MATCHER: st.SearchStrategy[object] = st.one_of(
    EXACT,
    st.builds(lambda s: {"prefix": s}, STRING_OPERAND),
    st.builds(lambda s: {"suffix": {"equals-ignore-case": s}}, STRING_OPERAND),
    st.builds(lambda s: {"equals-ignore-case": s}, STRING_OPERAND),
    st.builds(lambda s: {"wildcard": s}, WILDCARD),
    st.builds(
        lambda op, n: {"numeric": [op, n]}, st.sampled_from(["<", "<=", "=", ">=", ">"]), BOUND
    ),
    RANGE,
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.builds(lambda s: {"cidr": s}, st.sampled_from(["10.0.0.0/8", "::/0", "10.0.0.1/32"])),
    st.builds(lambda x: {"anything-but": x}, EXCLUDED),
)
MATCHERS = st.lists(MATCHER, min_size=1, max_size=3)
OBJECT_PATTERNS: st.SearchStrategy[dict[str, object]] = st.recursive(
    st.dictionaries(NAMES, MATCHERS, min_size=1, max_size=3),
    lambda inner: (
        st.dictionaries(NAMES, MATCHERS | inner, min_size=1, max_size=3)
        | st.lists(inner, min_size=2, max_size=3).map(lambda branches: {"$or": branches})
    ),
    max_leaves=6,
)

MATCHER_WORDS = st.sampled_from(
    ["prefix", "suffix", "equals-ignore-case", "wildcard", "numeric", "exists", "anything-but"]
)
OPERANDS: st.SearchStrategy[object] = st.recursive(
    SCALARS | st.sampled_from([">", "<=", "="]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(MATCHER_WORDS, inner, max_size=2),
    max_leaves=6,
)
ROUGH_MATCHERS = st.lists(
    st.one_of(MATCHER, MATCHER, SCALARS, st.dictionaries(MATCHER_WORDS, OPERANDS, max_size=2)),
    min_size=1,
    max_size=3,
)
ROUGH_OBJECTS: st.SearchStrategy[object] = st.recursive(
    st.dictionaries(NAMES, ROUGH_MATCHERS, min_size=1, max_size=3),
    lambda inner: st.dictionaries(
        NAMES | st.just("$or"),
        inner | st.lists(inner, min_size=2, max_size=3) | ROUGH_MATCHERS,
        min_size=1,
        max_size=3,
    ),
    max_leaves=8,
)
# Arbitrary JSON, and JSON shaped like a pattern with valid and invalid parts mixed anywhere:
# about one in five compiles, the rest is refused at every depth.
ROUGH_PATTERNS: st.SearchStrategy[object] = ANY_JSON | st.fixed_dictionaries(
    {"payload": ROUGH_OBJECTS | ROUGH_MATCHERS},
    optional={
        "attributes": ROUGH_OBJECTS,
        "key": ROUGH_MATCHERS,
        "$or": st.lists(st.fixed_dictionaries({"payload": ROUGH_OBJECTS}), max_size=3),
    },
)


def compiles(pattern: object) -> Filter:
    """The filter for a generated pattern, skipping one that broke a size limit."""
    try:
        return compile_json(pattern)
    except FilterError as e:
        assume(e.rule not in ("depth", "values"))
        raise


@given(ROUGH_PATTERNS)
def test_any_json_value_either_compiles_or_is_refused_with_a_filter_error(pattern: object) -> None:
    # When any JSON value is compiled as a pattern
    try:
        compile_json(pattern)
    except FilterError as e:
        refusal = e
    else:
        return
    # Then nothing but a FilterError escapes, and a refusal points into the pattern
    assert refusal.field == "" or refusal.field.startswith("/")
    assert refusal.rule


@given(ROUGH_PATTERNS, ATTRIBUTES, PAYLOADS, KEYS)
def test_a_filter_compiled_from_any_json_never_raises_on_any_event(
    pattern: object, attributes: dict[str, str] | None, payload: object, key: str | None
) -> None:
    # Given whatever compiles out of arbitrary JSON
    try:
        compiled = compile_json(pattern)
    except FilterError as e:
        event(f"refused: {e.rule}")
        return
    event("compiled")
    # When it is run on an arbitrary event, then it answers a bool
    assert compiled.matches(attributes, payload, key) in (True, False)


@given(OBJECT_PATTERNS, ATTRIBUTES, PAYLOADS, KEYS)
def test_a_valid_pattern_never_raises_on_any_event(
    pattern: dict[str, object], attributes: dict[str, str] | None, payload: object, key: str | None
) -> None:
    # Given a valid pattern over the payload, the attributes and the key
    string_leaves: list[object] = [{"prefix": "a"}, {"anything-but": "b"}, {"exists": False}]
    full = {"payload": pattern, "attributes": {"a": string_leaves}, "key": string_leaves}
    compiled = compiles(full)

    # When it is run on an arbitrary event, then it answers a bool
    assert compiled.matches(attributes, payload, key) in (True, False)
    assert compiles({"payload": pattern}).matches(None, payload) in (True, False)


@given(OBJECT_PATTERNS, OBJECT_PATTERNS, PAYLOADS)
def test_or_matches_when_either_alternative_does(
    first: dict[str, object], second: dict[str, object], payload: object
) -> None:
    # Given two patterns and their $or
    either = compiles({"payload": {"$or": [first, second]}})
    one, other = compiles({"payload": first}), compiles({"payload": second})

    # Then the $or matches exactly when one of them does
    assert either.matches(None, payload) == (
        one.matches(None, payload) or other.matches(None, payload)
    )


@given(EXCLUDED, SCALARS)
def test_anything_but_matches_a_present_value_exactly_when_the_operand_does_not(
    operand: object, value: object
) -> None:
    # Given a matcher and its anything-but (an operand list is a list of exact values)
    positive = operand if isinstance(operand, list) else [operand]
    matcher = compiles({"payload": {"v": positive}})
    excluded = compiles({"payload": {"v": [{"anything-but": operand}]}})

    # Then on a present leaf value, one matches exactly when the other does not
    assert excluded.matches(None, {"v": value}) is not matcher.matches(None, {"v": value})
    assert not excluded.matches(None, {})


@given(PAYLOADS)
def test_exists_true_and_exists_false_split_every_value_of_a_field(value: object) -> None:
    # Given the two exists matchers on one field
    present = compile_filter({"payload": {"a": [{"exists": True}]}})
    missing = compile_filter({"payload": {"a": [{"exists": False}]}})

    # Then whatever the field holds, or if it is not there, exactly one of them matches
    assert present.matches(None, {"a": value}) is not missing.matches(None, {"a": value})
    assert missing.matches(None, {})
    assert not present.matches(None, {})
