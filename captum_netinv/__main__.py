"""``python -m captum_netinv``: runs the demo (see :mod:`captum_netinv.app.demo`).

Equivalent to the ``captum-netinv-demo`` console script that ``make demo`` ends up calling.
"""

from captum_netinv.app.demo import main

raise SystemExit(main())
