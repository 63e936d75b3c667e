"""Waits for a process that runc or crun started detached, and exits with its code.

runc and crun hand over a terminal (`--console-socket`) only when they detach
(`exec -d`), and then the exec'd process is nobody's child: its exit code
would be lost. This helper is a child subreaper, so the orphan becomes its
child; it runs the detached exec, learns the pid from `--pid-file`, waits for
that process and exits with its status, as containerd's shim does for execs.

    python -I -S exec_tty.py PID_FILE RUNTIME_COMMAND... exec -d ... --pid-file PID_FILE ...
"""

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    pid_file, argv = sys.argv[1], sys.argv[2:]
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    runtime = os.posix_spawnp(argv[0], argv, os.environ)
    _, status = os.waitpid(runtime, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return 126  # it said why on stderr
    with open(pid_file) as f:
        pid = int(f.read())
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # never became our child: nothing to report
        if child == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
