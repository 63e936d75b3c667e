"""skiff-runc's launcher: `python -I -S runtime/runc/skiff_runc.py ARGS...`.

Without site imports (-S) an interpreter starts in about a third of the time,
and skiff-runc needs nothing outside the standard library and this project.
-I (isolated) ignores PYTHON* variables, so a PYTHONDONTWRITEBYTECODE in the
environment cannot make every start recompile skiff-runc's modules. The
project root is put on the path by hand, since -S skips the virtualenv's
`.pth` files. `scripts/install.sh` writes `.venv/bin/skiff-runc` to run this.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from runtime.runc.main import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown (module and GC finalization, 2 ms): every file skiff-runc
    # writes is closed already, and standard output is flushed just above.
    os._exit(code)
