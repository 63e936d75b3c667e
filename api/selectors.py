"""Label and field selectors: parsing Kubernetes' selector syntax and matching.

Label selectors: `app=web`, `app==web`, `tier!=db`, `env in (prod,dev)`,
`env notin (test)`, `release` (exists), `!release` (does not exist), joined
by commas. Field selectors: `spec.nodeName=n1,status.phase!=Failed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(
    r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$"
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt") and present:
            try:
                n, bound = int(str(value)), int(self.values[0])
            except ValueError:
                return False
            return n > bound if self.op == "gt" else n < bound
        return False

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        if self.op in ("gt", "lt"):
            return f"{self.key}{'>' if self.op == 'gt' else '<'}{self.values[0]}"
        return f"{self.key}{self.op}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False  # a nil selector matches nothing

    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


def _check_key(key: str) -> None:
    if not key or not _KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise ValueError(
            f"invalid label key {key!r}: name part must consist of alphanumeric "
            "characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("found ')', expected: identifier")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if depth != 0:
        raise ValueError("found '', expected: ')'")
    parts.append(current)
    return parts


_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP = re.compile(r"^\s*([^!=<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)\s*$")


def parse_label_selector(text: str) -> LabelSelector:
    """Kubernetes' label selector syntax; ValueError says what is wrong."""
    if not text.strip():
        return EVERYTHING
    requirements = []
    for part in _split_top(text):
        part = part.strip()
        if not part:
            raise ValueError("found ',', expected: !, identifier, or 'end of string'")
        if m := _SET.match(part):
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in inner.split(",") if v.strip())
            if not values and op == "in":
                raise ValueError(f"for 'in', 'notin' operators, values set can't be empty: {part}")
            _check_key(key)
            requirements.append(Requirement(key, op, values))
        elif part.startswith("!"):
            key = part[1:].strip()
            _check_key(key)
            requirements.append(Requirement(key, "!"))
        elif m := _CMP.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3)
            _check_key(key)
            if op in (">", "<"):
                if not value.lstrip("-").isdigit():
                    raise ValueError(
                        f"for 'Gt', 'Lt' operators, the value must be an integer: {part}"
                    )
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            else:
                requirements.append(Requirement(key, "=" if op in ("=", "==") else "!=", (value,)))
        elif re.match(r"^[^\s=!<>(),]+$", part):
            _check_key(part)
            requirements.append(Requirement(part, "exists"))
        else:
            raise ValueError(f"couldn't parse the selector string {text!r}")
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


def selector_from_dict(sel: dict[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector as a selector: None matches nothing, {} everything."""
    if sel is None:
        return NOTHING
    requirements = [
        Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()
    ]
    for expr in sel.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key", "")
        values = tuple(str(v) for v in expr.get("values") or [])
        mapped = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(op)
        if mapped is None:
            raise ValueError(f"{op!r} is not a valid label selector operator")
        requirements.append(Requirement(key, mapped, values))
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


def selector_string(sel: dict[str, Any] | None) -> str:
    return str(selector_from_dict(sel)) if sel is not None else ""


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, str, str], ...] = ()

    def matches(self, fields: dict[str, str]) -> bool:
        for field, op, value in self.requirements:
            have = fields.get(field, "")
            if (op == "=") != (have == value):
                return False
        return True

    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{v}" for f, op, v in self.requirements)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str) -> FieldSelector:
    """`a=b,c!=d`; backslash escapes `,`, `=` and `!` inside values, as Kubernetes allows."""
    if not text.strip():
        return FieldSelector()
    requirements = []
    for part in re.split(r"(?<!\\),", text):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)(.*)$", part)
        if not m:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{part}'")
        op = "!=" if m.group(2) == "!=" else "="
        requirements.append((m.group(1), op, _unescape(m.group(3).strip())))
    return FieldSelector(tuple(requirements))
