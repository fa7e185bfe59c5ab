"""The config model (``version: v1``): a probe, a service and its SLA, logs, feedback, alerting.

Strict and frozen (unknown keys refused, instances immutable), every field described so
the JSON Schema shows it. Probe specs are in ``specs`` and ``kinds``, field types in
``fields``; import all of it from ``slaprobe.config``, which also loads files.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from slaprobe.conventions import SLO_RATE_WINDOWS
from slaprobe.fields import (
    SCALAR_SCHEMA,
    SCALARS_SCHEMA,
    Duration,
    HttpUrl,
    Model,
    Name,
    Regex,
    Shorthand,
    check_cron,
)
from slaprobe.kinds import PROBE_KINDS, FlowSpec, ProbeKind, ProbeSpec
from slaprobe.maintenance import Calendar, MaintenanceWindow
from slaprobe.schedule import TimeInterval, zone
from slaprobe.specs import (
    BasicAuth,
    DnsSpec,
    GrpcSpec,
    HeartbeatSpec,
    HttpSpec,
    IcmpSpec,
    TcpSpec,
    TlsSpec,
    UnixSpec,
    WebsocketSpec,
)
from slaprobe.units import parse_duration

# ---------------------------------------------------------------------------- probes


class Probe(Model):
    """One scheduled probe of a service; exactly one of the kind keys is set."""

    name: Name
    interval: Duration | None = Field(None, gt=0, description="default: global.interval")
    timeout: Duration | None = Field(None, gt=0, description="default: global.timeout")
    retries: int = Field(
        0, ge=0, le=5, description="re-run a failed run up to this many times; the first attempt is still counted"
    )
    schedule: Annotated[str, AfterValidator(check_cron)] | None = Field(
        None, description="cron expression (5 fields, in global.timezone) instead of a fixed interval"
    )
    during: list[str] = Field(default_factory=list, description="time_intervals names: run only inside them")
    http: HttpSpec | None = None
    tcp: TcpSpec | None = None
    tls: TlsSpec | None = None
    dns: DnsSpec | None = None
    icmp: IcmpSpec | None = None
    unix: UnixSpec | None = None
    grpc: GrpcSpec | None = None
    websocket: WebsocketSpec | None = None
    flow: FlowSpec | None = None
    heartbeat: HeartbeatSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Probe:
        kinds = [k for k in PROBE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a probe needs exactly one of {', '.join(PROBE_KINDS)}")
        return self

    @property
    def kind(self) -> ProbeKind:
        """Which kind of probe this is."""
        kind: ProbeKind
        for kind in PROBE_KINDS:
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated: exactly one kind")

    @property
    def spec(self) -> ProbeSpec:
        """The kind-specific spec."""
        spec: ProbeSpec = getattr(self, self.kind)
        return spec

    @property
    def degraded_duration(self) -> float | None:
        """Seconds above which a successful run counts as degraded, if set."""
        expect = getattr(self.spec, "expect", None)
        return getattr(expect, "degraded_duration", None)


# ---------------------------------------------------------------------------- services


class LatencySLA(Model):
    """Share of runs (percent) that must be faster than ``threshold``."""

    threshold: Duration = Field(gt=0)
    target: float = Field(gt=0, lt=100, description="percent of runs under the threshold")


class CreditTier(Model):
    """A service credit: ``percent`` of the month's fee owed when availability is below ``below``."""

    below: float = Field(gt=0, le=100, description="availability percent under which this credit is owed")
    percent: float = Field(gt=0, le=100, description="credit owed, percent of the month's fee")


