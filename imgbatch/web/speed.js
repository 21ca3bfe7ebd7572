// Images per second and the time left, from the counters seen while polling.
//
// The rate is measured over a sliding window of recent samples, so it follows the current
// pace (a slow host at the end, a retry) instead of the average since the start.

import { parseTime } from "./format.js";

const WINDOW_MS = 20_000;
const MIN_SPAN_MS = 1_500;

export class SpeedMeter {
  constructor() {
    this.samples = [];
  }

  /** Record `done` images at time `now` (ms); a drop (a retry reset the counters) restarts. */
  add(done, now = performance.now()) {
    const last = this.samples.at(-1);
    if (last && done < last.done) this.samples = [];
    this.samples.push({ done, now });
    while (this.samples.length > 2 && now - this.samples[1].now > WINDOW_MS) {
      this.samples.shift();
    }
  }

  /** Images per second, or null until the window is long enough to say. */
  rate() {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || last.now - first.now < MIN_SPAN_MS) return null;
    return ((last.done - first.done) * 1000) / (last.now - first.now);
  }

  /** Seconds left for `remaining` images, or null when unknown (no progress yet). */
  secondsLeft(remaining) {
    if (remaining <= 0) return 0;
    const rate = this.rate();
    return rate ? remaining / rate : null;
  }
}

/** The average rate of a finished request, from its timestamps. */
export function averageRate(status) {
  if (!status.finished_at) return null;
  const seconds = (parseTime(status.finished_at) - parseTime(status.created_at)) / 1000;
  const done = status.processed_images + status.failed_images;
  return seconds > 0 ? done / seconds : null;
}
