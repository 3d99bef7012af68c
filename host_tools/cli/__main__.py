"""`python -m host_tools.cli`: dhtlink without its console script (a test's subprocess)."""

import sys

from host_tools.cli import main

sys.exit(main())
