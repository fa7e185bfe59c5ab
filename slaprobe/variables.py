"""Flow variables: ``${name}`` in a step's request, extracted from an earlier step's response.

Where a variable may be used (the only fields substituted): an http step's ``url`` (its
path, query and fragment; never its scheme, host or port, which must be known when the
config is loaded), ``headers`` values, ``body``, ``json`` body (every string in it; a
string that is exactly one reference takes the variable's JSON value, so ``"${id}"``
sends the number ``42`` when ``$.id`` held the number 42) and ``basic_auth``; a tcp
step's dialogue ``send``; a dns step's ``query``. Values are inserted as they are (no
URL encoding).

Names are ``[A-Za-z_][A-Za-z0-9_-]*``. Other ``${...}`` forms are left alone: ``${env:X}``
and ``${file:P}`` (replaced when the config is loaded), ``${1}`` (the capture groups of a
tcp dialogue), and, in a tcp ``send``, a ``${group}`` named by the dialogue's ``expect``
regexes when no flow variable has that name. ``$${name}`` is a literal ``${name}``
(the ``$$`` escape of tcp dialogue templates, which keep their own meaning of it).

Where a variable comes from (``extract``, http steps only): ``json`` (a JSONPath into the
body; the first value found; ``null`` counts as missing), ``header`` (the first value of
a response header) or ``regex`` (searched in the body; its first group, or the whole
match if it has no group).

Values extracted at run time are secrets: ``Variables.redact`` removes them from text, and
nothing here puts a value into a message.

This module depends on the flow and spec models only, so the config loader can run the
static checks (``undefined_variables``, ``flow_problems``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slaprobe.jsonpath import JsonPathError, find, parse_path
from slaprobe.kinds import KIND_BY_NAME, FlowSpec, FlowStep, StepSpec
from slaprobe.specs import Extract, HttpSpec, TcpSpec

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
# $${name} is an escaped literal (group 1 set); ${name} a reference.
_REFERENCE = re.compile(r"\$(\$?)\{(" + NAME_PATTERN + r")\}")
_NAME = re.compile(NAME_PATTERN)
_UNPARSED = object()
# Values this short are ids and flags, not secrets; redacting them would garble every
# number in a log line.
MIN_SECRET_CHARS = 4


class MissingVariableError(Exception):
    """A step refers to a variable that has no value in this run."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(f"${{{name}}} has no value (used in {path})")
        self.name = name
        self.path = path


class ExtractError(Exception):
    """A response did not hold a variable the step extracts; the message never quotes values."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"cannot extract {name}: {message}")
        self.name = name


# ---------------------------------------------------------------------------- references


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (escaped ``$${x}`` excluded)."""
    if "${" not in text:
        return []
    return [m.group(2) for m in _REFERENCE.finditer(text) if not m.group(1)]


