"""``python -m router_tuner.cli`` is the same as the ``router-tuner`` console script."""

from router_tuner.cli.main import main

raise SystemExit(main())
