"""``python -m captum_netinv``: the command line of :mod:`captum_netinv.app.cli`.

The same parser as the ``captum-netinv`` console script: ``report`` on one's own model and data,
or, with no subcommand (``python -m captum_netinv --out report``), the MNIST example.
"""

from captum_netinv.app.cli import main

raise SystemExit(main())
