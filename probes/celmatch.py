"""CEL expressions over a JSON body (blackbox's ``fail_if_body_json_*_cel``).

Evaluated with ``common-expression-language`` (the Rust ``cel`` crate through PyO3): it
compiles once, runs on plain Python values, and is maintained against the CEL spec. The
expression sees one variable, ``body``: the JSON document, as blackbox declares it.
"""

from __future__ import annotations

import functools
import json
from typing import Any


@functools.lru_cache(maxsize=256)
def compile_cel(expression: str) -> Any:
    """The compiled program; raises ValueError for an expression that does not parse."""
    import cel  # here, not at the top: it costs 0.13 s and its CLI's imports at every start

    try:
        return cel.compile(expression)
    except ValueError:
        raise
    except Exception as exc:  # the binding raises its own types for some parse errors
        raise ValueError(str(exc)) from exc


def evaluate_cel(expression: str, body: bytes) -> tuple[bool | None, str]:
    """``(result, problem)``: the boolean the expression gives for the JSON ``body``, or None
    and why not (not JSON, an evaluation error, a result that is not a boolean)."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        return None, f"body is not JSON: {exc}"
    try:
        result = compile_cel(expression).execute({"body": document})
    except Exception as exc:  # a missing key, a type error: blackbox fails the probe too
        return None, f"CEL evaluation failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if not isinstance(result, bool):
        return None, f"CEL result is not a boolean: {result!r}"[:200]
    return result, ""
