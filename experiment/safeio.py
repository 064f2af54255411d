"""Read a file a user pointed us at without hanging, exhausting memory or tracing back.

`read_regular` opens without blocking (a FIFO would wait forever for a writer), refuses what is
not a regular file (FIFO, /dev/zero, a folder, a socket) and anything larger than the caller's
limit, and turns every OS error (missing, permission, symlink loop, name too long) into one
`FileRefused` whose message says what is wrong. `FileRefused` is a ValueError, so callers that
already treat unreadable data as ValueError/OSError handle it too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MB = 2**20

_REASONS = {
    errno.ENOENT: "not found",
    errno.ENOTDIR: "not found (a part of the path is not a folder)",
    errno.EACCES: "not readable (permission denied)",
    errno.EPERM: "not readable (permission denied)",
    errno.ELOOP: "a symbolic link that points to itself (symlink loop)",
    errno.ENAMETOOLONG: "the path is too long for the file system",
    errno.EISDIR: "a folder, not a file",
}


class FileRefused(ValueError):
    """A file that cannot or must not be read; the message names it and says why, `reason`
    says only why (for messages that name the file already)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def describe_os_error(e: OSError) -> str:
    return _REASONS.get(e.errno, e.strerror or str(e))


def _shown(path) -> str:
    text = str(path)
    return text if len(text) <= 120 else text[:60] + "..." + text[-40:]


def read_regular(path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of `path`; FileRefused unless it is a regular file of at most `max_bytes`."""
    shown = _shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise FileRefused(f"{what} {shown}: {describe_os_error(e)}", describe_os_error(e)) from None
    except ValueError as e:        # an embedded NUL in the path
        raise FileRefused(f"{what} {shown}: invalid path ({e})", f"invalid path ({e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise FileRefused(f"{what} {shown}: is {kind}; point to a regular file", f"is {kind}; point to a regular file")
        if st.st_size > max_bytes:
            raise FileRefused(f"{what} {shown}: {_size(st.st_size)} is too large (at most {_size(max_bytes)})",
                              f"{_size(st.st_size)} is too large (at most {_size(max_bytes)})")
        chunks, total = [], 0
        # First read sized to the file (+1 to see its end): a fixed 1 MiB buffer per read costs
        # a fresh 1 MiB allocation each call, which dominated reading 100,000 small trial files.
        want = min(st.st_size, max_bytes) + 1
        while True:
            chunk = os.read(fd, want)
            want = 1 << 16
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:     # grew while we read it
                raise FileRefused(f"{what} {shown}: too large (at most {_size(max_bytes)})", f"too large (at most {_size(max_bytes)})")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise FileRefused(f"{what} {shown}: {describe_os_error(e)}", describe_os_error(e)) from None
    finally:
        os.close(fd)


def regular_file_problem(path: Path, max_bytes: int | None = None) -> str | None:
    """Why `path` is not a readable regular file of at most `max_bytes` (without reading it), or None."""
    try:
        st = os.stat(path)
    except OSError as e:
        return describe_os_error(e)
    except ValueError as e:
        return f"invalid path ({e})"
    if not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            return "is a folder, not a file"
        return "is a pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "is not a regular file (a device or socket)"
    if max_bytes is not None and st.st_size > max_bytes:
        return f"{_size(st.st_size)} is too large (at most {_size(max_bytes)})"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    return None


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB // 10 else f"{n} bytes"
