"""Edit one directive of a ``redis.conf`` text and keep every other byte.

The runbook's ConfigMap patches replace the whole ``redis.conf`` string (and
two of them silently change ``maxmemory`` and drop ``appendonly``). Here a
change touches only the value of the directive being set: comments, blank
lines, order, other directives, indentation, line endings and the trailing
newline stay exactly as they were.

Parsing follows redis (``sdssplitargs``): a line is split into arguments at
whitespace, ``"..."`` and ``'...'`` quote an argument, lines starting with
``#`` are comments, and directive names are case-insensitive.

Values are what ``CONFIG GET`` shows: the arguments joined by one space, so
``save "3600 1"`` and ``save 3600 1`` both read as ``3600 1``.

Duplicates: redis applies every line in order, so for an ordinary directive
the LAST occurrence wins. ``set_directive`` replaces that one in place and
leaves earlier ones untouched (they are inert, and we promise to change one
line only); ``directive_lines`` lets a preview point them out. Cumulative
directives (``save``, ``rename-command``...) add up instead of overriding, so
editing one of several lines would not set the value: that is refused.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from bot.errors import UsageError

# Directives redis accumulates line after line instead of overriding.
CUMULATIVE = frozenset(
    {
        "save",
        "include",
        "loadmodule",
        "rename-command",
        "client-output-buffer-limit",
        "user",
        "sentinel",
    }
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}


@dataclass(frozen=True)
class _Directive:
    """One directive line: where it is and where its value starts and ends."""

    index: int  # line index in the split text
    name: str  # lower-case
    args: tuple[str, ...]  # parsed value arguments
    value_start: int  # offset of the first value argument in the line body
    value_end: int  # offset just after the last value argument
    quote: str  # the quote of a single quoted argument, else ""


def get_directive(text: str, name: str) -> str | None:
    """The effective value of directive ``name``, as ``CONFIG GET`` would show it; None if absent.

    The last occurrence wins, except for cumulative directives (``save``...),
    whose lines add up after the last empty one (``save ""`` resets).
    """
    key = _checked_name(name)
    found = _find(text, key)
    if not found:
        return None
    if key not in CUMULATIVE:
        return " ".join(found[-1].args)
    values: list[str] = []
    for directive in found:
        joined = " ".join(a for a in directive.args if a)
        values = [*values, joined] if joined else []
    return " ".join(values)


def directive_lines(text: str, name: str) -> list[int]:
    """1-based line numbers of every occurrence of ``name`` (previews warn about duplicates)."""
    return [d.index + 1 for d in _find(text, _checked_name(name))]


def directive_names(text: str) -> list[str]:
    """Every directive name ``text`` sets (lower-case, first-seen order, each once)."""
    names: dict[str, None] = {}
    for index, line in enumerate(text.splitlines()):
        directive = _parse_line(index, line)
        if directive is not None:
            names.setdefault(directive.name, None)
    return list(names)


def effective_settings(text: str) -> dict[str, str]:
    """Directive name -> effective value (``get_directive``) for every directive in ``text``."""
    return {name: get_directive(text, name) or "" for name in directive_names(text)}


# Redis's memtoll(): "k"/"m"/"g" are powers of 1000, "kb"/"mb"/"gb" of 1024, no fractions.
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
_MEMORY = re.compile(r"([0-9]{1,19})([A-Za-z]{0,2})", re.ASCII)


def conf_bytes(value: str) -> int | None:
    """A redis.conf memory value in bytes, read as Redis reads it; None when Redis would not.

    Not ``bot.units.parse_size``: in redis.conf ``64m`` is 64,000,000 bytes and ``64mb``
    is 64 MiB, ``0`` is valid (no limit), and ``1.5gb`` is refused.
    """
    match = _MEMORY.fullmatch(value.strip())
    if match is None or match.group(2).lower() not in _MEMORY_UNITS:
        return None
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]


def set_directive(text: str, name: str, value: str) -> str:
    """``text`` with directive ``name`` set to ``value``, every other byte unchanged.

    Replaces the value of the last occurrence in place (keeping the name's
    spelling, the spacing and the quoting style), or appends ``name value``
    as a new last line when the directive is absent.
    """
    key = _checked_name(name)
    _check_value(key, value)
    found = _find(text, key)
    if key in CUMULATIVE and len(found) > 1:
        raise UsageError(
            f"redis.conf has {len(found)} {key!r} lines and redis adds them up: "
            "editing one would not set the value; edit the ConfigMap by hand"
        )
    if not found:
        return _append(text, f"{name} {_quote(value, '')}")
    lines = text.splitlines(keepends=True)
    last = found[-1]
    body, ending = _split_ending(lines[last.index])
    new_value = _quote(value, last.quote)
    lines[last.index] = body[: last.value_start] + new_value + body[last.value_end :] + ending
    return "".join(lines)


def set_directives(text: str, values: dict[str, str]) -> str:
    """Apply ``set_directive`` for each item in order (absent ones are appended in that order)."""
    for name, value in values.items():
        text = set_directive(text, name, value)
    return text


def diff_lines(before: str, after: str) -> list[str]:
    """A small human preview of what changed: ``- old line`` / ``+ new line``, no context.

    Empty when nothing changed. Each hunk starts with ``@@ line N`` so a reader
    can find it in a long file.
    """
    old, new = before.splitlines(), after.splitlines()
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        out.append(f"@@ line {j1 + 1}")
        out.extend(f"- {line}" for line in old[i1:i2])
        out.extend(f"+ {line}" for line in new[j1:j2])
    return out


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"invalid redis.conf directive name {name!r}")
    return name.lower()


def _check_value(name: str, value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise UsageError(f"invalid value for redis.conf {name!r}: it must be a single line")


def _find(text: str, key: str) -> list[_Directive]:
    found = []
    for index, line in enumerate(text.splitlines(keepends=True)):
        directive = _parse_line(index, _split_ending(line)[0])
        if directive is not None and directive.name == key:
            found.append(directive)
    return found


def _parse_line(index: int, body: str) -> _Directive | None:
    stripped = body.lstrip()
    if not stripped or stripped.startswith("#"):
        return None
    tokens = _tokens(body)
    if tokens is None:
        return None  # unbalanced quotes: redis itself refuses such a line
    name = tokens[0][0].lower()
    values = tokens[1:]
    if not values:
        end = tokens[0][2]
        return _Directive(index, name, (), end, end, "")
    quote = body[values[0][1]] if len(values) == 1 and body[values[0][1]] in "\"'" else ""
    args = tuple(value for value, _, _ in values)
    return _Directive(index, name, args, values[0][1], values[-1][2], quote)


def _tokens(body: str) -> list[tuple[str, int, int]] | None:
    """Arguments of a line as (value, start, end), like redis's sdssplitargs; None if malformed."""
    tokens: list[tuple[str, int, int]] = []
    pos, size = 0, len(body)
    while True:
        while pos < size and body[pos].isspace():
            pos += 1
        if pos >= size:
            return tokens
        token = _token(body, pos)
        if token is None:
            return None
        tokens.append(token)
        pos = token[2]


