// Building DOM safely: every string becomes a text node or an attribute value, never HTML.
// Data from the CSV (product names, URLs, error messages) only ever passes through here.

/** An element: h("a", {href, class: "x"}, "text", child, [more children]). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replaceChildren(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** The URL if it is http(s), else null: a `javascript:` URL must never become a link. */
export function safeUrl(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export const byId = (id) => document.getElementById(id);

/** Set text only when it changed, so polling does not disturb screen readers or selection. */
export function setText(element, text) {
  const value = String(text);
  if (element.textContent !== value) element.textContent = value;
}

// The element shown for each key, per list container (see reconcile).
const keyedChildren = new WeakMap();

/**
 * Make `list`'s children one element per item, in the items' order. `render(item, previous)`
 * gets the element shown for the item's key last time (or undefined) and returns the
 * element to show: `previous` itself to keep it (updated in place), or a new one to take its
 * place. Kept elements are moved only when out of place, so a thumbnail whose state did not
 * change is never reloaded. Anything else in `list` is removed.
 */
export function reconcile(list, items, key, render) {
  const before = keyedChildren.get(list) ?? new Map();
  const after = new Map();
  let previous = null;
  for (const item of items) {
    const itemKey = key(item);
    const shown = before.get(itemKey)?.parentNode === list ? before.get(itemKey) : undefined;
    const element = render(item, shown);
    if (shown && element !== shown) shown.replaceWith(element);
    after.set(itemKey, element);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== element) list.insertBefore(element, expected);
    previous = element;
  }
  let stale = previous ? previous.nextSibling : list.firstChild;
  while (stale) {
    const next = stale.nextSibling;
    stale.remove();
    stale = next;
  }
  keyedChildren.set(list, after);
}
