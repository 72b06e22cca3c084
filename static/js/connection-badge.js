/**
 * connection-badge.js — the small "Live / Reconnecting in 7s… / Offline" badge of a page's socket
 * (chat room and console). Feed it the socket's state changes:
 *
 *   const badge = new ConnectionBadge(element);
 *   new ReconnectingSocket(url, { onStateChange: (state, detail) => badge.update(state, detail) });
 *   badge.show("signed-out", "Signed out");   // a state of the page's own, shown as is
 *
 * While the socket waits to reconnect, the badge counts the seconds down (it is given the wait in
 * `detail.delay`; screen readers are not told each second). The element's data-state attribute
 * carries the state, for CSS and tests.
 */

export const STATE_TEXT = Object.freeze({
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
});

const TICK_MS = 250;

export class ConnectionBadge {
  /**
   * @param {HTMLElement} element
   * @param {object} [options]
   * @param {Record<string, string>} [options.texts]  the text of each socket state
   * @param {Record<number, string>} [options.closeTexts]  the text of a final close, by code
   */
  constructor(element, { texts = STATE_TEXT, closeTexts = {} } = {}) {
    this.element = element;
    this.texts = texts;
    this.closeTexts = closeTexts;
    this.timer = null;
  }

  /** Show a socket state change (the `onStateChange` arguments of ReconnectingSocket). */
  update(state, detail = {}) {
    if (state === "reconnecting" && detail.delay) {
      this.countDown(Date.now() + detail.delay);
      return;
    }
    let text = this.texts[state] || state;
    if (state === "closed" && this.closeTexts[detail.code]) text = this.closeTexts[detail.code];
    this.show(state, text);
  }

  /** Show `state` with `text`, stopping any countdown. */
  show(state, text) {
    clearInterval(this.timer);
    this.timer = null;
    this.element.dataset.state = state;
    this.element.textContent = text;
    this.element.setAttribute("aria-live", "polite");
  }

  countDown(deadline) {
    this.show("reconnecting", "");
    this.element.setAttribute("aria-live", "off"); // a screen reader is not read every second
    const render = () => {
      const seconds = Math.ceil((deadline - Date.now()) / 1000);
      const text = seconds > 0 ? `Reconnecting in ${seconds}s…` : this.texts.reconnecting;
      if (this.element.textContent !== text) this.element.textContent = text;
      if (seconds <= 0) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
    render();
    this.timer = setInterval(render, TICK_MS);
  }
}
