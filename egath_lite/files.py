"""File primitives every cache uses: atomic writes, lock files, JSON, package versions.

A write goes to a temporary file beside its target (named with the writer's pid) and is
renamed into place, so a crash never leaves half a file; temporary files of writers that
died are removed by the next write to the same target; files get the umask's permissions.
A write that fails for want of space raises the ``OSError`` (ENOSPC) naming its target, even when the
writer (``torch.save``) wraps it in its own error. Imports nothing else of the package but ``egath_lite.errors``,
so ``data/`` and ``clip/`` can use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from egath_lite.errors import EgathError


class ArtifactError(EgathError, RuntimeError):
    """A cached artifact is missing, corrupt, or was made by another configuration."""


def versions() -> dict[str, str]:
    """Versions of the packages that shape an artifact's numbers."""
    import torch

    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    # Only modules already imported: importing open_clip just to read its version costs seconds.
    for mod in ("numpy", "open_clip", "torch_geometric", "numba"):
        if mod in sys.modules:
            out[mod] = str(getattr(sys.modules[mod], "__version__", "?"))
    from egath_lite.version import __version__

    out["egath_lite"] = __version__
    return out


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphan_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete temp files of killed writes to ``path`` (their writer's pid is gone); returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        m = _TMP.match(tmp.name)
        if m and m["name"] == path.name and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, then rename it into place (umask permissions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temp_files(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
    f = _Recording(_open_temp(fd))
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if f.os_error is not None and f.os_error is not exc:  # e.g. torch.save's "unexpected pos" of a full disk
            raise OSError(f.os_error.errno, f.os_error.strerror, os.fspath(path)) from exc
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
        raise


def _open_temp(fd: int):
    """The temp file's binary file object (a seam: tests make it fail as a full disk does)."""
    return os.fdopen(fd, "wb")


class _Recording:
    """A binary file that remembers the first OSError of its writes: writers that wrap it (torch.save) lose it."""

    def __init__(self, f):
        self._f, self.os_error = f, None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.os_error = self.os_error or exc
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            self.os_error = self.os_error or exc
            raise

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._f.close()
        except OSError as err:
            self.os_error = self.os_error or err
            if exc[0] is None:
                raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str | None = None, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold an exclusive lock on ``<folder>/.locks/<name>.lock`` (fcntl); a second process waits, saying who holds it."""
    path = Path(path)
    lock = path.parent / ".locks" / f"{path.name}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # a read-only folder: nothing here can be written, by this process or another, so reading needs no
        # lock; a write that follows fails with its own clear error
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            log(f"[lock] waiting: {what or Path(path).name} is being made by another process (pid {holder})")
            start = time.perf_counter()
            fcntl.flock(fd, fcntl.LOCK_EX)
            log(f"[lock] got {what or Path(path).name} after {time.perf_counter() - start:.1f} s")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Atomically write ``data`` as indented JSON (results, metrics, run configuration)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=json_default).encode()
    atomic_write_bytes(path, lambda f: f.write(text))
    return Path(path)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON file written by ``write_json``; clear error when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"no results file at {path}; run the notebook or stage that writes it")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); delete {path} and rerun") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} holds a JSON {type(data).__name__}, not an object; delete {path} and rerun")
    return data


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON types (numpy scalars and arrays -> lists, paths -> str)."""
    return json.loads(json.dumps(obj, default=json_default))


def json_default(obj: Any) -> Any:
    """JSON encoder fallback for numpy/torch values and paths."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
