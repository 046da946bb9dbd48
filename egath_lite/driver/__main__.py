"""``python -m egath_lite.driver``: the same command line as ``python -m egath_lite.reproduce``."""

import sys

if __name__ == "__main__":  # an import (the docs' API pages) runs nothing
    from egath_lite.driver.cli import main

    sys.exit(main())
