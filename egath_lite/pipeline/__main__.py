"""``python -m egath_lite.pipeline``: print the stage table (docs/architecture.md holds it)."""

if __name__ == "__main__":  # an import (the docs' API pages) runs nothing
    from egath_lite.pipeline.table import stage_table_markdown

    print(stage_table_markdown())
