"""The package's version, defined once here: a leaf module, so that ``egath_lite.files`` and the notebooks' setup
can read it without importing ``egath_lite/__init__.py`` (which lazily exposes ``pipeline.config``)."""

__version__ = "0.1.0"
