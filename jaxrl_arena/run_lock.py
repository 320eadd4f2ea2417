"""One run per directory: ``<run dir>/run.lock``, taken before anything is written there.

The lock is an exclusive ``flock`` on the file, so the kernel releases it when its process
ends however it ends (SIGKILL included); the file's JSON (pid, host, start time, command) only
says who holds it. A second process is refused with a one-line ``RunDirInUse`` naming the
holder. A lock file left by a process of this host that is gone (its flock was released) is
taken over with a note; one left by another host is refused, since its process cannot be
checked from here (the error names the file to delete).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Self

from jaxrl_arena.checkpoint import describe_os_error
from jaxrl_arena.config import ConfigError

LOCK_FILENAME = "run.lock"


class RunDirInUse(ConfigError):
    """Another process holds (or may hold) the run directory's lock."""


class RunLock:
    """``with RunLock(directory):`` holds ``directory``'s lock for the block.

    Creates the directory if needed (a directory it created and left empty is removed again
    on release). A directory that cannot be created or written raises ``ConfigError`` naming
    ``run.dir``, the OS error and its errno."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILENAME
        self._fd: int | None = None
        self._created_directory = False

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        self._created_directory = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            while True:  # until the file we lock is still the one at ``path``
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise RunDirInUse(f"{self.directory} is in use by {_describe(holder)}; wait "
                                      "for it to finish or stop it, or set run.dir to another "
                                      "directory") from None
                if _same_file(fd, self.path):
                    break
                os.close(fd)  # a releasing holder unlinked it meanwhile: lock the new one
            self._take(fd)
        except OSError as error:
            raise ConfigError(f"run.dir {self.directory} cannot be written "
                              f"({describe_os_error(error)}); set run.dir to a writable "
                              "directory") from None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: no one locks a dead file
        finally:
            os.close(self._fd)
            self._fd = None
        if self._created_directory:
            try:
                self.directory.rmdir()  # only when nothing was written (a refused config)
            except OSError:
                pass

    def _take(self, fd: int) -> None:
        previous = _read_holder(fd)
        if previous and previous.get("pid") != os.getpid():
            if previous.get("host") not in (None, socket.gethostname()):
                os.close(fd)
                raise RunDirInUse(
                    f"{self.directory} was locked by {_describe(previous)}, whose process "
                    f"cannot be checked from this host; if it no longer runs, delete {self.path}")
            print(f"note: took over the lock of {self.directory} left by {_describe(previous)}: "
                  "that process is gone", file=sys.stderr, flush=True)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd


def _read_holder(fd: int) -> dict | None:
    try:
        text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process (its lock file is empty or unreadable)"
    command = f", {holder['command']}" if holder.get("command") else ""
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"(started {holder.get('started', '?')}{command})")


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)
