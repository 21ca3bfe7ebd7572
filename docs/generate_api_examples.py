"""Capture every example in docs/api.md from a live server: real curl, real answers.

    .venv/bin/python docs/generate_api_examples.py    (``make docs`` runs it)

It starts ``imgbatch serve`` on a free loopback port (tests/live_server.py) beside a
small local origin (tests/origin.py) that plays two parts: a slow image host, so a
request stays running long enough to be cancelled, and a webhook receiver that refuses
the first delivery and accepts the second. Then it runs each example's curl command in a
scratch directory and writes the command and what came back between the
``<!-- example: NAME -->`` and ``<!-- /example -->`` markers of docs/api.md.

What is edited, and only that: the server's and the origin's addresses are shown as
``http://127.0.0.1:8000`` and ``http://127.0.0.1:9000`` (ports differ per run); headers
that say nothing about the API (date, server, content-length) are left out; JSON bodies
are indented; binary bodies are summarised by their size.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "api.md"
SHOWN_BASE = "http://127.0.0.1:8000"
SHOWN_ORIGIN = "http://127.0.0.1:9000"
# Request A's first output: its key names the default options (JPEG q50).
FIRST_OUTPUT = "0-jpeg-q50.jpg"
# Fixed so that readers can check the captured signature themselves.
DEMO_SECRET = "whsec_aW1nYmF0Y2gtZG9jcy1leGFtcGxlLXNlY3JldA=="
SHOWN_HEADERS = (
    "content-type",
    "location",
    "content-disposition",
    "etag",
    "cache-control",
    "content-security-policy",
    "retry-after",
    "www-authenticate",
)
MARKER = re.compile(
    r"(<!-- example: (?P<name>[a-z0-9-]+) -->\n).*?(<!-- /example -->)",
    re.DOTALL,
)
TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}


@dataclass
class Answer:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Capture:
    """Runs shown commands against the real addresses and keeps what to print."""

    base: str
    origin: str
    workdir: Path
    examples: dict[str, list[str]] = field(default_factory=dict)

    def real(self, text: str) -> str:
        return text.replace(SHOWN_BASE, self.base).replace(SHOWN_ORIGIN, self.origin)

    def shown(self, text: str) -> str:
        return text.replace(self.base, SHOWN_BASE).replace(self.origin, SHOWN_ORIGIN)

    def curl(self, name: str, command: str, *, expect: int, show_body: bool = True) -> Answer:
        """Run ``command`` (written with the shown addresses) and record it under ``name``."""
        done = subprocess.run(
            ["bash", "-c", self.real(command)], cwd=self.workdir, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed: {done.stderr.decode()}")
        answer = parse_http(done.stdout)
        if answer.status != expect:
            raise RuntimeError(f"{command}: expected {expect}, got {answer.status_line}")
        self.examples.setdefault(name, []).append(
            f"$ {command}\n{self.render(answer, show_body=show_body)}"
        )
        return answer

    def note(self, name: str, text: str) -> None:
        self.examples.setdefault(name, []).append(self.shown(text))

    def render(self, answer: Answer, *, show_body: bool) -> str:
        lines = [answer.status_line]
        lines += [f"{k}: {v}" for k, v in answer.headers if k.lower() in SHOWN_HEADERS]
        text = "\n".join(lines) + "\n"
        if show_body and answer.body:
            text += "\n" + body_text(answer)
        return self.shown(text)


def parse_http(raw: bytes) -> Answer:
    """curl -i (or -D -) output: skip interim 1xx answers; split head and body."""
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        if not status_line.split()[1].startswith("1"):
            break
        raw = rest
    headers = [tuple(line.split(": ", 1)) for line in header_lines if ": " in line]
    return Answer(status_line.strip(), [(k.lower(), v) for k, v in headers], rest)


def body_text(answer: Answer) -> str:
    content_type = answer.header("content-type") or ""
    if "json" in content_type:
        return json.dumps(answer.json(), indent=2, ensure_ascii=False) + "\n"
    if content_type.startswith("text/csv"):
        return answer.body.decode("utf-8-sig")
    if content_type.startswith("text/html"):
        first = next(line for line in answer.body.decode().splitlines() if line.strip())
        return f"{first}\n… ({len(answer.body)} bytes of HTML)\n"
    if content_type.startswith("text/"):
        return answer.body.decode()
    return f"({len(answer.body)} bytes of {content_type or 'data'})\n"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Receiver:
    """Webhook deliveries as received: the first attempt of each event gets a 503."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[list[tuple[str, str]], bytes, int]] = []
        self._lock = threading.Lock()

    def __call__(self, req: BaseHTTPRequestHandler) -> None:
        from tests.origin import send_bytes

        body = req.rfile.read(int(req.headers.get("Content-Length", "0")))
        with self._lock:
            first = not any(
                dict(h).get("webhook-id") == req.headers["webhook-id"]
                for h, _, _ in self.deliveries
            )
            status = 503 if first else 204
            self.deliveries.append((list(req.headers.items()), body, status))
        if first:
            send_bytes(req, b"busy, try again", status=503, content_type="text/plain")
        else:
            send_bytes(req, b"", status=204)


