"""Label and field selector syntax and matching, as Kubernetes defines them."""

from __future__ import annotations

import pytest

from api.selectors import parse_field_selector, parse_label_selector, selector_from_dict

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app=db", False),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("app notin (db)", True),
        ("missing notin (db)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("n>4", True),
        ("n<4", False),
        ("example.com/key", False),
    ],
)
def test_label_selector_matching(text: str, matches: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize("text", ["app in (web", "app=web,", "in in in", "-bad=1", "a b c"])
def test_bad_label_selectors_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_label_selector(text)


def test_metav1_label_selector() -> None:
    assert selector_from_dict(None).matches(LABELS) is False  # nil selects nothing
    assert selector_from_dict({}).matches(LABELS) is True  # empty selects everything
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "back"]},
            {"key": "gone", "operator": "DoesNotExist"},
        ],
    }
    assert selector_from_dict(sel).matches(LABELS)
    assert str(selector_from_dict(sel)) == "app=web,gone,tier in (back,front)".replace(
        "gone", "!gone"
    )
    with pytest.raises(ValueError):
        selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def test_field_selectors() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed")
    assert sel.matches({"spec.nodeName": "n1", "status.phase": "Running"})
    assert not sel.matches({"spec.nodeName": "n1", "status.phase": "Failed"})
    assert not sel.matches({"spec.nodeName": "n2", "status.phase": "Running"})
    assert parse_field_selector("spec.nodeName=").matches({"spec.nodeName": ""})
    escaped = parse_field_selector(r"metadata.name=a\,b")
    assert escaped.requirements == (("metadata.name", "=", "a,b"),)
    with pytest.raises(ValueError):
        parse_field_selector("nonsense")
