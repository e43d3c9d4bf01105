"""User-facing configuration: the YAML file, its validation, and where things live on disk.

One pydantic model describes every option so the YAML file, the CLI flags and the Dagster launchpad all
validate the same way and an invalid value fails with a message naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from neural_sorter.duplicates import DuplicateOptions
from neural_sorter.quality_flags import QualityOptions
from neural_sorter.sources import normalise_path
from neural_sorter.stages.clusters import ClusterOptions
from neural_sorter.stages.decoded_frames import FrameOptions
from neural_sorter.stages.embeddings import DEFAULT_CLIP_MODEL, EmbeddingOptions
from neural_sorter.stages.projection_3d import ProjectionOptions
from neural_sorter.stages.reorganized_tree import ReorganizeOptions
from neural_sorter.stages.trained_autoencoder import AutoencoderOptions

__all__ = ["DEFAULT_CLIP_MODEL", "AutoencoderOptions", "ConfigError", "SorterConfig", "load_config"]


def describe(info: FieldInfo) -> str:
    """An option's help text with its default, for the CLI and the launchpad alike."""
    default = info.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return info.description or ""
    if isinstance(default, (list, tuple)):
        default = ", ".join(str(v) for v in default) or "none"
    return " ".join(part for part in (info.description or "", f"Default: {default}.") if part)


class ConfigError(ValueError):
    """An invalid configuration value; the message names the offending field."""


class SourceOptions(BaseModel):
    """Which folders are sorted, where the result goes, and what runs by itself."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list, description="Source folders sorted by `sort` and the schedule.")
    watch_roots: list[str] = Field(
        default_factory=list, description="Folders whose immediate subfolders each become a source."
    )
    output_dir: str | None = Field(None, description="Where the per-cluster folders are written.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed of clustering and the 3D map.")
    schedule_cron: str = Field("0 3 * * *", description="When the schedule re-sorts every source.")
    automation: bool = Field(False, description="Start the sensor and the schedule switched on.")

    @field_validator("sources", "watch_roots")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        return [normalise_path(v) for v in value]

    @field_validator("output_dir")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        return normalise_path(value) if value else value


class ExecutorOptions(BaseModel):
    """Where a run's steps execute: this process, or Celery workers (README "Scaling out")."""

    model_config = ConfigDict(extra="forbid")

    executor: Literal["in_process", "celery"] = Field(
        "in_process",
        description="in_process: every step in this process. celery: each step on a Celery worker "
        "(needs neural-sorter[distributed], a broker, a shared store, `neural-sorter worker`s).",
    )
    celery_broker: str = Field("redis://127.0.0.1:6379/0", description="Celery broker URL.")
    celery_backend: str = Field("redis://127.0.0.1:6379/1", description="Celery result backend URL.")
    celery_queue: str = Field("dagster", description="The ordinary Celery queue: every step not routed elsewhere.")
    embedding_queue: str | None = Field(
        None, description="Celery queue of the embeddings step (e.g. one a GPU worker serves); unset: the ordinary one."
    )
    files_queue: str | None = Field(
        None,
        description="Celery queue of the steps that read the source folders or write OUT (file_manifest, "
        "decoded_frames, reorganized_tree), served where those folders are mounted; unset: the ordinary one.",
    )
    queue_timeout: int = Field(
        120, description="Seconds a step may wait for a worker; a queue no worker serves then fails the run."
    )
    embedding_gpus: int = Field(1, description="GPUs the embeddings step's pod requests on Kubernetes.")


