"""Write docs/postman_collection.json (Postman v2.1) from the requests and scripts below.

    .venv/bin/python docs/generate_postman.py    (``make docs`` runs it)

The collection is kept here because test scripts are easier to read and review as
JavaScript blocks than as JSON arrays of strings; tests/test_docs.py fails when the
committed JSON differs from what this writes, and tests/test_postman.py runs it with
newman against a live server.

Variables: ``baseUrl`` (the server), ``csvFile`` (the CSV the upload sends, a path
relative to newman's ``--working-dir``; in the Postman app, pick the file in the body
tab). The ids the requests create are chained through collection variables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
BOUNDARY = "imgbatchFormBoundary"

DESCRIPTION = """\
Every endpoint of the imgbatch API, with tests. Run it in order (the Collection Runner,
or newman): each folder chains its request ids through collection variables, and the
\"wait\" requests poll the status until the request is finished.

With newman, from the repository root (the upload sends the file named by `csvFile`,
relative to `--working-dir`):

    curl -sS -o /tmp/sample.csv http://127.0.0.1:8000/api/v1/sample.csv
    npx newman run docs/postman_collection.json --working-dir /tmp \\
        --env-var baseUrl=http://127.0.0.1:8000

The sample CSV points at photos the server hosts itself, so the server must be allowed to
fetch from its own address (`make run` does this). See docs/api.md for every endpoint."""

# --- scripts shared by several requests ---------------------------------------------------

# Defined once per run at the collection level: helpers every test script may use.
HELPERS = """
// Terminal statuses of a request: no more work will happen until a retry.
pm.globals.set("terminalStatuses", JSON.stringify(
  ["completed", "completed_with_errors", "failed", "cancelled"]));
"""

STATUS_BODY_TESTS = """
const body = pm.response.json();
pm.test("the status body has every field", () => {
  pm.expect(body).to.include.keys("request_id", "status", "total_products", "total_images",
    "processed_images", "failed_images", "progress", "created_at", "updated_at",
    "finished_at", "output_csv_url", "webhook_url", "webhook_status", "options");
  pm.expect(body.progress).to.be.within(0, 1);
  pm.expect(body.processed_images + body.failed_images).to.be.at.most(body.total_images);
});
"""


def poll_until_finished(name: str, id_variable: str) -> tuple[str, str]:
    """A pre-request pause and a test that re-runs request ``name`` until terminal."""
    counter = f"{id_variable}Polls"
    pre = f"""
// Poll no faster than every 300 ms (the first call goes at once).
if (pm.collectionVariables.get("{counter}")) {{ setTimeout(() => {{}}, 300); }}
"""
    test = f"""
