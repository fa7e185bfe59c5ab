"""Run one probe under its deadline and turn timeouts and bugs into results."""

from __future__ import annotations

import asyncio
import logging

from slaprobe.probes.result import (
    FailureReason,
    ForbiddenTargetError,
    ProbeContext,
    ProbeFn,
    ProbeResult,
)

log = logging.getLogger("slaprobe.probes")


async def run_probe(fn: ProbeFn, spec: object, ctx: ProbeContext, *, name: str = "") -> ProbeResult:
    """Run ``fn(spec, ctx)`` within ``ctx.timeout`` seconds; never raises for target faults.

    A timeout keeps the phases recorded so far; a guard refusal becomes ``forbidden``;
    any other exception is a bug: logged with a traceback and reported as ``internal``.
    """
    trace = ctx.trace
    try:
        async with asyncio.timeout(ctx.timeout):
            return await fn(spec, ctx)
    except TimeoutError:
        return _from_trace(ctx, FailureReason.TIMEOUT, f"no answer within {ctx.timeout:.3g}s")
    except ForbiddenTargetError as exc:
        return _from_trace(ctx, FailureReason.FORBIDDEN, str(exc))
    except Exception as exc:  # a bug in a probe must not stop the scheduler
        log.exception("probe %s raised", name or fn.__name__)
        trace.log(f"internal error: {exc!r}")
        return _from_trace(ctx, FailureReason.INTERNAL, f"internal error: {type(exc).__name__}")


def _from_trace(ctx: ProbeContext, reason: FailureReason, detail: str) -> ProbeResult:
    ctx.trace.log(detail)
    return ctx.trace.result(reason, detail)
