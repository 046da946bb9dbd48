"""``python -m egath_lite.search``: single-query search from the command line, kept at its documented name.

The code lives in ``egath_lite.serve.search``; ``from egath_lite.search import Searcher`` keeps working.
"""

import sys

from egath_lite.serve.search import *  # noqa: F401,F403
from egath_lite.serve.search import Hit, Searcher, SearchError, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
