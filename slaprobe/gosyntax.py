"""Foreign syntax read the way Go reads it: durations, base-2 byte sizes, RE2 regular expressions.

blackbox_exporter's module files and Go programs' logs write these; slaprobe's own config
uses Prometheus durations (``units``). The units of both are the one table
``units.UNIT_SECONDS``.

``go_regex`` rewrites the few constructs Python's ``re`` reads differently from RE2
(``\\z``, ``$``, ``[[:alpha:]]``, ``\\Q..\\E``, a repeated ``^``, inline flags in
mid-pattern) and refuses what it cannot express.
"""

from __future__ import annotations

import re
from typing import Any

from slaprobe.units import GO_DURATION_UNITS, UNIT_SECONDS

# ---------------------------------------------------------------------------- durations and sizes

_GO_UNIT = "|".join(sorted(GO_DURATION_UNITS, key=len, reverse=True))  # ms before m
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(" + _GO_UNIT + ")")
_BASE2_UNITS = {"B": 1} | {
    f"{prefix}{suffix}": 1024 ** (i + 1) for i, prefix in enumerate("KMGTPE") for suffix in ("B", "iB")
}
_BASE2_PART = re.compile(r"(\d+\.?\d*|\.\d+)([KMGTPE]i?B|B)")


def parse_go_duration(text: str) -> float:
    """Parse a Go duration (``1m30s``, ``1.5s``, ``500ms``) into seconds; ValueError if not one."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    seconds = go_duration_seconds(body)
    if seconds is None:
        raise ValueError(f"not a duration: {text!r}")
    return sign * seconds


def go_duration_seconds(text: str) -> float | None:
    """Seconds of an unsigned Go duration (``250ms``, ``1m30s``, ``300µs``); None if ``text`` is not one.

    The log parsers' form: no sign, no exception (a line that does not parse is no error).
    """
    total, pos = 0.0, 0
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match[1]) * UNIT_SECONDS[match[2]]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def parse_base2_bytes(value: Any) -> int:
    """Parse blackbox's ``body_size_limit`` (``10MB`` is 10 MiB, as in alecthomas/units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a size: {value!r} (use bytes or a unit such as 512KB or 10MB)")
    text = value.strip()
    if text.isdigit():
        return int(text)
    total, pos = 0.0, 0
    for match in _BASE2_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * _BASE2_UNITS[match[2]]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"not a size: {value!r} (use bytes or a unit such as 512KB or 10MB)")
    return int(total)


# ---------------------------------------------------------------------------- regular expressions (RE2)

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_PERL_CLASSES = set("dDwWsS")
_ASSERTIONS = ("^", "$", "\\A", "\\Z", "\\b", "\\B")
_QUANTIFIER = re.compile(r"[*+?]|\{\d+(,\d*)?\}")
_FLAG_GROUP = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)(\)|:)")


def go_regex(pattern: str) -> str:
    """Rewrite a Go (RE2) regex so Python's ``re`` matches what Go would; ValueError if it can't.

    ``$`` is end of text (Python: ``\\Z``) unless ``m`` is set; ``\\z`` is ``\\Z``;
    ``[[:alpha:]]`` and ``\\Q...\\E`` are expanded; a repeated assertion (``^+``, legal in
    Go) is grouped; an inline ``(?i)`` applies to the rest of its group, as in Go;
    ``\\d \\w \\s \\b`` stay ASCII. Lookarounds and backreferences, which RE2 lacks, are
    refused like blackbox refuses them.
    """
    out = _GoRegex(pattern).translate()
    try:
        re.compile(out)
    except re.error as exc:
        raise ValueError(str(exc)) from None
    return out


