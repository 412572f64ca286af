"""``python -m jupyter_mlws.cli``: the ``mlws`` command."""

import sys

from jupyter_mlws.cli.entry import main

sys.exit(main())