def _token(body: str, start: int) -> tuple[str, int, int] | None:
    chars: list[str] = []
    pos, size, quote = start, len(body), ""
    while pos < size:
        char = body[pos]
        if quote:
            if char == quote:
                if pos + 1 < size and not body[pos + 1].isspace():
                    return None  # redis: a closing quote must be followed by a space
                return "".join(chars), start, pos + 1
            if char == "\\" and pos + 1 < size:
                pos, char = _unescape(body, pos, quote)
            chars.append(char)
        elif char.isspace():
            break
        elif char in "\"'":
            quote = char
        else:
            chars.append(char)
        pos += 1
    return None if quote else ("".join(chars), start, pos)


def _unescape(body: str, pos: int, quote: str) -> tuple[int, str]:
    """Decode the escape at ``pos``; returns the position of its last char and the char."""
    nxt = body[pos + 1]
    if quote == "'":
        return (pos + 1, "'") if nxt == "'" else (pos, "\\")
    hexa = body[pos + 2 : pos + 4]
    if nxt == "x" and len(hexa) == 2 and all(c in "0123456789abcdefABCDEF" for c in hexa):
        return pos + 3, chr(int(hexa, 16))
    return pos + 1, _ESCAPES.get(nxt, nxt)


def _quote(value: str, style: str) -> str:
    """Write ``value`` bare (its spaces separate arguments) unless it needs or had quotes."""
    needs = not value or any(c in "\"'\\" or not c.isprintable() for c in value)
    if style == "'" and "'" not in value and "\\" not in value:
        return f"'{value}'"
    if not style and not needs:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped) + '"'


def _split_ending(line: str) -> tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body) :]


def _append(text: str, line: str) -> str:
    if not text:
        return line + "\n"
    ending = "\r\n" if "\r\n" in text else "\n"
    if text.endswith(("\n", "\r")):
        return text + line + ending
    # The file had no trailing newline; keep it that way.
    return text + ending + line
