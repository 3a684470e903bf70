"""``python -m fmscale``: the CLI, as the workflow's rules call it (from the workflow's source)."""

from .cli import main

raise SystemExit(main())
