"""Descriptor sets written by protoc itself, as a user would upload them."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path


def protoc_descriptor_set(
    text: str, tmp_path: Path, *, imports: bool = True, files: dict[str, str] | None = None
) -> bytes:
    """What a user would upload: protoc's own output, with source info (``files``: the other
    files ``text`` imports, by name)."""
    (tmp_path / "schema.proto").write_text(text)
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    include = resources.files("grpc_tools").joinpath("_proto")
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"-I{include}"]
    command += ["--include_source_info", "--descriptor_set_out=out.pb", "schema.proto"]
    if imports:
        command.append("--include_imports")
    subprocess.run(command, cwd=tmp_path, check=True)
    return (tmp_path / "out.pb").read_bytes()
