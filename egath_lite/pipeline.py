"""Every stage of the pipeline in order, and the table of what each reads (docs/architecture.md prints it)."""

from __future__ import annotations

from .baselines import CLIP_BASELINE_STAGE
from .classifier import CLASSIFIER_STAGE
from .codes import CODES_STAGE
from .config import Config, get_config
from .data.toy_cache import TOY_STAGE
from .features import FEATURES_STAGE
from .graph import GRAPH_STAGE
from .reproduce import CELL_STAGE
from .runs import RESULT_FIELDS, RESULTS_STAGE
from .stages import Stage, stage_table
from .tiny_clip import TINY_CLIP_STAGE

STAGES: tuple[Stage, ...] = (
    TOY_STAGE,
    TINY_CLIP_STAGE,
    FEATURES_STAGE,
    GRAPH_STAGE,
    CLASSIFIER_STAGE,
    CODES_STAGE,
    CLIP_BASELINE_STAGE,
    RESULTS_STAGE,
    CELL_STAGE,
)


def stage_table_markdown(cfg: Config | None = None) -> str:
    """The stage table as Markdown: stage, config fields it reads, upstream stages, extra inputs, artifact name."""
    cfg = cfg or get_config("default")
    lines = ["| stage | reads config fields | upstream | other inputs | artifact |", "|---|---|---|---|---|"]
    for row in stage_table(STAGES, cfg):
        fields = (
            "every field but the run's location"
            if tuple(row["fields"]) == RESULT_FIELDS
            else ", ".join(f"`{f}`" for f in row["fields"])
        )
        upstream = ", ".join(row["upstream"]) or "–"
        lines.append(f"| {row['stage']} | {fields} | {upstream} | {row['extra'] or '–'} | `{row['artifact']}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(stage_table_markdown())
