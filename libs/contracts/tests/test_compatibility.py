from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any, ClassVar

import pytest
from pydantic import Field

from novitrac_contracts import Event
from novitrac_contracts.compatibility import (
    BreakingChange,
    ChangeKind,
    find_breaking_changes,
    find_catalogue_breaking_changes,
    resolve_refs,
)
from novitrac_contracts.schemas import current_schemas, schema_of
from novitrac_contracts.telephony import CallCreated, CallEnded
from novitrac_contracts.voice import ConversationEnded

CATALOGUE = current_schemas()


def changed(model: type[Event], edit: Any) -> list[tuple[ChangeKind, str]]:
    """The breaking changes from a real catalogue schema to a copy altered by ``edit``."""
    old = schema_of(model)
    new = copy.deepcopy(old)
    edit(new)
    return [(change.kind, change.location) for change in find_breaking_changes(old, new)]


def add_property(schema: dict[str, Any], name: str, *, required: bool) -> None:
    schema["properties"][name] = {"type": "integer", "title": name}
    if required:
        schema["required"].append(name)


class TestUnchanged:
    @pytest.mark.parametrize("name", sorted(CATALOGUE))
    def test_every_catalogue_schema_is_compatible_with_itself(self, name: str) -> None:
        assert find_breaking_changes(CATALOGUE[name], copy.deepcopy(CATALOGUE[name])) == []

    def test_catalogue_is_compatible_with_itself(self) -> None:
        assert find_catalogue_breaking_changes(CATALOGUE, current_schemas()) == {}


