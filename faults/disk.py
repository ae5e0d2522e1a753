"""A small disk that can be filled: a tmpfs, mounted in a private mount namespace when the
machine allows it, and a ballast file that takes all but a little of its space."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["BALLAST", "fill", "mount_tmpfs", "unmount", "unshare_command"]

BALLAST = "ballast"
_CHUNK = 1 << 20
_TOOL_TIMEOUT = 30.0


def unshare_command() -> list[str] | None:
    """The command that runs another in a private mount namespace (``unshare -m``), when
    the machine allows one; else ``None``."""
    unshare, true = shutil.which("unshare"), shutil.which("true")
    if unshare is None or true is None:
        return None
    command = [unshare, "-m", "--propagation", "private"]
    done = subprocess.run([*command, true], check=False, capture_output=True, timeout=_TOOL_TIMEOUT)
    return command if done.returncode == 0 else None


def mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` (``mount``'s syntax: ``64m``) on ``path``; return why not,
    or ``None`` once mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        return "no mount command"
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=_TOOL_TIMEOUT,
    )
    if done.returncode != 0:
        return (done.stderr or done.stdout).strip() or f"mount exited {done.returncode}"
    return None


def unmount(path: Path) -> None:
    """Unmount the tmpfs on ``path`` (lazily: a process killed late may still hold a file)."""
    if umount := shutil.which("umount"):
        subprocess.run([umount, "-l", str(path)], check=False, timeout=_TOOL_TIMEOUT)


def fill(disk: Path, leave: int) -> Path:
    """Write a ballast file on ``disk`` until only ``leave`` bytes are free; return it."""
    ballast = disk / BALLAST
    stat = os.statvfs(disk)
    size = max(0, stat.f_bavail * stat.f_frsize - leave)
    chunk = b"\0" * _CHUNK
    with open(ballast, "ab", buffering=0) as f:
        while size > 0:
            try:
                size -= f.write(chunk[: min(size, _CHUNK)])
            except OSError:  # full already: the store grew meanwhile
                break
    return ballast
