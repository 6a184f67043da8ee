"""``python -m segkit.cli <subcommand> ...``: the same as the ``segkit`` console script."""

from segkit.cli import main

raise SystemExit(main())
