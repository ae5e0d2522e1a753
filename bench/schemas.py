"""The schema registry's benchmark: validation + conversion per input format, and the drain
with validation on against off.

1. In process, one core: a typical 10-field event taken from its input form to the canonical
   JSON form checked against its schema: a JSON publish request (decode the request, validate
   the payload), Avro binary (decode with the writer schema, encode JSON, validate), Protobuf
   binary (the same with the message). Reported in events/s on one core.
2. End to end, real ``conveyor serve`` + ``conveyor worker`` on SQLite: the drain of N 10-field
   events into a topic bound to a JSON Schema subject, against the same topic unbound, run
   A B A B so the noisy machine hits both alike. Bar: validation costs at most 15%.

Usage: ``python -m bench.schemas [--events 50000] [--write-doc docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import fastavro
import msgspec

from bench.drain import machine, run, write_doc
from conveyor.codecs import protobuf
from conveyor.codecs.validation import check_payload, compile_schema
from conveyor.frontend.registry.avro_json import to_json_schema
from conveyor.frontend.registry.proto_json import to_json_schema as proto_json_schema
from conveyor.wire.schemas import PublishRequest

EVENT: dict[str, object] = {
    "order_id": "ord-000123",
    "customer": "cus-42",
    "amount": 1999,
    "currency": "EUR",
    "quantity": 3,
    "express": True,
    "weight": 1.25,
    "country": "DE",
    "created": 1_700_000_000_000,
    "note": "leave at the door",
}
FIELDS = [
    ("order_id", "string"),
    ("customer", "string"),
    ("amount", "long"),
    ("currency", "string"),
    ("quantity", "int"),
    ("express", "boolean"),
    ("weight", "double"),
    ("country", "string"),
    ("created", "long"),
    ("note", "string"),
]
AVRO = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": n, "type": t} for n, t in FIELDS],
}
JSON_TYPES = {"string": "string", "long": "integer", "int": "integer"}
JSON_TYPES |= {"boolean": "boolean", "double": "number"}
JSON_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {n: {"type": JSON_TYPES[t]} for n, t in FIELDS},
    "required": [n for n, _ in FIELDS],
    "additionalProperties": False,
}
PROTO_TYPES = {"string": "string", "long": "int64", "int": "int32"}
PROTO_TYPES |= {"boolean": "bool", "double": "double"}
PROTO = (
    'syntax = "proto3";\npackage shop;\nmessage Order {\n'
    + "".join(f"  {PROTO_TYPES[t]} {n} = {i};\n" for i, (n, t) in enumerate(FIELDS, 1))
    + "}\n"
)


def rate(work: Callable[[], None], seconds: float = 2.0) -> float:
    """Calls per second of ``work`` on this core, best of three."""
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            for _ in range(200):
                work()
            count += 200
        best = max(best, count / (time.perf_counter() - start))
    return best


def in_process() -> dict[str, float]:
    """Validation + conversion rates per input format (events/s on one core)."""
    json_validator = compile_schema(JSON_SCHEMA)
    request = msgspec.json.encode({"payload": EVENT, "key": "cus-42"})
    decoder = msgspec.json.Decoder(PublishRequest)

    def from_json() -> None:
        req = decoder.decode(request)
        check_payload(json_validator, bytes(req.payload))

    avro_schema = fastavro.parse_schema(AVRO)
    avro_validator = compile_schema(to_json_schema(AVRO))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, avro_schema, EVENT)
    avro_bytes = buffer.getvalue()

    def from_avro() -> None:
        value = fastavro.schemaless_reader(io.BytesIO(avro_bytes), avro_schema, None)
        check_payload(avro_validator, msgspec.json.encode(value))

    proto_schema = protobuf.parse(PROTO)
    proto_validator = compile_schema(proto_json_schema(proto_schema))
    proto_bytes = protobuf.encode(proto_schema, EVENT)

    def from_protobuf() -> None:
        value = protobuf.decode(proto_schema, proto_bytes)
        check_payload(proto_validator, msgspec.json.encode(value))

    return {
        "JSON": rate(from_json),
        "Avro binary": rate(from_avro),
        "Protobuf binary": rate(from_protobuf),
    }


def payload(i: int) -> object:
    return {**EVENT, "quantity": i % 1000}


async def bind(session: aiohttp.ClientSession, base: str) -> None:
    """Register the JSON Schema subject and bind the bench topic to it."""
    body = {"schema": json.dumps(JSON_SCHEMA), "type": "json"}
    async with session.post(f"{base}/v1/subjects/bench-orders/versions", json=body) as resp:
        if resp.status not in (200, 201):
            raise RuntimeError(f"register failed: {resp.status} {await resp.text()}")
    topic = {"name": "bench", "schema_settings": {"subject": "bench-orders"}}
    async with session.put(f"{base}/v1/topics/bench", json=topic) as resp:
        if resp.status not in (200, 201):
            raise RuntimeError(f"binding failed: {resp.status} {await resp.text()}")


async def drains(events: int, rounds: int) -> tuple[list[float], list[float]]:
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):
        plain = await run(events, 1000, 0, 0.0, None, payload=payload)
        off.append(plain.drain_rate)
        checked = await run(events, 1000, 0, 0.0, None, payload=payload, prepare=bind)
        on.append(checked.drain_rate)
    return off, on


def report(rates: dict[str, float], off: list[float], on: list[float], when: str) -> str:
    lines = [
        f"Machine: {machine()}",
        f"Run: {when}, `make bench` (python -m bench.schemas)",
        "",
        "| input format (10-field event → validated canonical JSON) | events/s on one core |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:,.0f} |" for name, value in rates.items()]
    off_m, on_m = statistics.median(off), statistics.median(on)
    lines += [
        "",
        "| drain, SQLite, 10-field events (A B A B, median) | events/s |",
        "|---|---|",
        f"| topic unbound (no validation) | {off_m:,.0f} ({', '.join(f'{x:,.0f}' for x in off)}) |",
        f"| topic bound to a JSON Schema subject | {on_m:,.0f} "
        f"({', '.join(f'{x:,.0f}' for x in on)}) |",
        f"| cost of validation | {100 * (1 - on_m / off_m):.1f}% (bar: ≤ 15%) |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write-doc", type=Path)
    args = parser.parse_args()
    rates = in_process()
    off, on = asyncio.run(drains(args.events, args.rounds))
    text = report(rates, off, on, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, text, "schemas")


if __name__ == "__main__":
    main()
