"""``python -m segkit <subcommand> ...``: the same as the ``segkit`` console script (and ``python -m segkit.cli``)."""

from segkit.cli import main

raise SystemExit(main())
