"""The sandbox's Stripe objects in memory, with Stripe's list envelope and ``expand``.

Objects are kept as the JSON dicts the API returns, one :class:`Collection` per kind, found by
their id prefix when an ``expand[]`` path reaches an id.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from novitrac_sandbox.stripe.errors import StripeError, no_such
from novitrac_sandbox.stripe.params import Params

Object = dict[str, Any]

LIST_PARAMS = ("limit", "starting_after", "ending_before")


class Collection:
    """Objects of one kind by id, in creation order.

    Args:
        kind: the name Stripe's errors use (``customer``, ``checkout.session``).
        prefix: the id prefix of this kind (``cus_``).
    """

    def __init__(self, kind: str, prefix: str) -> None:
        self.kind = kind
        self.prefix = prefix
        self._objects: dict[str, Object] = {}

    def add(self, obj: Object) -> Object:
        """Keep ``obj`` (its ``id`` names it) and return it."""
        self._objects[obj["id"]] = obj
        return obj

    def get(self, object_id: str, param: str = "id") -> Object:
        """The object named ``object_id`` in a path; Stripe's 404 when there is none."""
        obj = self._objects.get(object_id)
        if obj is None:
            raise no_such(self.kind, object_id, param)
        return obj

    def ref(self, object_id: str, param: str) -> Object:
        """The object a body param refers to; Stripe's 400 when there is none."""
        obj = self._objects.get(object_id)
        if obj is None:
            raise no_such(self.kind, object_id, param, status=400)
        return obj

    def find(self, object_id: str) -> Object | None:
        """The object named ``object_id``, if any."""
        return self._objects.get(object_id)

    def newest_first(self, keep: Callable[[Object], bool] = lambda _: True) -> list[Object]:
        """The objects passing ``keep``, newest first (Stripe's list order)."""
        return [obj for obj in reversed(self._objects.values()) if keep(obj)]

    def __len__(self) -> int:
        return len(self._objects)


def page(objects: list[Object], params: Params, url: str) -> Object:
    """Stripe's list envelope over ``objects`` (newest first), honouring ``limit`` and cursors."""
    limit = params.integer("limit", minimum=1)
    if limit is None:
        limit = 10
    if limit > 100:
        raise StripeError(
            400,
            "Invalid limit: must be at most 100",
            code="parameter_invalid_integer",
            param="limit",
        )
    ids = [obj["id"] for obj in objects]
    after = params.string("starting_after")
    before = params.string("ending_before")
    if after is not None:
        start = _position(ids, after, "starting_after") + 1
        window = objects[start : start + limit]
        has_more = start + limit < len(objects)
    elif before is not None:
        end = _position(ids, before, "ending_before")
        window = objects[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        window = objects[:limit]
        has_more = len(objects) > limit
    return {"object": "list", "data": window, "has_more": has_more, "url": url}


def _position(ids: list[str], object_id: str, param: str) -> int:
    try:
        return ids.index(object_id)
    except ValueError:
        raise StripeError(
            400,
            f"Invalid {param}: no object with id {object_id!r} in this list",
            code="resource_missing",
            param=param,
        ) from None


class Store:
    """Every collection, and ``expand`` across them."""

    def __init__(self, collections: Iterable[Collection]) -> None:
        self._by_prefix = sorted(collections, key=lambda c: len(c.prefix), reverse=True)

    def owner(self, object_id: str) -> Collection | None:
        """The collection whose prefix ``object_id`` carries."""
        for collection in self._by_prefix:
            if object_id.startswith(collection.prefix):
                return collection
        return None

    def render(self, obj: Object, expand: Iterable[str] = ()) -> Object:
        """A copy of ``obj`` for a response, with the ``expand`` paths replaced by objects."""
        rendered = copy.deepcopy(obj)
        for path in expand:
            rendered = self._expand(rendered, path.split("."), path)
        return rendered

    def _expand(self, node: Any, path: list[str], full: str) -> Any:
        if isinstance(node, list):
            return [self._expand(item, path, full) for item in node]
        if not path:
            if isinstance(node, str):
                collection = self.owner(node)
                if collection is not None and (found := collection.find(node)) is not None:
                    return copy.deepcopy(found)
            return node
        if not isinstance(node, dict) or path[0] not in node:
            raise StripeError(
                400,
                f"This property cannot be expanded ({full}).",
                code="parameter_invalid_empty",
                param="expand",
            )
        head, *rest = path
        if node[head] is None:
            return node
        node[head] = self._expand(node[head], rest, full)
        return node
