"""Twin documents: merge patch, validation, and the versions a change moves."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.registry.twins import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    apply_reported_patch,
    apply_twin_patch,
    merge_patch,
    replace_twin_document,
    validate_property_document,
)
from wellguard.errors import InvalidInputError
from wellguard.model.twin import Twin

# -- merge patch ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_matches_the_rfc_7386_examples(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    assert merge_patch(target, patch) == result


keys = st.text(alphabet="abcdeé温_", min_size=1, max_size=3)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
documents = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda inner: st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
objects = st.dictionaries(keys, documents, max_size=5)


@given(objects, objects)
def test_reading_a_key_after_a_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    original_target, original_patch = copy.deepcopy(target), copy.deepcopy(patch)

    result = merge_patch(target, patch)

    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif isinstance(value, dict):
            current = target.get(key)
            assert result[key] == merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            assert result[key] == value
    for key in target.keys() - patch.keys():
        assert result[key] == target[key]
    assert result.keys() <= target.keys() | patch.keys()
    assert (target, patch) == (original_target, original_patch)


@given(objects, objects)
def test_applying_a_patch_twice_changes_nothing_more(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    once = merge_patch(target, patch)

    assert merge_patch(once, patch) == once


@given(objects)
def test_an_empty_patch_is_a_copy(target: dict[str, Any]) -> None:
    result = merge_patch(target, {})

    assert result == target
    assert result is not target


# -- validation -----------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep: {"l1": {"l2": ... {"lN": 1}}}."""
    doc: dict[str, Any] = {f"l{depth}": 1}
    for level in range(depth - 1, 0, -1):
        doc = {f"l{level}": doc}
    return doc


def test_documents_may_nest_ten_levels_and_no_more() -> None:
    assert validate_property_document(nested(MAX_DEPTH), field="tags", allow_null=False)
    with pytest.raises(InvalidInputError, match="deeper than 10"):
        validate_property_document(nested(MAX_DEPTH + 1), field="tags", allow_null=False)


@pytest.mark.parametrize("key", ["$version", "$metadata", "a.b", "a b", "", "k" * 129], ids=repr)
def test_reserved_or_malformed_property_names_are_refused_at_any_depth(key: str) -> None:
    for doc in ({key: 1}, {"outer": {"inner": {key: 1}}}):
        with pytest.raises(InvalidInputError) as caught:
            validate_property_document(doc, field="desired", allow_null=True)
        assert caught.value.field is not None
        assert caught.value.field.startswith("desired")


def test_property_names_up_to_128_characters_are_fine() -> None:
    doc = {"k" * 128: 1, "Grüße_温度-1": {"ok": True}}
    assert validate_property_document(doc, field="tags", allow_null=False) == doc


def test_nulls_are_allowed_only_where_they_remove() -> None:
    doc = {"a": {"b": None}}
    assert validate_property_document(doc, field="desired", allow_null=True) == doc
    with pytest.raises(InvalidInputError, match="may not be null"):
        validate_property_document(doc, field="desired", allow_null=False)


@pytest.mark.parametrize("doc", [None, [], ["a"], "text", 3, True])
def test_documents_must_be_objects(doc: Any) -> None:
    with pytest.raises(InvalidInputError, match="must be a JSON object"):
        validate_property_document(doc, field="tags", allow_null=True)


def test_documents_larger_than_the_limit_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="larger than"):
        validate_property_document(
            {"blob": "x" * MAX_DOCUMENT_BYTES}, field="tags", allow_null=False
        )


# -- versions -------------------------------------------------------------------------

TWIN = Twin(
    device_id="well-01",
    module_id=None,
    etag="etag-1",
    version=5,
    tags={"site": "north"},
    desired={"interval": 30, "limits": {"max": 8}},
    desired_version=3,
    reported={"firmware": "1.0"},
    reported_version=7,
)


def test_patching_desired_properties_moves_both_versions_and_the_etag() -> None:
    after = apply_twin_patch(TWIN, tags=None, desired={"limits": {"min": 1}}, new_etag="etag-2")

    assert after.desired == {"interval": 30, "limits": {"max": 8, "min": 1}}
    assert (after.version, after.desired_version, after.etag) == (6, 4, "etag-2")
    assert (after.tags, after.reported, after.reported_version) == (
        TWIN.tags,
        TWIN.reported,
        TWIN.reported_version,
    )


def test_patching_only_tags_keeps_the_desired_version() -> None:
    after = apply_twin_patch(TWIN, tags={"owner": "ops"}, desired=None, new_etag="etag-2")

    assert after.tags == {"site": "north", "owner": "ops"}
    assert (after.version, after.desired_version) == (6, 3)


@pytest.mark.parametrize(
    ("tags", "desired"),
    [
        (None, None),
        ({}, {}),
        ({"site": "north"}, {"limits": {"max": 8}}),
        ({"gone": None}, {"limits": {"absent": None}}),
        (None, {"$version": 12}),
    ],
)
def test_a_patch_that_changes_nothing_returns_the_same_twin(tags: Any, desired: Any) -> None:
    assert apply_twin_patch(TWIN, tags=tags, desired=desired, new_etag="etag-2") is TWIN


def test_reserved_keys_a_client_echoes_in_desired_are_dropped() -> None:
    after = apply_twin_patch(
        TWIN, tags=None, desired={"$version": 3, "$metadata": {}, "mode": "eco"}, new_etag="e"
    )

    assert after.desired == {**TWIN.desired, "mode": "eco"}


@pytest.mark.parametrize("desired", [[1, 2], "text", 7])
def test_a_desired_document_that_is_not_an_object_is_refused(desired: Any) -> None:
    with pytest.raises(InvalidInputError, match="desired must be a JSON object"):
        apply_twin_patch(TWIN, tags=None, desired=desired, new_etag="e")
    with pytest.raises(InvalidInputError, match="desired must be a JSON object"):
        replace_twin_document(TWIN, tags={}, desired=desired, new_etag="e")


def test_replacing_drops_what_is_not_sent() -> None:
    after = replace_twin_document(TWIN, tags={"owner": "ops"}, desired=None, new_etag="etag-2")

    assert (after.tags, after.desired) == ({"owner": "ops"}, {})
    assert (after.version, after.desired_version, after.etag) == (6, 4, "etag-2")
    assert after.reported == TWIN.reported


def test_replacing_with_the_same_desired_properties_keeps_the_desired_version() -> None:
    after = replace_twin_document(TWIN, tags={}, desired=dict(TWIN.desired), new_etag="etag-2")

    assert (after.version, after.desired_version) == (6, 3)


def test_a_reported_patch_moves_the_reported_version() -> None:
    after = apply_reported_patch(TWIN, {"firmware": "2.0", "temp": 21.5}, new_etag="etag-2")

    assert after.reported == {"firmware": "2.0", "temp": 21.5}
    assert (after.version, after.reported_version, after.desired_version) == (6, 8, 3)
    with pytest.raises(InvalidInputError):
        apply_reported_patch(TWIN, {"$version": 1}, new_etag="etag-3")