const terminal = JSON.parse(pm.globals.get("terminalStatuses"));
const polls = Number(pm.collectionVariables.get("{counter}") || 0) + 1;
pm.test("status 200", () => pm.response.to.have.status(200));
{STATUS_BODY_TESTS}
if (!terminal.includes(body.status) && polls < 200) {{
  pm.collectionVariables.set("{counter}", polls);
  pm.execution.setNextRequest("{name}");
}} else {{
  pm.collectionVariables.unset("{counter}");
  pm.test("finished within 200 polls", () => pm.expect(terminal).to.include(body.status));
  pm.test("finished: counters add up, times and output CSV set", () => {{
    pm.expect(body.processed_images + body.failed_images).to.eql(body.total_images);
    pm.expect(body.progress).to.eql(1);
    pm.expect(body.finished_at).to.be.a("string");
    pm.expect(body.output_csv_url).to.match(/\\/api\\/v1\\/requests\\/.+\\/output\\.csv$/);
  }});
}}
"""
    return pre, test


def multipart_body(field_value_variable: str) -> dict[str, Any]:
    """A raw multipart body whose CSV comes from a variable set by a pre-request script:
    a form-data file part needs a file on disk, and these CSVs are made on the fly."""
    raw = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="generated.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        f"{{{{{field_value_variable}}}}}\r\n"
        f"--{BOUNDARY}--\r\n"
    )
    return {"mode": "raw", "raw": raw}


MULTIPART_HEADER = {
    "key": "Content-Type",
    "value": f"multipart/form-data; boundary={BOUNDARY}",
}


# --- the requests -------------------------------------------------------------------------


def request(
    name: str,
    method: str,
    path: str,
    *,
    description: str,
    tests: str,
    pre: str = "",
    body: dict[str, Any] | None = None,
    headers: list[dict[str, str]] | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    raw_url = url or "{{baseUrl}}" + path
    req: dict[str, Any] = {
        "method": method,
        "header": headers or [],
        "url": raw_url,
        "description": description,
    }
    if body is not None:
        req["body"] = body
    events = [{"listen": "test", "script": {"type": "text/javascript", "exec": lines(tests)}}]
    if pre:
        events.insert(
            0, {"listen": "prerequest", "script": {"type": "text/javascript", "exec": lines(pre)}}
        )
    return {"name": name, "event": events, "request": req}


def lines(script: str) -> list[str]:
    return script.strip("\n").split("\n")


def folder(name: str, description: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "description": description, "item": items}


SERVICE = folder(
    "Service",
    "Liveness, the sample CSV and a demo photo it points at.",
    [
        request(
            "Health",
            "GET",
            "/healthz",
            description="Liveness: the process answers.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
pm.test("ok", () => pm.expect(pm.response.json().status).to.eql("ok"));
""",
        ),
        request(
            "Sample CSV",
            "GET",
            "/api/v1/sample.csv",
            description="A sample input CSV whose URLs point at this server's demo photos.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
pm.test("a CSV download", () => {
  pm.expect(pm.response.headers.get("Content-Type")).to.include("text/csv");
  pm.expect(pm.response.headers.get("Content-Disposition")).to.include("sample.csv");
});
const rows = pm.response.text().trim().split("\\n");
pm.test("the original header and two products", () => {
  pm.expect(rows[0]).to.eql("S. No.,Product Name,Input Image Urls");
  pm.expect(rows).to.have.lengthOf(3);
});
pm.test("its photos are served here", () => {
  pm.expect(rows[1]).to.include(pm.variables.get("baseUrl") + "/samples/");
});
""",
        ),
        request(
            "Webhook secret",
            "GET",
            "/api/v1/webhook-secret",
            description="With API keys, the calling key's signing secret; without keys "
            "(as here) a 404 naming the one secret.",
            tests="""
pm.test("status 404 without API keys", () => pm.response.to.have.status(404));
""",
        ),
        request(
            "Sample photo",
            "GET",
            "/samples/chelsea.jpg",
            description="One of the demo photos the sample CSV points at.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
pm.test("a JPEG", () => pm.expect(pm.response.headers.get("Content-Type")).to.eql("image/jpeg"));
""",
        ),
    ],
)

WAIT_PRE, WAIT_TESTS = poll_until_finished("Wait until finished", "requestId")

