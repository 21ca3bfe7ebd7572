// One page of a request's products, each image as input and output thumbnails side by side.
//
// Only one page is ever in the DOM (PAGE_SIZE products, IMAGES_SHOWN images each until the
// user asks for more), so a request of 100,000 images costs the same as one of ten. While a
// request runs, a refresh updates the page in place: an image whose state did not change
// keeps its element, so thumbnails do not reload or flicker.

import { ApiError, getProducts } from "./api.js";
import { byId, h, reconcile, safeUrl, setText } from "./dom.js";
import { count, plural, saving, sizes, statusLabel } from "./format.js";
import { Latest } from "./latest.js";

export const PAGE_SIZE = 20;
const IMAGES_SHOWN = 12;

// What each image cell shows; a cell is rebuilt only when this changes.
const signatures = new WeakMap();

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
    this.items = []; // the page in view, as last loaded
    this.expanded = new Set(); // serials whose every image is shown
    this.latest = new Latest();
    this.loading = false;
    this.again = false; // a refresh came while loading: load once more afterwards

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
    this.empty();
    return this.load();
  }

  /** Show nothing, and drop any load under way. */
  close() {
    this.latest.renew();
    this.requestId = null;
    this.loading = false;
    this.empty();
  }

  empty() {
    this.items = [];
    this.expanded.clear();
    this.list.replaceChildren();
  }

  /** The request moved on: load the page in view again. Calls during a load make one more. */
  refresh() {
    if (this.loading) this.again = true;
    else this.load();
  }

  async goTo(page) {
    const target = Math.min(Math.max(1, Math.trunc(page) || 1), this.pages);
    if (target !== this.page) {
      this.page = target;
      this.expanded.clear();
    }
    this.pageInput.value = String(target);
    if (await this.load()) this.range.scrollIntoView({ block: "nearest" });
  }

  /** Load the page in view, replacing any load under way; true once it is shown. */
  async load() {
    const requestId = this.requestId;
    if (!requestId) return false;
    const signal = this.latest.renew();
    this.loading = true;
    this.again = false;
    try {
      const offset = (this.page - 1) * PAGE_SIZE;
      const body = await getProducts(requestId, offset, PAGE_SIZE, { signal });
      if (signal.aborted) return false;
      this.total = body.total;
      this.items = body.items;
      this.render();
      return true;
    } catch (error) {
      if (signal.aborted) return false;
      if (!(error instanceof ApiError)) throw error;
      setText(this.range, `The products could not be loaded: ${error.message}`);
      return false;
    } finally {
      // An aborted load has been replaced: the newer one owns the flags.
      if (!signal.aborted) {
        this.loading = false;
        if (this.again) this.load();
      }
    }
  }

  render() {
    const items = this.items;
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

    reconcile(
      this.list,
      items,
      (product) => product.serial,
      (product, row) => {
        const element = row ?? this.productRow(product);
        updateProduct(element, product, this.expanded.has(product.serial));
        return element;
      },
    );
  }

  productRow(product) {
    const more = h("button", { type: "button", class: "link-button more", hidden: true });
    more.addEventListener("click", () => {
      this.expanded.add(product.serial);
      this.render();
    });
    return h(
      "li",
      { class: "product" },
      h(
        "div",
        { class: "product-head" },
        h("span", { class: "serial" }, `#${product.serial}`),
        h("h3", { class: "product-name" }, product.product_name),
        h("span", { class: "product-summary muted" }),
      ),
      h("ul", { class: "images" }),
      more,
    );
  }
}

function updateProduct(row, product, showAll) {
  const images = product.images;
  const shown = showAll ? images : images.slice(0, IMAGES_SHOWN);
  const failed = images.filter((image) => image.status === "failed").length;
  const done = images.filter((image) => image.status === "succeeded");
  const input = done.reduce((sum, image) => sum + (image.input_bytes ?? 0), 0);
  const output = done.reduce((sum, image) => sum + (image.output_bytes ?? 0), 0);
  const parts = [plural(images.length, "image")];
  if (failed) parts.push(`${count(failed)} failed`);
  const reused = done.filter((image) => image.reused).length;
  if (reused) parts.push(`${count(reused)} reused unchanged`);
  if (done.length) {
    const change = saving(input, output);
    parts.push(change ? `${sizes(input, output)} (${change})` : sizes(input, output));
  }
  setText(row.querySelector(".product-summary"), parts.join(" · "));

  const more = row.querySelector(".more");
  more.hidden = shown.length === images.length;
  setText(more, `Show all ${count(images.length)} images`);

  reconcile(
    row.querySelector(".images"),
    shown,
    (image) => image.position,
    (image, cell) => {
      const signature = JSON.stringify([
        image.status,
        image.output_url,
        image.error_code,
        image.output_bytes,
      ]);
      if (cell && signatures.get(cell) === signature) return cell;
      const element = imageCell(image, product);
      signatures.set(element, signature);
      return element;
    },
  );
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
        sizes(image.input_bytes, image.output_bytes),
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
