"""Flow variables: references, static checks, substitution and extraction (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from slaprobe.config import DnsSpec, Extract, FlowSpec, HttpSpec, TcpSpec
from slaprobe.variables import (
    ExtractError,
    MissingVariableError,
    Variables,
    extract,
    flow_problems,
    needs_body,
    references,
    resolve_step,
    undefined_variables,
)

URL = "http://shop.test"


def flow(steps: list[dict[str, Any]], cleanup: list[dict[str, Any]] | None = None) -> FlowSpec:
    return FlowSpec.model_validate({"steps": steps, "finally": cleanup or []})


def http(name: str, url: str = URL + "/", extract: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"name": name, "http": {"url": url, **spec}, "extract": extract or {}}


LOGIN = http("login", URL + "/login", {"token": {"json": "$.token"}, "sid": {"header": "X-Session"}})


def values(**texts: str) -> Variables:
    found = Variables()
    for name, text in texts.items():
        found.set(name, text)
    return found


# ---------------------------------------------------------------------------- references


def test_references_are_flow_variable_names_only() -> None:
    assert references("Bearer ${token} for ${user_id} and ${user-name}") == ["token", "user_id", "user-name"]
    assert references("${env:HOME} ${file:/run/pw} ${1} ${0} $1 $token {token}") == []
    assert references("$${token} is literal, ${real} is not") == ["real"]
    assert references("no dollar at all") == []


# ---------------------------------------------------------------------------- static checks


def test_undefined_variables_finds_a_typo_with_the_yaml_path_of_its_use() -> None:
    spec = flow([LOGIN, http("subscribe", headers={"Authorization": "Bearer ${tokn}"})])
    assert undefined_variables(spec) == [("steps[1].http.headers.Authorization", "tokn")]
    assert flow_problems(spec) == [
        ("steps[1].http.headers.Authorization", "${tokn} is not extracted by an earlier step (did you mean token?)")
    ]


def test_a_variable_is_defined_only_by_steps_that_run_before_its_use() -> None:
    spec = flow(
        [
            http("early", URL + "/?id=${id}"),
            http("own", URL + "/", {"id": {"json": "$.id"}}, body="${id}"),
            http("late", URL + "/${id}"),
        ],
        cleanup=[http("undo", URL + "/undo?id=${id}&t=${later}"), http("last", URL + "/", {"later": {"json": "$.x"}})],
    )
    assert undefined_variables(spec) == [
        ("steps[0].http.url", "id"),
        ("steps[1].http.body", "id"),
        ("finally[0].http.url", "later"),
    ]
    assert flow_problems(spec)[0] == (
        "steps[0].http.url",
        "${id} is not extracted by an earlier step (step own extracts it, but does not run before)",
    )


def test_every_substituted_field_is_checked() -> None:
    spec = flow(
        [
            http(
                "a",
                URL + "/${u}",
                headers={"X-A": "${h}"},
                json={"list": [{"deep": "${j}"}], "n": 1},
                basic_auth={"username": "${bu}", "password": "${bp}"},
            ),
            http("b", body="x=${b}"),
            {"name": "c", "tcp": {"address": "db.test:5432", "dialogue": [{"send": "HELLO ${t}"}]}},
            {"name": "d", "dns": {"query": "${q}.shop.test", "server": "10.0.0.2:53"}},
        ]
    )
    assert undefined_variables(spec) == [
        ("steps[0].http.url", "u"),
        ("steps[0].http.headers.X-A", "h"),
        ("steps[0].http.json.list[0].deep", "j"),
        ("steps[0].http.basic_auth.username", "bu"),
        ("steps[0].http.basic_auth.password", "bp"),
        ("steps[1].http.body", "b"),
        ("steps[2].tcp.dialogue[0].send", "t"),
        ("steps[3].dns.query", "q"),
    ]


def test_tcp_capture_groups_and_other_interpolations_are_not_flow_variables() -> None:
    spec = flow(
        [
            {
                "name": "smtp",
                "tcp": {
                    "address": "mail.test:25",
                    "dialogue": [
                        {"send": "EHLO ${greeting}"},  # the named group is not matched yet
                        {"expect": r"^220 (?P<greeting>\S+) (\w+)"},
                        {"send": "EHLO ${greeting} ${1} ${2} $${literal}"},
                    ],
                },
            },
            http("env", URL + "/?k=${env:NOT_INTERPOLATED}"),
        ]
    )
    assert undefined_variables(spec) == [("steps[0].tcp.dialogue[0].send", "greeting")]


def test_variables_where_the_probe_connects_are_refused() -> None:
    spec = flow(
        [
            http("login", URL + "/", {"host": {"json": "$.host"}}),
            http("next", "http://${host}:8080/x"),
            {"name": "db", "tcp": {"address": "${host}:5432"}},
            {"name": "ns", "dns": {"query": "shop.test", "server": "${host}:53"}},
        ]
    )
    assert flow_problems(spec) == [
        (
            "steps[1].http.url",
            "flow variables may not appear in the URL's host or port (path, query and fragment only)",
        ),
        ("steps[2].tcp.address", "flow variables are not substituted in address (it must be known at load)"),
        ("steps[3].dns.server", "flow variables are not substituted in server (it must be known at load)"),
    ]


def test_extract_rules_are_checked_when_the_config_loads() -> None:
    spec = flow(
        [
            http("a", extract={"1st": {"header": "X-A"}, "deep": {"json": "$..id"}}),
            {"name": "b", "tcp": {"address": "db.test:5432"}, "extract": {"banner": {"regex": "(.*)"}}},
        ]
    )
    assert flow_problems(spec) == [
        ("steps[0].extract.1st", "not a variable name (letters, digits, _ and -; not starting with a digit)"),
        (
            "steps[0].extract.deep.json",
            "'$..id': expected a member name at position 2",
        ),
        ("steps[1].extract", "extract needs an http step (variables come from a response)"),
    ]


def test_a_correct_flow_has_no_problems() -> None:
    spec = flow(
        [LOGIN, http("sub", URL + "/sub?sid=${sid}", headers={"Authorization": "Bearer ${token}"})],
        cleanup=[http("unsub", URL + "/unsub", json={"token": "${token}"})],
    )
    assert undefined_variables(spec) == []
    assert flow_problems(spec) == []


# ---------------------------------------------------------------------------- substitution


def test_a_step_without_references_is_used_as_it_is() -> None:
    spec = flow([http("plain", headers={"Accept": "text/html"}, json={"a": ["b"]})])
    assert resolve_step(spec.steps[0], values(token="x" * 8)) is spec.steps[0].http


def test_every_http_field_is_substituted() -> None:
    step = flow(
        [
            http(
                "a",
                URL + "/subs/${id}?t=${token}",
                method="POST",
                headers={"Authorization": "Bearer ${token}", "Accept": "*/*"},
                json={"id": "${id}", "ids": ["${id}", "n-${id}"], "note": "$${id} stays"},
                basic_auth={"username": "${user}", "password": "pw"},
            )
        ]
    ).steps[0]
    found = values(token="tok-secret", user="ann")
    found.set("id", "42", 42)
    resolved = resolve_step(step, found)
    assert isinstance(resolved, HttpSpec)
    assert resolved.url == URL + "/subs/42?t=tok-secret"
    assert resolved.headers == {"Authorization": "Bearer tok-secret", "Accept": "*/*"}
    assert resolved.json_body == {"id": 42, "ids": [42, "n-42"], "note": "${id} stays"}
    assert resolved.basic_auth is not None and resolved.basic_auth.username == "ann"
    assert step.http is not None and step.http.url == URL + "/subs/${id}?t=${token}", "the config is not changed"


def test_a_body_and_a_dns_query_are_substituted() -> None:
    spec = flow([http("a", body="id=${id}&x=$${id}"), {"name": "d", "dns": {"query": "${tenant}.shop.test"}}])
    found = values(id="17", tenant="acme")
    body = resolve_step(spec.steps[0], found)
    assert isinstance(body, HttpSpec) and body.body == "id=17&x=${id}"
    query = resolve_step(spec.steps[1], found)
    assert isinstance(query, DnsSpec) and query.query == "acme.shop.test"


def test_a_tcp_send_keeps_its_own_template_and_a_dollar_in_a_value_stays_literal() -> None:
    step = flow(
        [
            {
                "name": "t",
                "tcp": {
                    "address": "db.test:1",
                    "dialogue": [{"expect": "^(?P<g>.)"}, {"send": "A ${token} ${g} ${1} $$ $${x}"}],
                },
            }
        ]
    ).steps[0]
    resolved = resolve_step(step, values(token="p$1w"))
    assert isinstance(resolved, TcpSpec)
    assert resolved.dialogue[1].send == "A p$$1w ${g} ${1} $$ $${x}"


def test_a_reference_without_a_value_names_the_variable_and_where_it_is_used() -> None:
    step = flow([http("a", headers={"Authorization": "Bearer ${token}"})]).steps[0]
    with pytest.raises(MissingVariableError) as raised:
        resolve_step(step, values())
    assert (raised.value.name, raised.value.path) == ("token", "http.headers.Authorization")


# ---------------------------------------------------------------------------- extraction


def rules(**sources: dict[str, str]) -> dict[str, Extract]:
    return {name: Extract.model_validate(source) for name, source in sources.items()}


def test_json_extraction_takes_the_first_value_and_writes_non_strings_as_json() -> None:
    body = b'{"token": "abc-123", "user": {"id": 7, "roles": ["a", "b"]}, "items": [{"n": 1}, {"n": 2}]}'
    found = extract(
        rules(
            token={"json": "$.token"},
            uid={"json": "$.user.id"},
            roles={"json": "$.user.roles"},
            n={"json": "$.items[*].n"},
        ),
        CIMultiDict(),
        body,
        None,
    )
    assert [(f.name, f.text, f.json_value, f.source) for f in found] == [
        ("token", "abc-123", "abc-123", "$.token"),
        ("uid", "7", 7, "$.user.id"),
        ("roles", '["a","b"]', ["a", "b"], "$.user.roles"),
        ("n", "1", 1, "$.items[*].n"),
    ]


def test_header_and_regex_extraction() -> None:
    headers = CIMultiDict([("x-request-id", "r-1"), ("X-Request-Id", "r-2")])
    body = "Bestellung Nr. 4711 für Ann".encode("latin-1")
    found = extract(
        rules(rid={"header": "X-Request-ID"}, order={"regex": r"Nr\. (\d+)"}, who={"regex": r"für \w+"}),
        headers,
        body,
        "latin-1",
    )
    assert [(f.name, f.text) for f in found] == [("rid", "r-1"), ("order", "4711"), ("who", "für Ann")]


@pytest.mark.parametrize(
    ("source", "body", "message"),
    [
        ({"json": "$.token"}, b"<html>", "cannot extract v: the body is not JSON (needed for $.token)"),
        ({"json": "$.token"}, b'{"tok": "s3cr3t-value"}', "cannot extract v: nothing at $.token in the body"),
        ({"json": "$.token"}, b'{"token": null}', "cannot extract v: $.token is null"),
        ({"header": "X-Id"}, b"", "cannot extract v: no X-Id header in the response"),
        ({"regex": r"id=(\d+)"}, b"s3cr3t-value", "cannot extract v: the body does not match 'id=(\\\\d+)'"),
        (
            {"regex": r"id=(\d+)?x"},
            b"id=x",
            "cannot extract v: the first group of 'id=(\\\\d+)?x' did not take part in the match",
        ),
    ],
)
def test_a_missing_value_is_an_extract_error_that_quotes_no_body(
    source: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(ExtractError) as raised:
        extract(rules(v=source), CIMultiDict(), body, None)
    assert str(raised.value) == message
    assert raised.value.name == "v"


def test_only_json_and_regex_rules_need_the_body() -> None:
    assert not needs_body(rules(a={"header": "X-A"}))
    assert needs_body(rules(a={"header": "X-A"}, b={"regex": "x"}))


# ---------------------------------------------------------------------------- secrets


def test_redaction_hides_every_value_but_not_short_ids() -> None:
    found = values(token="tok-secret-1", refresh="tok-secret-1-refresh", id="42")
    text = "sent tok-secret-1-refresh and tok-secret-1 for order 42"
    assert found.redact(text) == "sent <secret> and <secret> for order 42"
    assert values().redact(text) == text
