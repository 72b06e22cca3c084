/**
 * socket.js — the reconnecting WebSocket every Switchboard page shares (chat, console,
 * notifications bell, news). No framework, no build step: import it as an ES module.
 *
 *   import { ReconnectingSocket, wsUrl } from "/static/js/socket.js";
 *
 *   const socket = new ReconnectingSocket(
 *     () => wsUrl("/ws/chat/general/", lastId ? { after: lastId } : {}),   // called before EVERY connect
 *     {
 *       onOpen: (socket) => {},              // each time a connection opens (first and after reconnects)
 *       onMessage: (frame, socket) => {},    // every JSON frame from the server, already parsed
 *       onStateChange: (state, detail) => {} // "connecting" | "open" | "reconnecting" | "closed"
 *     },
 *   );
 *   socket.send({ type: "message", text: "hi" });   // true if sent, false when not connected
 *   socket.close();                                   // stop for good (no more reconnects)
 *   socket.state;                                     // the current state string
 *
 * The same things are also dispatched as DOM events on the socket (it is an EventTarget):
 *   "open"        detail: {}
 *   "message"     detail: {frame}             (the parsed JSON object)
 *   "statechange" detail: {state, attempt, delay, code, reason}
 *
 * Resume hook: `urlFn` is called before every (re)connect, so a page can put what it has already
 * seen into the URL (chat uses `?after=<last message id>` and gets exactly what it missed).
 *
 * Reconnects: after any close that is not final, wait with exponential back-off and jitter
 * (`minDelay` 500 ms doubling up to `maxDelay` 15 s, each wait a random value in [delay/2, delay]),
 * then connect again. The wait is cut short when the browser comes back online or the tab becomes
 * visible. Close codes in `finalCodes` (default 4401 login required, 4403 forbidden) and
 * `socket.close()` are final: the state becomes "closed" and the socket stays down.
 * Close codes in `restartCodes` (default 1012 "service restart", sent by a server that is shutting
 * down and draining) reconnect at once, without back-off: a proxy sends the new connection to a
 * process that is still running. The wait is a random 0 ms up to, not including, `restartJitter`
 * (default 250; the back-off never waits less), so thousands of sockets closed together do not
 * all reconnect in the same millisecond.
 * Frames that are not JSON are ignored with a console warning.
 *
 * Leaving the page (beforeunload) closes the connection at once, so the server sees the reader go
 * before it renders the next page (the browser itself closes it only once the next page has
 * arrived: a room list rendered meanwhile would still count you in the room you left). If the page
 * stays after all (a cancelled navigation), the socket connects again UNLOAD_RETRY_MS later.
 */

const UNLOAD_RETRY_MS = 1000;

export const DEFAULT_FINAL_CODES = Object.freeze([4401, 4403]);
export const DEFAULT_RESTART_CODES = Object.freeze([1012]);

/** Build an absolute ws:// or wss:// URL for `path` on this page's host, with query `params`. */
export function wsUrl(path, params = {}) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(path, `${scheme}//${window.location.host}`);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  return url.toString();
}

export class ReconnectingSocket extends EventTarget {
  /**
   * @param {() => string} urlFn  returns the URL to connect to; called before every connect
   * @param {object} [options]
   * @param {(socket: ReconnectingSocket) => void} [options.onOpen]
   * @param {(frame: object, socket: ReconnectingSocket) => void} [options.onMessage]
   * @param {(state: string, detail: object) => void} [options.onStateChange]
   * @param {number} [options.minDelay=500]   first back-off wait in ms
   * @param {number} [options.maxDelay=15000] longest back-off wait in ms
   * @param {number[]} [options.finalCodes=[4401, 4403]] close codes that stop reconnecting
   * @param {number[]} [options.restartCodes=[1012]] close codes that reconnect without back-off
   * @param {number} [options.restartJitter=250] longest wait in ms after a restart code
   */
  constructor(urlFn, options = {}) {
    super();
    this.urlFn = urlFn;
    this.onOpen = options.onOpen || null;
    this.onMessage = options.onMessage || null;
    this.onStateChange = options.onStateChange || null;
    this.minDelay = options.minDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 15000;
    this.finalCodes = new Set(options.finalCodes || DEFAULT_FINAL_CODES);
    this.restartCodes = new Set(options.restartCodes || DEFAULT_RESTART_CODES);
    this.restartJitter = options.restartJitter ?? 250;
    this.state = "connecting";
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.wakeUp = () => {
      if (this.state === "reconnecting" && document.visibilityState !== "hidden") this.connectNow();
    };
    this.unloading = false;
    this.leavePage = () => this.closeForUnload();
    window.addEventListener("online", this.wakeUp);
    window.addEventListener("beforeunload", this.leavePage);
    document.addEventListener("visibilitychange", this.wakeUp);
    this.connect();
  }

  /** Send `obj` as a JSON text frame. Returns false (and sends nothing) when not connected. */
  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  /** Close for good: no reconnects after this. */
  close(code = 1000) {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.wakeUp);
    window.removeEventListener("beforeunload", this.leavePage);
    document.removeEventListener("visibilitychange", this.wakeUp);
    if (this.ws) this.ws.close(code);
    this.setState("closed", { code });
  }

  /** Reconnect at once instead of waiting out the back-off. */
  connectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** The page is being left: close now, quietly (see the module doc). */
  closeForUnload() {
    if (this.stopped || !this.ws) return;
    this.unloading = true;
    this.ws.close(1000, "leaving the page");
  }

  connect() {
    if (this.stopped) return;
    this.setState("connecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.urlFn());
    } catch (error) {
      console.warn("socket.js: cannot open WebSocket", error);
      this.scheduleReconnect({});
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.setState("open", {});
      if (this.onOpen) this.onOpen(this);
      this.dispatchEvent(new CustomEvent("open", { detail: {} }));
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        console.warn("socket.js: ignoring a frame that is not JSON", event.data);
        return;
      }
      if (this.onMessage) this.onMessage(frame, this);
      this.dispatchEvent(new CustomEvent("message", { detail: { frame } }));
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (this.unloading) {
        this.unloading = false;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.connect(), UNLOAD_RETRY_MS);
        return;
      }
      if (this.finalCodes.has(event.code)) {
        this.stopped = true;
        this.setState("closed", { code: event.code, reason: event.reason });
        return;
      }
      if (this.restartCodes.has(event.code)) {
        // The server is restarting: another process is up, so go now (back-off starts over).
        this.attempt = 0;
        this.reconnectAfter(Math.floor(Math.random() * this.restartJitter), {
          code: event.code,
          reason: event.reason,
        });
        return;
      }
      this.scheduleReconnect({ code: event.code, reason: event.reason });
    });
  }

  scheduleReconnect(detail) {
    const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.attempt += 1;
    this.reconnectAfter(delay, detail);
  }

  reconnectAfter(delay, detail) {
    this.setState("reconnecting", { ...detail, attempt: this.attempt, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setState(state, detail) {
    this.state = state;
    const full = { state, attempt: this.attempt, ...detail };
    if (this.onStateChange) this.onStateChange(state, full);
    this.dispatchEvent(new CustomEvent("statechange", { detail: full }));
  }
}
