"""``python -m generator``: the `optimgen` command line (generator.commands.cli)."""

import sys

from generator.commands.cli import main

sys.exit(main())
