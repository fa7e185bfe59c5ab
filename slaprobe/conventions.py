"""Every exported metric name and label key, defined once.

The exporter that emits a series and the rule or panel that queries it take the name
from here. Names are in base units (seconds, bytes); ``_total`` only on counters.
"""

from __future__ import annotations

NAMESPACE = "slaprobe"

# ---------------------------------------------------------------- label keys
LABEL_SERVICE = "service"
LABEL_PROBE = "probe"
LABEL_LOCATION = "location"
LABEL_KIND = "kind"
LABEL_REASON = "reason"
LABEL_PHASE = "phase"
LABEL_STEP = "step"
LABEL_TIER = "tier"
LABEL_OWNER = "owner"
LABEL_TARGET = "target"

PROBE_LABELS = (LABEL_SERVICE, LABEL_PROBE, LABEL_LOCATION)

# ---------------------------------------------------------------- scheduled probes
PROBE_RUNS = "slaprobe_probe_runs_total"
PROBE_FAILURES = "slaprobe_probe_failures_total"
PROBE_WITHIN_SLA = "slaprobe_probe_within_sla_total"
PROBE_FIRST_ATTEMPT_FAILURES = "slaprobe_probe_first_attempt_failures_total"
PROBE_DEGRADED = "slaprobe_probe_degraded_total"
PROBE_PLANNED_RUNS = "slaprobe_probe_planned_runs_total"
PROBE_MAINTENANCE_RUNS = "slaprobe_probe_maintenance_runs_total"  # in no other counter: the SLIs exclude them
MAINTENANCE_ACTIVE = "slaprobe_maintenance_active"  # {service} = 1 while a maintenance window is open
PROBE_DURATION = "slaprobe_probe_duration_seconds"
PROBE_SUCCESS = "slaprobe_probe_success"
PROBE_LAST_RUN = "slaprobe_probe_last_run_timestamp_seconds"
PROBE_PHASE = "slaprobe_probe_phase_seconds"
PROBE_INFO = "slaprobe_probe_info"
TLS_CERT_EXPIRY = "slaprobe_tls_cert_expiry_timestamp_seconds"
TLS_CHAIN_EARLIEST_EXPIRY = "slaprobe_tls_chain_earliest_expiry_timestamp_seconds"
FLOW_STEP_DURATION = "slaprobe_flow_step_duration_seconds"
FLOW_STEP_FAILURES = "slaprobe_flow_step_failures_total"
# Histograms of every run (SLA thresholds are bucket bounds), beside the last-run gauges above.
PROBE_PHASE_DURATION = "slaprobe_probe_phase_duration_seconds"  # {phase}
FLOW_STEP_RUN_DURATION = "slaprobe_flow_step_run_duration_seconds"  # {step}
# ICMP figures of the last scheduled run (on /probe: probe_icmp_packet_loss_ratio, probe_icmp_rtt_seconds).
ICMP_LOSS_RATIO = "slaprobe_icmp_packet_loss_ratio"
ICMP_JITTER = "slaprobe_icmp_jitter_seconds"
SERVICE_INFO = "slaprobe_service_info"

# The metric families above without the suffix prometheus_client adds itself.
PROBE_RUNS_FAMILY = PROBE_RUNS.removesuffix("_total")
PROBE_FAILURES_FAMILY = PROBE_FAILURES.removesuffix("_total")
PROBE_WITHIN_SLA_FAMILY = PROBE_WITHIN_SLA.removesuffix("_total")
FLOW_STEP_FAILURES_FAMILY = FLOW_STEP_FAILURES.removesuffix("_total")

# ---------------------------------------------------------------- self metrics
CONFIG_RELOAD_SUCCESS = "slaprobe_config_last_reload_successful"
CONFIG_RELOAD_TIMESTAMP = "slaprobe_config_last_reload_success_timestamp_seconds"
SCHEDULER_LAG = "slaprobe_scheduler_lag_seconds"
SCHEDULER_MISSED = "slaprobe_scheduler_missed_runs_total"
PROBES_IN_FLIGHT = "slaprobe_probes_in_flight"
CONNECTIONS_OPEN = "slaprobe_http_connections_open"  # gauge: client connections to serve's listener
CONNECTIONS_REFUSED = "slaprobe_http_connections_refused_total"  # counter {reason}: total | peer cap
LABEL_REASON = "reason"
BUILD_INFO = "slaprobe_build_info"
# One series per running replica, = 1: which shard of how many it is, in which location. The
# rules tell a shard that stopped reporting ("prober shard down") from a re-shard with it.
SHARD_INFO = "slaprobe_shard_info"  # {location, shard, shards}
LABEL_SHARD = "shard"  # the replica's index I of --shard I/N
LABEL_SHARDS = "shards"  # N
LABEL_CAUSE = "cause"  # of a missed run: overrun or late
# Standard series the exporter-health board reads: Prometheus' scrape health and
# prometheus_client's process collector (on /metrics of every instance).
UP = "up"
PROCESS_RESIDENT_MEMORY = "process_resident_memory_bytes"
PROCESS_CPU_SECONDS = "process_cpu_seconds_total"

