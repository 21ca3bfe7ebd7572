// One page of a request's products, each image as input and output thumbnails side by side.
//
// Only one page is ever in the DOM (PAGE_SIZE products, IMAGES_SHOWN images each until the
// user asks for more), so a request of 100,000 images costs the same as one of ten. While a
// request runs, a refresh updates the page in place: an image whose state did not change
// keeps its element, so thumbnails do not reload or flicker.

import { ApiError, getProducts } from "./api.js";
import { byId, h, replaceChildren, safeUrl, setText } from "./dom.js";
import { bytes, count, saving, statusLabel } from "./format.js";

export const PAGE_SIZE = 20;
const IMAGES_SHOWN = 12;

export class ProductList {
  constructor() {
    this.list = byId("products");
    this.range = byId("products-range");
    this.pager = byId("products-pager");
    this.prev = byId("page-prev");
    this.next = byId("page-next");
    this.pageInput = byId("page-number");
    this.pageCount = byId("page-count");
    this.requestId = null;
    this.page = 1;
    this.total = 0;
    this.rows = new Map(); // serial -> {element, images: Map(position -> {signature, element})}
    this.expanded = new Set(); // serials whose every image is shown
    this.loading = null;

    this.prev.addEventListener("click", () => this.goTo(this.page - 1));
    this.next.addEventListener("click", () => this.goTo(this.page + 1));
    this.pageInput.addEventListener("change", () => this.goTo(Number(this.pageInput.value)));
  }

  get pages() {
    return Math.max(1, Math.ceil(this.total / PAGE_SIZE));
  }

  /** Show the first page of another request. */
  show(requestId, totalProducts) {
    this.requestId = requestId;
    this.total = totalProducts;
    this.page = 1;
    this.clear();
    return this.refresh();
  }

  clear() {
    this.rows.clear();
    this.expanded.clear();
    this.list.replaceChildren();
  }

  async goTo(page) {
    const target = Math.min(Math.max(1, Math.trunc(page) || 1), this.pages);
    if (target !== this.page) {
      this.page = target;
      this.expanded.clear();
    }
    this.pageInput.value = String(target);
    await this.refresh();
    if (target === this.page) this.range.scrollIntoView({ block: "nearest" });
  }

  /** Load the current page again and update it in place. */
  async refresh() {
    const requestId = this.requestId;
    const page = this.page;
    if (!requestId) return;
    // One load at a time; a newer call waits for the running one, then loads fresh data.
    while (this.loading) await this.loading.catch(() => {});
    if (requestId !== this.requestId || page !== this.page) return;
    this.loading = getProducts(requestId, (page - 1) * PAGE_SIZE, PAGE_SIZE);
    try {
      const body = await this.loading;
      if (requestId !== this.requestId || page !== this.page) return;
      this.total = body.total;
      this.render(body.items);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setText(this.range, `The products could not be loaded: ${error.message}`);
    } finally {
      this.loading = null;
    }
  }