LIFE = folder(
    "A request, start to finish",
    "Upload the CSV named by `csvFile` (the sample by default), wait for it, read every "
    "result, and check that a finished request can be neither cancelled nor retried.",
    [
        request(
            "Upload the CSV",
            "POST",
            "/api/v1/requests",
            description="Multipart form: `file` (the CSV), an optional `webhook_url` and the "
            "optional output options `quality`, `format`, `max_size`. "
            "202 with the status body and a Location header.",
            body={
                "mode": "formdata",
                "formdata": [
                    {"key": "file", "type": "file", "src": "{{csvFile}}"},
                    {"key": "webhook_url", "type": "text", "value": "", "disabled": True},
                    {"key": "quality", "type": "text", "value": "50", "disabled": True},
                    {"key": "format", "type": "text", "value": "webp", "disabled": True},
                    {"key": "max_size", "type": "text", "value": "2048", "disabled": True},
                ],
            },
            tests=f"""
pm.test("status 202", () => pm.response.to.have.status(202));
{STATUS_BODY_TESTS}
pm.test("a new request", () => {{
  pm.expect(body.request_id).to.match(/^[0-9a-f-]{{36}}$/);
  pm.expect(["pending", "processing"]).to.include(body.status);
  pm.expect(body.total_images).to.be.above(0);
  pm.expect(body.output_csv_url).to.eql(null);
}});
pm.test("Location names the request", () => {{
  pm.expect(pm.response.headers.get("Location"))
    .to.eql(pm.variables.get("baseUrl") + "/api/v1/requests/" + body.request_id);
}});
pm.collectionVariables.set("requestId", body.request_id);
pm.collectionVariables.set("totalProducts", body.total_products);
""",
        ),
        request(
            "Wait until finished",
            "GET",
            "/api/v1/requests/{{requestId}}",
            description="The status body. Re-runs itself (setNextRequest) until the status "
            "is terminal: completed, completed_with_errors, failed or cancelled.",
            pre=WAIT_PRE,
            tests=WAIT_TESTS
            + """
if (JSON.parse(pm.globals.get("terminalStatuses")).includes(body.status)) {
  pm.test("every image succeeded", () => {
    pm.expect(body.status).to.eql("completed");
    pm.expect(body.failed_images).to.eql(0);
    pm.expect(body.output_bytes).to.be.below(body.input_bytes);
  });
}
""",
        ),
        request(
            "Products and their images",
            "GET",
            "/api/v1/requests/{{requestId}}/products?offset=0&limit=50",
            description="Products in input order, images in URL order, paginated.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
const page = pm.response.json();
pm.test("a page of products", () => {
  pm.expect(page).to.include.keys("items", "total", "offset", "limit");
  pm.expect(page.total).to.eql(Number(pm.collectionVariables.get("totalProducts")));
  pm.expect(page.items.length).to.eql(Math.min(page.total, 50));
});
pm.test("every image succeeded and has an output URL", () => {
  page.items.forEach((product) => {
    pm.expect(product).to.include.keys("serial", "product_name", "images");
    product.images.forEach((image, index) => {
      pm.expect(image.position).to.eql(index);
      pm.expect(image.status).to.eql("succeeded");
      pm.expect(image.error_code).to.eql(null);
      pm.expect(image.output_url).to.match(/^https?:\\/\\//);
      pm.expect(image.output_bytes).to.be.above(0);
    });
  });
});
pm.collectionVariables.set("outputUrl", page.items[0].images[0].output_url);
""",
        ),
        request(
            "Output CSV",
            "GET",
            "/api/v1/requests/{{requestId}}/output.csv",
            description="The input's columns, then one output URL per input URL, in order.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
pm.test("a CSV download", () => {
  pm.expect(pm.response.headers.get("Content-Type")).to.include("text/csv");
});
const rows = pm.response.text().replace(/^\\uFEFF/, "").trim().split(/\\r?\\n/);
pm.test("Output Image Urls is the last column", () => {
  pm.expect(rows[0].endsWith(",Output Image Urls")).to.be.true;
});
pm.test("one row per product", () => {
  pm.expect(rows.length - 1).to.eql(Number(pm.collectionVariables.get("totalProducts")));
});
pm.test("one output URL per input URL", () => {
  rows.slice(1).forEach((row) => {
    const cells = row.match(/("([^"]|"")*"|[^,]*)(,|$)/g).map((c) => c.replace(/,$/, ""));
    const unquote = (c) => c.replace(/^"|"$/g, "");
    const inputs = unquote(cells[2]).split(",");
    const outputs = unquote(cells[3]).split(",");
    pm.expect(outputs).to.have.lengthOf(inputs.length);
    outputs.forEach((url) => pm.expect(url).to.match(/^https?:\\/\\/.+\\.jpg/));
  });
});
""",
        ),
        request(
            "An output image",
            "GET",
            "",
            url="{{outputUrl}}",
            description="The first output image, from the URL the products page gave.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
pm.test("a JPEG that may be cached forever", () => {
  pm.expect(pm.response.headers.get("Content-Type")).to.eql("image/jpeg");
  pm.expect(pm.response.headers.get("Cache-Control")).to.include("immutable");
  pm.expect(pm.response.headers.get("ETag")).to.be.a("string");
});
pm.collectionVariables.set("outputEtag", pm.response.headers.get("ETag"));
""",
        ),
        request(
            "The same image, revalidated",
            "GET",
            "",
            url="{{outputUrl}}",
            headers=[{"key": "If-None-Match", "value": "{{outputEtag}}"}],
            description="With the ETag of the last answer: 304, no body.",
            tests="""
pm.test("status 304", () => pm.response.to.have.status(304));
""",
        ),
        request(
            "Status under the original name",
            "GET",
            "/status/{{requestId}}",
            description="`GET /status/{request_id}`, as the original assignment named it.",
            tests=f"""
pm.test("status 200", () => pm.response.to.have.status(200));
{STATUS_BODY_TESTS}
pm.test("the same request", () => {{
  pm.expect(body.request_id).to.eql(pm.collectionVariables.get("requestId"));
}});
""",
        ),
        request(
            "Recent requests",
            "GET",
            "/api/v1/requests?offset=0&limit=10",
            description="Newest first; items are status bodies.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
const page = pm.response.json();
pm.test("a page that includes this request", () => {
  pm.expect(page.limit).to.eql(10);
  pm.expect(page.total).to.be.at.least(1);
  const ids = page.items.map((item) => item.request_id);
  pm.expect(ids).to.include(pm.collectionVariables.get("requestId"));
});
""",
        ),
        request(
            "Its webhook",
            "GET",
            "/api/v1/requests/{{requestId}}/webhook",
            description="Where the request's webhook stands: none was asked for here.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
const hook = pm.response.json();
pm.test("no webhook, no attempts", () => {
  pm.expect(hook.webhook_url).to.eql(null);
  pm.expect(hook.webhook_status).to.eql(null);
  pm.expect(hook.attempts).to.eql([]);
});
""",
        ),
        request(
            "Retry a request that did not fail",
            "POST",
            "/api/v1/requests/{{requestId}}/retry",
            description="409: nothing failed, so there is nothing to retry.",
            tests="""
pm.test("status 409", () => pm.response.to.have.status(409));
pm.test("the detail is the status body", () => {
  pm.expect(pm.response.json().detail.status).to.eql("completed");
});
""",
        ),
        request(
            "Cancel a finished request",
            "POST",
            "/api/v1/requests/{{requestId}}/cancel",
            description="409: a finished request has no work left to cancel.",
            tests="""
pm.test("status 409", () => pm.response.to.have.status(409));
pm.test("the detail is the status body", () => {
  pm.expect(pm.response.json().detail.request_id).to.eql(pm.collectionVariables.get("requestId"));
});
""",
        ),
    ],
)

BROKEN_PRE = """
// One photo that exists and one that does not: the request completes with errors.
const base = pm.variables.get("baseUrl");
pm.collectionVariables.set("brokenCsv", [
  "S. No.,Product Name,Input Image Urls",
  `1,SKU-BROKEN,"${base}/samples/rocket.jpg,${base}/samples/missing.jpg"`,
].join("\\r\\n"));
"""

WAIT_BROKEN_PRE, WAIT_BROKEN_TESTS = poll_until_finished("Wait for the broken one", "brokenId")

FAILED = folder(
    "Failed images and retry",
    "A CSV with a URL that answers 404: that image fails with error_code http_error, its "
    "sibling succeeds, and retry re-queues only the failed one.",
    [
        request(
            "Upload a CSV with a broken URL",
            "POST",
            "/upload",
            description="`POST /upload`, the original assignment's name for the upload. The "
            "CSV is made by the pre-request script and sent as a raw multipart body.",
            pre=BROKEN_PRE,
            headers=[MULTIPART_HEADER],
            body=multipart_body("brokenCsv"),
            tests="""
pm.test("status 202", () => pm.response.to.have.status(202));
pm.test("two images", () => pm.expect(pm.response.json().total_images).to.eql(2));
pm.collectionVariables.set("brokenId", pm.response.json().request_id);
""",
        ),
        request(
            "Wait for the broken one",
            "GET",
            "/api/v1/requests/{{brokenId}}",
            description="Polls until terminal.",
            pre=WAIT_BROKEN_PRE,
            tests=WAIT_BROKEN_TESTS
            + """
if (JSON.parse(pm.globals.get("terminalStatuses")).includes(body.status)) {
  pm.test("one succeeded, one failed", () => {
    pm.expect(body.status).to.eql("completed_with_errors");
    pm.expect(body.processed_images).to.eql(1);
    pm.expect(body.failed_images).to.eql(1);
  });
}
""",
        ),
        request(
            "Why it failed",
            "GET",
            "/api/v1/requests/{{brokenId}}/products",
            description="The failed image carries a machine-readable error_code and a message.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
const images = pm.response.json().items[0].images;
pm.test("the first image succeeded", () => {
  pm.expect(images[0].status).to.eql("succeeded");
  pm.expect(images[0].output_url).to.be.a("string");
});
pm.test("the second failed with http_error 404", () => {
  pm.expect(images[1].status).to.eql("failed");
  pm.expect(images[1].error_code).to.eql("http_error");
  pm.expect(images[1].error).to.include("404");
  pm.expect(images[1].output_url).to.eql(null);
});
""",
        ),
        request(
            "Output CSV with a gap",
            "GET",
            "/api/v1/requests/{{brokenId}}/output.csv",
            description="A failed image leaves its place empty so positions stay aligned.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
const row = pm.response.text().replace(/^\\uFEFF/, "").trim().split(/\\r?\\n/)[1];
pm.test("the failed image's place is empty", () => {
  pm.expect(row).to.match(/,"https?:\\/\\/[^,"]+\\.jpg,"$/);
});
""",
        ),
        request(
            "Errors file",
            "GET",
            "/api/v1/requests/{{brokenId}}/errors.csv",
            description="The rows with a failed image: only the failed URLs, then Errors.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
const lines = pm.response.text().replace(/^\\uFEFF/, "").trim().split(/\\r?\\n/);
pm.test("the header ends with Errors", () => {
  pm.expect(lines[0]).to.match(/,Errors$/);
});
pm.test("the row names the failed URL and its error code", () => {
  pm.expect(lines.slice(1).join("\\n")).to.include("http_error");
});
""",
        ),
        request(
            "Retry the failed image",
            "POST",
            "/api/v1/requests/{{brokenId}}/retry",
            description="202: the failed images go back to pending; the request runs again.",
            tests=f"""
pm.test("status 202", () => pm.response.to.have.status(202));
{STATUS_BODY_TESTS}
pm.test("active again, its failures forgotten", () => {{
  pm.expect(["pending", "processing"]).to.include(body.status);
  pm.expect(body.failed_images).to.eql(0);
  pm.expect(body.processed_images).to.eql(1);
  pm.expect(body.finished_at).to.eql(null);
}});
""",
        ),
    ],
)

BATCH_PRE = """
// 200 distinct photo URLs (the query makes each one a different image): enough work
// that the request is still running when the next request cancels it.
const base = pm.variables.get("baseUrl");
const photos = ["chelsea", "coffee", "rocket", "astronaut"];
const rows = ["S. No.,Product Name,Input Image Urls"];
for (let row = 1; row <= 50; row++) {
  const urls = photos.map((photo) => `${base}/samples/${photo}.jpg?n=${row}`);
  rows.push(`${row},SKU${row},"${urls.join(",")}"`);
}
pm.collectionVariables.set("batchCsv", rows.join("\\r\\n"));
"""

CANCEL = folder(
    "Cancel and retry",
    "A larger batch, cancelled while it runs, retried, and cancelled again.",
    [
        request(
            "Upload a batch to cancel",
            "POST",
            "/api/v1/requests",
            description="200 images, made by the pre-request script.",
            pre=BATCH_PRE,
            headers=[MULTIPART_HEADER],
            body=multipart_body("batchCsv"),
            tests="""
pm.test("status 202", () => pm.response.to.have.status(202));
pm.test("200 images", () => pm.expect(pm.response.json().total_images).to.eql(200));
pm.collectionVariables.set("batchId", pm.response.json().request_id);
""",
        ),
        request(
            "Output CSV while it runs",
            "GET",
            "/api/v1/requests/{{batchId}}/output.csv",
            description="409 until the request is finished; the detail is the status body.",
            tests="""
pm.test("status 409", () => pm.response.to.have.status(409));
pm.test("the detail says it is still running", () => {
  pm.expect(["pending", "processing"]).to.include(pm.response.json().detail.status);
});
""",
        ),
        request(
            "Cancel it",
            "POST",
            "/api/v1/requests/{{batchId}}/cancel",
            description="Stops outstanding work; the status becomes cancelled (terminal).",
            tests=f"""
pm.test("status 200", () => pm.response.to.have.status(200));
{STATUS_BODY_TESTS}
pm.test("cancelled before all its images were done", () => {{
  pm.expect(body.status).to.eql("cancelled");
  pm.expect(body.finished_at).to.be.a("string");
  pm.expect(body.processed_images + body.failed_images).to.be.below(body.total_images);
}});
""",
        ),
        request(
            "Cancel it again",
            "POST",
            "/api/v1/requests/{{batchId}}/cancel",
            description="409: it is no longer running.",
            tests="""
pm.test("status 409", () => pm.response.to.have.status(409));
pm.test("the detail is the cancelled status", () => {
  pm.expect(pm.response.json().detail.status).to.eql("cancelled");
});
""",
        ),
        request(
            "Retry the cancelled request",
            "POST",
            "/api/v1/requests/{{batchId}}/retry",
            description="202: its cancelled (and failed) images go back to pending.",
            tests=f"""
pm.test("status 202", () => pm.response.to.have.status(202));
{STATUS_BODY_TESTS}
pm.test("active again", () => {{
  pm.expect(["pending", "processing"]).to.include(body.status);
  pm.expect(body.finished_at).to.eql(null);
}});
""",
        ),
        request(
            "Cancel it for good",
            "POST",
            "/api/v1/requests/{{batchId}}/cancel",
            description="Cancelled again, so the server does not go on working for this run.",
            tests="""
pm.test("status 200", () => pm.response.to.have.status(200));
pm.test("cancelled", () => pm.expect(pm.response.json().status).to.eql("cancelled"));
""",
        ),
        request(
            "Delete it",
            "DELETE",
            "/api/v1/requests/{{batchId}}",
            description="204: a finished or cancelled request goes, with every stored image.",
            tests="""
pm.test("status 204", () => pm.response.to.have.status(204));
""",
        ),
        request(
            "It is gone",
            "GET",
            "/api/v1/requests/{{batchId}}",
            description="404 once deleted.",
            tests="""
pm.test("status 404", () => pm.response.to.have.status(404));
""",
        ),
    ],
)

INVALID_CSV = "\r\n".join(
    [
        "S. No.,Product Name,Input Image Urls",
        "1,SKU1,https://img.example/a.jpg",
        "1,,ftp://img.example/b.jpg",
    ]
)

ERRORS = folder(
    "Errors",
    'What the API answers to a wrong request: FastAPI\'s {"detail": ...} shape.',
    [
        request(
            "Unknown request",
            "GET",
            "/api/v1/requests/00000000-0000-4000-8000-000000000000",
            description="404 for an id that does not exist.",
            tests="""
pm.test("status 404", () => pm.response.to.have.status(404));
pm.test("a detail message", () => pm.expect(pm.response.json().detail).to.be.a("string"));
""",
        ),
        request(
            "Upload an invalid CSV",
            "POST",
            "/api/v1/requests",
            description="422 with every problem, its line and column; nothing is stored.",
            pre=f'pm.collectionVariables.set("invalidCsv", {json.dumps(INVALID_CSV)});',
            headers=[MULTIPART_HEADER],
            body=multipart_body("invalidCsv"),
            tests="""
pm.test("status 422", () => pm.response.to.have.status(422));
const errors = pm.response.json().detail.errors;
pm.test("every problem with its line and column", () => {
  pm.expect(errors.length).to.be.at.least(3);
  errors.forEach((error) => {
    pm.expect(error).to.include.keys("line", "column", "message");
    pm.expect(error.line).to.eql(3);
  });
});
""",
        ),
        request(
            "A page too large",
            "GET",
            "/api/v1/requests?limit=1000",
            description="422: limit is at most 500.",
            tests="""
pm.test("status 422", () => pm.response.to.have.status(422));
pm.test("names the parameter", () => {
  pm.expect(pm.response.json().detail[0].loc).to.eql(["query", "limit"]);
});
""",
        ),
    ],
)


def collection() -> dict[str, Any]:
    return {
        "info": {
            "_postman_id": "5b0f6f1e-3c7a-4d0e-9a57-1a2b3c4d5e6f",
            "name": "imgbatch",
            "description": DESCRIPTION,
            "schema": SCHEMA,
        },
        "event": [
            {"listen": "prerequest", "script": {"type": "text/javascript", "exec": lines(HELPERS)}}
        ],
        "variable": [
            {"key": "baseUrl", "value": "http://127.0.0.1:8000", "type": "string"},
            {"key": "csvFile", "value": "sample.csv", "type": "string"},
        ],
        "item": [SERVICE, LIFE, FAILED, CANCEL, ERRORS],
    }


def collection_json() -> str:
    return json.dumps(collection(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.write_text(collection_json(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(OUT.parents[1])}")


if __name__ == "__main__":
    main()
