"""Twin documents: patching desired/reported properties and tags the way IoT Hub does.

Theory of operation: a PATCH is a JSON merge patch (RFC 7386) — objects merge key by
key and ``null`` removes a key; a PUT replaces tags and desired properties wholesale.
Each change of desired (reported) properties bumps the desired (reported) version, each
change at all bumps the twin version and gives a new etag. Keys starting with ``$`` are
reserved (``$version``, ``$metadata``) and refused in input, as are documents deeper
than IoT Hub allows.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from wellguard.errors import InvalidInputError
from wellguard.model.twin import Twin

__all__ = [
    "MAX_DEPTH",
    "apply_reported_patch",
    "apply_twin_patch",
    "merge_patch",
    "replace_twin_document",
    "validate_property_document",
]

MAX_DEPTH = 10  # IoT Hub allows 10 levels of nesting in tags and properties
MAX_DOCUMENT_BYTES = 32 * 1024  # IoT Hub's limit for each of tags, desired and reported


def validate_property_document(doc: Any, *, field: str, allow_null: bool) -> dict[str, Any]:
    """Check a tags/desired/reported document: an object, no ``$`` keys, bounded depth."""
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{field} must be a JSON object", field=field)
    _check_node(doc, field=field, depth=1, allow_null=allow_null)
    if len(json.dumps(doc, separators=(",", ":"))) > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(f"{field} is larger than {MAX_DOCUMENT_BYTES} bytes", field=field)
    return doc


def _check_node(node: dict[str, Any], *, field: str, depth: int, allow_null: bool) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInputError(f"{field} is nested deeper than {MAX_DEPTH} levels", field=field)
    for key, value in node.items():
        if not key or key.startswith("$") or any(c in key for c in ". ") or len(key) > 128:
            raise InvalidInputError(
                f"{field}: property name {key!r} is not allowed "
                "(1-128 characters, no '$' prefix, no '.' or space)",
                field=field,
            )
        if value is None and not allow_null:
            raise InvalidInputError(f"{field}.{key} may not be null here", field=field)
        if isinstance(value, dict):
            _check_node(value, field=f"{field}.{key}", depth=depth + 1, allow_null=allow_null)


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch of objects; returns a new dict."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = value
    return result


def _strip_reserved(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc  # not an object: validate_property_document refuses it precisely
    return {k: v for k, v in doc.items() if not k.startswith("$")}


def apply_twin_patch(twin: Twin, *, tags: Any | None, desired: Any | None, new_etag: str) -> Twin:
    """The twin after a service PATCH of tags and/or desired properties."""
    new_tags = twin.tags
    if tags is not None:
        new_tags = merge_patch(
            twin.tags, validate_property_document(tags, field="tags", allow_null=True)
        )
    new_desired = twin.desired
    desired_version = twin.desired_version
    if desired is not None:
        patch = validate_property_document(
            _strip_reserved(desired), field="desired", allow_null=True
        )
        new_desired = merge_patch(twin.desired, patch)
        if new_desired != twin.desired:
            desired_version += 1
    if new_tags == twin.tags and new_desired == twin.desired:
        return twin
    return replace(
        twin,
        tags=new_tags,
        desired=new_desired,
        desired_version=desired_version,
        version=twin.version + 1,
        etag=new_etag,
    )


def replace_twin_document(
    twin: Twin, *, tags: Any | None, desired: Any | None, new_etag: str
) -> Twin:
    """The twin after a service PUT: tags and desired properties replaced wholesale."""
    new_tags = validate_property_document(
        tags if tags is not None else {}, field="tags", allow_null=False
    )
    new_desired = validate_property_document(
        _strip_reserved(desired) if desired is not None else {}, field="desired", allow_null=False
    )
    desired_version = twin.desired_version + (1 if new_desired != twin.desired else 0)
    return replace(
        twin,
        tags=new_tags,
        desired=new_desired,
        desired_version=desired_version,
        version=twin.version + 1,
        etag=new_etag,
    )


def apply_reported_patch(twin: Twin, patch: Any, *, new_etag: str) -> Twin:
    """The twin after a device's reported-properties patch."""
    checked = validate_property_document(patch, field="reported", allow_null=True)
    reported = merge_patch(twin.reported, checked)
    return replace(
        twin,
        reported=reported,
        reported_version=twin.reported_version + 1,
        version=twin.version + 1,
        etag=new_etag,
    )