def _json_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its path (``json.items[0].name``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _json_strings(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}[{index}]")


def _tcp_groups(spec: TcpSpec, upto: int) -> frozenset[str]:
    """Group names of the dialogue's ``expect`` regexes up to step ``upto`` (Go template names)."""
    names: set[str] = set()
    for step in spec.dialogue[: upto + 1]:
        if step.expect is not None:
            names.update(re.compile(step.expect).groupindex)
    return frozenset(names)


def _texts(step: FlowStep) -> Iterator[tuple[str, str, frozenset[str]]]:
    """Every substituted string of a step: (path below the step, text, names left to the tcp template)."""
    none: frozenset[str] = frozenset()
    if (http := step.http) is not None:
        yield "http.url", http.url, none
        for key, value in http.headers.items():
            yield f"http.headers.{key}", value, none
        if http.body is not None:
            yield "http.body", http.body, none
        for path, value in _json_strings(http.json_body, "http.json"):
            yield path, value, none
        if http.basic_auth is not None:
            yield "http.basic_auth.username", http.basic_auth.username, none
            yield "http.basic_auth.password", http.basic_auth.password, none
    elif (tcp := step.tcp) is not None:
        for index, exchange in enumerate(tcp.dialogue):
            if isinstance(exchange.send, str):  # bytes are sent as they are
                yield f"tcp.dialogue[{index}].send", exchange.send, _tcp_groups(tcp, index)
    elif (dns := step.dns) is not None:
        yield "dns.query", dns.query, none


def _steps(spec: FlowSpec) -> Iterator[tuple[str, FlowStep, frozenset[str]]]:
    """Each step with its path and the variables extracted by the steps before it."""
    defined: set[str] = set()
    for prefix, steps in (("steps", spec.steps), ("finally", spec.finally_)):
        for index, step in enumerate(steps):
            yield f"{prefix}[{index}]", step, frozenset(defined)
            defined.update(step.extract)


# ---------------------------------------------------------------------------- static checks


def undefined_variables(spec: FlowSpec) -> list[tuple[str, str]]:
    """Every ``(path, name)`` where a step uses ``${name}`` that no earlier step extracts.

    Paths are relative to the flow and use the YAML keys: ``steps[1].http.headers.Authorization``.
    """
    found: list[tuple[str, str]] = []
    for step_path, step, defined in _steps(spec):
        for path, text, template_names in _texts(step):
            for name in dict.fromkeys(references(text)):
                if name not in defined and name not in template_names:
                    found.append((f"{step_path}.{path}", name))
    return found


def plain_probe_references(kind: str, spec: object) -> list[tuple[str, str]]:
    """Every ``(path, name)`` where a probe that is not a flow uses ``${name}``: it has no variables,
    so the text would be sent as it is (``${env:X}``/``${file:P}`` are gone by now)."""
    if kind not in KIND_BY_NAME or not KIND_BY_NAME[kind].flow_step:
        return []
    fields: dict[str, Any] = {"name": "probe", kind: spec}
    step = FlowStep.model_construct(**fields)  # the same fields a step substitutes
    return [(path, name) for path, text, names in _texts(step) for name in references(text) if name not in names]


def flow_problems(spec: FlowSpec) -> list[tuple[str, str]]:
    """Every static problem of a flow's variables as ``(path, message)``, paths relative to the flow.

    Undefined variables (with a hint when a later step extracts the name or a known name
    is close), variables where they are never substituted (a URL's host, an address, a
    server), ``extract`` on a step that is not http, extract names that are not variable
    names, and JSONPaths outside the supported subset.
    """
    problems: list[tuple[str, str]] = []
    everywhere = {name: step.name for _, step, _ in _steps(spec) for name in step.extract}
    for path, name in undefined_variables(spec):
        problems.append((path, f"${{{name}}} is not extracted by an earlier step{_hint(name, everywhere)}"))
    for step_path, step, _ in _steps(spec):
        problems += [(f"{step_path}.{path}", message) for path, message in _fixed_field_problems(step)]
        if step.extract and step.http is None:
            problems.append((f"{step_path}.extract", "extract needs an http step (variables come from a response)"))
        for name, rule in step.extract.items():
            where = f"{step_path}.extract.{name}"
            if not _NAME.fullmatch(name):
                problems.append((where, "not a variable name (letters, digits, _ and -; not starting with a digit)"))
            if rule.json_ is not None:
                try:
                    parse_path(rule.json_)
                except JsonPathError as exc:
                    problems.append((f"{where}.json", str(exc)))
    return problems


def _hint(name: str, extracted: Mapping[str, str]) -> str:
    if name in extracted:
        return f" (step {extracted[name]} extracts it, but does not run before)"
    close = difflib.get_close_matches(name, list(extracted), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _fixed_field_problems(step: FlowStep) -> Iterator[tuple[str, str]]:
    """Variables in fields that are never substituted (where the probe connects)."""
    if step.http is not None:
        if references(urlsplit(step.http.url).netloc):
            yield "http.url", "flow variables may not appear in the URL's host or port (path, query and fragment only)"
        return
    field = KIND_BY_NAME[step.kind].target_field
    value = getattr(step.spec, field) if field else None
    if isinstance(value, str) and references(value):
        yield f"{step.kind}.{field}", f"flow variables are not substituted in {field} (it must be known at load)"


# ---------------------------------------------------------------------------- run time


class Variables:
    """The values extracted so far in one flow run; every value is a secret."""

    __slots__ = ("_redactor", "_values")

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, Any]] = {}  # name -> (text, value as JSON had it)
        self._redactor: re.Pattern[str] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def set(self, name: str, text: str, json_value: Any = None) -> None:
        """Define ``name``; ``json_value`` is the value as JSON had it (None: not from JSON, the text)."""
        self._values[name] = (text, text if json_value is None else json_value)
        self._redactor = None

    def text(self, name: str) -> str:
        """The value of ``name`` as text (KeyError if it has none)."""
        return self._values[name][0]

    def json_value(self, name: str) -> Any:
        """The value of ``name`` as JSON had it, or its text if it did not come from JSON."""
        return self._values[name][1]

    def redact(self, text: str) -> str:
        """``text`` with every value of at least ``MIN_SECRET_CHARS`` characters replaced by ``<secret>``."""
        if not text or not self._values:
            return text
        if self._redactor is None:
            secrets = {value for value, _ in self._values.values() if len(value) >= MIN_SECRET_CHARS}
            alternatives = "|".join(re.escape(v) for v in sorted(secrets, key=len, reverse=True))
            self._redactor = re.compile(alternatives or r"(?!)")  # longest first: a value inside another
        return self._redactor.sub("<secret>", text)


def _substitute(text: str, values: Variables, path: str, template_names: frozenset[str] | None = None) -> str:
    """``text`` with its variables replaced; with ``template_names``, ``text`` is a tcp send (a Go template)."""
    if "${" not in text:
        return text
    tcp = template_names is not None

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:  # $${name}: a literal ${name}; the tcp template turns $$ into $ itself
            return match.group(0) if tcp else match.group(0)[1:]
        if name in values:
            value = values.text(name)
            # The tcp dialogue expands $-templates after us; a $ in a value is literal.
            return value.replace("$", "$$") if tcp else value
        if template_names is not None and name in template_names:
            return match.group(0)
        raise MissingVariableError(name, path)

    return _REFERENCE.sub(replace, text)


