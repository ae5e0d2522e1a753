"""Protobuf schemas: one message of a ``.proto`` file, compiled.

A Protobuf schema is one message of one ``.proto`` file. It is accepted as ``.proto`` source
(proto2 or proto3, one file, which may import the well-known types such as
``google/protobuf/timestamp.proto``) or as a base64-encoded ``FileDescriptorSet`` holding the
file and everything it imports (``protoc --include_imports --descriptor_set_out``). Source is
compiled by protoc from ``grpc-tools``, in a child process: protoc writes its diagnostics to
the process's stderr, which a child gives back as text (``schema.proto:3:5: Expected ";".``),
and a compiler crash cannot take the server down. Compiling takes about 50 ms, so call
``parse`` from a worker thread in async code; a parsed schema is immutable and cheap to share.

Descriptors are built in a private ``DescriptorPool`` per schema, so two versions of the same
message never collide. The codec (binary <-> canonical JSON) is :mod:`conveyor.codecs.protobuf`;
compatibility and the JSON Schema of the canonical form belong to the registry
(``frontend/registry/proto_compat.py``, ``proto_json.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.descriptor import (  # type: ignore[import-untyped, unused-ignore]
    Descriptor,
)
from google.protobuf.message import (  # type: ignore[import-untyped, unused-ignore]
    DecodeError,
    Message,
)

__all__ = ["PROTOC_TIMEOUT", "SOURCE_NAME", "ProtoSchema", "parse"]

SOURCE_NAME = "schema.proto"  # the name ``.proto`` source is compiled under
PROTOC_TIMEOUT = 30.0  # seconds protoc may take before the source is refused
# protoc's own logging (warnings such as "No syntax specified"), not diagnostics of the file
_ABSL_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )")


class ProtoSchema:
    """One message of a compiled ``.proto`` file, with everything needed to read and write it.

    Attributes:
        descriptor: the message's descriptor (in a pool private to this schema).
        descriptor_set: the serialized ``FileDescriptorSet``: the file and all it imports,
            dependencies first, without source info, serialized deterministically.
    """

    __slots__ = ("_message_class", "descriptor", "descriptor_set")

    def __init__(self, descriptor: Descriptor, descriptor_set: bytes) -> None:
        self.descriptor = descriptor
        self.descriptor_set = descriptor_set
        self._message_class: type[Message] = message_factory.GetMessageClass(descriptor)

    @property
    def message_name(self) -> str:
        """The message's fully-qualified name (``shop.Order``)."""
        name: str = self.descriptor.full_name
        return name

    @property
    def message_class(self) -> type[Message]:
        """The generated class of the message."""
        return self._message_class

    def fingerprint(self) -> str:
        """The sha256 (hex) of the message name and the deterministic descriptor set.

        The name is hashed too: two messages of one file are two schemas.
        """
        digest = hashlib.sha256(self.message_name.encode())
        digest.update(b"\0")
        digest.update(self.descriptor_set)
        return digest.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProtoSchema):
            return NotImplemented
        return (self.message_name, self.descriptor_set) == (
            other.message_name,
            other.descriptor_set,
        )

    def __hash__(self) -> int:
        return hash((self.message_name, self.descriptor_set))

    def __repr__(self) -> str:
        return f"ProtoSchema({self.message_name!r}, fingerprint={self.fingerprint()[:12]!r})"


# -- parsing ------------------------------------------------------------------------------


def parse(text: str, message: str | None = None) -> ProtoSchema:
    """Compile a Protobuf schema.

    Args:
        text: ``.proto`` source, or a base64-encoded ``FileDescriptorSet`` (its last file is
            the schema's file; protoc writes the named file after its imports).
        message: the message's fully-qualified name; by default the file's first message.

    Raises:
        ValueError: protoc's diagnostics (with ``line:column``), a descriptor set that does not
            decode or build, a file without messages, or a ``message`` the file lacks.

    Returns:
        The schema.
    """
    encoded = _base64_descriptor_set(text)
    data = encoded if encoded is not None else _compile(text)
    files, main = _files(data)
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        try:
            pool.Add(file)
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"descriptor set does not build: {file.name}: {e}") from e
    canonical = descriptor_pb2.FileDescriptorSet(file=files)
    descriptor = _find_message(pool, main, message)
    return ProtoSchema(descriptor, canonical.SerializeToString(deterministic=True))


