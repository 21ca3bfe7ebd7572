// The upload form: choose or drop a CSV, an optional webhook URL, and every error if the
// file is rejected.

import { ApiError, upload } from "./api.js";
import { byId, h, replaceChildren, setText } from "./dom.js";
import { bytes, count, percent } from "./format.js";
import { chosenOptions } from "./options.js";

const STATUS_MESSAGES = {
  0: "The service cannot be reached; check your connection and try again.",
  400: "The file cannot be read as a CSV.",
  401: "The service needs an API key: enter it under “API key” below.",
  403: "This API key is not allowed to upload.",
  413: "The file is too large.",
  415: "This kind of file is not accepted; upload a .csv file.",
  429: "Too many uploads at once; wait a moment and try again.",
  503: "The service is busy or starting; try again in a moment.",
};

/** Wire the form; `onAccepted(statusBody)` is called with the 202 answer. */
export function setUpUpload({ onAccepted }) {
  const form = byId("upload-form");
  const input = byId("csv-file");
  const dropzone = byId("dropzone");
  const fileName = byId("csv-file-name");
  const webhook = byId("webhook-url");
  const button = byId("upload-button");
  const state = byId("upload-state");
  const errors = byId("upload-errors");

  const showChosen = () => {
    const file = input.files[0];
    setText(fileName, file ? `${file.name} (${bytes(file.size)})` : "No file chosen");
    dropzone.classList.toggle("has-file", Boolean(file));
  };
  input.addEventListener("change", () => {
    showChosen();
    hideErrors(errors);
  });

  // A file dropped anywhere but the drop zone must not make the browser open it instead.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
  dropzone.addEventListener("dragenter", () => dropzone.classList.add("dragging"));
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dropzone.classList.add("dragging");
  });
  dropzone.addEventListener("dragleave", (event) => {
    if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove("dragging");
  });
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = input.files[0];
    if (!file) {
      showErrors(errors, "Choose a CSV file first.", []);
      input.focus();
      return;
    }
    hideErrors(errors);
    button.disabled = true;
    setText(state, "Uploading…");
    try {
      const onProgress = (fraction) => {
        setText(state, fraction < 1 ? `Uploading… ${percent(fraction)}` : "Checking the CSV…");
      };
      const status = await upload(file, webhook.value.trim(), onProgress, chosenOptions());
      setText(state, "");
      form.reset();
      showChosen();
      onAccepted(status);
    } catch (error) {
      setText(state, "");
      if (error instanceof ApiError) showRejection(errors, error);
      else showErrors(errors, `The upload failed: ${error.message}`, []);
    } finally {
      button.disabled = false;
    }
  });
}

function showRejection(container, error) {
  const { status, detail } = error;
  if (detail && Array.isArray(detail.errors) && detail.errors.every(isWebhookProblem)) {
    // The form's webhook URL, not the file, was refused.
    const title = "The webhook URL was refused; nothing was stored. Fix it and upload again:";
    showErrors(container, title, detail.errors.map(describeProblem));
  } else if (detail && Array.isArray(detail.errors)) {
    const problems = detail.errors;
    const title =
      problems.length === 1
        ? "The CSV was rejected; nothing was stored. Fix this problem and upload it again:"
        : `The CSV was rejected; nothing was stored. Fix these ${count(problems.length)} ` +
          "problems and upload it again:";
    const note = detail.truncated ? "Only the first problems are listed; there are more." : null;
    showErrors(container, title, problems.map(describeProblem), note);
  } else if (Array.isArray(detail)) {
    // FastAPI's own validation errors: a missing or malformed form field.
    showErrors(container, "The upload was refused:", detail.map((item) => ({ text: item.msg })));
  } else {
    const message = typeof detail === "string" ? detail : null;
    const general = STATUS_MESSAGES[status] ?? `The upload failed (HTTP ${status}).`;
    showErrors(container, general, message && message !== general ? [{ text: message }] : []);
  }
}

const isWebhookProblem = (problem) => problem.column === "webhook_url";

const OPTION_LABELS = { format: "Format", quality: "Quality", max_size: "Longest side" };

/** {line, column, message} as a list item: "Line 3 · Product Name: …". Line 0 is the form. */
function describeProblem({ line, column, message }) {
  if (column === "webhook_url") return { where: "Webhook URL", text: message };
  if (OPTION_LABELS[column]) return { where: OPTION_LABELS[column], text: message };
  const where = [line > 0 ? `Line ${line}` : null, column].filter(Boolean).join(" · ");
  return { where, text: message };
}

function showErrors(container, title, items, note = null) {
  replaceChildren(
    container,
    h("p", { class: "errors-title" }, title),
    items.length
      ? h(
          "ul",
          { class: "error-list" },
          items.map(({ where, text }) =>
            h("li", {}, where ? h("span", { class: "where" }, where) : null, h("span", {}, text)),
          ),
        )
      : null,
    note ? h("p", { class: "muted" }, note) : null,
  );
  container.hidden = false;
}

function hideErrors(container) {
  container.hidden = true;
  container.replaceChildren();
}
