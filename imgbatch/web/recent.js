// Recent requests, newest first, a page at a time: each links to #/requests/<id>.

import { ApiError, TERMINAL, listRequests } from "./api.js";
import { byId, h, replaceChildren, setText } from "./dom.js";
import { ago, count, percent, statusLabel } from "./format.js";

const PAGE_SIZE = 8;

export class RecentList {
  constructor() {
    this.list = byId("recent-list");
    this.empty = byId("recent-empty");
    this.pager = byId("recent-pager");
    this.range = byId("recent-range");
    this.newer = byId("recent-newer");
    this.older = byId("recent-older");
    this.offset = 0;
    this.total = 0;
    this.current = null;
    this.loading = 0;
    byId("recent-refresh").addEventListener("click", () => this.refresh());
    this.newer.addEventListener("click", () => this.load(Math.max(0, this.offset - PAGE_SIZE)));
    this.older.addEventListener("click", () => this.load(this.offset + PAGE_SIZE));
  }

  /** Mark the request being viewed. */
  select(requestId) {
    this.current = requestId;
    for (const link of this.list.querySelectorAll("a[data-id]")) {
      if (link.dataset.id === requestId) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** Show a fresher status of a listed request (the one being watched) in place. */
  update(status) {
    const link = [...this.list.querySelectorAll("a[data-id]")].find(
      (candidate) => candidate.dataset.id === status.request_id,
    );
    const item = link?.closest("li");
    if (!item) return;
    const fresh = this.item(status);
    if (fresh.textContent !== item.textContent) item.replaceWith(fresh);
  }

  refresh() {
    return this.load(this.offset);
  }

  async load(offset) {
    const ticket = ++this.loading;
    let page;
    try {
      page = await listRequests(offset, PAGE_SIZE);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (ticket === this.loading) {
        replaceChildren(this.list, h("li", { class: "muted" }, error.message));
      }
      return;
    }
    if (ticket !== this.loading) return;
    this.offset = offset;
    this.total = page.total;
    replaceChildren(this.list, page.items.map((status) => this.item(status)));
    this.empty.hidden = page.total > 0;
    this.pager.hidden = page.total <= PAGE_SIZE;
    this.newer.disabled = offset === 0;
    this.older.disabled = offset + PAGE_SIZE >= page.total;
    const last = offset + page.items.length;
    setText(this.range, `${count(offset + 1)}–${count(last)} of ${count(page.total)}`);
  }

  item(status) {
    const done = status.processed_images + status.failed_images;
    const active = !TERMINAL.has(status.status);
    const detail = [
      `${count(status.total_images)} image${status.total_images === 1 ? "" : "s"}`,
      active ? percent(status.total_images ? done / status.total_images : 0) : null,
      status.failed_images ? `${count(status.failed_images)} failed` : null,
      ago(status.created_at),
    ].filter(Boolean);
    return h(
      "li",
      {},
      h(
        "a",
        {
          href: `#/requests/${encodeURIComponent(status.request_id)}`,
          "data-id": status.request_id,
          "aria-current": status.request_id === this.current ? "page" : null,
          title: `${count(done)} of ${count(status.total_images)} images done`,
        },
        h("span", { class: `badge status-${status.status}` }, statusLabel(status.status)),
        h("span", { class: "recent-id" }, status.request_id.slice(0, 8)),
        h("span", { class: "recent-detail muted" }, detail.join(" · ")),
      ),
    );
  }
}