# ---------------------------------------------------------------- log-derived
LOG_LINES = "slaprobe_log_lines_total"
HTTP_REQUESTS = "slaprobe_http_requests_total"
HTTP_REQUEST_DURATION = "slaprobe_http_request_duration_seconds"
LOG_BYTES_READ = "slaprobe_log_bytes_read_total"
LOG_LAG = "slaprobe_log_lag_bytes"
LOG_ROTATIONS = "slaprobe_log_rotations_total"
STATE_SAVE_FAILURES = "slaprobe_state_save_failures_total"  # {source}: ticket state or offsets not written
STATE_INCIDENTS = "slaprobe:incidents"  # the source label of the open-incidents state file (no log source has a colon)
STATE_HEARTBEATS = "slaprobe:heartbeats"  # ... of the heartbeat deadlines
LOG_SOURCE_STUCK = "slaprobe_log_source_stuck"  # {source}: 1 while a read or save has not returned for long
LOG_SOURCE_LAST_POLL = "slaprobe_log_source_last_poll_timestamp_seconds"  # {source}: when its last poll ended

LABEL_SOURCE = "source"  # a log or feedback source: its name (log sources without one: their path)
LABEL_RESULT = "result"  # of a log line: parsed, unparsed, too_long; of a ticket event: see FEEDBACK_EVENTS
LABEL_CODE = "code"  # HTTP status code as logged; "0" = no response (envoy)
LINE_PARSED = "parsed"
LINE_UNPARSED = "unparsed"
LINE_TOO_LONG = "too_long"
OVERFLOW_LABEL_VALUE = "__other__"  # stands for every label value past a cardinality cap

# ---------------------------------------------------------------- feedback tickets
LABEL_CATEGORY = "category"
LABEL_URGENCY = "urgency"
LABEL_CHANNEL = "channel"
LABEL_STAGE = "stage"
STAGE_FIRST_RESPONSE = "first_response"
STAGE_RESOLUTION = "resolution"

FEEDBACK_TICKETS = "slaprobe_feedback_tickets_total"
FEEDBACK_TICKETS_BY_CHANNEL = "slaprobe_feedback_tickets_by_channel_total"
FEEDBACK_QUALITY_TICKETS = "slaprobe_feedback_quality_tickets_total"
FEEDBACK_FIRST_RESPONSE = "slaprobe_feedback_first_response_seconds"
FEEDBACK_RESOLUTION = "slaprobe_feedback_resolution_seconds"
FEEDBACK_SLA_BREACHES = "slaprobe_feedback_sla_breaches_total"
FEEDBACK_OPEN_TICKETS = "slaprobe_feedback_open_tickets"
FEEDBACK_OLDEST_OPEN_AGE = "slaprobe_feedback_oldest_open_ticket_age_seconds"
FEEDBACK_EVENTS = "slaprobe_feedback_events_total"
# result label values of FEEDBACK_EVENTS
EVENT_APPLIED = "applied"  # changed a ticket
EVENT_DUPLICATE = "duplicate"  # a step the ticket already took (opened twice, second first response...)
EVENT_OUT_OF_ORDER = "out_of_order"  # before its ticket's opened event (held, then applied) or dated before it
EVENT_UNKNOWN_TICKET = "unknown_ticket"  # for a ticket never opened (dropped after a while)
EVENT_INVALID = "invalid"  # no id, or an event value that names no step