class TestBreaking:
    def test_removed_property(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            del s["properties"]["duration_s"]
            s["required"].remove("duration_s")

        assert changed(CallEnded, edit) == [(ChangeKind.PROPERTY_REMOVED, "duration_s")]

    def test_removed_optional_property(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            del s["properties"]["ended_reason"]

        assert changed(CallEnded, edit) == [(ChangeKind.PROPERTY_REMOVED, "ended_reason")]

    def test_changed_type(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["properties"]["duration_s"] = {"type": "number", "minimum": 0}

        assert changed(CallEnded, edit) == [(ChangeKind.TYPE_CHANGED, "duration_s")]

    def test_changed_format(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            del s["properties"]["call_id"]["format"]

        assert changed(CallEnded, edit) == [(ChangeKind.FORMAT_CHANGED, "call_id")]

    def test_changed_pattern(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["properties"]["to_number"]["pattern"] = r"^\+?[0-9]+$"

        assert changed(CallCreated, edit) == [(ChangeKind.PATTERN_CHANGED, "to_number")]

    def test_changed_bound(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["properties"]["duration_s"]["minimum"] = 1

        assert changed(CallEnded, edit) == [(ChangeKind.CONSTRAINT_CHANGED, "duration_s")]

    def test_narrowed_inline_enum(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["properties"]["status"]["enum"].remove("canceled")

        assert changed(CallEnded, edit) == [(ChangeKind.ENUM_CHANGED, "status")]

    def test_narrowed_enum_behind_a_ref(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["$defs"]["AnsweredBy"]["enum"].remove("fax")

        assert changed(CallEnded, edit) == [(ChangeKind.ENUM_CHANGED, "answered_by")]

    def test_widened_enum_behind_a_ref(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["$defs"]["CallDirection"]["enum"].append("internal")

        assert changed(CallEnded, edit) == [(ChangeKind.ENUM_CHANGED, "direction")]

    def test_changed_type_in_a_nested_model(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["$defs"]["TranscriptLine"]["properties"]["offset_s"]["type"] = "string"

        assert changed(ConversationEnded, edit) == [
            (ChangeKind.TYPE_CHANGED, "transcript[].offset_s")
        ]

    def test_new_required_property(self) -> None:
        assert changed(CallEnded, lambda s: add_property(s, "price", required=True)) == [
            (ChangeKind.REQUIRED_PROPERTY_ADDED, "price")
        ]

    def test_optional_property_made_required(self) -> None:
        assert changed(CallEnded, lambda s: s["required"].append("answered_by")) == [
            (ChangeKind.PROPERTY_MADE_REQUIRED, "answered_by")
        ]

    def test_required_property_made_optional(self) -> None:
        assert changed(CallEnded, lambda s: s["required"].remove("ended_at")) == [
            (ChangeKind.PROPERTY_MADE_OPTIONAL, "ended_at")
        ]

    def test_property_made_nullable(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["properties"]["ended_at"] = {"anyOf": [s["properties"]["ended_at"], {"type": "null"}]}

        assert changed(CallEnded, edit) == [(ChangeKind.TYPE_CHANGED, "ended_at")]

    def test_changed_const(self) -> None:
        old = {"type": "object", "properties": {"v": {"const": 1, "type": "integer"}}}
        new = {"type": "object", "properties": {"v": {"const": 2, "type": "integer"}}}

        assert [c.kind for c in find_breaking_changes(old, new)] == [ChangeKind.CONST_CHANGED]

    def test_additional_properties_tightened(self) -> None:
        assert changed(CallEnded, lambda s: s.update(additionalProperties=False)) == [
            (ChangeKind.ADDITIONAL_PROPERTIES_TIGHTENED, "")
        ]

    def test_unknown_keyword_changed(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["properties"]["ended_reason"]["anyOf"][0]["contentEncoding"] = "base64"

        assert changed(CallEnded, edit) == [(ChangeKind.KEYWORD_CHANGED, "ended_reason")]

    def test_dropped_event(self) -> None:
        remaining = {k: v for k, v in CATALOGUE.items() if k != "telephony.call.ended.v1"}

        found = find_catalogue_breaking_changes(CATALOGUE, remaining)

        assert list(found) == ["telephony.call.ended.v1"]
        assert [c.kind for c in found["telephony.call.ended.v1"]] == [ChangeKind.EVENT_REMOVED]

    def test_every_change_is_reported(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            del s["properties"]["agent_id"]
            s["required"].remove("agent_id")
            s["properties"]["duration_s"]["type"] = "string"
            add_property(s, "price", required=True)

        assert sorted(changed(CallEnded, edit)) == sorted(
            [
                (ChangeKind.PROPERTY_REMOVED, "agent_id"),
                (ChangeKind.TYPE_CHANGED, "duration_s"),
                (ChangeKind.REQUIRED_PROPERTY_ADDED, "price"),
            ]
        )


class TestAdditive:
    def test_new_optional_property(self) -> None:
        assert changed(CallEnded, lambda s: add_property(s, "price", required=False)) == []

    def test_new_optional_property_in_a_nested_model(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            add_property(s["$defs"]["TranscriptLine"], "confidence", required=False)

        assert changed(ConversationEnded, edit) == []

    def test_new_event(self) -> None:
        grown = {**CATALOGUE, "telephony.call.transferred.v1": CATALOGUE["telephony.call.ended.v1"]}

        assert find_catalogue_breaking_changes(CATALOGUE, grown) == {}

    def test_new_wording(self) -> None:
        def edit(s: dict[str, Any]) -> None:
            s["description"] = "Emitted when a call is over."
            s["properties"]["duration_s"]["description"] = "Billable seconds."
            s["properties"]["duration_s"]["title"] = "Duration"
            s["$defs"]["AnsweredBy"]["description"] = "Who picked up."
            s["x-owner"] = "telephony"

        assert changed(CallEnded, edit) == []

    def test_additional_properties_opened(self) -> None:
        old = {"type": "object", "additionalProperties": False}

        assert find_breaking_changes(old, {"type": "object"}) == []

    def test_equivalent_spellings_of_a_nullable_type(self) -> None:
        old = {"properties": {"v": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
        new = {"properties": {"v": {"type": ["null", "string"]}}}

        assert find_breaking_changes(old, new) == []

    def test_inlined_definition(self) -> None:
        old = schema_of(CallEnded)
        new = resolve_refs(old)

        assert "$defs" not in new
        assert find_breaking_changes(old, new) == []


class Outcome(StrEnum):
    WON = "won"
    LOST = "lost"


class DealClosed(Event):
    """Emitted when a deal closes."""

    event_type: ClassVar[str] = "sales.deal.closed.v1"
    deal_id: str
    amount: int = Field(ge=0)
    outcome: Outcome


class TestWithModels:
    """The check applied to schemas pydantic generates from two versions of one event class."""

    def test_additive_model_change(self) -> None:
        class DealClosedWithCloser(DealClosed):
            """Emitted when a deal closes, with who closed it."""

            closed_by: str | None = None

        assert find_breaking_changes(schema_of(DealClosed), schema_of(DealClosedWithCloser)) == []

    def test_breaking_model_change(self) -> None:
        class Won(StrEnum):
            WON = "won"

        class DealClosedReworked(Event):
            """Emitted when a deal closes."""

            event_type: ClassVar[str] = "sales.deal.closed.v1"
            deal_id: int
            amount: int = Field(ge=0)
            outcome: Won
            currency: str

        found = find_breaking_changes(schema_of(DealClosed), schema_of(DealClosedReworked))

        assert [(c.kind, c.location) for c in found] == [
            (ChangeKind.TYPE_CHANGED, "deal_id"),
            (ChangeKind.ENUM_CHANGED, "outcome"),
            (ChangeKind.REQUIRED_PROPERTY_ADDED, "currency"),
        ]
        assert str(found[1]) == 'outcome: enum changed (values removed: "lost")'


class TestResolveRefs:
    def test_recursive_reference_is_left_in_place(self) -> None:
        schema = {
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {"next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
                }
            },
            "$ref": "#/$defs/Node",
        }

        resolved = resolve_refs(schema)

        assert "$defs" not in resolved
        assert resolved["properties"]["next"]["anyOf"][0] == {"$ref": "#/$defs/Node"}
        assert find_breaking_changes(schema, copy.deepcopy(schema)) == []

    def test_sibling_keywords_win(self) -> None:
        schema = {
            "$defs": {"Id": {"type": "string", "description": "an id"}},
            "properties": {"v": {"$ref": "#/$defs/Id", "description": "the v"}},
        }

        assert resolve_refs(schema)["properties"]["v"] == {"type": "string", "description": "the v"}

    @pytest.mark.parametrize("ref", ["other.json#/$defs/X", "#/$defs/Missing"])
    def test_unresolvable_reference(self, ref: str) -> None:
        with pytest.raises(ValueError, match="ref"):
            resolve_refs({"properties": {"v": {"$ref": ref}}})


def test_a_change_reads_as_a_sentence() -> None:
    change = BreakingChange(ChangeKind.PROPERTY_REMOVED, "duration_s", "property removed")

    assert str(change) == "duration_s: property removed"
    assert str(BreakingChange(ChangeKind.EVENT_REMOVED, "", "gone")) == "(event): gone"
