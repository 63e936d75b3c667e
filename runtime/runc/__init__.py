"""skiff-runc, the OCI runtime (see main.py). Kept free of imports that cost start-up
time: this file runs on every `skiff-runc` invocation."""

import os
import sys

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skiff_runc.py")


def command() -> list[str]:
    """How to run skiff-runc as a fresh process, fast: no site imports."""
    return [sys.executable, "-I", "-S", LAUNCHER]