# satisfaction, repeats and the closed loop, by service, category and channel
FEEDBACK_RATED = "slaprobe_feedback_rated_total"
FEEDBACK_SATISFIED = "slaprobe_feedback_satisfied_total"
FEEDBACK_RATING = "slaprobe_feedback_rating"  # histogram, + scale
FEEDBACK_REPEATS = "slaprobe_feedback_repeats_total"
FEEDBACK_REOPENED = "slaprobe_feedback_reopened_total"
FEEDBACK_CLOSED = "slaprobe_feedback_closed_total"  # + outcome
FEEDBACK_CLOSED_LOOP = "slaprobe_feedback_closed_loop_total"
FEEDBACK_CLOSE_TIME = "slaprobe_feedback_close_seconds"  # histogram {source, category, urgency}
FEEDBACK_LOOP_STAGE = "slaprobe_feedback_loop_stage_total"  # + stage: the closed-loop funnel
LABEL_SCALE = "scale"  # of a rating: 2 (thumbs), 5 (stars), 10 (0-10 score)
LABEL_OUTCOME = "outcome"  # of a closing
CLOSED_CONFIRMED = "confirmed"  # a closed event after a resolution: the customer confirmed
CLOSED_AUTO = "auto_closed"  # resolved and not reopened within reopen_window
CLOSED_UNRESOLVED = "unresolved"  # a closed event before any resolution
CLOSED_OUTCOMES = (CLOSED_CONFIRMED, CLOSED_AUTO, CLOSED_UNRESOLVED)
# stage label values of FEEDBACK_LOOP_STAGE, in the order a ticket goes through them
LOOP_RECEIVED = "received"
LOOP_CLASSIFIED = "classified"
LOOP_ANSWERED = "answered"
LOOP_RESOLVED = "resolved"
LOOP_CLOSED = "closed"
LOOP_STAGES = (LOOP_RECEIVED, LOOP_CLASSIFIED, LOOP_ANSWERED, LOOP_RESOLVED, LOOP_CLOSED)

# ---------------------------------------------------------------- blackbox_exporter (/probe)
BB_SUCCESS = "probe_success"
BB_DURATION = "probe_duration_seconds"
BB_DNS_LOOKUP = "probe_dns_lookup_time_seconds"
BB_IP_PROTOCOL = "probe_ip_protocol"
BB_IP_ADDR_HASH = "probe_ip_addr_hash"
BB_HTTP_DURATION = "probe_http_duration_seconds"
BB_HTTP_STATUS = "probe_http_status_code"
BB_HTTP_CONTENT_LENGTH = "probe_http_content_length"
BB_HTTP_BODY_LENGTH = "probe_http_uncompressed_body_length"
BB_HTTP_REDIRECTS = "probe_http_redirects"
BB_HTTP_SSL = "probe_http_ssl"
BB_HTTP_VERSION = "probe_http_version"
BB_HTTP_LAST_MODIFIED = "probe_http_last_modified_timestamp_seconds"
BB_FAILED_DUE_TO_REGEX = "probe_failed_due_to_regex"
BB_FAILED_DUE_TO_BYTES = "probe_failed_due_to_bytes"
BB_FAILED_DUE_TO_CEL = "probe_failed_due_to_cel"
BB_GRPC_DURATION = "probe_grpc_duration_seconds"
BB_GRPC_SSL = "probe_grpc_ssl"
BB_GRPC_STATUS = "probe_grpc_status_code"
BB_GRPC_HEALTH = "probe_grpc_healthcheck_response"
BB_SSL_EARLIEST_EXPIRY = "probe_ssl_earliest_cert_expiry"
BB_SSL_LAST_CHAIN_EXPIRY = "probe_ssl_last_chain_expiry_timestamp_seconds"
BB_SSL_LAST_CHAIN_INFO = "probe_ssl_last_chain_info"
BB_TLS_VERSION = "probe_tls_version_info"
BB_TLS_CIPHER = "probe_tls_cipher_info"
BB_EXPECT_INFO = "probe_expect_info"
BB_DNS_DURATION = "probe_dns_duration_seconds"
BB_DNS_ANSWER_RRS = "probe_dns_answer_rrs"
BB_DNS_AUTHORITY_RRS = "probe_dns_authority_rrs"
BB_DNS_ADDITIONAL_RRS = "probe_dns_additional_rrs"
BB_DNS_QUERY_SUCCEEDED = "probe_dns_query_succeeded"
BB_DNS_SERIAL = "probe_dns_serial"
BB_ICMP_DURATION = "probe_icmp_duration_seconds"
BB_ICMP_REPLY_HOP_LIMIT = "probe_icmp_reply_hop_limit"
# slaprobe extensions on /probe (blackbox has no equivalent)
BB_FAILURE_REASON = "probe_failure_info"
BB_ICMP_LOSS_RATIO = "probe_icmp_packet_loss_ratio"
BB_ICMP_RTT = "probe_icmp_rtt_seconds"
BB_TLS_LEAF_EXPIRY = "probe_ssl_leaf_cert_expiry"

