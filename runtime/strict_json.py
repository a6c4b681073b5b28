"""JSON read from an untrusted file, with bounds: what every header rnnedge reads goes through.

`json.loads` alone lets a file choose how deep the parser recurses (RecursionError), how many objects it
builds (a few bytes of "1e1," become a 32-byte float each), how long an integer is (int() refuses 4,300+
digits with ValueError), and which of two duplicate keys wins. `loads` first counts the nesting depth and
the values outside strings, without building anything, then parses with hooks that refuse long numbers,
NaN/Infinity and duplicate keys. Every refusal is `error` (a ValueError subclass the caller names).
Standard library only: runtime/spec.py reads specs with it.
"""

from __future__ import annotations

import json
import re

MAX_NUMBER_CHARS = 32  # longer than any integer rnnedge stores (2**64 has 20 digits) and any float repr (24)

# A quote with the run of backslashes before it (it is escaped when the run is odd); outside strings, also a
# container's bracket. Only single-character repeats: re's memory stays constant (a repeated group would keep
# state per escape, ~130 bytes each), and the lookbehind keeps a long backslash run linear in time.
_QUOTE = re.compile(r'(?<!\\)\\*"')
_QUOTE_OR_BRACKET = re.compile(r'(?<!\\)\\*"|[\[\]{}]')


def loads(text: str, what: str, error: type[ValueError], max_depth: int, max_values: int):
    """Parse `text` (what: the name used in messages), refusing more than max_depth nested containers or
    more than max_values values and keys (a bound on the objects the parse builds)."""
    if not isinstance(text, str):
        raise error(f"{what} must be a JSON string, got {type(text).__name__}")
    _check_shape(text, what, error, max_depth, max_values)
    try:
        return json.loads(text, parse_int=_parse_int(what, error), parse_float=_parse_float(what, error),
                          parse_constant=_parse_constant(what, error), object_pairs_hook=_unique_keys(what, error))
    except json.JSONDecodeError as e:
        raise error(f"{what} is not valid JSON: {e}") from None
    except RecursionError:  # unreachable past _check_shape; kept so no parser limit can escape as itself
        raise error(f"{what} nests too deeply") from None


def _check_shape(text: str, what: str, error: type[ValueError], max_depth: int, max_values: int) -> None:
    """Depth and value count from the brackets, commas and colons outside strings, without building objects.

    Every value or key but the first of its container follows a ',' or ':', so values <= those + containers + 1.
    The loop visits brackets outside strings and quotes (escaped ones too), at most 2 * (max_values + max_depth)
    of them before refusing; a string's other characters are skipped by re, in C.
    """
    limit = 2 * (max_values + max_depth)
    separators = text.count(",") + text.count(":")
    depth = containers = visited = pos = 0
    while (m := _QUOTE_OR_BRACKET.search(text, pos)) is not None:
        visited += 1
        c = text[m.end() - 1]
        if c == '"':
            start = pos = m.end()
            while (q := _QUOTE.search(text, pos)) is not None and (q.end() - q.start() - 1) % 2:
                pos = q.end()  # an escaped quote
                visited += 1
                if visited > limit:
                    break
            if q is None:
                return  # an unterminated string: json.loads says where
            separators -= text.count(",", start, q.start()) + text.count(":", start, q.start())
            pos = q.end()
        elif c in "[{":
            depth += 1
            containers += 1
            if depth > max_depth:
                raise error(f"{what} nests deeper than {max_depth} levels")
            pos = m.end()
        else:
            depth -= 1
            if depth < 0:
                raise error(f"{what} is not valid JSON: a '{c}' closes nothing")
            pos = m.end()
        if visited > limit:
            raise error(f"{what} holds more than {max_values} JSON values")
    if separators + containers + 1 > max_values:
        raise error(f"{what} holds {separators + containers + 1} JSON values, more than the {max_values} "
                    "it can legitimately hold")


def short(value, limit: int = 60) -> str:
    """repr(value), cut to about `limit` characters: a message names what a file holds without repeating it."""
    if isinstance(value, (list, dict)) and len(value) > limit:
        return f"<a {type(value).__name__} of {len(value)}>"
    text = repr(value[:limit] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_int(what: str, error: type[ValueError]):
    def parse(s: str) -> int:
        if len(s) > MAX_NUMBER_CHARS:
            raise error(f"{what} holds a {len(s)}-character integer (at most {MAX_NUMBER_CHARS})")
        return int(s)
    return parse


def _parse_float(what: str, error: type[ValueError]):
    def parse(s: str) -> float:
        if len(s) > MAX_NUMBER_CHARS:
            raise error(f"{what} holds a {len(s)}-character number (at most {MAX_NUMBER_CHARS})")
        return float(s)
    return parse


def _parse_constant(what: str, error: type[ValueError]):
    def parse(s: str):
        raise error(f"{what} holds {s}, which is not JSON (numbers must be finite)")
    return parse


def _unique_keys(what: str, error: type[ValueError]):
    def build(pairs: list[tuple[str, object]]) -> dict:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen: set[str] = set()
            dup = next(k for k, _ in pairs if k in seen or seen.add(k))
            raise error(f"{what} holds the key {short(dup)} twice")
        return d
    return build
