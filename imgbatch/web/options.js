// The output options of an upload (format, quality, size cap): read from the form's
// controls, and described in one line on a request's view.

import { byId } from "./dom.js";

const FORMAT_NAMES = { jpeg: "JPEG", webp: "WebP", avif: "AVIF" };

/** The form fields to send: only the options the user set (the rest take the defaults). */
export function chosenOptions() {
  const fields = {
    format: byId("output-format").value,
    quality: byId("output-quality").value.trim(),
    max_size: byId("output-max-size").value.trim(),
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== ""));
}

/** "WebP · quality 55 · at most 2048 px", from a status body's `options`. */
export function describeOptions(options) {
  if (!options) return "";
  const parts = [FORMAT_NAMES[options.format] ?? options.format, `quality ${options.quality}`];
  parts.push(options.max_size ? `at most ${options.max_size} px` : "full size");
  return `Output: ${parts.join(" · ")}`;
}