class SorterConfig(
    SourceOptions,
    EmbeddingOptions,
    FrameOptions,
    ClusterOptions,
    ProjectionOptions,
    ReorganizeOptions,
    DuplicateOptions,
    QualityOptions,
    ExecutorOptions,
):
    """Every option a user can set, composed from the options each stage declares beside its code; the
    YAML file is flat (one key per option) with the autoencoder's training options nested under it."""

    model_config = ConfigDict(extra="forbid")

    autoencoder: AutoencoderOptions = Field(default_factory=AutoencoderOptions)

    @model_validator(mode="after")
    def _categories_need_clip(self) -> SorterConfig:
        """Categories name clusters through CLIP's text tower; a backend without one would sort as if they had
        not been given, which a user reads as "my categories were used". ``auto`` with categories means CLIP
        (``stages.clip_model`` fails when CLIP cannot load rather than falling back to the cnn)."""
        if self.categories and self.backend in ("cnn", "autoencoder"):
            raise ValueError(
                f"categories: backend {self.backend} cannot use categories (only clip names clusters after them); "
                "drop categories or use backend clip (or auto)"
            )
        return self

    def updated(self, **overrides: Any) -> SorterConfig:
        """Returns a validated copy with every non-None override applied."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "autoencoder" and isinstance(value, dict):
                data["autoencoder"] = {**data["autoencoder"], **{k: v for k, v in value.items() if v is not None}}
            else:
                data[key] = getattr(value, "value", value)  # launchpad choices arrive as enum members
        return validate_config(data)

    def section(self, model: type[BaseModel]) -> BaseModel:
        """The options one stage declares (e.g. ``config.section(ClusterOptions)``)."""
        return model.model_validate({name: getattr(self, name) for name in model.model_fields})


def validate_config(data: dict[str, Any], origin: str = "config") -> SorterConfig:
    """Validates raw options, turning pydantic's errors into one message that names each bad field."""
    try:
        return SorterConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            if field:
                problems.append(f"{field}: {error['msg']}")
            else:  # a rule across fields (model validator): its message starts with the field it names
                problems.append(str(error["msg"]).removeprefix("Value error, "))
        raise ConfigError(f"invalid {origin}: " + "; ".join(problems)) from None


def home_dir() -> Path:
    """The one directory that holds the store and the Dagster instance."""
    return Path(os.environ.get("NEURAL_SORTER_HOME", "~/.neural-sorter")).expanduser().resolve()


# Set by `neural-sorter worker`: a worker takes the store root and the options from the run config only.
WORKER_ENV = "NEURAL_SORTER_WORKER"


def store_root() -> str:
    """Root of the asset store: a local folder or any fsspec URL such as ``s3://bucket/prefix``."""
    if os.environ.get(WORKER_ENV):
        raise ConfigError(
            "this Celery worker got a run without a store root: a worker never falls back to its own "
            "NEURAL_SORTER_STORE or home; put resources.sorter.config.store in the run config "
            "(`neural-sorter sort --executor celery` does)"
        )
    return os.environ.get("NEURAL_SORTER_STORE", str(home_dir() / "store"))


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", str(home_dir() / "dagster"))).expanduser().resolve()


def config_path() -> Path | None:
    if os.environ.get(WORKER_ENV):
        return None  # a worker's own config file must not change a run: its options are in the run config
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
        raw = yaml.safe_load(chosen.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {chosen} is not text (not valid UTF-8)") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {chosen} is not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {chosen}: {exc.strerror or exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {chosen} must hold a mapping of options")
    return validate_config(raw, origin=f"config file {chosen}")


_INSTANCE_YAML_HEAD = (
    "# Written by neural-sorter. Storage defaults to sqlite in this folder; point `storage` at\n"
    "# Postgres and `run_launcher`/executor at Celery or K8s when one machine is not enough.\n"
    "telemetry:\n  enabled: false\n"
)
# What older versions wrote; such a file is replaced by the current one (a file that differs is the user's).
_OLD_INSTANCE_YAMLS = (_INSTANCE_YAML_HEAD,)
INSTANCE_YAML = _INSTANCE_YAML_HEAD + (
    "# The daemon (`dagster dev`) fails runs stuck starting for start_timeout_seconds, e.g. after their run\n"
    "# worker was killed while launching. A killed `neural-sorter sort` is failed by the next CLI start.\n"
    "run_monitoring:\n  enabled: true\n  start_timeout_seconds: 180\n  poll_interval_seconds: 60\n"
)


def prepare_dagster_home() -> Path:
    """Creates DAGSTER_HOME with a dagster.yaml (telemetry off, run monitoring on) unless the user brought
    their own, which is never changed; one an older neural-sorter wrote, unedited, is brought up to date."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    instance_yaml = home / "dagster.yaml"
    try:
        current = instance_yaml.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError):
        return home  # unreadable here: the user's own, and Dagster will say what is wrong with it
    if current is None or current in _OLD_INSTANCE_YAMLS:
        tmp = instance_yaml.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(INSTANCE_YAML, encoding="utf-8")
        os.replace(tmp, instance_yaml)  # two CLIs starting at once never leave a half-written file
    return home