def capture(cap: Capture, receiver: Receiver) -> None:
    """The scenarios, in the order docs/api.md tells them."""
    import httpx

    base = cap.base

    def status_of(request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{base}/api/v1/requests/{request_id}").json()
        return body

    def finished(request_id: str) -> dict[str, Any]:
        return wait_for(  # type: ignore[no-any-return]
            f"request {request_id}",
            lambda: (s := status_of(request_id))["status"] in TERMINAL and s,
        )

    cap.curl("health", f"curl -sS -i {SHOWN_BASE}/healthz", expect=200)
    for probe in ("readyz", "metrics"):
        if httpx.get(f"{base}/{probe}").status_code != 404:
            cap.curl(probe, f"curl -sS -i {SHOWN_BASE}/{probe}", expect=200)

    # The sample, and one of the photos it points at.
    cap.curl("sample-csv", f"curl -sS -i {SHOWN_BASE}/api/v1/sample.csv", expect=200)
    subprocess.run(
        ["curl", "-sS", "-o", "sample.csv", f"{base}/api/v1/sample.csv"],
        cwd=cap.workdir,
        check=True,
    )
    cap.curl(
        "sample-photo",
        f"curl -sS -D - -o chelsea.jpg {SHOWN_BASE}/samples/chelsea.jpg",
        expect=200,
    )

    # Request A: the sample, with a webhook; it completes and its webhook is retried once.
    upload = cap.curl(
        "upload",
        f"curl -sS -i -F file=@sample.csv -F webhook_url={SHOWN_ORIGIN}/hook "
        f"{SHOWN_BASE}/api/v1/requests",
        expect=202,
    )
    a = upload.json()["request_id"]
    cap.curl("status-running", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{a}", expect=200)
    finished(a)
    cap.curl("status", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{a}", expect=200)
    cap.curl(
        "products",
        f"curl -sS -i '{SHOWN_BASE}/api/v1/requests/{a}/products?offset=0&limit=1'",
        expect=200,
    )
    cap.curl("output-csv", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{a}/output.csv", expect=200)
    file = cap.curl(
        "file", f"curl -sS -D - -o 0.jpg {SHOWN_BASE}/files/{a}/{FIRST_OUTPUT}", expect=200
    )
    cap.curl(
        "file",
        f"curl -sS -D - -o /dev/null -H 'If-None-Match: {file.header('etag')}' "
        f"{SHOWN_BASE}/files/{a}/{FIRST_OUTPUT}",
        expect=304,
    )
    wait_for("the webhook", lambda: status_of(a)["webhook_status"] == "delivered")
    cap.curl("webhook", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{a}/webhook", expect=200)
    show_delivery(cap, receiver)

    # Request B: under the original names, with an image that is not there.
    broken = cap.workdir / "broken.csv"
    broken.write_text(
        "S. No.,Product Name,Input Image Urls\n"
        f'1,SKU9,"{base}/samples/rocket.jpg,{base}/samples/missing.jpg"\n'
    )
    cap.note("legacy", f"$ cat broken.csv\n{broken.read_text()}")
    b = cap.curl(
        "legacy", f"curl -sS -i -F file=@broken.csv {SHOWN_BASE}/upload", expect=202
    ).json()["request_id"]
    finished(b)
    cap.curl("legacy", f"curl -sS -i {SHOWN_BASE}/status/{b}", expect=200)
    cap.curl(
        "products-failed", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{b}/products", expect=200
    )
    cap.curl(
        "output-csv-failed",
        f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{b}/output.csv",
        expect=200,
    )
    cap.curl("errors-csv", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{b}/errors.csv", expect=200)
    cap.curl("retry", f"curl -sS -i -X POST {SHOWN_BASE}/api/v1/requests/{b}/retry", expect=202)
    finished(b)
    cap.curl("retry-409", f"curl -sS -i -X POST {SHOWN_BASE}/api/v1/requests/{a}/retry", expect=409)

    # Request C: slow images, so it is still running when asked for its CSV and cancelled.
    slow = cap.workdir / "slow.csv"
    urls = ",".join(f"{cap.origin}/slow.jpg?n={n}" for n in range(1, 4))
    slow.write_text(f'S. No.,Product Name,Input Image Urls\n1,SKU-SLOW,"{urls}"\n')
    cap.note("cancel", f"$ cat slow.csv\n{slow.read_text()}")
    c = cap.curl(
        "cancel",
        f"curl -sS -i -F file=@slow.csv {SHOWN_BASE}/api/v1/requests",
        expect=202,
        show_body=False,
    ).json()["request_id"]
    cap.curl("output-409", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{c}/output.csv", expect=409)
    cap.curl("cancel", f"curl -sS -i -X POST {SHOWN_BASE}/api/v1/requests/{c}/cancel", expect=200)
    cap.curl("cancel", f"curl -sS -i -X POST {SHOWN_BASE}/api/v1/requests/{c}/cancel", expect=409)
    cap.curl("delete", f"curl -sS -i -X DELETE {SHOWN_BASE}/api/v1/requests/{c}", expect=204)
    cap.curl("delete", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{c}", expect=404)
    cap.curl("head", f"curl -sS -I {SHOWN_BASE}/files/{a}/{FIRST_OUTPUT}", expect=200)

    cap.curl("list", f"curl -sS -i '{SHOWN_BASE}/api/v1/requests?limit=2'", expect=200)

    # Rejections.
    unknown = "00000000-0000-4000-8000-000000000000"
    cap.curl("not-found", f"curl -sS -i {SHOWN_BASE}/api/v1/requests/{unknown}", expect=404)
    invalid = cap.workdir / "invalid.csv"
    invalid.write_text(
        "S. No.,Product Name,Input Image Urls\n"
        "1,SKU1,https://img.example/a.jpg\n"
        "1,,ftp://img.example/b.jpg\n"
    )
    cap.note("invalid-csv", f"$ cat invalid.csv\n{invalid.read_text()}")
    cap.curl(
        "invalid-csv", f"curl -sS -i -F file=@invalid.csv {SHOWN_BASE}/api/v1/requests", expect=422
    )
    (cap.workdir / "photo.csv").write_bytes(
        (ROOT / "imgbatch/samples/rocket.jpg").read_bytes()[:4096]
    )
    cap.curl(
        "unreadable-csv",
        f"curl -sS -i -F file=@photo.csv {SHOWN_BASE}/api/v1/requests",
        expect=400,
    )
    (cap.workdir / "big.csv").write_text("S. No.,Product Name,Input Image Urls\n" + "x" * 70_000)
    cap.curl("too-large", f"curl -sS -i -F file=@big.csv {SHOWN_BASE}/api/v1/requests", expect=413)
    cap.curl(
        "bad-webhook",
        f"curl -sS -i -F file=@sample.csv -F webhook_url=http://169.254.169.254/hook "
        f"{SHOWN_BASE}/api/v1/requests",
        expect=422,
    )
    cap.curl("bad-query", f"curl -sS -i '{SHOWN_BASE}/api/v1/requests?limit=1000'", expect=422)

    # The documentation and the page.
    cap.curl("docs", f"curl -sS -i {SHOWN_BASE}/docs", expect=200)
    cap.curl("openapi", f"curl -sS -D - -o openapi.json {SHOWN_BASE}/openapi.json", expect=200)
    if httpx.get(f"{base}/").status_code == 200:
        cap.curl("web-page", f"curl -sS -i {SHOWN_BASE}/", expect=200)


def capture_auth(cap: Capture) -> None:
    cap.curl("auth", f"curl -sS -i {SHOWN_BASE}/api/v1/requests", expect=401)
    cap.curl(
        "auth",
        f"curl -sS -i -H 'Authorization: Bearer demo-key-1' '{SHOWN_BASE}/api/v1/requests'",
        expect=200,
    )
    key = "-H 'Authorization: Bearer demo-key-1'"
    cap.curl("webhook-secret", f"curl -sS -i {key} {SHOWN_BASE}/api/v1/webhook-secret", expect=200)
    upload = f"curl -sS -i {key} -H 'Idempotency-Key: order-42' -F file=@sample.csv"
    cap.curl("idempotency", f"{upload} {SHOWN_BASE}/api/v1/requests", expect=202, show_body=False)
    cap.curl("idempotency", f"{upload} {SHOWN_BASE}/api/v1/requests", expect=200, show_body=False)
    cap.curl(
        "idempotency",
        f"curl -sS -i {key} -H 'Idempotency-Key: order-42' -F file=@broken.csv "
        f"{SHOWN_BASE}/api/v1/requests",
        expect=409,
    )


def show_delivery(cap: Capture, receiver: Receiver) -> None:
    """Print the deliveries as the receiver got them, after checking their signatures."""
    from standardwebhooks import Webhook

    verifier = Webhook(DEMO_SECRET)
    blocks = []
    for headers, body, status in receiver.deliveries:
        verifier.verify(body, dict(headers))  # raises if the signature does not hold
        kept = [
            f"{k}: {v}"
            for k, v in headers
            if k.lower().startswith("webhook-") or k.lower() in ("content-type", "user-agent")
        ]
        pretty = json.dumps(json.loads(body), indent=2)
        blocks.append(
            "POST /hook HTTP/1.1\n" + "\n".join(kept) + f"\n\n{pretty}\n"
            f"→ the receiver answered {status}\n"
        )
    cap.note("webhook-delivery", "\n".join(blocks))


def fill(markdown: str, examples: dict[str, list[str]]) -> str:
    used: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in examples:
            raise RuntimeError(f"docs/api.md wants example {name!r}, which was not captured")
        used.add(name)
        body = "\n".join(examples[name]).rstrip("\n")
        return f"{match[1]}```console\n{body}\n```\n{match[3]}"

    filled = MARKER.sub(replace, markdown)
    missing = sorted(set(examples) - used)
    if missing:
        raise RuntimeError(f"captured examples with no place in docs/api.md: {missing}")
    return filled


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.live import live_server
    from tests.origin import Origin, slow

    photo = (ROOT / "imgbatch/samples/chelsea.jpg").read_bytes()
    receiver = Receiver()
    origin = Origin().start()
    origin.route("/slow.jpg", slow(photo, 3.0))
    origin.route("/hook", receiver)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            workdir = Path(scratch)
            env = {
                "IMGBATCH_WEBHOOK_SECRET": DEMO_SECRET,
                "IMGBATCH_WEBHOOK_RETRY_DELAYS": "1,5",
                "IMGBATCH_MAX_UPLOAD_BYTES": "65536",
            }
            allow = [f"127.0.0.1:{origin.port}"]
            with live_server(workdir / "data", allow=allow, env=env) as server:
                cap = Capture(server.base_url, origin.base_url, workdir)
                capture(cap, receiver)
            keys = {"IMGBATCH_API_KEYS": "demo-key-1"}
            with live_server(workdir / "keyed", env=keys) as server:
                cap.base = server.base_url
                capture_auth(cap)
    finally:
        origin.stop()
    API_MD.write_text(fill(API_MD.read_text(), cap.examples))
    print(f"wrote {len(cap.examples)} examples into {API_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
