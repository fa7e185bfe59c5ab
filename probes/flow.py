"""The flow probe: a business transaction as ordered steps sharing cookies and variables.

Each step is a check of a kind that may be a flow step (``slaprobe.kinds``: http, tcp,
dns, tls) run by that kind's probe function through ``run_probe``, so a step's timeout,
a refused address or a bug become that step's result. The steps run in order and the
flow stops at the first one that fails; then the ``finally`` steps run, always
(cleanup). http steps share one cookie jar (which, unlike aiohttp's default, keeps
cookies of IP-address hosts) and may ``extract`` variables from their response for
later steps to use as ``${name}`` (see ``variables``).

Time. ``ctx.timeout`` is the whole flow's; the caller enforces it. Part of it is reserved
for the finally steps, so cleanup still runs when a main step hangs: each finally step
reserves its own ``timeout`` or, without one, an equal share of the flow's
(``ctx.timeout / number of steps``, finally steps counted), and the reserve is at most
half the flow timeout. The main steps must end within the rest: a step gets its own
``timeout`` or, without one, whatever is left. The finally steps start as soon as the
main steps end and share what is left of the flow timeout (each at most its own
``timeout``, and a step without one at most an equal share of what is left, so one
hanging cleanup cannot starve the next). If the caller cancels the flow anyway (a
shutdown, or its deadline when the event loop was too late for ours), the finally steps
still run, within the reserve, before the cancellation goes on.

Result. One ``ProbeResult``: success iff every step that ran succeeded. A failing cleanup
fails the flow too: what it left behind is real. ``reason`` comes from the first failing
step and ``detail`` names it (``step bill: status 500 not in [200]``); ``steps`` holds a
``StepResult`` for every step run, main and finally, in the order run; ``phases`` are
summed over the steps; ``duration`` is the whole flow, cleanup included; there are no
blackbox samples (blackbox has no flows). A finally step that needs a variable that was
never extracted (its step failed or did not run) is skipped and left out of ``steps``:
there is nothing for it to clean up.

Secrets. Extracted values never reach a detail or a log line: the steps' log lines and
details are redacted with the flow's values, and the flow itself logs only variable
names and lengths (``extracted token (32 chars) from $.token``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import aiohttp

from slaprobe import variables
from slaprobe.kinds import FlowSpec, FlowStep
from slaprobe.probes.http import COOKIE_JAR, RESPONSE_CAPTURE, ResponseCapture
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeFn, ProbeResult, ProbeTrace, StepResult
from slaprobe.probes.runner import run_probe
from slaprobe.variables import ExtractError, MissingVariableError, Variables

MAX_FINALLY_SHARE = 0.5  # of the flow timeout, at most, reserved for the finally steps
# Our own deadline ends this much before the caller's, so a timed-out flow still reports its steps.
_MARGIN_SECONDS = 0.05
_MARGIN_SHARE = 0.02


def finally_reserve(spec: FlowSpec, timeout: float) -> float:
    """Seconds of ``timeout`` kept for the finally steps (the rule is in the module docstring)."""
    if not spec.finally_:
        return 0.0
    share = timeout / (len(spec.steps) + len(spec.finally_))
    wanted = sum(step.timeout if step.timeout is not None else share for step in spec.finally_)
    return min(wanted, timeout * MAX_FINALLY_SHARE)


def flow_prober(step_probers: Mapping[str, ProbeFn]) -> ProbeFn:
    """The flow kind's probe function, running each step with ``step_probers[step.kind]``.

    ``probes/kinds.py`` makes the one in ``PROBERS`` from the probe functions of the step kinds.
    """

    async def probe_flow(spec: FlowSpec, ctx: ProbeContext) -> ProbeResult:
        """Run the steps in order until one fails, then the finally steps; one result for the flow."""
        run = _FlowRun(spec, ctx, step_probers)
        try:
            await run.main_steps()
        finally:  # also when cancelled: cleanup must run
            await run.finally_steps()
        return run.result()

    return probe_flow


class _StepTrace(ProbeTrace):
    """A step's own trace (its phases and clock) whose log lines are stamped with the flow's clock.

    The lines wait in ``pending`` until the flow redacts them into its own trace.
    """

    __slots__ = ("flow", "pending")

    def __init__(self, flow: ProbeTrace) -> None:
        super().__init__(debug=flow.debug)
        self.flow = flow
        self.pending: list[tuple[float, str]] = []

    def log(self, message: str) -> None:
        """Keep a line (when debugging) until the flow copies it, redacted, into its trace."""
        if self.debug:
            self.pending.append((time.monotonic() - self.flow.started, message))


class _FlowRun:
    """The state of one flow run: clock, variables, cookies and the step results so far."""

    def __init__(self, spec: FlowSpec, ctx: ProbeContext, probers: Mapping[str, ProbeFn]) -> None:
        self.spec = spec
        self.ctx = ctx
        self.probers = probers
        self.trace = ctx.trace
        now = time.monotonic()
        margin = min(_MARGIN_SECONDS, ctx.timeout * _MARGIN_SHARE)
        self.reserve = finally_reserve(spec, ctx.timeout)
        self.deadline = now + ctx.timeout - margin
        self.main_deadline = self.deadline - self.reserve
        self.values = Variables()
        self.results: list[StepResult] = ctx.trace.steps  # on the trace, so a timeout keeps them
        extras = dict(ctx.extras)
        if COOKIE_JAR not in extras:
            extras[COOKIE_JAR] = aiohttp.CookieJar(unsafe=True)
        self.extras = extras
        if self.reserve:
            main = ctx.timeout - self.reserve
            self.trace.log(f"flow: main steps within {main:.3g}s, {self.reserve:.3g}s kept for finally steps")

    async def main_steps(self) -> None:
        """Run the main steps in order, stopping after the first failure."""
        for step in self.spec.steps:
            if not await self.run_step(step, self.main_deadline, cleanup=False):
                return

    async def finally_steps(self) -> None:
        """Run every finally step, whatever happened before, within what is left (at least the reserve)."""
        steps = self.spec.finally_
        if not steps:
            return
        deadline = max(self.deadline, time.monotonic() + self.reserve)
        for index, step in enumerate(steps):
            await self.run_step(step, deadline, cleanup=True, sharing=len(steps) - index)

    async def run_step(self, step: FlowStep, deadline: float, *, cleanup: bool, sharing: int = 1) -> bool:
        """Run one step, record its result, extract its variables; False if it failed."""
        trace = self.trace
        name = step.name
        try:
            spec = variables.resolve_step(step, self.values)
        except MissingVariableError as exc:
            if cleanup:
                trace.log(f"step {name}: skipped, ${{{exc.name}}} was never extracted")
                return True
            return self.record(step, 0.0, FailureReason.EXTRACT, f"${{{exc.name}}} has no value (used in {exc.path})")
        left = deadline - time.monotonic()
        # The step's own timeout, unless the flow has less left (then the flow cut it short).
        timeout = left / sharing if step.timeout is None else min(step.timeout, left)
        cut_by_flow = timeout != step.timeout
        if timeout <= 0:
            return self.record(step, 0.0, FailureReason.TIMEOUT, "not started: the flow's time was up")
        kind = step.kind
        step_trace = _StepTrace(trace)
        extras = self.extras
        capture = None
        if step.extract and kind == "http":
            capture = ResponseCapture(keep_body=variables.needs_body(step.extract))
            extras = {**extras, RESPONSE_CAPTURE: capture}
        step_ctx = ProbeContext(
            timeout=timeout,
            trace=step_trace,
            guard=self.ctx.guard,
            extras=extras,
            lookup=self.ctx.lookup,
            secrets=self.ctx.secrets,
        )
        trace.log(f"step {name}: {kind}, timeout {timeout:.3g}s")
        try:
            result = await run_probe(self.probers[kind], spec, step_ctx, name=f"flow step {name}")
            reason, detail = result.reason, result.detail
            if reason is FailureReason.TIMEOUT and cut_by_flow:
                detail = f"{detail} (what was left of the flow's {self.ctx.timeout:.3g}s timeout)"
            if reason is None and step.extract:
                reason, detail = self.extract(step, capture, step_trace)
        finally:  # also when cancelled, so a timed-out flow keeps what its steps learned
            for phase, seconds in step_trace.phases.items():
                trace.add_phase(phase, seconds)
            for at, message in step_trace.pending:
                trace.lines.append(f"+{at:.3f}s step {name}: {self.values.redact(message)}")
        return self.record(step, result.duration, reason, detail)

    def extract(
        self, step: FlowStep, capture: ResponseCapture | None, step_trace: ProbeTrace
    ) -> tuple[FailureReason | None, str]:
        """Define the step's variables from its response; the failure if one is missing."""
        if capture is None or capture.headers is None:
            return FailureReason.EXTRACT, "extract needs an http step"
        try:
            found = variables.extract(step.extract, capture.headers, capture.body, capture.charset)
        except ExtractError as exc:
            return FailureReason.EXTRACT, str(exc)
        for item in found:
            self.values.set(item.name, item.text, item.json_value)
            step_trace.log(f"extracted {item.name} ({len(item.text)} chars) from {item.source}")
        return None, ""

    def record(self, step: FlowStep, duration: float, reason: FailureReason | None, detail: str) -> bool:
        """Add the step's result (its detail redacted); True if it succeeded."""
        detail = self.values.redact(detail)
        self.results.append(StepResult(step.name, reason is None, duration, reason, detail))
        if reason is None:
            self.trace.log(f"step {step.name}: succeeded in {duration:.3f}s")
        else:
            self.trace.log(f"step {step.name}: failed ({reason}): {detail}")
        return reason is None

    def result(self) -> ProbeResult:
        """The flow's result: failed with the first failing step's reason, named in the detail."""
        failed = next((step for step in self.results if not step.success), None)
        reason = detail = None
        if failed is not None:
            reason, detail = failed.reason, f"step {failed.name}: {failed.detail}"
            self.trace.log(f"flow failed: {detail}")
        self.trace.samples.clear()  # a flow reports its steps, not the last step's samples
        return self.trace.result(reason, detail or "")