class SLA(Model):
    """A service's objectives over a rolling window."""

    window: Duration = Field(30 * 86400.0, gt=0)
    availability: float = Field(99.9, gt=0, lt=100, description="percent of runs that succeed")
    latency: LatencySLA | None = None
    compliance: float | None = Field(
        None, gt=0, le=100, description="target dial-test compliance rate, percent; default: availability"
    )
    satisfaction: float | None = Field(
        None, gt=0, lt=100, description="percent of ratings satisfied (CSAT) from the feedback desk; an SLO when set"
    )
    credits: list[CreditTier] = Field(
        default_factory=list,
        description="service credits of the monthly statement, e.g. [{below: 99.9, percent: 10}, "
        "{below: 99.0, percent: 25}]: the highest credit whose 'below' the month's availability is under",
    )

    @model_validator(mode="after")
    def _distinct_credit_bounds(self) -> SLA:
        bounds = [tier.below for tier in self.credits]
        if len(set(bounds)) != len(bounds):
            raise ValueError("credits: each 'below' may appear once")
        return self

    def credit_for(self, availability: float | None) -> float:
        """The credit owed (percent of the fee) for a month's availability (a ratio); 0 without runs."""
        if availability is None:
            return 0.0
        owed = [tier.percent for tier in self.credits if availability * 100 < tier.below - 1e-9]
        return max(owed, default=0.0)

    @property
    def compliance_percent(self) -> float:
        """The dial-test compliance target in percent (99.5, not 0.995): ``compliance``, else ``availability``.

        The one place this default is decided; the status page, dashboards, report and
        rules all read it here (dashboards turn it into a ratio).
        """
        return self.compliance if self.compliance is not None else self.availability


LogFormat = Literal["nginx_combined", "apache_combined", "envoy", "ingress_nginx", "jsonl", "logfmt", "regex"]
ACCESS_LOG_FORMATS: tuple[LogFormat, ...] = ("nginx_combined", "apache_combined", "envoy", "ingress_nginx")
#: How a container runtime wrapped each line of a log (probes/wrappers.py unwraps it).
LogWrapper = Literal["auto", "cri", "docker", "none"]
MetricType = Literal["counter", "gauge", "histogram"]
ValueUnit = Literal["s", "ms", "us", "µs", "ns"]
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)]


def _scalar_text(value: Any) -> Any:
    """YAML scalars as the text a log field holds: ``500`` -> ``"500"``, ``true`` -> ``"true"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _text_list(value: Any) -> Any:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [_scalar_text(v) for v in items]


class MatchCondition(Model):
    """A condition on one event field; every condition given must hold (a missing field matches none)."""

    equals: Annotated[list[str] | None, BeforeValidator(_text_list), Shorthand((SCALAR_SCHEMA, SCALARS_SCHEMA))] = (
        Field(None, description="the field is one of these values (as text)")
    )
    not_equals: Annotated[list[str] | None, BeforeValidator(_text_list), Shorthand((SCALAR_SCHEMA, SCALARS_SCHEMA))] = (
        Field(None, description="the field is none of these values")
    )
    regex: Regex | None = Field(None, description="the field contains a match of this regex (re.search)")
    gt: float | None = Field(None, description="the field, as a number, is greater than this")
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``status: 500`` or ``status: [500, 502]`` is short for ``status: {equals: ...}``."""
        if isinstance(data, dict):
            return data
        return {"equals": data}

    @model_validator(mode="after")
    def _something(self) -> MatchCondition:
        if all(getattr(self, k) is None for k in ("equals", "not_equals", "regex", "gt", "ge", "lt", "le")):
            raise ValueError("give at least one of equals, not_equals, regex, gt, ge, lt, le")
        return self


