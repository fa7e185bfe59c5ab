"""The probe kinds: one table, each kind once, and the flow models built on it.

A kind is the key that says what a probe does (``http:``, ``tcp:``, ...). Its row holds
its spec model, whether a flow may run it as a step, the blackbox_exporter prober that
``/probe?module=`` serves with it, and the spec field that says where it connects.
Everything else follows the table: the config's "exactly one kind" checks (``Probe``,
``FlowStep``), a step's ``expect`` shorthand, the flow's step dispatch, the scheduler and
``/probe`` (``probes/kinds.py`` ``PROBERS``), the probers a blackbox module file may name,
the fields where a flow variable may not appear. Where a kind must still be written out
(a pydantic field per kind, a probe function per kind, the typing unions below),
``tests/core/test_kinds.py`` holds that list to this table in both directions.

Adding a kind: its spec (``slaprobe/specs.py``), its module (``probes/<kind>.py``), one
row here, one entry in ``PROBERS``, and its field on ``Probe`` (and ``FlowStep``). A
``pushed`` kind (``heartbeat``) has no probe function: ``/push`` records its runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import ConfigDict, Field, model_validator

from slaprobe.fields import Duration, Model, Name
from slaprobe.specs import (
    DnsSpec,
    Extract,
    GrpcSpec,
    HeartbeatSpec,
    HttpSpec,
    IcmpSpec,
    TcpSpec,
    TlsSpec,
    UnixSpec,
    WebsocketSpec,
)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of probe: its YAML key, its spec, where it may be used."""

    name: str  # the probe's key in the YAML, and the ``kind`` on the status page
    spec: type[Model]
    flow_step: bool  # a flow may run it as one of its steps
    blackbox_prober: str | None = None  # the blackbox_exporter prober it serves, if any
    target_field: str | None = None  # the spec's field naming where it connects (set at load, never templated)
    pushed: bool = False  # its runs are pushed to /push (no probe function, no schedule, no /probe)


# ---------------------------------------------------------------------------- flows


def _step_expect_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["expect"] = {"type": "object", "description": "shorthand for the step's check's expect"}


class FlowStep(Model):
    """One step of a business flow: a check, its assertions and what it extracts."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_step_expect_schema)

    name: Name
    http: HttpSpec | None = None
    tcp: TcpSpec | None = None
    dns: DnsSpec | None = None
    tls: TlsSpec | None = None
    grpc: GrpcSpec | None = None
    websocket: WebsocketSpec | None = None
    timeout: Duration | None = None
    extract: dict[str, Extract] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _step_expect(cls, data: Any) -> Any:
        """A step's ``expect`` is shorthand for its check's ``expect``."""
        if isinstance(data, dict) and "expect" in data:
            data = dict(data)
            expect = data.pop("expect")
            kinds = [k for k in STEP_KINDS if isinstance(data.get(k), dict)]
            if len(kinds) == 1 and "expect" not in data[kinds[0]]:
                data[kinds[0]] = {**data[kinds[0]], "expect": expect}
            else:
                data["expect"] = expect  # reported as an unknown key
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> FlowStep:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(STEP_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        """Which kind of check this step is."""
        for kind in STEP_KINDS:
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated: a step has exactly one kind")

    @property
    def spec(self) -> StepSpec:
        """The step's check."""
        spec: StepSpec = getattr(self, self.kind)
        return spec


class FlowExpect(Model):
    """Limits on a whole flow run."""

    max_duration: Duration | None = Field(None, description="fail when the whole flow takes longer")
    degraded_duration: Duration | None = Field(None, description="a success slower than this counts as degraded")


class FlowSpec(Model):
    """Ordered steps sharing cookies and variables; ``finally`` steps always run."""

    steps: list[FlowStep] = Field(min_length=1)
    finally_: list[FlowStep] = Field(default_factory=list, alias="finally")
    expect: FlowExpect = FlowExpect()

    @property
    def target(self) -> str:
        return self.steps[0].spec.target


# ---------------------------------------------------------------------------- the table

KINDS: tuple[Kind, ...] = (
    Kind("http", HttpSpec, flow_step=True, blackbox_prober="http", target_field="url"),
    Kind("tcp", TcpSpec, flow_step=True, blackbox_prober="tcp", target_field="address"),
    Kind("tls", TlsSpec, flow_step=True, target_field="address"),
    Kind("dns", DnsSpec, flow_step=True, blackbox_prober="dns", target_field="server"),
    Kind("icmp", IcmpSpec, flow_step=False, blackbox_prober="icmp", target_field="host"),
    Kind("unix", UnixSpec, flow_step=False, blackbox_prober="unix", target_field="path"),
    Kind("grpc", GrpcSpec, flow_step=True, blackbox_prober="grpc", target_field="address"),
    Kind("websocket", WebsocketSpec, flow_step=True, blackbox_prober="websocket", target_field="url"),
    Kind("flow", FlowSpec, flow_step=False),
    Kind("heartbeat", HeartbeatSpec, flow_step=False, pushed=True),
)

KIND_BY_NAME: Mapping[str, Kind] = {kind.name: kind for kind in KINDS}
PROBE_KINDS: tuple[str, ...] = tuple(KIND_BY_NAME)
PROBED_KINDS: tuple[str, ...] = tuple(kind.name for kind in KINDS if not kind.pushed)
"""The kinds slaprobe runs itself (each has its function in ``PROBERS``); the others are pushed."""
# In FlowStep's field order (that of the docs, the JSON Schema and the error message).
STEP_KINDS: tuple[str, ...] = tuple(f for f in FlowStep.model_fields if f in KIND_BY_NAME and KIND_BY_NAME[f].flow_step)
BLACKBOX_PROBERS: Mapping[str, Kind] = {kind.blackbox_prober: kind for kind in KINDS if kind.blackbox_prober}
"""blackbox prober name -> the kind that serves it."""

ProbeKind: TypeAlias = str
"""A name in ``PROBE_KINDS``."""

# For the type checker only; tests/core/test_kinds.py holds them to the table.
ProbeSpec: TypeAlias = (
    HttpSpec | TcpSpec | TlsSpec | DnsSpec | IcmpSpec | UnixSpec | GrpcSpec | WebsocketSpec | FlowSpec | HeartbeatSpec
)
StepSpec: TypeAlias = HttpSpec | TcpSpec | DnsSpec | TlsSpec | GrpcSpec | WebsocketSpec
