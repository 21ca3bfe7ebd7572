// The HTTP API (SPEC §3), called with relative paths so the page works under any host name.

const KEY_STORAGE = "imgbatch.apiKey";
const BASE = "/api/v1";

export const TERMINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);

/** An answer that was not 2xx: `detail` is FastAPI's {"detail": ...} payload, if any. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `the server answered ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function call(method, path, { signal } = {}) {
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers: { Accept: "application/json", ...authHeaders() },
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the service cannot be reached; check your connection");
  }
  const body = await response.json().catch(() => null);
  // An abort while the body was read would otherwise look like an empty answer.
  signal?.throwIfAborted();
  if (!response.ok) throw new ApiError(response.status, body?.detail ?? null);
  return body;
}

const id = (requestId) => encodeURIComponent(requestId);

export const getStatus = (requestId, options) => call("GET", `/requests/${id(requestId)}`, options);
export const listRequests = (offset, limit, options) =>
  call("GET", `/requests?offset=${offset}&limit=${limit}`, options);
export const getProducts = (requestId, offset, limit, options) =>
  call("GET", `/requests/${id(requestId)}/products?offset=${offset}&limit=${limit}`, options);
export const cancelRequest = (requestId) => call("POST", `/requests/${id(requestId)}/cancel`);
export const retryRequest = (requestId) => call("POST", `/requests/${id(requestId)}/retry`);

/** Where the output CSV is served, on this page's own origin. */
export const outputCsvPath = (requestId) => `${BASE}/requests/${id(requestId)}/output.csv`;

/** Where the errors file (rows with a failed image) is served. */
export const errorsCsvPath = (requestId) => `${BASE}/requests/${id(requestId)}/errors.csv`;

/** Fetch a request's CSV (the output CSV unless `path` says otherwise) with the API key
 *  and hand it to the browser as a download. */
export const downloadWithKey = (
  requestId,
  path = outputCsvPath(requestId),
  name = `${requestId}.csv`,
) => downloadPath(path, name);

/** Fetch any keyed path (the sample CSV, an output CSV) with the key and save it as `name`. */
export async function downloadPath(path, name) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, body?.detail ?? null);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), {
    href: url,
    download: name,
  });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Upload a CSV (multipart `file` + `webhook_url`). XMLHttpRequest rather than fetch, for
 * the upload progress of a large file. Resolves to the status body (202).
 */
export function upload(file, webhookUrl, onProgress, fields = {}) {
  const form = new FormData();
  form.append("file", file, file.name);
  if (webhookUrl) form.append("webhook_url", webhookUrl);
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${BASE}/requests`);
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response?.detail ?? null));
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "the upload failed: the service cannot be reached")),
    );
    xhr.send(form);
  });
}