class MetricValue(Model):
    """The event field a gauge or histogram observes (or a counter adds), and its time unit."""

    field: str
    unit: ValueUnit | None = Field(None, description="a duration in this unit, exported in seconds")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``value: bytes_sent`` is short for ``value: {field: bytes_sent}``."""
        return {"field": data} if isinstance(data, str) else data


def _label_map(value: Any) -> Any:
    """``labels: [method]`` is short for ``labels: {method: method}`` (label name: field)."""
    if isinstance(value, list):
        return {v: v for v in value} if all(isinstance(v, str) for v in value) else value
    return value


class LogMetric(Model):
    """A user-defined metric counted from the events of a log source that pass ``match``."""

    name: str = Field(pattern=METRIC_NAME_PATTERN, max_length=200)
    type: MetricType
    help: str = ""
    match: dict[str, Annotated[MatchCondition, Shorthand((SCALAR_SCHEMA, SCALARS_SCHEMA))]] = Field(
        default_factory=dict, description="field -> condition, all must hold"
    )
    labels: Annotated[
        dict[LabelName, str], BeforeValidator(_label_map), Shorthand(({"type": "array", "items": {"type": "string"}},))
    ] = Field(default_factory=dict, description="label name -> event field (a list: the same names)")
    value: Annotated[MetricValue, Shorthand(({"type": "string"},))] | None = Field(
        None, description="required for gauges and histograms; counters add it"
    )
    buckets: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, description="histogram bounds; default: the service's buckets (seconds, SLA threshold included)"
    )
    max_label_values: int = Field(
        100, ge=1, le=100_000, description="distinct values kept per label; more become __other__"
    )
    values: dict[str, list[Annotated[str, BeforeValidator(_scalar_text), Shorthand((SCALAR_SCHEMA,))]]] = Field(
        default_factory=dict, description="known values per label, exported as 0 before the first match"
    )

    @model_validator(mode="after")
    def _checks(self) -> LogMetric:
        if self.name.startswith("slaprobe_"):
            raise ValueError("names starting with slaprobe_ are reserved for slaprobe's own metrics")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError("a counter's name ends in _total, and only a counter's")
        if self.type == "histogram" and self.name.endswith(("_bucket", "_sum", "_count")):
            raise ValueError("a histogram's name must not end in _bucket, _sum or _count")
        if self.type != "counter" and self.value is None:
            raise ValueError(f"a {self.type} needs value: the field it observes")
        if self.buckets is not None:
            if self.type != "histogram":
                raise ValueError("buckets are for histograms only")
            if self.buckets != sorted(set(self.buckets)):
                raise ValueError("buckets must be strictly increasing")
        reserved = {"service", "le"} if self.type == "histogram" else {"service"}
        for label in self.labels:
            if label in reserved or label.startswith("__"):
                raise ValueError(f"label {label!r} is reserved")
        for label, known in self.values.items():
            if label not in self.labels:
                raise ValueError(f"values: {label!r} is not one of the labels")
            if len(set(known)) > self.max_label_values:
                raise ValueError(f"values: {label!r} has more values than max_label_values")
        return self


class LogSource(Model):
    """A log file (or glob) scraped into per-service request metrics."""

    path: str
    format: LogFormat
    name: Name | None = None
    regex: Regex | None = Field(None, description="for format: regex, with named groups")
    start: Literal["end", "beginning"] = "end"
    wrapper: LogWrapper = Field(
        "auto",
        description="the container runtime's wrapper of each line: cri (containerd, CRI-O: /var/log/pods), "
        "docker (json-file), none, or auto (told apart by each line's shape)",
    )
    match: dict[str, Annotated[MatchCondition, Shorthand((SCALAR_SCHEMA, SCALARS_SCHEMA))]] = Field(
        default_factory=dict,
        description="only the events passing every condition count for this service, e.g. "
        "proxy_upstream_name of an ingress log that several services share",
    )

    @model_validator(mode="after")
    def _regex_for_regex(self) -> LogSource:
        if (self.format == "regex") != (self.regex is not None):
            raise ValueError("regex is required for format: regex, and only for it")
        return self

    metrics: list[LogMetric] = Field(default_factory=list, description="user-defined metrics from this log's events")

    @model_validator(mode="after")
    def _unique_metric_names(self) -> LogSource:
        names = [m.name for m in self.metrics]
        for name in sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"metrics: duplicate name {name!r}")
        return self

    @property
    def label(self) -> str:
        """The ``source`` label of this log's series: its name, else its path."""
        return self.name or self.path


Tier = Literal["critical", "high", "medium", "low"]


def _quorum(value: object) -> int | str:
    if isinstance(value, bool):
        raise ValueError("a number of locations (1 or more) or a share such as 50%")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"at least 1 location, got {value}")
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
        share = float(value.strip().removesuffix("%"))
        if not 0 < share <= 100:
            raise ValueError(f"a share above 0% and at most 100%, got {value}")
        return value.strip()
    raise ValueError(f"a number of locations (1 or more) or a share such as 50%, got {value!r}")


