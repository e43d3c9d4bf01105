"""User-facing configuration: the YAML file, its validation, and where things live on disk.

One pydantic model describes every option so the YAML file, the CLI flags and the Dagster launchpad all
validate the same way and an invalid value fails with a message naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Backend = Literal["auto", "clip", "cnn", "autoencoder"]
ClusterMethod = Literal["kmeans", "hierarchical", "hdbscan"]
ProjectionMethod = Literal["umap", "tsne", "pca"]
ReorganizeMode = Literal["copy", "hardlink", "symlink", "move"]
Precision = Literal["fp32", "int8"]

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


class ConfigError(ValueError):
    """An invalid configuration value; the message names the offending field."""


class AutoencoderOptions(BaseModel):
    """Training options of the autoencoder backend."""

    model_config = ConfigDict(extra="forbid")

    variant: Literal["vae", "ae"] = "vae"
    image_size: int = Field(64, ge=16, le=256)
    latent_dim: int = Field(64, ge=2, le=1024)
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=4096)
    learning_rate: float = Field(2e-3, gt=0)
    kl_weight: float = Field(0.5, ge=0)
    kl_warmup_epochs: int = Field(5, ge=0)
    retrain: bool = False


class SorterConfig(BaseModel):
    """Every option a user can set, with the defaults a first run uses."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list, description="Source folders sorted by `sort` and the schedule.")
    watch_roots: list[str] = Field(
        default_factory=list, description="Folders whose immediate subfolders each become a source."
    )
    output_dir: str | None = Field(None, description="Where the per-cluster folders are written.")
    backend: Backend = "auto"
    clip_model: str = Field(DEFAULT_CLIP_MODEL, description="Hugging Face hub id or a local folder.")
    categories: list[str] = Field(default_factory=list, description="CLIP text categories that name clusters.")
    category_threshold: float = Field(0.35, ge=0.0, le=1.0)
    prompt_template: str = "a photo of {}"
    method: ClusterMethod = "kmeans"
    k: int | Literal["auto"] = "auto"
    k_range: tuple[int, int] = (2, 12)
    min_cluster_size: int = Field(5, ge=2)
    projection: ProjectionMethod = "umap"
    mode: ReorganizeMode = "copy"
    rename: bool = False
    dry_run: bool = False
    seed: int = 0
    frames_per_video: int = Field(5, ge=1, le=64)
    thumbnail_size: int = Field(256, ge=32, le=1024)
    batch_size: int = Field(32, ge=1, le=1024)
    precision: Precision = Field(
        "fp32",
        description="int8 quantizes CLIP's linear layers on CPU (faster, vectors at cosine >= 0.99 to fp32).",
    )
    decode_workers: int = Field(0, ge=0, le=64, description="0 picks one per CPU core.")
    max_image_pixels: int = Field(178_956_970, ge=1, description="Decompression-bomb cap in pixels.")
    autoencoder: AutoencoderOptions = Field(default_factory=AutoencoderOptions)
    schedule_cron: str = "0 3 * * *"
    automation: bool = Field(False, description="Start the sensor and the schedule switched on.")
    recluster: bool = Field(False, description="Cluster from scratch instead of keeping existing clusters.")
    drift_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of new or removed files that triggers a full re-cluster."
    )

    @field_validator("k")
    @classmethod
    def _k_at_least_two(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("k must be >= 1 or 'auto'")
        return value

    @field_validator("k_range")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if low < 2 or high < low:
            raise ValueError("k_range must be (low, high) with 2 <= low <= high")
        return value

    def updated(self, **overrides: Any) -> SorterConfig:
        """Returns a validated copy with every non-None override applied."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "autoencoder" and isinstance(value, dict):
                data["autoencoder"] = {**data["autoencoder"], **value}
            else:
                data[key] = value
        return validate_config(data)


def validate_config(data: dict[str, Any], origin: str = "config") -> SorterConfig:
    """Validates raw options, turning pydantic's errors into one message that names each bad field."""
    try:
        return SorterConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(root)"
            problems.append(f"{field}: {error['msg']}")
        raise ConfigError(f"invalid {origin}: " + "; ".join(problems)) from None


def home_dir() -> Path:
    """The one directory that holds the store and the Dagster instance."""
    return Path(os.environ.get("NEURAL_SORTER_HOME", "~/.neural-sorter")).expanduser().resolve()


def store_root() -> str:
    """Root of the asset store: a local folder or any fsspec URL such as ``s3://bucket/prefix``."""
    return os.environ.get("NEURAL_SORTER_STORE", str(home_dir() / "store"))


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", str(home_dir() / "dagster"))).expanduser().resolve()


def config_path() -> Path | None:
    value = os.environ.get("NEURAL_SORTER_CONFIG")
    return Path(value).expanduser() if value else None


def load_config(path: str | os.PathLike[str] | None = None) -> SorterConfig:
    """Loads the YAML config file (``--config`` or ``NEURAL_SORTER_CONFIG``); defaults when there is none."""
    chosen = Path(path).expanduser() if path else config_path()
    if chosen is None:
        return SorterConfig()
    if not chosen.is_file():
        raise ConfigError(f"config file not found: {chosen}")
    try:
        raw = yaml.safe_load(chosen.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {chosen} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {chosen} must hold a mapping of options")
    return validate_config(raw, origin=f"config file {chosen}")


def prepare_dagster_home() -> Path:
    """Creates DAGSTER_HOME with a dagster.yaml (telemetry off) unless the user brought their own."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text(
            "# Written by neural-sorter. Storage defaults to sqlite in this folder; point `storage` at\n"
            "# Postgres and `run_launcher`/executor at Celery or K8s when one machine is not enough.\n"
            "telemetry:\n  enabled: false\n"
        )
    return home
