"""The one error boundary of every entry point: a mistake ends in one line naming the file, the problem and the fix.

Every error the project raises on purpose derives from ``EgathError`` (``ConfigError``, ``ArtifactError``,
``DatasetError``, ``ClipWeightsError``, ``SearchError``, ...): its message already says what to do. The
operating system's expected errors (a missing file, a folder where a file should be, no permission, a
read-only file system, a full disk) are turned into a line naming the path and the fix. Anything else is a
bug and keeps its traceback. ``run_main(prog, body, debug)`` runs a command's body inside ``boundary``::

    return run_main("python -m egath_lite.search", lambda: _search(args), args.debug)
    # a known error prints "python -m egath_lite.search: error: <one line>" and returns 2

``--debug`` (``debug=True``) re-raises, so the traceback is shown. Imports nothing of the package: every
module may use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator

EXIT_USER_ERROR = 2


class EgathError(Exception):
    """Base of the errors the project raises on purpose; the message names the problem and the fix."""


class SettingsError(EgathError, ValueError):
    """A setting (a device name, an option) that cannot work here."""


# errno -> (problem, fix); the fix may name {path}
_OS_FIXES = {
    errno.ENOENT: ("does not exist", "check the path, or create it first"),
    errno.ENOTDIR: ("is not a folder (a part of the path is a file)", "give a folder, or move the file away"),
    errno.EISDIR: ("is a folder, not a file", "give the path of a file inside it"),
    errno.EEXIST: ("already exists", "remove it or choose another name"),
    errno.EACCES: ("is not accessible to this user (permission denied)", "fix its permissions or use another path"),
    errno.EPERM: (
        "is not accessible to this user (operation not permitted)",
        "fix its permissions or use another path",
    ),
    errno.EROFS: (
        "is on a read-only file system",
        "use a writable runs root (--runs-root or $EGATH_RUNS) or copy the data somewhere writable",
    ),
    errno.ENOSPC: (
        "cannot be written: no space left on the device",
        "free some space on that disk or use a runs root on another disk (--runs-root or $EGATH_RUNS); "
        "the artifact was not written and nothing finished was overwritten",
    ),
    errno.EDQUOT: ("cannot be written: the disk quota is exceeded", "free some space or use another disk"),
}


def os_error_line(exc: OSError) -> str:
    """One line for an expected OS error: ``<path>: <problem>; <fix>`` (the errno's text when it is another)."""
    path = exc.filename if exc.filename is not None else None
    problem, fix = _OS_FIXES.get(exc.errno, (None, None))
    where = f"{os.fsdecode(path)}" if path is not None else "a file"
    if exc.filename2 is not None:
        where += f" → {os.fsdecode(exc.filename2)}"
    if problem is None:
        return f"{where}: {exc.strerror or exc}"
    if exc.errno == errno.ENOTDIR and path is not None:  # name the file that stands where a folder should be
        blocker = next((p for p in _parents(os.fsdecode(path)) if os.path.exists(p) and not os.path.isdir(p)), None)
        if blocker is not None:
            return (
                f"{where}: {blocker} is a file, not a folder; give a folder (e.g. --runs-root), or move the file away"
            )
    return f"{where} {problem}; {fix}"


def _parents(path: str) -> list[str]:
    out = [path]
    while os.path.dirname(out[-1]) != out[-1]:
        out.append(os.path.dirname(out[-1]))
    return out


def is_expected(exc: BaseException) -> bool:
    """An error that is a user's mistake or the machine's state (printed as one line), not a bug."""
    if isinstance(exc, EgathError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _OS_FIXES or exc.filename is not None
    return False


def one_line(exc: BaseException) -> str:
    """The message of an expected error on one line (several lines joined with " | ")."""
    if isinstance(exc, OSError) and not isinstance(exc, EgathError) and exc.errno is not None:
        text = os_error_line(exc)
    else:
        text = str(exc) or type(exc).__name__
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


@contextlib.contextmanager
def boundary(prog: str, debug: bool = False) -> Iterator[None]:
    """Turn an expected error into ``<prog>: error: <one line>`` on stderr and ``SystemExit(2)``; else re-raise.

    ``debug`` re-raises every error (its traceback is shown). ``KeyboardInterrupt`` exits 130 with one line.
    """
    try:
        yield
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted; finished artifacts are intact, rerun to resume", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        if debug or not is_expected(exc):
            raise
        print(f"{prog}: error: {one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None


def run_main(prog: str, body, debug: bool = False) -> int:
    """``body()`` inside ``boundary``; returns its exit code, or 2 (130 when interrupted) for an expected error."""
    try:
        with boundary(prog, debug):
            return body()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
