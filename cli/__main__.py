"""``python -m cli`` is the same as the ``router-tuner`` console script."""

from cli.main import main

raise SystemExit(main())