BLACKBOX_HELP: dict[str, str] = {
    BB_SUCCESS: "Displays whether or not the probe was a success",
    BB_DURATION: "Returns how long the probe took to complete in seconds",
    BB_DNS_LOOKUP: "Returns the time taken for probe dns lookup in seconds",
    BB_IP_PROTOCOL: "Specifies whether probe ip protocol is IP4 or IP6",
    BB_IP_ADDR_HASH: "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
    BB_HTTP_DURATION: "Duration of http request by phase, summed over all redirects",
    BB_HTTP_STATUS: "Response HTTP status code",
    BB_HTTP_CONTENT_LENGTH: "Length of http content response",
    BB_HTTP_BODY_LENGTH: "Length of uncompressed response body",
    BB_HTTP_REDIRECTS: "The number of redirects",
    BB_HTTP_SSL: "Indicates if SSL was used for the final redirect",
    BB_HTTP_VERSION: "Returns the version of HTTP of the probe response",
    BB_HTTP_LAST_MODIFIED: "Returns the Last-Modified HTTP response header in unixtime",
    BB_FAILED_DUE_TO_REGEX: "Indicates if probe failed due to regex",
    BB_FAILED_DUE_TO_BYTES: "Indicates if probe failed due to bytes",
    BB_FAILED_DUE_TO_CEL: "Indicates if probe failed due to CEL expression not matching",
    BB_GRPC_DURATION: "Duration of gRPC request by phase",
    BB_GRPC_SSL: "Indicates if SSL was used for the connection",
    BB_GRPC_STATUS: "Response gRPC status code",
    BB_GRPC_HEALTH: "Response HealthCheck response",
    BB_SSL_EARLIEST_EXPIRY: "Returns last SSL chain expiry in unixtime",
    BB_SSL_LAST_CHAIN_EXPIRY: "Returns last SSL chain expiry in timestamp",
    BB_SSL_LAST_CHAIN_INFO: "Contains SSL leaf certificate information",
    BB_TLS_VERSION: "Returns the TLS version used or NaN when unknown",
    BB_TLS_CIPHER: "Returns the TLS cipher negotiated during handshake",
    BB_EXPECT_INFO: "Explicit content matched",
    BB_DNS_DURATION: "Duration of DNS request by phase",
    BB_DNS_ANSWER_RRS: "Returns number of entries in the answer resource record list",
    BB_DNS_AUTHORITY_RRS: "Returns number of entries in the authority resource record list",
    BB_DNS_ADDITIONAL_RRS: "Returns number of entries in the additional resource record list",
    BB_DNS_QUERY_SUCCEEDED: "Displays whether or not the query was executed successfully",
    BB_DNS_SERIAL: "Returns the serial number of the zone",
    BB_ICMP_DURATION: "Duration of icmp request by phase",
    BB_ICMP_REPLY_HOP_LIMIT: "Replied packet hop limit (TTL for ipv4)",
    BB_FAILURE_REASON: "Why the probe failed (slaprobe extension), 1 for the reason",
    BB_ICMP_LOSS_RATIO: "Share of ICMP echo requests without a reply (slaprobe extension)",
    BB_ICMP_RTT: "ICMP round-trip time by statistic: min, avg, max, jitter (slaprobe extension)",
    BB_TLS_LEAF_EXPIRY: "Expiry of the leaf certificate in unixtime (slaprobe extension)",
}

# ---------------------------------------------------------------- generated rules, alerts, routing (alerts/)
# Recording rules follow Sloth's names and labels (https://sloth.dev) so its dashboards work on them.
SLO_SLI_ERROR_PREFIX = "slo:sli_error:ratio_rate"  # + window: slo:sli_error:ratio_rate5m ... _rate30d
SLO_OBJECTIVE = "slo:objective:ratio"
SLO_ERROR_BUDGET = "slo:error_budget:ratio"
SLO_TIME_PERIOD_DAYS = "slo:time_period:days"
SLO_CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
SLO_PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
SLO_PERIOD_BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
SLO_INFO = "sloth_slo_info"
SLO_RATE_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")  # besides each SLA window (the period)


