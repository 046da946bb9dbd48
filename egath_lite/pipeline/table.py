"""Every stage of the pipeline in order, and the table of what each reads (docs/architecture.md prints it)."""

from __future__ import annotations

from egath_lite.pipeline.baselines import CLIP_BASELINE_STAGE
from egath_lite.pipeline.classifier import CLASSIFIER_STAGE
from egath_lite.pipeline.code_digest import CORE_MODULES
from egath_lite.pipeline.codes import CODES_STAGE
from egath_lite.pipeline.config import Config, get_config
from egath_lite.pipeline.features import FEATURES_STAGE
from egath_lite.pipeline.graph import GRAPH_STAGE
from egath_lite.pipeline.runs import CELL_STAGE, RESULT_FIELDS, RESULTS_STAGE
from egath_lite.pipeline.stages import Stage, stage_table
from egath_lite.pipeline.tiny_clip import TINY_CLIP_STAGE

STAGES: tuple[Stage, ...] = (
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
    """The stage table as Markdown: stage, config fields it reads, upstream stages, extra inputs, code it runs
    (its source digests key the artifact), artifact name."""
    cfg = cfg or get_config("default")
    lines = [
        "| stage | reads config fields | upstream | other inputs | code it runs | artifact |",
        "|---|---|---|---|---|---|",
    ]
    for row in stage_table(STAGES, cfg):
        fields = (
            "every field but the run's location"
            if tuple(row["fields"]) == RESULT_FIELDS
            else ", ".join(f"`{f}`" for f in row["fields"])
        )
        upstream = ", ".join(row["upstream"]) or "–"
        code = (
            "all of `core/`"
            if tuple(row["code"]) == CORE_MODULES
            else ", ".join(f"`{m.removeprefix('egath_lite.')}`" for m in row["code"]) or "–"
        )
        lines.append(
            f"| {row['stage']} | {fields} | {upstream} | {row['extra'] or '–'} | {code} | `{row['artifact']}` |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(stage_table_markdown())
