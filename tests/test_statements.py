"""tracker.db.statements: instances and parameters for the hand-written statements."""

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversions.models import Click
from tracker.db.statements import insert_columns, insert_params, model_from_row, new_instance

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


def test_new_instance_saves_like_an_instance_the_model_built(link):
    built = new_instance(Click, click_id="n-3", campaign=link.campaign, link=link, created_at=timezone.now())

    built.save()

    assert Click.objects.get(click_id="n-3").link_id == link.pk
    assert not built._state.adding and built._state.db == "default"


def test_new_instance_sends_the_init_signals_when_something_listens_to_them(link):
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append((instance.click_id, instance.link_id))

    post_init.connect(receiver, sender=Click)
    try:
        new_instance(Click, click_id="n-4", campaign=link.campaign, link=link, created_at=timezone.now())
    finally:
        post_init.disconnect(receiver, sender=Click)
    new_instance(Click, click_id="n-5", campaign=link.campaign, link=link, created_at=timezone.now())

    assert seen == [("n-4", link.pk)]


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


def test_insert_params_reads_each_tuple_of_fields_as_its_own(link):
    click = new_instance(Click, click_id="p-3", campaign=link.campaign, created_at=timezone.now(), city="Lima")
    one, other = (Click._meta.get_field("click_id"),), (Click._meta.get_field("city"),)

    assert [insert_params(click, one), insert_params(click, other), insert_params(click, one)] == [
        ["p-3"], ["Lima"], ["p-3"]]  # fmt: skip


def test_insert_params_of_one_field_is_a_list_of_its_value(link):
    click = new_instance(Click, click_id="p-2", campaign=link.campaign, created_at=timezone.now())

    assert insert_params(click, (Click._meta.get_field("click_id"),)) == ["p-2"]


def _click_row(click_id: str) -> tuple:
    columns = ", ".join(connection.ops.quote_name(f.column) for f in Click._meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM conversions_click WHERE click_id = %s", [click_id])
        return cursor.fetchone()


def test_model_from_row_is_the_instance_the_orm_reads(link):
    new_instance(Click, click_id="r-1", campaign=link.campaign, link=link, created_at=timezone.now(),
                 extra_params={"k": "v"}).save()  # fmt: skip

    built = model_from_row(Click, _click_row("r-1"))
    read = Click.objects.get(click_id="r-1")

    for field in Click._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(read, field.attname), field.name
    assert built.extra_params == {"k": "v"}  # decoded by the field, as the ORM does
    assert (built._state.adding, built._state.db) == (False, "default")
    assert built == read and built.link == link


def test_model_from_row_sends_the_init_signals_when_something_listens_to_them(link):
    new_instance(Click, click_id="r-2", campaign=link.campaign, link=link, created_at=timezone.now()).save()
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.click_id)

    post_init.connect(receiver, sender=Click)
    try:
        model_from_row(Click, _click_row("r-2"))
    finally:
        post_init.disconnect(receiver, sender=Click)

    assert seen == ["r-2"]
