// One request: live progress (polling its status until it is terminal), sizes, actions, and
// its products.

import {
  ApiError,
  TERMINAL,
  apiKey,
  cancelRequest,
  downloadWithKey,
  errorsCsvPath,
  getStatus,
  outputCsvPath,
  retryRequest,
} from "./api.js";
import { byId, setText } from "./dom.js";
import {
  ago,
  count,
  duration,
  parseTime,
  percent,
  plural,
  rate,
  saving,
  sizes,
  statusLabel,
} from "./format.js";
import { Latest, sleep } from "./latest.js";
import { describeOptions } from "./options.js";
import { ProductList } from "./products.js";
import { SpeedMeter, averageRate } from "./speed.js";

const POLL_MS = 1000;
const POLL_HIDDEN_MS = 5000; // a background tab polls gently
const PRODUCTS_EVERY_MS = 2000; // thumbnails refresh less often than the counters
const RETRY_MAX_MS = 15_000;

export class RequestView {
  /** `onChange(status)` runs when the request finishes, or is cancelled or retried here;
   * `onStatus(status)` on every status seen. */
  constructor({ onChange, onStatus, onNotFound }) {
    this.onChange = onChange;
    this.onStatus = onStatus;
    this.onNotFound = onNotFound;
    this.products = new ProductList();
    this.requestId = null;
    this.status = null;
    this.latest = new Latest(); // the poll loop of the request in view
    this.el = {
      section: byId("request-view"),
      statusBadge: byId("request-status"),
      id: byId("request-id"),
      progress: byId("progress"),
      percent: byId("progress-percent"),
      label: byId("progress-label"),
      processed: byId("stat-processed"),
      failed: byId("stat-failed"),
      size: byId("request-size"),
      rate: byId("stat-rate"),
      eta: byId("stat-eta"),
      bytes: byId("stat-bytes"),
      saved: byId("stat-saved"),
      webhook: byId("webhook-line"),
      options: byId("options-line"),
      download: byId("download-button"),
      errors: byId("errors-button"),
      retry: byId("retry-button"),
      cancel: byId("cancel-button"),
      actionState: byId("action-state"),
    };
    this.el.cancel.addEventListener("click", () => this.act(cancelRequest, "Cancelling…"));
    this.el.retry.addEventListener("click", () => this.act(retryRequest, "Re-queuing…"));
    this.el.download.addEventListener("click", (event) => {
      // A plain link cannot send the API key; fetch the file with it instead.
      if (!apiKey()) return;
      event.preventDefault();
      downloadWithKey(this.requestId).catch((error) => setText(this.el.actionState, error.message));
    });
    this.el.errors.addEventListener("click", (event) => {
      if (!apiKey()) return;
      event.preventDefault();
      const path = errorsCsvPath(this.requestId);
      downloadWithKey(this.requestId, path, `${this.requestId}-errors.csv`).catch((error) =>
        setText(this.el.actionState, error.message),
      );
    });
  }

  /** Show a request and follow it; `initial` is a status body already in hand (an upload). */
  open(requestId, initial = null) {
    if (requestId === this.requestId && this.status) return;
    this.close();
    this.requestId = requestId;
    this.status = null;
    this.meter = new SpeedMeter();
    setText(this.el.id, requestId);
    setText(this.el.actionState, "");
    this.el.section.hidden = false;
    if (initial) this.render(initial);
    this.products.show(requestId, initial?.total_products ?? 0);
    this.follow();
  }

  close() {
    this.latest.renew();
    this.requestId = null;
    this.status = null;
    this.products.close();
    this.el.section.hidden = true;
    document.title = "imgbatch";
  }