def slo_sli_error(window: str) -> str:
    """The Sloth record name of the error ratio over ``window`` (``5m`` -> ``slo:sli_error:ratio_rate5m``)."""
    return f"{SLO_SLI_ERROR_PREFIX}{window}"


LABEL_SLOTH_ID = "sloth_id"  # <service>-<slo>
LABEL_SLOTH_SERVICE = "sloth_service"
LABEL_SLOTH_SLO = "sloth_slo"
LABEL_SLOTH_WINDOW = "sloth_window"
LABEL_SLOTH_SEVERITY = "sloth_severity"  # page | ticket, on alerts (Sloth's boards select on it)
LABEL_SLOTH_MODE = "sloth_mode"
LABEL_SLOTH_SPEC = "sloth_spec"
LABEL_SLOTH_VERSION = "sloth_version"
LABEL_SLOTH_OBJECTIVE = "sloth_objective"  # percent, on sloth_slo_info only

# The SLOs of a service (values of sloth_slo).
SLO_AVAILABILITY = "availability"  # probe runs that failed
SLO_LATENCY = "latency"  # probe runs slower than the threshold
SLO_COMPLIANCE = "compliance"  # probe runs not within SLA (the compliance rate's complement)
SLO_LOG_AVAILABILITY = "log-availability"  # access-log requests answered 5xx or not at all
SLO_LOG_LATENCY = "log-latency"  # access-log requests slower than the threshold
SLO_SATISFACTION = "satisfaction"  # ratings below the satisfied minimum of their scale (CSAT's complement)

# Feedback ratios, per feedback source (recording rules).
FEEDBACK_DEADLINE_BREACH_RATIO = "slaprobe:feedback_deadline_breaches:ratio"  # {source, stage}
FEEDBACK_QUALITY_SHARE_RATIO = "slaprobe:feedback_quality_share:ratio"  # {source}
# Complaint volume against its own baseline (alerting.feedback.spike), {source, service, category}.
FEEDBACK_TICKETS_RATE = "slaprobe:feedback_tickets:increase1h"  # tickets opened in the last hour
FEEDBACK_TICKETS_SAME_HOUR = "slaprobe:feedback_tickets:same_hour_avg"  # the same hour of the previous days
FEEDBACK_TICKETS_MOVING = "slaprobe:feedback_tickets:moving_avg1h"  # per hour over the previous days
# The trend warning (alerting.feedback.trend), {source}: over its window, compared week over week.
FEEDBACK_TREND_TICKETS = "slaprobe:feedback_tickets:trend_window"  # tickets opened in the window
FEEDBACK_TREND_QUALITY = "slaprobe:feedback_quality_share:trend_ratio"  # quality tickets / tickets
FEEDBACK_TREND_REPEATS = "slaprobe:feedback_repeat_rate:trend_ratio"  # repeat tickets / tickets
LABEL_TREND = "trend"  # of the trend warning: which figure rises (TREND_QUALITY_SHARE, TREND_REPEAT_RATE)
TREND_QUALITY_SHARE = "quality_share"
TREND_REPEAT_RATE = "repeat_rate"

# Alert names.
ALERT_BURN_RATE = "SLAErrorBudgetBurn"
ALERT_BUDGET_EXHAUSTION = "SLAErrorBudgetExhaustionProjected"
ALERT_PROBE_DOWN = "SLAProbeDown"
ALERT_PROBE_NO_DATA = "SLAProbeNoData"
ALERT_EXPORTER_ABSENT = "SLAProbeExporterAbsent"
ALERT_SHARD_DOWN = "SLAProberShardDown"  # {location, shard, shards}: one replica of a sharded prober stopped
ALERT_TLS_EXPIRING = "SLATLSCertificateExpiring"
ALERT_COMPLIANCE = "SLAComplianceBelowTarget"
ALERT_FEEDBACK_DEADLINES = "SLAFeedbackDeadlinesBreached"
ALERT_FEEDBACK_QUALITY = "SLAFeedbackQualityShareHigh"
ALERT_FEEDBACK_SPIKE = "SLAFeedbackComplaintSpike"
ALERT_FEEDBACK_TREND = "SLAFeedbackTrendUp"
SLO_ALERTS = (ALERT_BURN_RATE, ALERT_BUDGET_EXHAUSTION, ALERT_COMPLIANCE)  # inhibited while the prober is down
PROBER_DOWN_ALERTS = (ALERT_EXPORTER_ABSENT, ALERT_PROBE_NO_DATA)

