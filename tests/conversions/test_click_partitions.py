"""manage.py partition_clicks and the hourly extension, on a database of their own: the probe
(tests/conversions/partition_probe.py) migrates it, sends clicks through the click path, partitions the
table with partitions of 3 ids, sends more clicks and a conversion (twice) through the webhook, checks the
plans of the intake's reads of a click, and reports."""

import io
import json
import os
import subprocess
import sys
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from conversions.partitions import click_ids_left, click_partitions, clicks_partitioned, extend_click_partitions


@pytest.fixture
def own_database():
    if connection.vendor != "postgresql":
        pytest.skip("partitions are a PostgreSQL feature")
    main = connection.settings_dict
    name = f"{main['NAME']}_partitions"[:63]
    server = {"host": main["HOST"] or "127.0.0.1", "port": main["PORT"] or 5432, "user": main["USER"],
              "password": main["PASSWORD"] or None}  # fmt: skip
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    credentials = quote(server["user"]) + (f":{quote(server['password'])}" if server["password"] else "")
    yield f"postgres://{credentials}@{server['host']}:{server['port']}/{name}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_partitioned_clicks_keep_the_click_path_and_the_intake_whole(own_database):
    env = {**os.environ, "DATABASE_URL": own_database, "DJANGO_SETTINGS_MODULE": "tracker.settings",
           "ALLOWED_HOSTS": "testserver", "DEBUG": "0"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "tests.conversions.partition_probe"], env=env, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    found = json.loads(lines[-1])

    # The command printed the partitions, twice: the second run found the table partitioned.
    listing = [
        "conversions_click_p0000: from the lowest id up to id 7",
        "conversions_click_p0001: from id 8 up to id 10",
    ]
    assert lines[:-1] == listing * 2
    # While another session held the table, the command gave up at the lock and left the table as it was.
    assert found["refused_while_busy"]["relkind"] == "r"
    assert "lock timeout" in found["refused_while_busy"]["message"]
    assert "not partitioned yet; run the command again" in found["refused_while_busy"]["message"]
    assert found["relkind"] == "p"
    assert found["partitions"] == [
        ["conversions_click_p0000", None, 8],
        ["conversions_click_p0001", 8, 11],
        ["conversions_click_p0002", 11, 14],
        ["conversions_click_p0003", 14, 30014],  # made by the plan check below
    ]
    assert found["added"] == "conversions_click_p0002"
    # The clicks from before stayed where they were; the ids go on from where they were.
    assert found["next_id_after_partitioning"] == 5
    assert found["clicks"] == {
        **{str(pk): "conversions_click_p0000" for pk in range(1, 8)},
        "8": "conversions_click_p0001",
    }
    # The unique check sees the visitor's first click in the partition before.
    assert found["unique"] == {**{str(pk): True for pk in range(1, 8)}, "8": False}
    assert found["webhook_status"] == 201 and found["conversion_click"] == 8
    # The same conversion again is answered from the stored one, with its click.
    assert found["repeat_status"] == 200 and found["repeat_answer_click_id"] == found["click_id_of_8"]
    # The intake's reads of a click find it by index among 20,000 clicks, in their generic (prepared) plans:
    # a plain join read every click of every partition, and the click's read hashed a whole table.
    assert found["click_reads"] == {
        "click": {"rows_read": 3, "hash": False},
        "click_alone": {"rows_read": 1, "hash": False},
        "stored": {"rows_read": 3, "hash": False},
    }
    on_the_table = {
        (table, validated) for table, target, validated in found["foreign_keys"] if target == "conversions_click"
    }
    assert on_the_table == {
        ("conversions_botstart", True),
        ("conversions_conversion", True),
        ("conversions_lead", True),
    }
    # 20,008 clicks, then two ids for the duplicates below (scraped after them): the next is 20,011, and the
    # last partition ends before 30,014.
    assert found["metrics_click_ids_left"] == ["tracker_click_ids_left 10003.0"]
    assert found["stray_conversion_rejected"]  # the foreign key checks the partitioned table
    assert found["same_partition_click_id_rejected"] is True
    assert found["other_partition_click_id_rejected"] is False


@pytest.mark.django_db
def test_an_unpartitioned_table_is_left_alone(client):
    assert clicks_partitioned() is False
    assert click_partitions() == []
    assert extend_click_partitions() is None
    assert click_ids_left() is None
    assert "tracker_click_ids_left" not in client.get("/metrics").content.decode()
    out = io.StringIO()
    call_command("partition_clicks", status=True, stdout=out)
    assert out.getvalue() == "The clicks table is not partitioned.\n"
    with pytest.raises(CommandError, match="--block must be a positive number"):
        call_command("partition_clicks", block=0)
    assert clicks_partitioned() is False
