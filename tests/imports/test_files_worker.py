"""Parsing at arm's length: a worker that dies, runs out of memory or time costs that worker only, and the
refusals found while parsing travel back as their own messages."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from services.imports.files import errors
from services.imports.files.intake import check_upload
from services.imports.files.limits import Limits
from services.imports.files.reader import read_upload, read_upload_async
from services.imports.files.worker import pack_rows, parse_in_worker
from tests.support.workbooks import (
    LINKS_HEADER,
    PARENT_HEADER,
    csv_bytes,
    damaged_sheet,
    dimension_bomb,
    xlsx_bytes,
)

LINKS = [LINKS_HEADER] + [[f"parent{i:03}", str(1000 + i)] for i in range(30)]


@pytest.fixture(autouse=True)
def no_worker_left_behind():
    yield
    assert multiprocessing.active_children() == []


def assert_service_still_reads() -> None:
    parsed = read_upload(xlsx_bytes(LINKS), "links.xlsx")
    assert len(parsed.rows) == 30


def test_a_killed_worker_gives_a_clear_error_and_the_service_survives() -> None:
    def kill(pid: int) -> None:
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)

    with pytest.raises(errors.UnreadableFile) as caught:
        read_upload(xlsx_bytes(LINKS), "links.xlsx", on_worker_start=kill)
    assert caught.value.message.startswith("The portal could not read this file")
    assert caught.value.code == "E_FILE_UNREADABLE"
    assert_service_still_reads()


def test_a_sheet_too_big_for_the_memory_limit_costs_only_the_worker() -> None:
    data = dimension_bomb()  # 5 KB on disk, a 16384 x 1048576 grid once parsed
    assert len(data) < 10_000
    with pytest.raises(errors.UnreadableFile) as caught:
        read_upload(data, "tiny.xlsx", Limits(worker_memory_bytes=1024 * 1024 * 1024))
    assert "could not read this file: reading it needed more memory than a file may use" in caught.value.message
    assert "delete the empty rows and columns after your data" in caught.value.message
    assert_service_still_reads()


def test_a_worker_past_its_wall_clock_limit_is_stopped() -> None:
    data = xlsx_bytes([PARENT_HEADER] + [["parent01", "Jo", "Smith", "jo@example.org", "", "", str(i), ""]
                                         for i in range(3000)])
    with pytest.raises(errors.UnreadableFile) as caught:
        read_upload(data, "slow.xlsx", Limits(worker_timeout_seconds=0.001))
    assert "could not read this file within the 0.001 seconds a file may take" in caught.value.message
    assert_service_still_reads()


def test_spawn_start_method_reads_the_same() -> None:
    parsed = read_upload(xlsx_bytes(LINKS), "links.xlsx", Limits(worker_start_method="spawn"))
    assert [r.row_number for r in parsed.rows][:2] == [2, 3]


async def test_reading_from_asynchronous_code() -> None:
    parsed = await read_upload_async(csv_bytes(LINKS), "links.csv")
    assert len(parsed.rows) == 30


def test_too_many_rows() -> None:
    with pytest.raises(errors.TooManyRows) as caught:
        read_upload(xlsx_bytes(LINKS), "links.xlsx", Limits(max_rows=20))
    assert "has 30 rows below its header, more than the 20 the portal reads" in caught.value.message
    with pytest.raises(errors.TooManyRows) as caught:
        read_upload(csv_bytes(LINKS), "links.csv", Limits(max_rows=20))
    assert "has more than 20 rows below its header" in caught.value.message
    assert len(read_upload(xlsx_bytes(LINKS), "links.xlsx", Limits(max_rows=30)).rows) == 30


def test_too_many_columns() -> None:
    wide = [[*LINKS_HEADER, *(f"extra{i}" for i in range(10))], ["parent01", "1001", *("x" * 10)]]
    for data, name in ((xlsx_bytes(wide), "wide.xlsx"), (csv_bytes(wide), "wide.csv")):
        with pytest.raises(errors.TooManyColumns) as caught:
            read_upload(data, name, Limits(max_columns=5))
        assert "has 12 columns, more than the 5 the portal reads" in caught.value.message


def test_a_damaged_sheet_inside_an_intact_zip() -> None:
    with pytest.raises(errors.CorruptFile) as caught:
        read_upload(damaged_sheet(xlsx_bytes(LINKS)), "links.xlsx")
    assert "damaged" in caught.value.message


def test_cells_holding_separator_characters_travel_intact() -> None:
    rows = [LINKS_HEADER, ["parent\x1e01", "1001"], ["parent\x1f02", "1002"]]
    assert pack_rows([["a\x1fb", "c"]]) is None
    table = parse_in_worker(check_upload(csv_bytes(rows), "links.csv"))
    assert table.rows == [["parent\x1e01", "1001"], ["parent\x1f02", "1002"]]


def test_many_rows_travel_back_in_order() -> None:
    rows = [LINKS_HEADER] + [[f"parent{i:05}", f"{i:06}"] for i in range(5000)]
    table = parse_in_worker(check_upload(xlsx_bytes(rows), "links.xlsx"))
    assert table.rows == [list(r) for r in rows[1:]]
