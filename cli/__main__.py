"""`python -m cli`: the same as the `skiff` command (how the supervisor is started)."""

import sys

from cli.main import main

sys.exit(main())