_QUORUM_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%$"}]}
Quorum = Annotated[int | str, PlainValidator(_quorum), WithJsonSchema(_QUORUM_SCHEMA)]


class Service(Model):
    """A service under SLA: its tier, owner, objectives, probes and logs."""

    tier: Tier = "medium"
    owner: str = ""
    runbook: str = ""
    description: str = ""
    sla: SLA = SLA()
    probes: list[Probe] = Field(default_factory=list)
    logs: list[LogSource] = Field(default_factory=list)
    quorum: Quorum = Field(
        1,
        description="locations whose probe must fail at once to page: a count (1: any one) or a share of the "
        "locations reporting it, such as 50%",
    )
    maintenance: list[MaintenanceWindow] = Field(
        default_factory=list, description="planned work: runs inside are counted apart and alerts muted"
    )
    timezone: str | None = Field(
        None, description="IANA zone of the service's calendar month (monthly statements); default global.timezone"
    )
    phase_histograms: bool | None = Field(None, description="default: global.phase_histograms")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @property
    def quorum_share(self) -> float | None:
        """The quorum as a share of the reporting locations (``50%`` -> 0.5), or None for a count."""
        return float(self.quorum.removesuffix("%")) / 100 if isinstance(self.quorum, str) else None

    @property
    def location_aware(self) -> bool:
        """Whether the service is measured from several locations with a quorum (a share, or a count > 1)."""
        return isinstance(self.quorum, str) or self.quorum > 1


# ---------------------------------------------------------------------------- feedback, alerting


class Deadlines(Model):
    """Time allowed to first response and to resolution."""

    first_response: Duration | None = None
    resolution: Duration | None = None


def _default_category_deadlines() -> dict[str, Deadlines]:
    # model_validate: Duration fields take Prometheus duration text, not numbers.
    return {
        "technical": Deadlines.model_validate({"first_response": "24h", "resolution": "48h"}),
        "operations": Deadlines.model_validate({"first_response": "12h", "resolution": "24h"}),
        "service": Deadlines.model_validate({"first_response": "12h", "resolution": "24h"}),
    }


def _default_urgency_deadlines() -> dict[str, Deadlines]:
    return {
        "urgent": Deadlines.model_validate({"first_response": "24h"}),
        "general": Deadlines.model_validate({"first_response": "72h"}),
    }


class TicketFields(Model):
    """Names of the event fields a ticket event is read from."""

    id: str = "id"
    event: str = "event"
    time: str = Field("time", description="unix seconds (ms if > 1e11) or ISO 8601; missing: when read")
    category: str = "category"
    urgency: str = "urgency"
    service: str = "service"
    channel: str = "channel"
    customer: str = Field("customer", description="customer id: hashed for repeat detection, never exported")
    rating: str = Field("rating", description="of a rated event: a number on its scale, or up/down")
    score: str = Field("score", description="of a survey event: its score (missing: the rating field)")
    scale: str = Field("scale", description="of a rated event: 2, 5 or 10 (missing: the source's scale)")


