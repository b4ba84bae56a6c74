// The live channel, GET /v1/ws: one WebSocket per page, the access token in the query (browsers
// cannot set headers on WebSockets), and on every reconnect `resume_after` and `epoch` = the
// cursor of the last message seen, so the server replays what was missed. A `resync` frame (live
// or replayed, numbered or not: something could not be replayed) asks the page to refetch over
// HTTP and moves the cursor. Reconnects back off from 1 s to 15 s; a ping every 25 s keeps
// proxies open.

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 15000;
const PING_EVERY_MS = 25000;

/**
 * Opens the channel for `api`'s user. `onMessage(msg)` gets every numbered server message,
 * `onState(connected)` each change, `onResync()` when the page should refetch.
 * Returns `{send(obj), close(), get seq()}`.
 */
export function connectLive(api, { onMessage, onState = () => {}, onResync = () => {} }) {
  let socket = null;
  let seq = null;
  let epoch = null;
  let backoff = BACKOFF_MIN_MS;
  let timer = null;
  let ping = null;
  let closed = false;

  async function open() {
    if (closed) return;
    let token = null;
    try {
      token = await api.token();
    } catch {
      token = null;
    }
    if (!token) {
      retry();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = new URLSearchParams({ access_token: token });
    if (seq !== null) query.set('resume_after', String(seq));
    if (seq !== null && epoch !== null) query.set('epoch', String(epoch));
    socket = new WebSocket(`${scheme}://${location.host}/v1/ws?${query}`);
    socket.addEventListener('open', () => {
      backoff = BACKOFF_MIN_MS;
      onState(true);
      clearInterval(ping);
      ping = setInterval(() => send({ type: 'ping' }), PING_EVERY_MS);
      // A fresh connection without history: the page's HTTP state is the baseline.
      if (seq === null) seq = 0;
    });
    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'resync') {
        if (typeof message.seq === 'number') seq = message.seq;
        if (typeof message.epoch === 'number') epoch = message.epoch;
        onResync();
        return;
      }
      if (typeof message.seq === 'number') {
        // Already seen (replay overlap): only within one numbering.
        if (seq !== null && message.epoch === epoch && message.seq <= seq) return;
        seq = message.seq;
        if (typeof message.epoch === 'number') epoch = message.epoch;
      }
      if (['pong', 'subscribed', 'unsubscribed'].includes(message.type)) return;
      onMessage(message);
    });
    socket.addEventListener('close', () => {
      clearInterval(ping);
      onState(false);
      retry();
    });
    socket.addEventListener('error', () => socket?.close());
  }

  function retry() {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(open, backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }

  function send(message) {
    if (socket?.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  open();
  return {
    send,
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(ping);
      socket?.close();
    },
    get seq() {
      return seq;
    },
  };
}
