// The page's one staleness guard: each view follows only its latest load.
//
// Starting a load (another request, another page) aborts the one before it, so a slow
// answer for what was on screen a moment ago can never overwrite what is on screen now.

export class Latest {
  #controller = new AbortController();

  /** Abort the current load and return the signal of the one that replaces it. */
  renew() {
    this.#controller.abort();
    this.#controller = new AbortController();
    return this.#controller.signal;
  }

  /** The current load's signal: aborted once a newer load starts. */
  get signal() {
    return this.#controller.signal;
  }
}

/** Wait `ms`; an abort ends the wait early (the caller checks `signal.aborted`). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
