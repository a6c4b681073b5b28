"""What every rnnedge command shares: its exit statuses, and how it ends on bad input or on a bug.

    0 OK              the command did what it was asked (rnnedge-export: every artifact meets its pass rule)
    1 PARITY_FAILED   rnnedge-export: an artifact fails its precision's pass rule (the report is still written)
    2 BAD_INPUT       a file, option or data set the command refuses; one line on stderr names what is wrong
    3 INTERNAL_ERROR  a bug in rnnedge: one short line on stderr, the traceback in a log file that line names
  130 INTERRUPTED     Ctrl-C (the shell's status for SIGINT): one line; like 2 and 3, nothing was written

No traceback ever reaches the terminal: a command's main() runs its body through guarded(), which turns
Ctrl-C into 130 and every other exception into 3 (bad input is the body's own status 2).
Stdlib only: rnnedge-run (runtime/, no torch) can share it with rnnedge-train and rnnedge-export.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

OK, PARITY_FAILED, BAD_INPUT, INTERNAL_ERROR = 0, 1, 2, 3
INTERRUPTED = 130


def bad_input(prog: str, message: str) -> int:
    """Print `prog: error: message` on stderr; returns BAD_INPUT."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return BAD_INPUT


def internal_error(prog: str, error: BaseException, after: str = "") -> int:
    """Write the traceback of `error` (being handled) to a new log file and print one line naming it; returns
    INTERNAL_ERROR. `after` follows the error in that line (e.g. "; nothing was written")."""
    message = " ".join(str(error).split())
    if len(message) > 300:  # one line on the terminal; the log has it whole
        message = message[:300] + " ..."
    try:
        with tempfile.NamedTemporaryFile("w", prefix=f"{prog.replace(' ', '-')}-", suffix=".log", delete=False) as log:
            traceback.print_exception(error, file=log)
        where = f"the traceback is in {log.name}"
    except OSError as e:  # no writable temporary folder: still no traceback on the terminal
        where = f"no log could be written ({e})"
    print(f"{prog}: internal error: {type(error).__name__}: {message}{after}; {where}", file=sys.stderr)
    return INTERNAL_ERROR


def guarded(prog: str, body: Callable[[], int], after: str = "", pipe: bool = False) -> int:
    """body()'s exit status; Ctrl-C -> INTERRUPTED and any other exception -> INTERNAL_ERROR, each one line on
    stderr followed by `after` (what was left untouched, e.g. "; nothing was written"). pipe: a command that
    prints to stdout ends OK when its reader closes the pipe (`rnnedge run ... | head` has what it wanted)."""
    try:
        return body()
    except BrokenPipeError as e:
        if not pipe:
            return internal_error(prog, e, after)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return OK
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{after}", file=sys.stderr)
        return INTERRUPTED
    except Exception as e:  # noqa: BLE001 - a bug, not bad input: a short message and the traceback in a log
        return internal_error(prog, e, after)


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path if it names a regular file (symlinks followed). A FIFO, a device such as /dev/zero or a
    folder would block a reader or feed it forever, so each is refused by name: FileNotFoundError when nothing
    is there, ValueError otherwise."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise ValueError(f"{what} {str(path)!r}: cannot be read: {e}") from None  # repr: a NUL stays visible
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise ValueError(f"{what} {path} is {kind}, not a regular file")
    return path
