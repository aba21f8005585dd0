"""Whether a new JSON Schema of an event can replace the old one within the same version.

Producers and consumers of one event type upgrade at different times, so within a version the
schema may only grow by optional properties (and change its wording). Anything that lets a new
producer send what an old consumer rejects, or an old producer send what a new consumer rejects, is
breaking: a removed property, a changed type, format, enum, const, pattern or bound, a new required
property, a property made required or optional, additional properties tightened, an event type
gone. A breaking change ships as a new version of the event (``CallEndedV2``, ``.v2``) instead.

The check is pure: it compares two schemas (or two catalogues of schemas) as plain data, resolving
local ``$ref`` s first, and never fails open on a keyword it does not know (any change to one is
reported).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Schema = Mapping[str, Any]

_ANNOTATIONS = frozenset(
    {
        "$comment",
        "$defs",
        "$id",
        "$schema",
        "default",
        "definitions",
        "deprecated",
        "description",
        "examples",
        "readOnly",
        "title",
        "writeOnly",
    }
)
_CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
_UNIONS = ("anyOf", "oneOf")
_HANDLED = frozenset(
    {
        "type",
        "format",
        "pattern",
        "const",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        *_UNIONS,
        *_CONSTRAINTS,
    }
)


class ChangeKind(StrEnum):
    """The kinds of breaking change the check reports."""

    EVENT_REMOVED = "event removed"
    PROPERTY_REMOVED = "property removed"
    REQUIRED_PROPERTY_ADDED = "required property added"
    PROPERTY_MADE_REQUIRED = "property made required"
    PROPERTY_MADE_OPTIONAL = "property made optional"
    TYPE_CHANGED = "type changed"
    FORMAT_CHANGED = "format changed"
    ENUM_CHANGED = "enum changed"
    CONST_CHANGED = "const changed"
    PATTERN_CHANGED = "pattern changed"
    CONSTRAINT_CHANGED = "constraint changed"
    ADDITIONAL_PROPERTIES_TIGHTENED = "additional properties tightened"
    KEYWORD_CHANGED = "keyword changed"


@dataclass(frozen=True)
class BreakingChange:
    """One change between two schemas that old and new code could not both live with.

    Attributes:
        kind: what sort of change it is.
        location: dotted path of the property concerned (``transcript[].speaker``); empty for the
            schema as a whole.
        detail: a sentence for the person who made the change.
    """

    kind: ChangeKind
    location: str
    detail: str

    def __str__(self) -> str:
        return f"{self.location or '(event)'}: {self.detail}"


def resolve_refs(schema: Schema) -> dict[str, Any]:
    """Inline every local ``$ref`` of a schema, dropping ``$defs``.

    Keywords beside a ``$ref`` are kept and win over the referenced schema's. A reference met again
    inside its own expansion (a recursive model) is left as ``{"$ref": ...}``.

    Args:
        schema: a JSON Schema whose references point inside itself (``#/...``).

    Returns:
        An equivalent schema without local references, except recursive ones.

    Raises:
        ValueError: a reference is not local or points nowhere.
    """

    def expand(node: Any, expanding: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [expand(item, expanding) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        siblings = {key: expand(value, expanding) for key, value in node.items() if key != "$ref"}
        if not isinstance(ref, str):
            return siblings
        if ref in expanding:
            return {"$ref": ref, **siblings}
        target = expand(_pointer(schema, ref), (*expanding, ref))
        if not isinstance(target, dict):
            raise ValueError(f"$ref {ref!r} does not point at a schema")
        return {**target, **siblings}

    resolved: dict[str, Any] = expand(schema, ())
    resolved.pop("$defs", None)
    resolved.pop("definitions", None)
    return resolved


def _pointer(root: Schema, ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local references are supported, not {ref!r}")
    node: Any = root
    for token in ref[1:].split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"$ref {ref!r} points nowhere")
        node = node[key]
    return node


def find_breaking_changes(old: Schema, new: Schema) -> list[BreakingChange]:
    """Every breaking change from one schema of an event to the next.

    Args:
        old: the schema consumers and producers were built against.
        new: the schema proposed to replace it under the same event type.

    Returns:
        The breaking changes, in schema order; empty when ``new`` is additive.
    """
    changes: list[BreakingChange] = []
    _compare(resolve_refs(old), resolve_refs(new), "", changes)
    return changes


def find_catalogue_breaking_changes(
    old: Mapping[str, Schema], new: Mapping[str, Schema]
) -> dict[str, list[BreakingChange]]:
    """Breaking changes between two catalogues of schemas, by event type.

    Args:
        old: schemas by event type (or other schema name) before the change.
        new: schemas by the same names after it; a name missing here is a removed event.

    Returns:
        The event types with at least one breaking change, sorted, each with its changes.
    """
    found: dict[str, list[BreakingChange]] = {}
    for name in sorted(old):
        if name not in new:
            found[name] = [
                BreakingChange(ChangeKind.EVENT_REMOVED, "", f"event type {name} no longer exists")
            ]
            continue
        changes = find_breaking_changes(old[name], new[name])
        if changes:
            found[name] = changes
    return found


def _strip(node: Any) -> Any:
    """The node without annotations, and with a lone ``allOf`` member merged into it."""
    if not isinstance(node, Mapping):
        return node
    stripped = {
        key: value
        for key, value in node.items()
        if key not in _ANNOTATIONS and not key.startswith("x-")
    }
    all_of = stripped.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
        del stripped["allOf"]
        stripped = {**_strip(all_of[0]), **stripped}
    return stripped


def _compare(old: Any, new: Any, at: str, out: list[BreakingChange]) -> None:
    old, new = _strip(old), _strip(new)
    if old == new:
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        out.append(BreakingChange(ChangeKind.TYPE_CHANGED, at, f"schema changed from {old!r}"))
        return
    if any(key in node for node in (old, new) for key in _UNIONS):
        _compare_unions(old, new, at, out)
        return
    old_types, new_types = _types(old), _types(new)
    if old_types != new_types:
        detail = f"type changed from {_describe(old_types)} to {_describe(new_types)}"
        out.append(BreakingChange(ChangeKind.TYPE_CHANGED, at, detail))
        return
    for key, kind in (
        ("format", ChangeKind.FORMAT_CHANGED),
        ("pattern", ChangeKind.PATTERN_CHANGED),
        ("const", ChangeKind.CONST_CHANGED),
    ):
        if old.get(key) != new.get(key):
            detail = f"{key} changed from {old.get(key)!r} to {new.get(key)!r}"
            out.append(BreakingChange(kind, at, detail))
    _compare_enums(old.get("enum"), new.get("enum"), at, out)
    for key in _CONSTRAINTS:
        if old.get(key) != new.get(key):
            detail = f"{key} changed from {old.get(key)!r} to {new.get(key)!r}"
            out.append(BreakingChange(ChangeKind.CONSTRAINT_CHANGED, at, detail))
    _compare_objects(old, new, at, out)
    _compare_arrays(old, new, at, out)
    for key in sorted((old.keys() | new.keys()) - _HANDLED):
        if old.get(key) != new.get(key):
            detail = f"{key} changed from {old.get(key)!r} to {new.get(key)!r}"
            out.append(BreakingChange(ChangeKind.KEYWORD_CHANGED, at, detail))


def _types(node: Mapping[str, Any]) -> frozenset[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(str(item) for item in declared)
    return frozenset()


def _describe(types: frozenset[str]) -> str:
    return " | ".join(sorted(types)) if types else "any"


def _signature(node: Any) -> str:
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        return f"$ref {node['$ref']}"
    if isinstance(node, Mapping):
        return _describe(_types(node))
    return repr(node)


def _compare_unions(
    old: dict[str, Any], new: dict[str, Any], at: str, out: list[BreakingChange]
) -> None:
    """Pair the members of two unions by type and compare each pair.

    A node that is not a union counts as a union of one, so ``string`` becoming ``string | null``
    (a field made nullable) is a type change.
    """
    old_members, old_rest = _union_members(old)
    new_members, new_rest = _union_members(new)
    old_signatures = sorted(_signature(_strip(member)) for member in old_members)
    new_signatures = sorted(_signature(_strip(member)) for member in new_members)
    if old_signatures != new_signatures:
        detail = f"type changed from {' | '.join(old_signatures)} to {' | '.join(new_signatures)}"
        out.append(BreakingChange(ChangeKind.TYPE_CHANGED, at, detail))
        return
    remaining = list(new_members)
    for member in old_members:
        signature = _signature(_strip(member))
        match = next(m for m in remaining if _signature(_strip(m)) == signature)
        remaining.remove(match)
        _compare(member, match, at, out)
    if old_rest or new_rest:
        _compare(old_rest, new_rest, at, out)


def _union_members(node: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The members of a union and the keywords beside them; ``type: [a, b]`` counts as a union."""
    for key in _UNIONS:
        if key in node:
            rest = {k: v for k, v in node.items() if k != key}
            return list(node[key]), rest
    types = _types(node)
    if len(types) > 1:
        return [{**node, "type": kind} for kind in sorted(types)], {}
    return [node], {}


def _compare_enums(old: Any, new: Any, at: str, out: list[BreakingChange]) -> None:
    if old == new:
        return
    if old is None or new is None:
        detail = "enum added" if old is None else "enum removed"
        out.append(BreakingChange(ChangeKind.ENUM_CHANGED, at, detail))
        return
    old_values = {json.dumps(value, sort_keys=True) for value in old}
    new_values = {json.dumps(value, sort_keys=True) for value in new}
    parts = []
    if old_values - new_values:
        parts.append(f"values removed: {', '.join(sorted(old_values - new_values))}")
    if new_values - old_values:
        parts.append(f"values added: {', '.join(sorted(new_values - old_values))}")
    if parts:
        detail = f"enum changed ({'; '.join(parts)})"
        out.append(BreakingChange(ChangeKind.ENUM_CHANGED, at, detail))


def _child(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def _compare_objects(
    old: dict[str, Any], new: dict[str, Any], at: str, out: list[BreakingChange]
) -> None:
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    old_required = set(old.get("required", ()))
    new_required = set(new.get("required", ()))
    for name, old_prop in old_props.items():
        where = _child(at, name)
        if name not in new_props:
            out.append(BreakingChange(ChangeKind.PROPERTY_REMOVED, where, "property removed"))
            continue
        if name in old_required and name not in new_required:
            detail = "made optional: consumers built on the old schema require it"
            out.append(BreakingChange(ChangeKind.PROPERTY_MADE_OPTIONAL, where, detail))
        elif name in new_required and name not in old_required:
            detail = "made required: producers built on the old schema may omit it"
            out.append(BreakingChange(ChangeKind.PROPERTY_MADE_REQUIRED, where, detail))
        _compare(old_prop, new_props[name], where, out)
    for name in new_props:
        if name not in old_props and name in new_required:
            detail = "new required property: producers built on the old schema omit it"
            out.append(BreakingChange(ChangeKind.REQUIRED_PROPERTY_ADDED, _child(at, name), detail))
    _compare_additional(old.get("additionalProperties"), new.get("additionalProperties"), at, out)


def _compare_additional(old: Any, new: Any, at: str, out: list[BreakingChange]) -> None:
    """``additionalProperties`` may open up (consumers ignore what they do not know), not tighten.

    Typed values (``dict[str, int]``) are a type like any other: their schema may not change.
    """
    old_open = old is None or old is True or old == {}
    new_open = new is None or new is True or new == {}
    if old == new or (old_open and new_open) or old is False:
        return
    if new is False or old_open:
        detail = f"additionalProperties tightened from {old!r} to {new!r}"
        out.append(BreakingChange(ChangeKind.ADDITIONAL_PROPERTIES_TIGHTENED, at, detail))
    elif new_open:
        detail = f"values of additional properties widened from {old!r} to any"
        out.append(BreakingChange(ChangeKind.TYPE_CHANGED, _child(at, "*"), detail))
    else:
        _compare(old, new, _child(at, "*"), out)


def _compare_arrays(
    old: dict[str, Any], new: dict[str, Any], at: str, out: list[BreakingChange]
) -> None:
    if "items" in old or "items" in new:
        _compare(old.get("items", {}), new.get("items", {}), f"{at}[]", out)
    old_prefix: list[Any] = old.get("prefixItems", [])
    new_prefix: list[Any] = new.get("prefixItems", [])
    if len(old_prefix) != len(new_prefix):
        detail = f"tuple length changed from {len(old_prefix)} to {len(new_prefix)}"
        out.append(BreakingChange(ChangeKind.TYPE_CHANGED, at, detail))
        return
    for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=True)):
        _compare(old_item, new_item, f"{at}[{index}]", out)
