"""``python -m camwidgets.audit DATA --model zoo:shortcut --out audit.parquet``."""

from camwidgets.audit.command import main

raise SystemExit(main())