class _GoRegex:
    """One pass over a Go pattern, emitting Python syntax."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        self.multiline = any("m" in m[1].split("-")[0] for m in _FLAG_GROUP.finditer(pattern))
        self.ascii = False
        self.last_assertion: int | None = None  # index in out of a just-emitted assertion
        self.scopes: list[list[str]] = [[]]  # per open group: inline flags opened in it

    def translate(self) -> str:
        """The whole pattern in Python syntax."""
        while self.pos < len(self.src):
            self.step()
        self.close_scopes()
        if len(self.scopes) > 1:
            raise ValueError("missing closing )")
        body = "".join(self.out)
        return f"(?a){body}" if self.ascii else body

    def emit(self, text: str, *, assertion: bool = False) -> None:
        """Append output; remember it when it is a zero-width assertion a quantifier may follow."""
        self.out.append(text)
        self.last_assertion = len(self.out) - 1 if assertion else None

    def step(self) -> None:
        """Translate the token at ``pos``."""
        src, i = self.src, self.pos
        char = src[i]
        quantifier = _QUANTIFIER.match(src, i)
        if quantifier and self.last_assertion is not None:
            # Go allows ^+ or \b*; Python refuses to repeat an assertion unless grouped.
            self.out[self.last_assertion] = f"(?:{self.out[self.last_assertion]})"
            self.emit(quantifier[0])
            self.pos = quantifier.end()
            return
        if char == "\\":
            self.escape()
        elif char == "[":
            self.char_class()
        elif char == "(":
            self.group()
        elif char == ")":
            self.close_scopes()
            if len(self.scopes) == 1:
                raise ValueError(f"unexpected ) at position {i}")
            self.scopes.pop()
            self.emit(")")
            self.pos += 1
        elif char == "|":
            flags = self.scopes[-1]
            self.close_scopes()
            self.emit("|")
            for flag in flags:
                self.emit(f"(?{flag}:")
            self.scopes[-1] = flags
            self.pos += 1
        elif char == "^":
            self.emit("^", assertion=True)
            self.pos += 1
        elif char == "$":
            self.emit("$" if self.multiline else "\\Z", assertion=True)
            self.pos += 1
        else:
            self.emit(char)
            self.pos += 1

    def close_scopes(self) -> None:
        """End the inline-flag scopes opened in the current group."""
        for _ in self.scopes[-1]:
            self.emit(")")
        self.scopes[-1] = []

    def escape(self) -> None:
        """A backslash sequence outside a character class."""
        src, i = self.src, self.pos
        if i + 1 >= len(src):
            raise ValueError("trailing backslash at end of expression")
        char = src[i + 1]
        self.pos = i + 2
        if char == "Q":
            end = src.find("\\E", self.pos)
            literal = src[self.pos :] if end < 0 else src[self.pos : end]
            self.pos = len(src) if end < 0 else end + 2
            self.emit(re.escape(literal))
        elif char == "z":
            self.emit("\\Z", assertion=True)
        elif char == "Z":
            raise ValueError("invalid escape sequence: \\Z")
        elif char in "Ab":
            self.ascii |= char == "b"
            self.emit(f"\\{char}", assertion=True)
        elif char == "B":
            self.ascii = True
            self.emit("\\B", assertion=True)
        else:
            self.emit(self.escape_atom(char))

    def escape_atom(self, char: str) -> str:
        """An escape that matches a character (outside or inside a class); pos is past it."""
        src = self.src
        if char in _PERL_CLASSES:
            self.ascii = True
            return f"\\{char}"
        if char in "pP":
            raise ValueError(f"Unicode classes (\\{char}) are not supported")
        if char == "C":
            raise ValueError("\\C (any byte) is not supported")
        if char == "x" and self.pos < len(src) and src[self.pos] == "{":
            end = src.find("}", self.pos)
            if end < 0:
                raise ValueError("invalid escape sequence: \\x{")
            code = int(src[self.pos + 1 : end] or "x", 16)
            self.pos = end + 1
            return f"\\U{code:08x}"
        if char.isdigit():
            digits = re.match(r"[0-7]{0,2}", src[self.pos :])
            octal = char + (digits[0] if digits else "")
            if char != "0" and len(octal) == 1:
                raise ValueError(f"backreferences are not supported: \\{char}")
            if char in "89":
                raise ValueError(f"invalid escape sequence: \\{char}")
            self.pos += len(octal) - 1
            return f"\\x{int(octal, 8):02x}"
        return f"\\{char}"

    def char_class(self) -> None:
        """A bracketed class, with POSIX classes expanded."""
        src = self.src
        i = self.pos + 1
        parts = ["["]
        if i < len(src) and src[i] == "^":
            parts.append("^")
            i += 1
        first = True
        while True:
            if i >= len(src):
                raise ValueError("missing closing ]")
            char = src[i]
            if char == "]" and not first:
                break
            first = False
            if src.startswith("[:", i):
                end = src.find(":]", i + 2)
                name = src[i + 2 : end] if end > 0 else ""
                if name.startswith("^"):
                    raise ValueError(f"negated POSIX classes are not supported: [:{name}:]")
                if name not in _POSIX_CLASSES:
                    raise ValueError(f"invalid character class range: [:{name}:]")
                parts.append(_POSIX_CLASSES[name])
                i = end + 2
            elif char == "\\":
                if i + 1 >= len(src):
                    raise ValueError("trailing backslash at end of expression")
                self.pos = i + 2
                parts.append(self.escape_atom(src[i + 1]))
                i = self.pos
            elif char in "[&~|":
                parts.append(f"\\{char}")  # literal in Go; Python warns about set operations
                i += 1
            else:
                parts.append(char)
                i += 1
        parts.append("]")
        self.pos = i + 1
        self.emit("".join(parts))

    def group(self) -> None:
        """An opening parenthesis: plain, named, or inline flags."""
        src, i = self.src, self.pos
        if not src.startswith("(?", i):
            self.scopes.append([])
            self.emit("(")
            self.pos = i + 1
            return
        flags = _FLAG_GROUP.match(src, i)
        if flags:
            if "U" in flags[1]:
                raise ValueError("the U (ungreedy) flag is not supported")
            if not flags[1].replace("-", ""):
                raise ValueError(f"missing flags in {flags[0]}")
            self.pos = flags.end()
            if flags[2] == ":":
                self.scopes.append([])
                self.emit(f"(?{flags[1]}:")
            else:  # (?i) sets the flag up to the end of the enclosing group
                self.scopes[-1].append(flags[1])
                self.emit(f"(?{flags[1]}:")
            return
        named = re.compile(r"\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>").match(src, i)
        if named:
            self.scopes.append([])
            self.emit(f"(?P<{named[1]}>")
            self.pos = named.end()
            return
        raise ValueError(f"invalid or unsupported Perl syntax: {src[i : i + 4]!r}")
