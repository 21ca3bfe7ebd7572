"""``imgbatch serve`` and ``imgbatch run`` on one data dir, with different allow lists:
the run's request is pinned to the run, so the server never fetches its images."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import httpx

from tests.helpers import IMGBATCH, csv_bytes, wait_terminal
from tests.live import live_server
from tests.origin import Origin


def test_serve_and_run_share_a_data_dir_and_the_server_never_fetches_the_runs_images(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 0.05  # the run lasts a while, the server polls all along
    photo_origin.track_peers = True
    urls = [photo_origin.url(f"/photos/{photos[i % len(photos)].name}?n={i}") for i in range(40)]
    input_csv = tmp_path / "products.csv"
    input_csv.write_bytes(
        csv_bytes([(i + 1, f"SKU{i}", urls[i * 4 : i * 4 + 4]) for i in range(10)])
    )
    data_dir = tmp_path / "data"
    # The server may fetch only from itself; the run only from the origin.
    with live_server(data_dir, workers=1) as server, httpx.Client(base_url=server.base_url) as http:
        sample = http.get("/api/v1/sample.csv").content
        own = http.post("/api/v1/requests", files={"file": ("s.csv", sample)}).json()["request_id"]
        variables = {k: v for k, v in os.environ.items() if not k.startswith("IMGBATCH_")}
        variables.update(
            IMGBATCH_DATA_DIR=str(data_dir),
            IMGBATCH_ALLOW_PRIVATE_NETWORKS=f"127.0.0.1:{photo_origin.port}",
            IMGBATCH_WORKERS="1",
        )
        run = subprocess.Popen(
            [IMGBATCH, "run", str(input_csv), "-o", str(tmp_path / "out.csv")],
            env=variables,
            stderr=subprocess.PIPE,
        )
        _, stderr = run.communicate(timeout=180)
        assert run.returncode == 0, stderr.decode(errors="replace")
        assert wait_terminal(http, own)["status"] == "completed"
        server_pid = server.pid
    with (tmp_path / "out.csv").open(encoding="utf-8") as out:
        outputs = [row[3] for row in csv.reader(out)][1:]
    assert all(cell.count("/files/") == 4 for cell in outputs), outputs
    fetched = [lineage for path, lineage in photo_origin.peers if path.startswith("/photos/")]
    assert len(fetched) == 40
    assert all(run.pid in lineage for lineage in fetched)
    assert not any(server_pid in lineage for lineage in fetched)
    print(f"\nshared data dir: the run fetched {len(fetched)} images, the server none")
