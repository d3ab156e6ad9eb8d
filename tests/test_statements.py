"""tracker.db.statements: instances and parameters for the hand-written statements."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversions.models import Click
from tracker.db.statements import insert_columns, insert_params, new_instance

pytestmark = pytest.mark.django_db


def test_new_instance_is_the_instance_the_model_builds_from_the_same_values(link):
    now = timezone.now()
    values = {"click_id": "n-1", "created_at": now, "ip": "95.1.2.0", "user_agent": "UA", "country": "ES",
              "is_unique": False, "extra_params": {"a": "b"}, "visitor_hash": "f" * 64}  # fmt: skip

    built = new_instance(Click, campaign=link.campaign, link=link, **values)
    expected = Click(campaign=link.campaign, link=link, **values)

    for field in Click._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(expected, field.attname), field.name
    assert built._state.adding and built.pk is None
    with CaptureQueriesContext(connection) as queries:
        assert (built.campaign, built.link) == (link.campaign, link)  # attached, not read again
    assert len(queries) == 0


def test_new_instance_gives_missing_fields_their_default_and_refuses_unknown_ones(link):
    built = new_instance(Click, click_id="n-2", campaign=link.campaign, link=None, created_at=timezone.now())

    assert (built.link_id, built.link, built.extra_params, built.is_unique, built.city) == (None, None, {}, True, "")
    with pytest.raises(TypeError, match="clik_id"):
        new_instance(Click, clik_id="typo", campaign=link.campaign)


def test_insert_params_are_the_values_of_the_fields_in_order_with_json_wrapped(link):
    click = new_instance(Click, click_id="p-1", campaign=link.campaign, link=link, created_at=timezone.now(),
                         extra_params={"k": "v"})  # fmt: skip
    fields = insert_columns(Click)

    params = insert_params(click, fields)

    assert len(params) == len(fields)
    for field, value in zip(fields, params, strict=True):
        if field.name == "extra_params":
            assert value.obj == {"k": "v"}  # psycopg's Jsonb wrapper
        else:
            assert value == getattr(click, field.attname), field.name


def test_insert_params_of_one_field_is_a_list_of_its_value(link):
    click = new_instance(Click, click_id="p-2", campaign=link.campaign, created_at=timezone.now())

    assert insert_params(click, (Click._meta.get_field("click_id"),)) == ["p-2"]
