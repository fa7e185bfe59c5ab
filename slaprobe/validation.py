"""pydantic's validation errors as config issues: the YAML path and line, and plain words.

``unknown key 'x' (did you mean 'y'?)`` names the keys of the model at that path;
``required key is missing``; other messages lose pydantic's ``Value error, `` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from slaprobe.configerror import ConfigIssue, did_you_mean
from slaprobe.yamlmap import format_path, line_of


def validation_issues(
    exc: ValidationError, root: type[BaseModel], lines: Mapping[tuple[str | int, ...], int]
) -> list[ConfigIssue]:
    """Each error of ``exc`` (validating ``root``) as an issue with its YAML path and line."""
    issues = []
    for error in exc.errors():
        loc = _clean_loc(error["loc"])
        issues.append(ConfigIssue(format_path(loc), _message(error, _model_at(root, loc)), line_of(lines, loc)))
    return issues


def _message(error: Mapping[str, Any], parent: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = error["loc"][-1]
        known = _known_keys(parent)
        return f"unknown key {key!r}{did_you_mean(str(key), known)}"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def _known_keys(model: Any) -> list[str]:
    """The YAML keys a model accepts."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The model class that holds the last key of ``loc`` (for 'did you mean')."""
    annotation: Any = root
    for part in loc[:-1]:
        annotation = _child_annotation(annotation, part)
        if annotation is None:
            return None
    return _strip(annotation)


def _strip(annotation: Any) -> Any:
    """Remove Optional and Annotated wrappers; keep list/dict/model types."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else args[0]
        else:
            return annotation


def _child_annotation(annotation: Any, part: str | int) -> Any:
    annotation = _strip(annotation)
    origin = get_origin(annotation)
    if origin is list and isinstance(part, int):
        return get_args(annotation)[0]
    if origin is dict and isinstance(part, str):
        return get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
    return None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union/validator markers (``function-after[...]``) from a location."""
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p and "-" in p.split("[")[0])))
