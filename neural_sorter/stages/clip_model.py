"""``clip_model``: the CLIP model a run uses (hub id or local folder, with its revision) and the text
vectors of the categories that name clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neural_sorter.stages import StageError, StageReport
from neural_sorter.stages.embeddings import EmbeddingOptions
from neural_sorter.tables import CLIP_MODEL, SCHEMAS

CLIP_COLUMNS = [c.name for c in SCHEMAS[CLIP_MODEL]]


def build_clip_model(options: EmbeddingOptions, device) -> tuple[pd.DataFrame, StageReport]:
    """Loads CLIP and embeds the categories when the backend may use it.

    With backend ``auto`` a CLIP that cannot be loaded is recorded as unavailable (embeddings then use the
    cnn backend) unless categories were given (they need CLIP); with backend ``clip`` it is an error that says
    how to provide the weights.
    """
    from neural_sorter.models.clip import ClipUnavailable, load_clip

    if options.backend not in ("auto", "clip"):
        row = _row(options.clip_model, "", "not used", f"backend is {options.backend}")
        return pd.DataFrame([row], columns=CLIP_COLUMNS), StageReport(
            {"status": "not used", "backend": options.backend}
        )
    try:
        clip = load_clip(options.clip_model, str(device))
    except ClipUnavailable as exc:
        if options.backend == "clip":
            raise StageError(str(exc)) from None
        if options.categories:  # auto with categories means CLIP: a cnn sort would silently drop them
            raise StageError(f"categories need the clip backend, and CLIP could not be loaded: {exc}") from None
        report = StageReport(
            {"status": "unavailable", "message": str(exc)}, warnings=[f"{exc} Falling back (backend auto)."]
        )
        return pd.DataFrame([_row(options.clip_model, "", "unavailable", str(exc))], columns=CLIP_COLUMNS), report
    rows = []
    if options.categories:
        prompts = [options.prompt_template.format(c) for c in options.categories]
        for category, prompt, vector in zip(options.categories, prompts, clip.embed_texts(prompts)):
            rows.append(
                {
                    **_row(clip.model_id, clip.revision, "loaded", ""),
                    "category": category,
                    "prompt": prompt,
                    "vector": vector.astype(np.float32),
                }
            )
    else:
        rows.append(_row(clip.model_id, clip.revision, "loaded", "no categories configured"))
    report = StageReport(
        {
            "status": "loaded",
            "model_id": clip.model_id,
            "revision": clip.revision,
            "categories": len(options.categories),
        }
    )
    return pd.DataFrame(rows, columns=CLIP_COLUMNS), report


def _row(model_id: str, revision: str, status: str, message: str) -> dict[str, object]:
    return {
        "model_id": model_id,
        "revision": revision,
        "status": status,
        "message": message,
        "category": None,
        "prompt": None,
        "vector": None,
    }
