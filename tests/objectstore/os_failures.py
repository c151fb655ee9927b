"""Real file-system failures for the local store's tests, made to work as root too.

Root ignores file permissions, so a permission test runs its code in a forked child
that first drops to the ``nobody`` user. A full disk and a read-only file system are
a small tmpfs mounted in a private mount namespace of a forked child: nothing is
mounted in the test process, and nothing is left mounted if the child dies.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import traceback
from collections.abc import Callable
from typing import TypeVar

__all__ = ["NOBODY", "TmpfsMount", "in_forked_child"]

T = TypeVar("T")

NOBODY = 65534
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_REC = 16384
_MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _private_mount_namespace() -> None:
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(_libc.unshare(_CLONE_NEWNS), "unshare")
    else:
        # An unprivileged user may mount in a user namespace where it is root.
        _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare")
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"0 {uid} 1"),
            ("gid_map", f"0 {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as out:
                out.write(text)
    # Mounts made here must not propagate back to the test's namespace.
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")


class TmpfsMount:
    """A tmpfs of ``size`` bytes on ``folder``; made in ``in_forked_child(..., mounts=True)``."""

    def __init__(self, folder: str, size: int) -> None:
        self.folder = folder
        options = f"size={size},mode=0755".encode()
        _check(_libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, options), "mount tmpfs")

    def read_only(self) -> None:
        flags = _MS_REMOUNT | _MS_RDONLY
        _check(_libc.mount(None, self.folder.encode(), None, flags, None), "remount read-only")

    def fill(self) -> None:
        """Write until the file system has no space left."""
        with open(os.path.join(self.folder, "filler"), "wb", buffering=0) as out:
            try:
                while out.write(b"\0" * 4096):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


def in_forked_child(
    function: Callable[[], T], *, user: int | None = None, mounts: bool = False
) -> T:
    """Run ``function`` in a forked child and return its (picklable) result.

    ``user``: drop to this uid/gid first when running as root (a non-root test user
    already meets permissions). ``mounts``: give the child a private mount namespace.
    An exception in the child is raised here as ``AssertionError`` with its traceback.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            if mounts:
                _private_mount_namespace()
            if user is not None and os.geteuid() == 0:
                os.setgid(user)
                os.setuid(user)
            outcome: tuple[bool, object] = (True, function())
        except BaseException:
            outcome = (False, traceback.format_exc())
        with os.fdopen(write_end, "wb") as out:
            out.write(pickle.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        data = incoming.read()
    os.waitpid(pid, 0)
    assert data, "the forked child died without an answer"
    ok, value = pickle.loads(data)
    if not ok:
        raise AssertionError(f"in the forked child:\n{value}")
    return value  # type: ignore[no-any-return]
