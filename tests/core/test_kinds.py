"""The table of probe kinds is the one list: every place that must name kinds agrees with it."""

from __future__ import annotations

import inspect
from typing import Any, get_args, get_type_hints

from pydantic import BaseModel

from slaprobe.config import Probe
from slaprobe.exporter import blackbox
from slaprobe.kinds import BLACKBOX_PROBERS, KINDS, PROBED_KINDS, STEP_KINDS, FlowStep, ProbeSpec, StepSpec
from slaprobe.probes.kinds import PROBERS

SPECS = {kind.name: kind.spec for kind in KINDS}


def kind_fields(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``model`` that hold the spec of some kind: name -> that spec."""
    specs = set(SPECS.values())
    found = {}
    for name, field in model.model_fields.items():
        held = [arg for arg in get_args(field.annotation) if arg in specs]
        if held:
            found[name] = held[0]
    return found


def test_every_probed_kind_has_a_probe_function_and_every_probe_function_a_probed_kind() -> None:
    without_function = sorted(set(PROBED_KINDS) - set(PROBERS))
    without_kind = sorted(set(PROBERS) - set(PROBED_KINDS))
    assert (without_function, without_kind) == ([], []), (
        f"kinds without a probe function in PROBERS: {without_function}; "
        f"probe functions of no probed kind in slaprobe.kinds.KINDS: {without_kind}"
    )


def test_a_pushed_kind_is_never_a_flow_step_nor_a_blackbox_prober() -> None:
    for kind in KINDS:
        if kind.pushed:
            assert not kind.flow_step and kind.blackbox_prober is None, kind.name


def test_each_probe_function_takes_the_spec_of_its_kind() -> None:
    for name, fn in PROBERS.items():
        spec = next(iter(inspect.signature(fn).parameters))
        assert get_type_hints(fn)[spec] is SPECS[name], name


def test_a_probe_has_one_field_per_kind_holding_that_kinds_spec() -> None:
    assert kind_fields(Probe) == SPECS


def test_a_flow_step_has_one_field_per_step_kind_and_no_other() -> None:
    assert kind_fields(FlowStep) == {kind.name: kind.spec for kind in KINDS if kind.flow_step}
    assert sorted(STEP_KINDS) == sorted(kind.name for kind in KINDS if kind.flow_step)


def test_the_typing_unions_hold_the_specs_of_the_table() -> None:
    assert set(get_args(ProbeSpec)) == set(SPECS.values())
    assert set(get_args(StepSpec)) == {kind.spec for kind in KINDS if kind.flow_step}
    assert set(get_args(blackbox.BlackboxSpec)) == {kind.spec for kind in BLACKBOX_PROBERS.values()}


def test_each_blackbox_prober_of_the_table_has_a_module_translator_and_no_other() -> None:
    assert sorted(blackbox._TRANSLATORS) == sorted(BLACKBOX_PROBERS), "blackbox._TRANSLATORS vs the table's probers"


def test_a_blackbox_module_runs_as_the_kind_that_serves_its_prober() -> None:
    modules = blackbox.parse_modules(
        "modules:\n  t: {prober: tcp}\n  h: {prober: http}\n  d: {prober: dns, dns: {query_name: x.test}}\n"
    )
    assert {name: m.kind for name, m in modules.items()} == {"t": "tcp", "h": "http", "d": "dns"}
    assert all(m.kind in PROBERS for m in modules.values())


def test_each_kind_names_the_field_of_its_spec_where_it_connects() -> None:
    for kind in KINDS:
        if kind.flow_step or kind.blackbox_prober:
            assert kind.target_field in kind.spec.model_fields, kind.name
