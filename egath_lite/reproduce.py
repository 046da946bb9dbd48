"""``python -m egath_lite.reproduce``: the driver's command line, kept at its documented name.

The driver lives in ``egath_lite.driver`` (``egath_lite.driver.cli``); import from there.
"""

import sys

if __name__ == "__main__":
    from egath_lite.driver.cli import main

    sys.exit(main())
else:  # an import of the old module: the names still resolve, with a pointer to their new home
    import warnings

    from egath_lite.driver.cli import *  # noqa: F401,F403
    from egath_lite.driver.cli import main  # noqa: F401

    warnings.warn(
        "egath_lite.reproduce moved to egath_lite.driver.cli (the command `python -m egath_lite.reproduce` stays)",
        DeprecationWarning,
        stacklevel=2,
    )