# Labels and annotations every generated alert carries.
LABEL_ALERTNAME = "alertname"
LABEL_ALERTSTATE = "alertstate"
LABEL_PRIORITY = "priority"  # from the tier x urgency table (priorities:)
LABEL_SEVERITY = "severity"  # page | ticket
LABEL_ESCALATION_LEVEL = "escalation_level"  # "1" is the alert itself, "2"... the meta-alerts
LABEL_BURNRATE = "burnrate"  # window pair of a burn-rate alert: 1h/5m, 6h/30m, 1d/2h, 3d/6h
LABEL_RUNBOOK_URL = "runbook_url"  # also a label, so escalation meta-alerts can carry it on
LABEL_NAMESPACE = "namespace"  # AlertmanagerConfig (OnNamespace) routes match on it
SEVERITY_PAGE = "page"
SEVERITY_TICKET = "ticket"
# The SRE workbook's multi-window burn-rate table, read by the rules and by the boards that draw
# their thresholds: (share of the SLA window's budget, long window, short window, severity).
# A row's burn-rate factor is share x SLA window / long window (14.4 for 2% in 1h of 30d).
BURN_RATE_TABLE: tuple[tuple[float, str, str, str], ...] = (
    (0.02, "1h", "5m", SEVERITY_PAGE),
    (0.05, "6h", "30m", SEVERITY_PAGE),
    (0.10, "1d", "2h", SEVERITY_TICKET),
    (0.10, "3d", "6h", SEVERITY_TICKET),
)
ANNOTATION_SUMMARY = "summary"
ANNOTATION_DESCRIPTION = "description"
ANNOTATION_RUNBOOK_URL = "runbook_url"
ALERTS_SERIES = "ALERTS"  # Prometheus' own series of pending and firing alerts
ALERT_FIRING = "firing"
ALERTS_FOR_STATE_SERIES = "ALERTS_FOR_STATE"  # Prometheus' own: value = when each active alert became active
# Recorded per level-1 alert that can escalate: seconds it has fired in its current episode (the
# escalation clock; gaps shorter than alerting.escalation_bridge pause it, longer ones end the episode).
ESCALATION_CLOCK = "slaprobe:escalation_clock:seconds"

# Alertmanager receivers slaprobe adds to the ones in the config.
RECEIVER_INCIDENTS = "slaprobe-incidents"  # slaprobe's /alertmanager/webhook, for incident metrics
RECEIVER_UNROUTED = "slaprobe-unrouted"  # alerts no escalation level routes (no notification)

# ---------------------------------------------------------------- acknowledgements and incidents (exporter)
ALERT_ACKNOWLEDGED = "slaprobe_alert_acknowledged"  # {service, alertname} = 1 while a silence covers it
INCIDENT_TIME_TO_ACKNOWLEDGE = "slaprobe_incident_time_to_acknowledge_seconds"  # histogram {priority}
INCIDENT_TIME_TO_RESOLVE = "slaprobe_incident_time_to_resolve_seconds"  # histogram {priority}
INCIDENTS_OPEN = "slaprobe_incidents_open"  # gauge {priority, escalation_level}
ALERTMANAGER_POLL_SUCCESS = "slaprobe_alertmanager_last_poll_successful"
ALERTMANAGER_NOTIFICATIONS = "slaprobe_alertmanager_notifications_total"  # counter {status}: webhook calls
ALERTMANAGER_WEBHOOK_REFUSED = "slaprobe_alertmanager_webhook_refused_total"  # counter {reason}: posts refused

# Rule groups: three per service (Sloth's split), then feedback and escalation.
RULE_GROUP_SLI = "slaprobe-sli-recordings-"  # + service
RULE_GROUP_META = "slaprobe-meta-recordings-"  # + service
RULE_GROUP_ALERTS = "slaprobe-alerts-"  # + service
RULE_GROUP_FEEDBACK_RECORDINGS = "slaprobe-feedback-recordings"
RULE_GROUP_FEEDBACK_ALERTS = "slaprobe-feedback-alerts"
RULE_GROUP_ESCALATION = "slaprobe-escalation"
RULE_GROUP_FLEET = "slaprobe-fleet"  # the prober's own replicas
