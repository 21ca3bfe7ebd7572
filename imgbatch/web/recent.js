// Recent requests, newest first, a page at a time: each links to #/requests/<id>.

import { ApiError, TERMINAL, listRequests } from "./api.js";
import { byId, h, reconcile, replaceChildren, setText } from "./dom.js";
import { ago, count, percent, plural, statusLabel } from "./format.js";
import { Latest } from "./latest.js";

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
    this.items = []; // the statuses listed
    this.latest = new Latest();
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
    const index = this.items.findIndex((item) => item.request_id === status.request_id);
    if (index < 0) return;
    this.items = this.items.with(index, status);
    this.render();
  }

  refresh() {
    return this.load(this.offset);
  }

  async load(offset) {
    const signal = this.latest.renew();
    let page;
    try {
      page = await listRequests(offset, PAGE_SIZE, { signal });
    } catch (error) {
      if (signal.aborted) return;
      if (!(error instanceof ApiError)) throw error;
      replaceChildren(this.list, h("li", { class: "muted" }, error.message));
      return;
    }
    if (signal.aborted) return;
    this.offset = offset;
    this.total = page.total;
    this.items = page.items;
    this.render();
    this.empty.hidden = page.total > 0;
    this.pager.hidden = page.total <= PAGE_SIZE;
    this.newer.disabled = offset === 0;
    this.older.disabled = offset + PAGE_SIZE >= page.total;
    const last = offset + page.items.length;
    setText(this.range, `${count(offset + 1)}–${count(last)} of ${count(page.total)}`);
  }

  /** The listed statuses; an item that did not change keeps its element. */
  render() {
    reconcile(
      this.list,
      this.items,
      (status) => status.request_id,
      (status, shown) => {
        const fresh = this.item(status);
        return shown?.isEqualNode(fresh) ? shown : fresh;
      },
    );
  }

  item(status) {
    const done = status.processed_images + status.failed_images;
    const active = !TERMINAL.has(status.status);
    const detail = [
      plural(status.total_images, "image"),
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