  /** Poll until the request is terminal; a newer open, close or follow ends this loop. */
  async follow() {
    const signal = this.latest.renew();
    const requestId = this.requestId;
    let wait = POLL_MS;
    let productsAt = performance.now();
    let seen = this.status ? progressKey(this.status) : null;
    for (;;) {
      let status;
      try {
        status = await getStatus(requestId, { signal });
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status === 404) {
          this.onNotFound(requestId);
          return;
        }
        setText(this.el.label, `${error.message}; trying again…`);
        wait = Math.min(wait * 2, RETRY_MAX_MS);
        await sleep(wait, signal);
        continue;
      }
      if (signal.aborted) return;
      wait = POLL_MS;
      // Seen running here (not merely reopened after it finished).
      const wasActive = this.status !== null && !TERMINAL.has(this.status.status);
      this.render(status);
      const terminal = TERMINAL.has(status.status);
      const key = progressKey(status);
      const now = performance.now();
      if (key !== seen && (terminal || now - productsAt >= PRODUCTS_EVERY_MS)) {
        seen = key;
        productsAt = now;
        this.products.refresh();
      }
      if (terminal) {
        if (wasActive) this.onChange(status);
        return;
      }
      await sleep(document.hidden ? POLL_HIDDEN_MS : POLL_MS, signal);
      if (signal.aborted) return;
    }
  }

  async act(call, pending) {
    const requestId = this.requestId;
    const signal = this.latest.signal; // aborted if another request is opened meanwhile
    this.el.cancel.disabled = true;
    this.el.retry.disabled = true;
    setText(this.el.actionState, pending);
    try {
      const status = await call(requestId);
      if (signal.aborted) return;
      setText(this.el.actionState, "");
      this.meter = new SpeedMeter();
      this.render(status);
      this.onChange(status);
      this.products.refresh();
      this.follow();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (signal.aborted) return;
      const detail = error.detail;
      // 409 carries the fresh status body: the request finished (or started) meanwhile.
      if (error.status === 409 && detail?.status) this.render(detail);
      setText(this.el.actionState, error.status === 409 ? conflictText(detail) : error.message);
    } finally {
      this.el.cancel.disabled = false;
      this.el.retry.disabled = false;
    }
  }

  render(status) {
    this.status = status;
    this.onStatus(status);
    const el = this.el;
    const terminal = TERMINAL.has(status.status);
    const done = status.processed_images + status.failed_images;
    const total = status.total_images;
    const fraction = total ? done / total : 0;

    setText(el.statusBadge, statusLabel(status.status));
    el.statusBadge.className = `badge status-${status.status}`;
    el.progress.max = Math.max(total, 1);
    el.progress.value = done;
    setText(el.percent, percent(fraction)); // from the counts: `progress` is rounded
    setText(el.label, progressText(status, done, terminal));
    setText(el.processed, count(status.processed_images));
    setText(el.failed, count(status.failed_images));
    setText(el.size, `· ${plural(status.total_products, "product")}, ${plural(total, "image")}`);

    this.meter.add(done);
    if (terminal) {
      setText(el.rate, rate(averageRate(status)));
      setText(el.eta, status.status === "cancelled" ? "–" : "done");
    } else {
      setText(el.rate, rate(this.meter.rate()));
      const left = this.meter.secondsLeft(total - done);
      setText(el.eta, left === null ? "estimating…" : `about ${duration(left)}`);
    }
    setText(el.bytes, status.input_bytes ? sizes(status.input_bytes, status.output_bytes) : "–");
    setText(el.saved, saving(status.input_bytes, status.output_bytes, { words: true }) ?? "–");

    setText(el.options, describeOptions(status.options));
    el.webhook.hidden = !status.webhook_url;
    if (status.webhook_url) {
      const state = status.webhook_status ? ` (${status.webhook_status})` : "";
      setText(el.webhook, `Webhook: ${status.webhook_url}${state}`);
    }

    el.download.hidden = !status.output_csv_url;
    if (status.output_csv_url) {
      el.download.href = outputCsvPath(status.request_id);
      el.download.download = `${status.request_id}.csv`;
    }
    // The errors file: fix its URLs and upload it again to retry just those images.
    el.errors.hidden = !status.errors_csv_url;
    if (status.errors_csv_url) {
      el.errors.href = errorsCsvPath(status.request_id);
      el.errors.download = `${status.request_id}-errors.csv`;
    }
    const unfinished = done < total;
    el.retry.hidden = !(terminal && (status.failed_images > 0 || unfinished));
    setText(el.retry, status.status === "cancelled" ? "Resume" : "Retry failed images");
    el.cancel.hidden = terminal;

    document.title = terminal
      ? `${statusLabel(status.status)} · imgbatch`
      : `${percent(fraction)} · imgbatch`;
  }
}

function progressKey(status) {
  return `${status.status}:${status.processed_images}:${status.failed_images}`;
}

function progressText(status, done, terminal) {
  const parts = [`${count(done)} of ${count(status.total_images)} images done`];
  if (status.failed_images) parts.push(`${count(status.failed_images)} failed`);
  if (status.reused_images) parts.push(`${count(status.reused_images)} reused unchanged`);
  if (!terminal) {
    const waiting = status.status === "pending" && done === 0;
    return [waiting ? "Waiting for a worker" : "Processing", ...parts].join(" · ");
  }
  const outcome = {
    completed: "Completed",
    completed_with_errors: "Completed with errors",
    failed: "Failed",
    cancelled: "Cancelled",
  }[status.status];
  if (!status.finished_at) return [outcome, ...parts].join(" · ");
  const seconds = (parseTime(status.finished_at) - parseTime(status.created_at)) / 1000;
  const took = seconds < 1 ? "under a second" : duration(seconds);
  const verb = status.status === "cancelled" ? "after" : "in";
  return [`${outcome} ${verb} ${took}`, ...parts, `finished ${ago(status.finished_at)}`].join(
    " · ",
  );
}

function conflictText(detail) {
  if (!detail?.status) return "That is not possible in the request's current state.";
  return TERMINAL.has(detail.status)
    ? `The request has already finished (${statusLabel(detail.status)}).`
    : "The request is still running; wait for it to finish.";
}
