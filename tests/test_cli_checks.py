"""What the command line checks before doing anything: settings, output path, help."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.helpers import csv_bytes
from tests.origin import Origin


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["serve"], "IMGBATCH_QUALITY", "200"),
        (["run", "in.csv"], "IMGBATCH_ALLOW_PRIVATE_NETWORKS", "localhost"),
        (["requests", "list"], "IMGBATCH_FETCH_TIMEOUT", "soon"),
        (["worker"], "IMGBATCH_WORKERS", "0"),
        (["db", "upgrade"], "IMGBATCH_S3_URL_MODE", "open"),
    ],
)
def test_a_malformed_setting_stops_every_command_with_one_line_and_stores_nothing(
    tmp_path: Path, origin: Origin, command: list[str], variable: str, value: str
) -> None:
    url = origin.url("/a.jpg")
    (tmp_path / "in.csv").write_bytes(csv_bytes([(1, "SKU1", [url])]))
    command = [str(tmp_path / part) if part == "in.csv" else part for part in command]
    data = tmp_path / "data"
    result = run_cli(command, data, **{variable: value})
    assert result.returncode == 2
    lines = _lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"imgbatch: {variable}={value}: ")
    assert "Traceback" not in result.stderr
    assert not data.exists()  # no database, no images
    assert origin.hits == {}


def test_a_misspelt_variable_gets_one_warning_naming_the_setting(tmp_path: Path) -> None:
    schema = tmp_path / "openapi.json"
    result = run_cli(["openapi", "-o", str(schema)], tmp_path / "data", IMGBATCH_QUALTY="60")
    assert result.returncode == 0, result.stderr
    assert _lines(result.stderr) == [
        "imgbatch: warning: IMGBATCH_QUALTY is not a setting and is ignored; "
        "did you mean IMGBATCH_QUALITY?"
    ]


@pytest.mark.parametrize("where", ["missing dir", "a directory", "the input"])
def test_a_bad_output_path_stops_run_before_anything_is_stored_or_fetched(
    tmp_path: Path, photo_origin: Origin, where: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [photo_origin.url("/photos/astronaut.jpg")])]))
    output = {
        "missing dir": tmp_path / "nonexistent" / "dir" / "out.csv",
        "a directory": tmp_path,
        "the input": source,
    }[where]
    data = tmp_path / "data"
    allow = {"IMGBATCH_ALLOW_PRIVATE_NETWORKS": f"127.0.0.1:{photo_origin.port}"}
    result = run_cli(["run", str(source), "-o", str(output)], data, **allow)
    assert result.returncode == 2
    lines = _lines(result.stderr)
    assert len(lines) == 1 and str(output) in lines[0], result.stderr
    assert not data.exists()
    assert photo_origin.hits == {}
    assert source.read_bytes().startswith(b"S. No.")  # the input is untouched


def test_version_and_help_without_type_noise(tmp_path: Path) -> None:
    version = run_cli(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("imgbatch 0.")
    for command in ([], ["run"], ["requests", "export"], ["purge"]):
        shown = run_cli([*command, "--help"], tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout and "Usage: imgbatch" in shown.stdout


def test_request_commands_do_not_create_a_database_where_there_is_none(tmp_path: Path) -> None:
    result = run_cli(["requests", "list"], tmp_path / "nowhere")
    assert result.returncode == 1
    assert _lines(result.stderr) == [
        f"imgbatch: no database at {tmp_path / 'nowhere' / 'imgbatch.db'} (set IMGBATCH_DATA_DIR)"
    ]
    assert not (tmp_path / "nowhere").exists()


def test_webhook_secret_reads_the_data_dir_and_never_creates_one(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    missing = run_cli(["webhook-secret"], elsewhere)
    assert missing.returncode == 1
    assert len(_lines(missing.stderr)) == 1 and "no webhook secret" in missing.stderr
    assert not elsewhere.exists()

    service = tmp_path / "service"
    service.mkdir()
    (service / "webhook_secret").write_text("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY" + "\n")
    shown = run_cli(["webhook-secret", "--data-dir", str(service)], elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    assert not elsewhere.exists()