class TicketEvents(Model):
    """Values of the event field that mean each step of a ticket's life."""

    opened: list[str] = Field(default_factory=lambda: ["opened"])
    first_response: list[str] = Field(default_factory=lambda: ["first_response"])
    resolved: list[str] = Field(default_factory=lambda: ["resolved"])
    reopened: list[str] = Field(default_factory=lambda: ["reopened"])
    rated: list[str] = Field(default_factory=lambda: ["rated"])
    closed: list[str] = Field(default_factory=lambda: ["closed"])
    survey: list[str] = Field(
        default_factory=lambda: ["survey"],
        description="a survey result: a score (rating field) for a service and channel, no ticket needed",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults_not_taken(cls, data: Any) -> Any:
        """A step left out has its own name as its word, unless another step was given that word
        (``resolved: [closed]`` was written before closed was a step of its own)."""
        if not isinstance(data, dict):
            return data
        taken = {w for words in data.values() if isinstance(words, list) for w in words}
        later = ("reopened", "rated", "closed", "survey")  # steps added after the others
        return {**{s: [] for s in later if s not in data and s in taken}, **data}

    @model_validator(mode="after")
    def _disjoint(self) -> TicketEvents:
        words = [*self.opened, *self.first_response, *self.resolved, *self.reopened, *self.rated, *self.closed]
        words += self.survey
        for word in sorted({w for w in words if words.count(w) > 1}):
            raise ValueError(f"{word!r} names more than one step")
        return self


class TicketDefaults(Model):
    """Label values of tickets whose events leave a field out."""

    category: str = "other"
    urgency: str = "general"
    channel: str = "unknown"


def _match_spec(value: Any) -> str | list[str]:
    if isinstance(value, str):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value
    if isinstance(value, list) and all(isinstance(w, str | int | float) and not isinstance(w, bool) for w in value):
        return [str(w) for w in value]
    raise ValueError("must be a regex or a list of keywords")


MatchSpec = Annotated[
    str | list[str],
    PlainValidator(_match_spec),
    WithJsonSchema({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class ClassifySet(Model):
    """What a classification rule sets; a ticket keeps what its own event gives."""

    category: str | None = None
    urgency: str | None = None
    service: str | None = None

    @model_validator(mode="after")
    def _something(self) -> ClassifySet:
        if self.category is None and self.urgency is None and self.service is None:
            raise ValueError("set at least one of category, urgency, service")
        return self


class ClassifyRule(Model):
    """A classification rule: when every field of ``match`` matches, ``set`` applies (first match wins)."""

    match: dict[str, MatchSpec] = Field(
        default_factory=dict,
        description="event field -> a regex (re.search) or a list of keywords (any, case ignored); "
        "empty: every ticket (a default, last)",
    )
    set_: ClassifySet = Field(alias="set")


def _default_satisfied() -> dict[int, float]:
    return {2: 1.0, 5: 4.0, 10: 9.0}


class FeedbackSource(Model):
    """A complaint/ticket event log and its response deadlines."""

    name: Name
    path: str
    format: Literal["jsonl", "logfmt", "regex"] = "jsonl"
    regex: Regex | None = None
    service: str | None = Field(None, description="service of tickets that name none")
    sla: dict[str, Deadlines] = Field(default_factory=_default_category_deadlines)
    urgency: dict[str, Deadlines] = Field(default_factory=_default_urgency_deadlines)
    quality_categories: list[str] = Field(default_factory=list)
    fields: TicketFields = TicketFields()
    events: TicketEvents = TicketEvents()
    defaults: TicketDefaults = TicketDefaults()
    start: Literal["end", "beginning"] = Field("beginning", description="where a log never read before is started")
    max_label_values: int = Field(
        100, ge=1, le=100_000, description="distinct values kept per label; more become __other__"
    )
    max_open_tickets: int = Field(100_000, ge=1, description="open tickets kept, at most; the oldest go first")
    classify: list[ClassifyRule] = Field(
        default_factory=list, description="ordered rules that set category, urgency, service; first match wins"
    )
    satisfied: dict[Annotated[int, Field(ge=1, le=10)], Annotated[float, Field(ge=0)]] = Field(
        default_factory=_default_satisfied,
        description="per rating scale (its top value), the lowest rating counted as satisfied (CSAT)",
    )
    scale: int = Field(5, description="scale of ratings that name none; a key of satisfied")
    repeat_window: Duration = Field(7 * 86400.0, gt=0, description="a ticket of the same customer within: a repeat")
    reopen_window: Duration = Field(
        7 * 86400.0, gt=0, description="a resolved ticket not reopened within it is auto-closed (resolved)"
    )
    max_customers: int = Field(
        100_000, ge=1, le=10_000_000, description="customer hashes kept for repeats, at most (about 150 bytes each)"
    )
    customer_salt: str = Field(
        "", description="mixed into the customer hash (e.g. ${env:X}); empty: plain SHA-256 of the id"
    )

    @model_validator(mode="after")
    def _regex_for_regex(self) -> FeedbackSource:
        if (self.format == "regex") != (self.regex is not None):
            raise ValueError("regex is required for format: regex, and only for it")
        for scale, minimum in self.satisfied.items():
            if minimum > scale:
                raise ValueError(f"satisfied: {minimum:g} is above the top of scale {scale}")
        if self.scale not in self.satisfied:
            raise ValueError(f"scale: {self.scale} is not a scale of satisfied ({', '.join(map(str, self.satisfied))})")
        return self


class PriorityMap(Model):
    """Priority of an alert by urgency: ``page`` (wake someone) or ``ticket``."""

    page: str
    ticket: str


def _default_priorities() -> dict[Tier, PriorityMap]:
    return {
        "critical": PriorityMap(page="P1", ticket="P3"),
        "high": PriorityMap(page="P2", ticket="P3"),
        "medium": PriorityMap(page="P3", ticket="P4"),
        "low": PriorityMap(page="P4", ticket="P4"),
    }


class EscalationLevel(Model):
    """Who is notified once an alert has fired for ``after``."""

    after: Duration = Field(ge=0)
    notify: str = Field(description="a receiver name")
    during: str | None = Field(None, description="a time_intervals name")


class WebhookAuth(Model):
    """Credentials Alertmanager must send to /alertmanager/webhook: a bearer token or basic auth."""

    KEY: ClassVar[str] = "alertmanager.webhook_auth"  # where it stands in the config, for messages

    bearer_token: str | None = Field(None, description="use ${env:...} or ${file:...}")
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> Self:
        if (self.bearer_token is None) == (self.basic_auth is None):
            raise ValueError("give exactly one of bearer_token and basic_auth")
        # An empty credential (``${env:X}`` with X="") would let anyone post. Where secrets are
        # not required (generators), an unreadable secret reads as "" and is not refused here.
        if info.context is None or info.context.get("require_secrets", True):
            if self.bearer_token is not None and not self.bearer_token:
                raise ValueError(f"{self.KEY}.bearer_token must not be empty")
            if self.basic_auth is not None and not self.basic_auth.password:
                raise ValueError(f"{self.KEY}.basic_auth.password must not be empty")
        return self


class MaintenanceAuth(WebhookAuth):
    """Credentials ``POST``/``DELETE /-/maintenance`` require: a bearer token or basic auth."""

    KEY: ClassVar[str] = "global.maintenance_auth"


class AlertmanagerRef(Model):
    """The Alertmanager whose silences count as acknowledgements."""

    url: HttpUrl
    poll_interval: Duration = Field(30.0, gt=0)
    webhook_url: HttpUrl | None = Field(
        None,
        description="slaprobe's /alertmanager/webhook as Alertmanager reaches it; "
        "when set, the generated routing copies every alert there (incident metrics)",
    )
    webhook_auth: WebhookAuth | None = Field(
        None,
        description="credentials the webhook requires (written into the generated receiver's http_config); "
        "without them the webhook answers 403",
    )


def _rate_window(value: float) -> float:
    allowed = {parse_duration(w): w for w in SLO_RATE_WINDOWS}
    if value not in allowed:
        raise ValueError(f"must be one of the recorded windows: {', '.join(SLO_RATE_WINDOWS)}")
    return value


RateWindow = Annotated[Duration, AfterValidator(_rate_window)]


class BudgetProjection(Model):
    """Alert when the error budget left would run out before the SLA window at the recent burn rate."""

    lookback: RateWindow = Field(86400.0, description="burn rate measured over this recorded window")
    for_: Duration = Field(1800.0, alias="for", ge=0, description="how long the projection must hold")


class ComplaintSpike(Model):
    """Tickets of the last hour against the same hour of the previous days and their hourly average."""

    factor: float = Field(3.0, gt=1, description="fire above this many times both baselines")
    min_count: int = Field(10, ge=1, description="and at least this many tickets in the hour (no page for 2 vs 1)")
    days: int = Field(7, ge=1, le=28, description="previous days the baselines average")
    for_: Duration = Field(600.0, alias="for", ge=0, description="how long the rise must hold")


class FeedbackTrend(Model):
    """The quality-complaint share and the repeat rate over ``window`` against their value ``compare`` before."""

    window: Duration = Field(7 * 86400.0, gt=0, description="each value is over this window")
    compare: Duration = Field(7 * 86400.0, gt=0, description="against the value this long before (week over week)")
    factor: float = Field(1.5, gt=1, description="fire above this many times the earlier value")
    min_rise: float = Field(2.0, ge=0, le=100, description="and at least this many percentage points above it")
    min_tickets: int = Field(20, ge=1, description="and at least this many tickets in the window")
    for_: Duration = Field(3600.0, alias="for", ge=0, description="how long the rise must hold")


class FeedbackAlerting(Model):
    """Limits on complaint tickets: deadlines met and the product-quality share."""

    window: Duration = Field(7 * 86400.0, gt=0, description="tickets counted over this window")
    deadline_target: float = Field(95.0, gt=0, le=100, description="percent of tickets answered/resolved in time")
    quality_share_max: float = Field(
        20.0, gt=0, le=100, description="percent of tickets in quality_categories above which to alert"
    )
    spike: ComplaintSpike | None = Field(
        None, description="warn when complaints per service and category rise beyond their own baseline"
    )
    trend: FeedbackTrend | None = Field(
        None, description="warn when the quality-complaint share or the repeat rate rises week over week"
    )


class Alerting(Model):
    """How the generated alerts and Alertmanager routing behave."""

    probe_down_runs: int = Field(3, ge=1, le=100, description="consecutive failed runs before a probe is down")
    no_data_for: Duration = Field(600.0, gt=0, description="how long without fresh results before alerting")
    tls_expiry_days: float = Field(21.0, gt=0, description="ticket when a certificate expires within this many days")
    tls_expiry_page_days: float = Field(3.0, ge=0, description="page within this many days (0: never page)")
    compliance_window: RateWindow = Field(86400.0, description="compliance rate measured over this recorded window")
    budget_projection: BudgetProjection = BudgetProjection()
    feedback: FeedbackAlerting = FeedbackAlerting()
    escalation_bridge: Duration = Field(
        300.0, gt=0, description="an alert that stops firing for less than this keeps its escalation clock"
    )
    runbook_url: str = Field(
        "",
        description="runbook of services without `runbook`; {service} and {alertname} are replaced "
        "(default: the README section on alerts)",
    )
    group_wait: Duration = Field(30.0, ge=0, description="Alertmanager group_wait")
    group_interval: Duration = Field(300.0, gt=0, description="Alertmanager group_interval")
    repeat_interval: Duration = Field(4 * 3600.0, gt=0, description="Alertmanager repeat_interval")
    default_receiver: str | None = Field(
        None, description="receiver of alerts no escalation level routes (default: a receiver that drops them)"
    )

    @model_validator(mode="after")
    def _page_before_ticket(self) -> Alerting:
        if self.tls_expiry_page_days >= self.tls_expiry_days:
            raise ValueError("tls_expiry_page_days must be below tls_expiry_days")
        return self


class Global(Model):
    """Defaults for every probe and process-wide limits."""

    location: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    timezone: str = Field("UTC", description="IANA zone of cron schedules and of 'today' on the status page")
    interval: Duration = Field(30.0, gt=0)
    timeout: Duration = Field(10.0, gt=0, description="default: 10s, or the interval when that is shorter")
    concurrency: int = Field(256, ge=1, le=100_000, description="probes in flight, at most")
    probe_allow: list[str] = Field(
        default_factory=list, description="extra /probe targets: CIDRs, hostname globs, each with :port or :from-to"
    )
    probe_concurrency: int = Field(64, ge=1, le=10_000, description="/probe requests in flight, at most; more get 503")
    probe_flows: bool = Field(False, description="configured flows may run through /probe (they log in for real)")
    buckets: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    )
    maintenance: list[MaintenanceWindow] = Field(default_factory=list, description="windows of every service")
    maintenance_auth: MaintenanceAuth | None = Field(
        None,
        description="credentials that POST and DELETE /-/maintenance require (ad hoc windows mute alerts); "
        "without them those answer 403",
    )
    phase_histograms: bool = Field(
        False,
        description="export histograms of phase and flow-step durations (about 70 more lines per HTTP probe "
        "on /metrics); the last run's phase durations are always exported",
    )

    @model_validator(mode="after")
    def _checks(self) -> Global:
        # Left out, the timeout is min(10s, interval) (as Prometheus defaults scrape_timeout); given, it must fit.
        if "timeout" in self.model_fields_set and self.timeout > self.interval:
            raise ValueError("timeout must not exceed interval")
        zone(self.timezone)
        for entry in self.probe_allow:
            _check_allow_entry(entry)
        return self


def _check_allow_entry(entry: str) -> None:
    if "/" in entry:
        try:  # without its port: 10.0.0.0/8:443, [2001:db8::/32]:53
            ipaddress.ip_network(re.sub(r":[0-9]+(-[0-9]+)?$", "", entry).strip("[]"), strict=False)
        except ValueError:
            raise ValueError(f"probe_allow: not a CIDR: {entry!r}") from None
    elif not re.fullmatch(r"[A-Za-z0-9*?.:\[\]_-]+", entry):
        raise ValueError(f"probe_allow: not a CIDR or hostname glob: {entry!r}")


class Config(Model):
    """A whole slaprobe config file."""

    version: Literal["v1"]
    global_: Global = Field(Global(), alias="global")
    services: dict[Name, Service] = Field(default_factory=dict)
    feedback: list[FeedbackSource] = Field(default_factory=list)
    priorities: dict[Tier, PriorityMap] = Field(default_factory=_default_priorities)
    escalation: dict[str, list[EscalationLevel]] = Field(default_factory=dict)
    time_intervals: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    receivers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    alertmanager: AlertmanagerRef | None = None
    alerting: Alerting = Alerting()

    _secrets: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def secrets(self) -> frozenset[str]:
        """Values that came from ``${env:}``/``${file:}``: never to be shown."""
        return self._secrets

    def probes(self) -> Iterator[tuple[str, Service, Probe]]:
        """Every (service name, service, probe), in file order."""
        for service_name, service in self.services.items():
            for probe in service.probes:
                yield service_name, service, probe

    def interval_of(self, probe: Probe) -> float:
        """The probe's interval in seconds (a heartbeat's: its ``every``)."""
        if probe.heartbeat is not None:
            return probe.heartbeat.every
        return probe.interval or self.global_.interval

    def timeout_of(self, probe: Probe) -> float:
        """The probe's timeout in seconds, never above its interval."""
        return min(probe.timeout or self.global_.timeout, self.interval_of(probe))

    def time_intervals_of(self, names: Iterable[str]) -> tuple[TimeInterval, ...]:
        """The parsed ``time_intervals`` entries of these names (validated at load)."""
        return tuple(TimeInterval.parse(entry) for name in names for entry in self.time_intervals.get(name, []))

    def maintenance_of(self, service: Service) -> Calendar:
        """When ``service`` is in maintenance: its windows and the global ones."""
        return Calendar.of((*self.global_.maintenance, *service.maintenance), self.time_intervals)

    def timezone_of(self, service: Service) -> str:
        """The IANA zone of the service's calendar (its own ``timezone``, else the global one)."""
        return service.timezone or self.global_.timezone

    def phase_histograms_of(self, service: Service) -> bool:
        """Whether the service's probes export phase and flow-step duration histograms."""
        return self.global_.phase_histograms if service.phase_histograms is None else service.phase_histograms

    def buckets_of(self, service: Service) -> tuple[float, ...]:
        """Histogram bounds for a service: global buckets plus its SLA thresholds."""
        bounds = set(self.global_.buckets)
        if service.sla.latency:
            bounds.add(service.sla.latency.threshold)
        return tuple(sorted(bounds))

    def summary(self) -> str:
        """One line saying what this config holds."""
        probes = sum(len(s.probes) for s in self.services.values())
        logs = sum(len(s.logs) for s in self.services.values())
        return (
            f"{len(self.services)} services, {probes} probes, {logs} log sources, "
            f"{len(self.feedback)} feedback sources, location {self.global_.location}"
        )