  render(items) {
    const first = (this.page - 1) * PAGE_SIZE;
    setText(
      this.range,
      this.total
        ? `Products ${count(first + 1)}–${count(first + items.length)} of ${count(this.total)}`
        : "No products.",
    );
    this.pager.hidden = this.total <= PAGE_SIZE;
    this.prev.disabled = this.page <= 1;
    this.next.disabled = this.page >= this.pages;
    this.pageInput.max = String(this.pages);
    if (document.activeElement !== this.pageInput) this.pageInput.value = String(this.page);
    setText(this.pageCount, `of ${count(this.pages)}`);

    const seen = new Set();
    let previous = null;
    for (const product of items) {
      seen.add(product.serial);
      const row = this.productRow(product);
      // Keep input order; move a node only when it is not already in place.
      const expected = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== row.element) this.list.insertBefore(row.element, expected);
      previous = row.element;
    }
    for (const [serial, row] of this.rows) {
      if (!seen.has(serial)) {
        row.element.remove();
        this.rows.delete(serial);
      }
    }
  }

  productRow(product) {
    let row = this.rows.get(product.serial);
    if (!row) {
      const images = h("ul", { class: "images" });
      const summary = h("span", { class: "product-summary muted" });
      const more = h("button", { type: "button", class: "link-button more", hidden: true });
      const element = h(
        "li",
        { class: "product" },
        h(
          "div",
          { class: "product-head" },
          h("span", { class: "serial" }, `#${product.serial}`),
          h("h3", { class: "product-name" }, product.product_name),
          summary,
        ),
        images,
        more,
      );
      row = { element, imagesList: images, summary, more, images: new Map() };
      more.addEventListener("click", () => {
        this.expanded.add(product.serial);
        this.refresh();
      });
      this.rows.set(product.serial, row);
    }
    this.updateProduct(row, product);
    return row;
  }

  updateProduct(row, product) {
    const showAll = this.expanded.has(product.serial);
    const shown = showAll ? product.images : product.images.slice(0, IMAGES_SHOWN);
    const failed = product.images.filter((image) => image.status === "failed").length;
    const done = product.images.filter((image) => image.status === "succeeded");
    const input = done.reduce((sum, image) => sum + (image.input_bytes ?? 0), 0);
    const output = done.reduce((sum, image) => sum + (image.output_bytes ?? 0), 0);
    const parts = [`${count(product.images.length)} image${product.images.length === 1 ? "" : "s"}`];
    if (failed) parts.push(`${count(failed)} failed`);
    const reused = done.filter((image) => image.reused).length;
    if (reused) parts.push(`${count(reused)} reused unchanged`);
    if (done.length) parts.push(`${bytes(input)} → ${bytes(output)} (${saving(input, output)})`);
    setText(row.summary, parts.join(" · "));

    const hidden = product.images.length - shown.length;
    row.more.hidden = hidden === 0;
    setText(row.more, `Show all ${count(product.images.length)} images`);

    let previous = null;
    const seen = new Set();
    for (const image of shown) {
      seen.add(image.position);
      const signature = JSON.stringify([
        image.status,
        image.output_url,
        image.error_code,
        image.output_bytes,
      ]);
      let cell = row.images.get(image.position);
      if (!cell || cell.signature !== signature) {
        const element = imageCell(image, product);
        if (cell) cell.element.replaceWith(element);
        cell = { signature, element };
        row.images.set(image.position, cell);
      }
      const expected = previous ? previous.nextElementSibling : row.imagesList.firstElementChild;
      if (expected !== cell.element) row.imagesList.insertBefore(cell.element, expected);
      previous = cell.element;
    }
    for (const [position, cell] of row.images) {
      if (!seen.has(position)) {
        cell.element.remove();
        row.images.delete(position);
      }
    }
  }
}

function imageCell(image, product) {
  const number = image.position + 1;
  const inputUrl = safeUrl(image.input_url);
  const outputUrl = image.status === "succeeded" ? safeUrl(image.output_url) : null;
  return h(
    "li",
    { class: `image status-${image.status}` },
    h(
      "div",
      { class: "thumbs" },
      thumbnail(inputUrl, `Input image ${number} of ${product.product_name}`, "input"),
      h("span", { class: "arrow", "aria-hidden": "true" }, "→"),
      outputUrl
        ? thumbnail(outputUrl, `Output image ${number} of ${product.product_name}`, "output")
        : h("span", { class: "thumb placeholder" }, placeholderText(image.status)),
    ),
    h("div", { class: "image-info" }, ...imageDetails(image, inputUrl)),
  );
}

function thumbnail(url, alt, kind) {
  if (!url) return h("span", { class: "thumb placeholder" }, "no preview");
  const img = h("img", {
    src: url,
    alt,
    loading: "lazy",
    decoding: "async",
    width: 72,
    height: 72,
    // Input images live on other people's servers: do not tell them where we are.
    referrerpolicy: "no-referrer",
    class: kind,
  });
  img.addEventListener("error", () => img.closest(".thumb")?.classList.add("broken"), {
    once: true,
  });
  return h(
    "a",
    { class: "thumb", href: url, target: "_blank", rel: "noopener noreferrer", title: alt },
    img,
  );
}

function placeholderText(status) {
  return { failed: "failed", cancelled: "cancelled", processing: "working…" }[status] ?? "waiting";
}

function imageDetails(image, inputUrl) {
  const details = [h("span", { class: `badge status-${image.status}` }, statusLabel(image.status))];
  if (image.status === "succeeded") {
    const change = saving(image.input_bytes, image.output_bytes);
    details.push(
      h(
        "span",
        { class: "sizes" },
        `${bytes(image.input_bytes)} → ${bytes(image.output_bytes)}`,
        change ? h("strong", { class: "saving" }, ` ${change}`) : null,
      ),
    );
  } else if (image.status === "failed") {
    details.push(
      h(
        "span",
        { class: "failure" },
        image.error_code ? h("code", { class: "error-code" }, image.error_code) : null,
        image.error ? ` ${image.error}` : null,
      ),
    );
  }
  const label = image.input_url;
  details.push(
    inputUrl
      ? h("a", { class: "url", href: inputUrl, target: "_blank", rel: "noopener noreferrer" }, label)
      : h("span", { class: "url" }, label),
  );
  return details;
}
