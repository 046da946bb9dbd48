"""The driver: papermill runner, grid, report and command line (``python -m egath_lite.reproduce``)."""
