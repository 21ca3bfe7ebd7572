// Numbers, sizes and durations for people.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const threeDigits = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });

export const count = (n) => integer.format(n);

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? integer.format(value) : threeDigits.format(value)} ${units[unit]}`;
}

/** "3 images", "1 product": a count and its noun (regular plurals only). */
export const plural = (n, noun) => `${count(n)} ${noun}${n === 1 ? "" : "s"}`;

/** "1.2 MB → 310 KB": sizes before and after. */
export const sizes = (input, output) => `${bytes(input)} → ${bytes(output)}`;

/**
 * How an output's size compares with its input's, to a whole percent: "−72 %" ("+5 %",
 * "±0 %"), or in words "72 % smaller" ("5 % larger"). Null when there is nothing to compare.
 */
export function saving(input, output, { words = false } = {}) {
  if (!input || output === null || output === undefined) return null;
  const change = (output - input) / input;
  const rounded = Math.round(Math.abs(change) * 100);
  if (words) return `${rounded} % ${change <= 0 ? "smaller" : "larger"}`;
  if (rounded === 0) return "±0 %";
  return `${change < 0 ? "−" : "+"}${rounded} %`;
}

export function percent(fraction) {
  const value = Math.floor(fraction * 1000) / 10; // never shows 100 % before it is
  return `${Number.isInteger(value) ? value : value.toFixed(1)} %`;
}

export function rate(perSecond) {
  if (perSecond === null || !Number.isFinite(perSecond)) return "–";
  return `${perSecond >= 10 ? integer.format(perSecond) : decimal.format(perSecond)} images/s`;
}

export function duration(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${String(m % 60).padStart(2, "0")} min`;
}

/** Milliseconds since the epoch; a time without a zone is the server's UTC. */
export function parseTime(isoTime) {
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(isoTime) ? isoTime : `${isoTime}Z`;
  return Date.parse(zoned);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function ago(isoTime, now = Date.now()) {
  const seconds = (parseTime(isoTime) - now) / 1000;
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [7, "day"],
    [Infinity, "week"],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return "";
}

export const statusLabel = (status) => status.replaceAll("_", " ");
