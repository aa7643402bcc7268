"""``python -m camwidgets.cli`` runs the ``camwidgets`` command."""

from camwidgets.cli import main

raise SystemExit(main())
