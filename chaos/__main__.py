"""`python -m chaos`: see chaos/run.py."""

from .run import main

raise SystemExit(main())
