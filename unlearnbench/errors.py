"""The one error path of the command line: a user error is one line naming the thing and the
fix, and exit status 2; anything else is a bug and keeps its traceback.

A user error is a ``UserError`` (the schema, benchmark and grid errors are ones) or a registry
error, or an ``OSError`` that says the output cannot be written
(read-only, a file where a directory should be, a full disk, a name too long).
"""

from __future__ import annotations

import errno


class UserError(ValueError):
    """Bad input from the user: the message names the input and how to fix it."""


# errno -> what to do about it, for paths the harness writes.
_WRITE_FIXES = {
    errno.EACCES: "choose a writable location (--out) or fix its permissions",
    errno.EPERM: "choose a writable location (--out) or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another location (--out)",
    errno.ENOSPC: "the disk is full; free space (finished cells are kept) and run the same command again",
    errno.EDQUOT: "the disk quota is exhausted; free space and run the same command again",
    errno.ENOTDIR: "a file is in the way of a directory there; choose a directory path (--out)",
    errno.EEXIST: "a file is in the way of a directory there; choose a directory path (--out)",
    errno.EISDIR: "a directory is in the way of a file there; choose another path",
    errno.ENAMETOOLONG: "a file name is too long; shorten the label, the grid name or --out",
}


def user_message(exc: BaseException) -> str | None:
    """The one-line message of a user error, or ``None`` for a bug (shown with its traceback)."""
    from unlearnbench.registry import RegistryError

    # Schema and benchmark errors are UserErrors; registry errors are not ValueErrors (kept so).
    if isinstance(exc, (UserError, RegistryError)):
        return one_line(str(exc))
    if isinstance(exc, OSError) and exc.errno in _WRITE_FIXES:
        where = exc.filename if exc.filename is not None else "a file"
        return one_line(f"cannot write {where}: {exc.strerror or exc}; {_WRITE_FIXES[exc.errno]}")
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


def check_writable(directory) -> None:
    """Create ``directory`` and write a probe file in it, before any work whose output would go
    there: a read-only, full or mistyped location fails now, not after an hour's evaluation."""
    import os
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    probe = d / f".probe.{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass  # the write's own error (if any) is the one to report
