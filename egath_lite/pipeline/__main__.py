"""``python -m egath_lite.pipeline``: print the stage table (docs/architecture.md holds it)."""

from egath_lite.pipeline.table import stage_table_markdown

print(stage_table_markdown())
