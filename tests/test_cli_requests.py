"""``imgbatch requests …`` and ``imgbatch purge`` on the local database, as a subprocess."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from imgbatch.config import Settings
from imgbatch.operations import submit_csv
from imgbatch.runtime import open_services
from tests.cli import query, run_cli
from tests.helpers import csv_bytes
from tests.origin import Origin, answer, in_turn, send_bytes


def _allow(origin: Origin) -> dict[str, str]:
    return {"IMGBATCH_ALLOW_PRIVATE_NETWORKS": f"127.0.0.1:{origin.port}"}


def _finished_with_one_failure(tmp_path: Path, origin: Origin, photo: Path) -> tuple[Path, str]:
    """A data dir holding one request: one image succeeded, one failed with a 404 that
    the origin answers only the first time (a retry then succeeds)."""
    good = origin.serve_file("/good.jpg", photo)
    body = photo.read_bytes()
    flaky = origin.route(
        "/flaky.jpg",
        in_turn(answer(404), lambda req: send_bytes(req, body, content_type="image/jpeg")),
    )
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [good]), (2, "SKU2", [flaky])]))
    data = tmp_path / "data"
    result = run_cli(["run", str(source)], data, **_allow(origin))
    assert result.returncode == 1, result.stderr
    [(request_id,)] = query(data, "SELECT id FROM requests")
    return data, request_id


def test_list_show_export_retry(tmp_path: Path, origin: Origin, photos: list[Path]) -> None:
    data, request_id = _finished_with_one_failure(tmp_path, origin, photos[0])
    allow = _allow(origin)

    listed = run_cli(["requests", "list"], data)
    assert listed.returncode == 0, listed.stderr
    assert request_id in listed.stdout and "completed_with_errors" in listed.stdout
    page = json.loads(run_cli(["requests", "list", "--json"], data).stdout)
    assert page["total"] == 1 and page["items"][0]["request_id"] == request_id
    assert page["items"][0]["failed_images"] == 1

    shown = run_cli(["requests", "show", request_id[:8]], data)  # a prefix will do
    assert shown.returncode == 0, shown.stderr
    assert "1 of 2 images succeeded, 1 failed" in shown.stdout
    assert "/flaky.jpg: http_error" in shown.stderr
    body = json.loads(run_cli(["requests", "show", request_id, "--json"], data).stdout)
    assert body["status"] == "completed_with_errors" and body["processed_images"] == 1
    assert body["output_csv_url"].endswith(f"/api/v1/requests/{request_id}/output.csv")

    exported = run_cli(["requests", "export", request_id], data)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(exported.stdout.splitlines()))
    assert rows[1][3].endswith(f"/files/{request_id}/0-jpeg-q50.jpg") and rows[2][3] == ""

    errors = run_cli(["requests", "export", request_id, "--errors"], data)
    assert errors.returncode == 0, errors.stderr
    rows = list(csv.reader(errors.stdout.splitlines()))
    assert rows[0][-1] == "Errors" and len(rows) == 2
    assert rows[1][2].endswith("/flaky.jpg") and ": http_error: " in rows[1][3]

    retried = run_cli(["requests", "retry", request_id], data, **allow)
    assert retried.returncode == 0, retried.stderr
    assert "1 images of request" in retried.stderr and "completed: 2 of 2" in retried.stderr
    assert origin.hits["/good.jpg"] == 1  # only the failed image was asked for again

    out = tmp_path / "again.csv"
    exported = run_cli(["requests", "export", request_id, "-o", str(out)], data)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(out.read_text(encoding="utf-8").splitlines()))
    assert rows[2][3].endswith(f"/files/{request_id}/1-jpeg-q50.jpg")

    nothing = run_cli(["requests", "retry", request_id], data)
    assert nothing.returncode == 1 and "nothing to retry" in nothing.stderr


def test_cancel_an_unfinished_request_and_unknown_ids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    services = open_services(Settings(data_dir=data))
    source = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])
    with (tmp_path / "in.csv").open("wb+") as file:
        file.write(source)
        file.seek(0)
        request_id = submit_csv(services, file)  # stored, with no worker to run it
    services.engine.dispose()

    early = run_cli(["requests", "export", request_id], data)
    assert early.returncode == 1 and "still pending" in early.stderr
    running = run_cli(["requests", "delete", request_id], data)
    assert running.returncode == 1 and "still pending; cancel it first" in running.stderr
    assert query(data, "SELECT count(*) FROM requests") == [(1,)]

    cancelled = run_cli(["requests", "cancel", request_id], data)
    assert cancelled.returncode == 0, cancelled.stderr
    assert query(data, "SELECT status FROM requests") == [("cancelled",)]
    again = run_cli(["requests", "cancel", request_id], data)
    assert again.returncode == 1 and "already finished" in again.stderr

    for command in (["show"], ["cancel"], ["retry"], ["export"], ["delete"]):
        unknown = run_cli(["requests", *command, "00000000-dead"], data)
        assert unknown.returncode == 1, command
        assert "no request with the id '00000000-dead'" in unknown.stderr


def test_delete_and_purge_remove_rows_and_images(
    tmp_path: Path, origin: Origin, photos: list[Path]
) -> None:
    data, first = _finished_with_one_failure(tmp_path, origin, photos[0])
    source = tmp_path / "second.csv"
    source.write_bytes(csv_bytes([(1, "SKU9", [origin.serve_file("/other.jpg", photos[1])])]))
    ran = run_cli(["run", str(source)], data, **_allow(origin))
    assert ran.returncode == 0, ran.stderr
    [(second,)] = query(data, "SELECT id FROM requests WHERE id != ?", first)
    images = data / "images"
    assert (images / first).is_dir() and (images / second).is_dir()

    deleted = run_cli(["requests", "delete", first[:8]], data)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted request {first} and its images" in deleted.stderr
    assert not (images / first).exists() and (images / second).is_dir()
    assert query(data, "SELECT id FROM requests") == [(second,)]
    assert query(data, "SELECT count(*) FROM images WHERE request_id = ?", first) == [(0,)]

    kept = run_cli(["purge", "--older-than", "1"], data)  # finished seconds ago: kept
    assert kept.returncode == 0, kept.stderr
    assert "deleted 0 finished requests older than 1 days" in kept.stderr
    assert query(data, "SELECT id FROM requests") == [(second,)]

    purged = run_cli(["purge", "--older-than", "0"], data)
    assert purged.returncode == 0, purged.stderr
    assert "deleted 1 finished requests older than 0 days" in purged.stderr
    assert query(data, "SELECT count(*) FROM requests") == [(0,)]
    assert not (images / second).exists()

    refused = run_cli(["purge", "--older-than", "-1"], data)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
