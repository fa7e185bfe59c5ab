"""The building blocks of every config model: the strict ``Model`` base and the field types.

Durations are Prometheus durations, stored as float seconds; sizes are bytes. Each type
validates and describes itself, so the models that use it need no validator of their own
and the JSON Schema shows what the YAML may hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from slaprobe.schedule import CronExpression
from slaprobe.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size


def _duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r} (use a string such as 30s, 5m, 1h)")
    return parse_duration(value)


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"not a size: {value!r}")
    return parse_size(value)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def check_host_port(value: str) -> str:
    """``value`` if it is host:port (ValueError otherwise)."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {value!r} (IPv6 as [::1]:53)")
    return value


def check_cron(value: str) -> str:
    """``value`` if it is a cron expression (ValueError otherwise)."""
    CronExpression.parse(value)
    return value


def check_http_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host (ValueError otherwise)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if not _authority_parses(parts.netloc, value[len(parts.scheme) + 3 + len(parts.netloc) :]):
        # Not quoted: a ${env:}/${file:} password with an unencoded @ or / put it here.
        raise ValueError(
            "the URL's user:password@host:port does not parse (the URL is not shown: it may hold a secret); "
            "percent-encode @ : / ? # in a user name or password"
        )
    return value


def _authority_parses(netloc: str, rest: str) -> bool:
    """Whether ``user:password@host:port`` reads one way only (``rest``: what follows it in the URL)."""
    if netloc.count("@") > 1:
        return False  # p@ss: which @ ends the password?
    host_port = netloc.rpartition("@")[2]
    port = host_port.rpartition("]")[2].rpartition(":")
    if port[1] and port[2] and not (port[2].isdigit() and 0 < int(port[2]) < 65536):
        return False  # user:p/ss@host splits the password at the /: "p" becomes the port
    # user:/ss@host: the password begins with / ? or #, and its rest becomes the path.
    return not ("@" not in netloc and netloc.endswith(":") and "@" in rest)


def with_default_port(target: str, port: int) -> str:
    """``host`` -> ``host:port``; ``::1`` -> ``[::1]:port``; ``host:p`` unchanged."""
    if target.startswith("["):
        return target if "]:" in target else f"{target}:{port}"
    if target.count(":") == 1:
        return target
    if ":" in target:
        return f"[{target}]:{port}"
    return f"{target}:{port}"


@dataclass(frozen=True, eq=False)  # hashed by identity: pydantic hashes metadata, dicts are not hashable
class Shorthand:
    """Annotated marker: the JSON Schema also accepts these shapes (a validator expands them)."""

    alternatives: tuple[dict[str, Any], ...]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [handler(core_schema), *self.alternatives]}


SCALAR_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}
SCALARS_SCHEMA: dict[str, Any] = {"type": "array", "items": SCALAR_SCHEMA}

Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "description": "Prometheus duration"}),
]
Size = Annotated[
    int,
    BeforeValidator(_size),
    WithJsonSchema({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}]}),
]
Regex = Annotated[str, AfterValidator(_regex)]
HostPort = Annotated[str, AfterValidator(check_host_port)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]
IpProtocol = Literal["ip4", "ip6"]


def _regex_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


RegexList = Annotated[
    list[Regex],
    BeforeValidator(_regex_list),
    WithJsonSchema({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class Model(BaseModel):
    """Base of every config model: unknown keys rejected, instances immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
