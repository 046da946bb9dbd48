"""``python -m egath_lite.driver``: the same command line as ``python -m egath_lite.reproduce``."""

import sys

from egath_lite.driver.cli import main

sys.exit(main())