def _base64_descriptor_set(text: str) -> bytes | None:
    """The bytes of ``text`` when it is base64 (``.proto`` source never is: it needs ``;``)."""
    compact = "".join(text.split())
    if not compact:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _compile(text: str) -> bytes:
    """Run protoc on ``.proto`` source; the serialized ``FileDescriptorSet`` it writes."""
    include = str(resources.files("grpc_tools").joinpath("_proto"))
    with tempfile.TemporaryDirectory(prefix="conveyor-proto-") as tmp:
        Path(tmp, SOURCE_NAME).write_text(text, encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={tmp}",
            f"--proto_path={include}",
            "--include_imports",
            "--descriptor_set_out=set.pb",
            SOURCE_NAME,
        ]
        try:
            done = subprocess.run(
                command,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=PROTOC_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise ValueError(f"protoc did not finish within {PROTOC_TIMEOUT:g} s") from e
        if done.returncode != 0:
            raise ValueError(f"invalid .proto: {_diagnostics(done.stderr, tmp)}")
        return Path(tmp, "set.pb").read_bytes()


def _diagnostics(stderr: str, tmp: str) -> str:
    """protoc's errors, without its absl log lines and the temporary directory."""
    lines = [line.replace(tmp + "/", "") for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not _ABSL_LOG.match(line)]
    return "\n".join(errors or lines) or "protoc failed"


def _files(
    data: bytes,
) -> tuple[list[descriptor_pb2.FileDescriptorProto], descriptor_pb2.FileDescriptorProto]:
    """The files of a serialized set, dependencies first, without source info; and the last
    file of the set as given, the schema's own."""
    try:
        parsed = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as e:
        raise ValueError(f"not a FileDescriptorSet: {e}") from e
    if not parsed.file:
        raise ValueError("the FileDescriptorSet holds no file")
    by_name = {}
    for file in parsed.file:
        file.ClearField("source_code_info")
        by_name[file.name] = file
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    for file in parsed.file:
        _visit(file, by_name, ordered, set())
    return ordered, parsed.file[-1]


def _visit(
    file: descriptor_pb2.FileDescriptorProto,
    by_name: Mapping[str, descriptor_pb2.FileDescriptorProto],
    ordered: list[descriptor_pb2.FileDescriptorProto],
    path: set[str],
) -> None:
    """Append ``file`` after its dependencies (a depth-first topological sort)."""
    if any(done.name == file.name for done in ordered):
        return
    if file.name in path:
        raise ValueError(f"the FileDescriptorSet has an import cycle through {file.name}")
    path.add(file.name)
    for name in file.dependency:
        if name not in by_name:
            raise ValueError(
                f"the FileDescriptorSet lacks {name}, imported by {file.name}: "
                "build it with protoc --include_imports"
            )
        _visit(by_name[name], by_name, ordered, path)
    path.discard(file.name)
    ordered.append(file)


def _find_message(
    pool: descriptor_pool.DescriptorPool,
    main: descriptor_pb2.FileDescriptorProto,
    message: str | None,
) -> Descriptor:
    prefix = f"{main.package}." if main.package else ""
    declared = [prefix + m.name for m in main.message_type]
    if message is None:
        if not declared:
            raise ValueError(f"{main.name} declares no message")
        message = declared[0]
    try:
        found: Descriptor = pool.FindMessageTypeByName(message.removeprefix("."))
    except KeyError as e:
        choices = ", ".join(declared) or "none"
        raise ValueError(
            f"message {message!r} is not in the schema (top-level messages: {choices})"
        ) from e
    return found
