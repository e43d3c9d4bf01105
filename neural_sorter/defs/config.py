"""Dagster ``Config`` classes derived from the stage option models, so each option is declared once.

Every derived field is optional with a ``None`` default: a value left empty in the launchpad falls through
to the source's recorded options, the YAML file and finally the model default, which the description states.
Choices become enums, so the launchpad offers them and rejects a bad value before the run starts.
"""

from __future__ import annotations

import enum
import typing
from typing import Any, Literal, Optional

import dagster as dg
from pydantic import BaseModel, Field, create_model

from neural_sorter.settings import SorterConfig, describe


def _dagster_type(owner: str, name: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return enum.Enum(f"{owner}{name.title().replace('_', '')}", {str(a): a for a in args}, type=str)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return str  # e.g. k: int | "auto" — validated by the settings model
    if origin is tuple:
        return list[args[0]] if args else list
    return annotation


def overlay_fields(model: type[BaseModel], names: list[str] | None = None, owner: str = "") -> dict[str, Any]:
    """``create_model`` field specs for ``names`` (all by default) of ``model``, each optional."""
    fields = {}
    for name in names or list(model.model_fields):
        info = model.model_fields[name]
        kind = _dagster_type(owner or model.__name__, name, info.annotation)
        fields[name] = (Optional[kind], Field(None, description=describe(info)))  # noqa: UP045 (Dagster needs it)
    return fields


def config_class(name: str, *parts: tuple[type[BaseModel], list[str] | None], **extra: Any) -> type[dg.Config]:
    """A ``dg.Config`` named ``name`` with the chosen fields of each model, plus ``extra`` field specs."""
    fields: dict[str, Any] = {}
    for model, names in parts:
        fields.update(overlay_fields(model, names, owner=name))
    fields.update(extra)
    return create_model(name, __base__=dg.Config, **fields)


def set_values(config: BaseModel) -> dict[str, Any]:
    """The option values a launchpad or run config actually set (None means: not set here); fields that are
    run flags rather than options (e.g. ``force``) are left to the asset."""
    options = SorterConfig.model_fields
    return {k: getattr(v, "value", v) for k, v in config.model_dump().items() if v is not None and k in options}