def _substitute_json(value: Any, values: Variables, path: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = _REFERENCE.fullmatch(value)
        if whole is not None and not whole.group(1):
            if whole.group(2) not in values:
                raise MissingVariableError(whole.group(2), path)
            return values.json_value(whole.group(2))
        return _substitute(value, values, path)
    if isinstance(value, Mapping):
        return {key: _substitute_json(item, values, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_substitute_json(item, values, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _has_reference(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(_has_reference(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_reference(item) for item in value)
    return False


def resolve_step(step: FlowStep, values: Variables) -> StepSpec:
    """The step's check with every variable replaced; raises ``MissingVariableError``.

    Specs without a reference are returned as they are (no copy).
    """
    if (http := step.http) is not None:
        return _resolve_http(http, values)
    if (tcp := step.tcp) is not None:
        if not any(isinstance(s.send, str) and "${" in s.send for s in tcp.dialogue):
            return tcp
        dialogue = [
            s
            if not isinstance(s.send, str) or "${" not in s.send
            else s.model_copy(
                update={"send": _substitute(s.send, values, f"tcp.dialogue[{i}].send", _tcp_groups(tcp, i))}
            )
            for i, s in enumerate(tcp.dialogue)
        ]
        return tcp.model_copy(update={"dialogue": dialogue})
    if (dns := step.dns) is not None:
        if "${" not in dns.query:
            return dns
        return dns.model_copy(update={"query": _substitute(dns.query, values, "dns.query")})
    return step.spec  # a kind without substituted fields


def _resolve_http(http: HttpSpec, values: Variables) -> HttpSpec:
    update: dict[str, Any] = {}
    if "${" in http.url:
        update["url"] = _substitute(http.url, values, "http.url")
    if any("${" in value for value in http.headers.values()):
        update["headers"] = {k: _substitute(v, values, f"http.headers.{k}") for k, v in http.headers.items()}
    if http.body is not None and "${" in http.body:
        update["body"] = _substitute(http.body, values, "http.body")
    if _has_reference(http.json_body):
        update["json_body"] = _substitute_json(http.json_body, values, "http.json")
    auth = http.basic_auth
    if auth is not None and ("${" in auth.username or "${" in auth.password):
        update["basic_auth"] = auth.model_copy(
            update={
                "username": _substitute(auth.username, values, "http.basic_auth.username"),
                "password": _substitute(auth.password, values, "http.basic_auth.password"),
            }
        )
    return http.model_copy(update=update) if update else http


# ---------------------------------------------------------------------------- extraction


@dataclass(frozen=True, slots=True)
class Extracted:
    """One variable taken from a response: its value (secret) and where it came from."""

    name: str
    text: str
    json_value: Any  # as JSON had it; the text itself for a header or a regex
    source: str  # for logs: "$.token", "header X-Request-Id", "regex 'id=(\\d+)'"


def needs_body(rules: Mapping[str, Extract]) -> bool:
    """Whether any rule reads the body (json or regex), not only headers."""
    return any(rule.header is None for rule in rules.values())


def extract(
    rules: Mapping[str, Extract], headers: Mapping[str, str], body: bytes, charset: str | None
) -> list[Extracted]:
    """Every variable ``rules`` define, from one response; raises ``ExtractError`` for the first missing."""
    found: list[Extracted] = []
    document: Any = _UNPARSED
    text: str | None = None
    for name, rule in rules.items():
        if rule.json_ is not None:
            if document is _UNPARSED:
                try:
                    document = json.loads(body)
                except ValueError:  # JSONDecodeError and UnicodeDecodeError
                    raise ExtractError(name, f"the body is not JSON (needed for {rule.json_})") from None
            try:
                matches = find(document, rule.json_)
            except JsonPathError as exc:
                raise ExtractError(name, str(exc)) from None
            if not matches:
                raise ExtractError(name, f"nothing at {rule.json_} in the body")
            value = matches[0]
            if value is None:
                raise ExtractError(name, f"{rule.json_} is null")
            as_text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            found.append(Extracted(name, as_text, value, rule.json_))
        elif rule.header is not None:
            header = headers.get(rule.header)
            if header is None:
                raise ExtractError(name, f"no {rule.header} header in the response")
            found.append(Extracted(name, header, header, f"header {rule.header}"))
        else:
            assert rule.regex is not None, "validated: exactly one source"
            if text is None:
                text = _decode(body, charset)
            match = re.search(rule.regex, text)
            source = f"regex {rule.regex!r}"
            if match is None:
                raise ExtractError(name, f"the body does not match {rule.regex!r}")
            value = match.group(1) if match.re.groups else match.group(0)
            if value is None:
                raise ExtractError(name, f"the first group of {rule.regex!r} did not take part in the match")
            found.append(Extracted(name, value, value, source))
    return found


def _decode(body: bytes, charset: str | None) -> str:
    """The body as text in its declared charset (UTF-8 if none or unknown)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")
