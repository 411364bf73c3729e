// chat-client.js: the chat server's browser client, one dependency-free ES module.
//
//   import { ChatClient } from "/static/chat/chat-client.js";
//
// It keeps one WebSocket open (reconnecting with backoff), resumes every
// channel by `sync` from the last position it saw, queues and resends writes
// until they are acknowledged (each carries a client_id, so a resend is never
// stored twice), refreshes the access token before it expires, and keeps each
// channel's state (messages, read state, typing) from the frames. It renders
// nothing. chat-client.d.ts declares the API; docs/clients.md explains it, and
// docs/websocket.md the protocol underneath.

const LOBBY = "";
const SOCKET_OPEN = 1; // WebSocket.OPEN, also for an injected WebSocket class
const TYPING_SHOWN_MS = 3000; // a typing name is shown this long after its last frame
const TYPING_SEND_MS = 2000; // the server forwards one typing frame per channel every 2 s
const KEEPALIVE_MS = 25000; // a silent socket is pinged after this long...
const KEEPALIVE_TIMEOUT_MS = 10000; // ...and given up this long after the ping
const REFRESH_RETRY_MS = 5000; // a refresh that failed on the network is tried again after this
const RETRYABLE_CODES = new Set(["rate_limited", "unavailable"]);
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_ABNORMAL = 1006;
const MAX_FRAME_BYTES = 65536; // larger frames are refused by closing the socket
const NOTHING = Object.freeze([]);
const LONGEST_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once past this

/** A refused request or frame: an HTTP status and/or the contract's error code. */
export class ChatError extends Error {
  /**
   * @param {string} detail what went wrong, for people
   * @param {{status?: number|null, code?: string|null, retryAfter?: number|null, body?: unknown}} [fields]
   */
  constructor(detail, { status = null, code = null, retryAfter = null, body = null } = {}) {
    super(detail);
    this.name = "ChatError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

// --- small helpers ------------------------------------------------------------

/** The internal key of a channel: its name ignoring case (names are ASCII), "" for the lobby. */
function keyOf(channel) {
  return channel === null || channel === undefined || channel === LOBBY ? LOBBY : String(channel).toLowerCase();
}

/** A channel's name as the wire wants it: the name, or null for the lobby. */
function wireName(name) {
  return name === null || name === undefined || name === LOBBY ? null : name;
}

function byNameIgnoringCase(a, b) {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

function newClientId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The `exp` and `iat` claims of a JWT (seconds), or null when it cannot be read. */
function jwtTimes(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    return typeof claims.exp === "number" ? { exp: claims.exp, iat: claims.iat ?? null } : null;
  } catch {
    return null;
  }
}

/** Report an exception thrown by an event handler without stopping the client. */
function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}

function isAuthFailure(error) {
  return error instanceof ChatError && (error.status === 400 || error.status === 401 || error.status === 403);
}

// --- events -------------------------------------------------------------------

class Emitter {
  #handlers = new Map();

  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    this.#handlers.get(type)?.delete(handler);
  }

  emit(type, event) {
    for (const handler of [...(this.#handlers.get(type) ?? [])]) {
      try {
        handler(event);
      } catch (error) {
        report(error);
      }
    }
  }
}

// --- per-channel state ----------------------------------------------------------

/** What is held for one channel (or the lobby). */
class ChannelData {
  constructor(name) {
    this.name = name; // stored spelling; null for the lobby
    this.byId = new Map(); // message id -> Message in its newest known state
    this.list = null; // cached messages in seq order (rebuilt after a change)
    // Every message with seq >= floor is held (or on its way live); older ones come from history().
    this.floor = null;
    this.seen = 0; // highest seq or rev received over the socket
    this.position = null; // where a `sync` resumes: every change up to it was received
    this.read = undefined; // ReadState
    this.typing = new Map(); // username -> time (ms) the name stops being shown
  }

  messages() {
    if (this.list === null) this.list = Object.freeze([...this.byId.values()].sort((a, b) => a.seq - b.seq));
    return this.list;
  }

  oldest() {
    return this.messages()[0];
  }
}

/**
 * The state kept from the frames: channels subscribed, their messages, read
 * state, typing, and who is online. Merge rules live here; the client decides
 * when to call them. Every method that changes a channel returns or records
 * its key so the client can emit `change`.
 */
class ChatState {
  constructor() {
    this.channels = new Map([[LOBBY, new ChannelData(null)]]);
    this.subscribed = new Map(); // key -> stored name (the lobby is not listed)
    this.onlineUsers = new Set();
    this.me = null; // own username, lower case
    this.names = new Map([[LOBBY, LOBBY]]); // key -> the name last seen for it ("" the lobby)
    this.cache = { channels: null, online: null };
  }

  get(channel) {
    return this.channels.get(keyOf(channel));
  }

  ensure(channel) {
    const key = keyOf(channel);
    if (!this.channels.has(key)) this.channels.set(key, new ChannelData(wireName(channel)));
    if (key !== LOBBY) this.names.set(key, channel);
    return this.channels.get(key);
  }

  isMe(username) {
    return this.me !== null && String(username).toLowerCase() === this.me;
  }

  // --- membership and presence

  /** Apply `ready`: membership, read state, online users. Returns the positions to `sync` from. */
  applyReady(frame) {
    this.me = frame.user.username.toLowerCase();
    this.subscribed = new Map(frame.channels.map((name) => [keyOf(name), name]));
    for (const key of [...this.channels.keys()]) {
      if (key !== LOBBY && !this.subscribed.has(key)) this.channels.delete(key);
    }
    const after = {};
    for (const name of [LOBBY, ...frame.channels]) {
      const channel = this.ensure(name);
      channel.name = wireName(name);
      const read = frame.unread?.[name];
      if (read) channel.read = { ...read };
      if (channel.position !== null) after[name] = channel.position;
      else if (read) this.#startAt(channel, read.last_seq);
    }
    this.onlineUsers = new Set(frame.online);
    this.cache = { channels: null, online: null };
    return after;
  }

  /** A channel seen for the first time in `ready`: everything after `lastSeq` arrives live. */
  #startAt(channel, lastSeq) {
    channel.position = lastSeq;
    if (channel.floor === null && channel.byId.size === 0) channel.floor = lastSeq + 1;
  }

  subscribe(name) {
    this.subscribed.set(keyOf(name), name);
    this.ensure(name).name = name;
    this.cache.channels = null;
  }

  unsubscribe(name) {
    this.subscribed.delete(keyOf(name));
    this.channels.delete(keyOf(name));
    this.cache.channels = null;
  }

  channelNames() {
    this.cache.channels ??= Object.freeze([...this.subscribed.values()].sort(byNameIgnoringCase));
    return this.cache.channels;
  }

  applyPresence(frame) {
    if (frame.is_online) this.onlineUsers.add(frame.username);
    else this.onlineUsers.delete(frame.username);
    this.cache.online = null;
  }

  onlineNames() {
    this.cache.online ??= Object.freeze([...this.onlineUsers].sort(byNameIgnoringCase));
    return this.cache.online;
  }

  // --- messages

  /**
   * Merge one message. `mode`: "new" (a `message` frame), "update" (`message_updated`),
   * "sync" (a `sync` page), "page" (connect history or a history page). `socket`: it came
   * over the socket, so it counts toward the channel's position.
   * Returns "added", "replaced", "dropped" (already held in this or a newer state)
   * or "outside" (an older message than those held: history() brings it when asked).
   */
  merge(message, { mode, socket }) {
    const channel = this.ensure(message.channel);
    if (socket) channel.seen = Math.max(channel.seen, message.seq, message.rev);
    const held = channel.byId.get(message.id);
    if (held) {
      if (held.rev >= message.rev) return "dropped";
      this.#replace(channel, held, message, socket);
      return "replaced";
    }
    const inWindow = mode === "new" || mode === "page" || (channel.floor !== null && message.seq >= channel.floor);
    if (!inWindow) return "outside";
    channel.byId.set(message.id, message);
    channel.list = null;
    if (mode === "new" && channel.floor === null) channel.floor = message.seq;
    this.#countNew(channel, message, socket);
    channel.typing.delete(message.username);
    return "added";
  }

  #replace(channel, held, message, socket) {
    channel.byId.set(message.id, message);
    channel.list = null;
    const read = channel.read;
    if (!read) return;
    let { unread, mentions, last_seq: lastSeq } = read;
    const uncounted = !held.deleted && message.deleted && !this.isMe(held.username);
    if (uncounted && held.seq > read.last_read_seq && held.seq <= read.last_seq) {
      unread = Math.max(0, unread - 1);
      if (this.#mentionsMe(held)) mentions = Math.max(0, mentions - 1);
    }
    if (socket) lastSeq = Math.max(lastSeq, message.rev);
    channel.read = { ...read, unread, mentions, last_seq: lastSeq };
  }

  /** A message above the channel's last known position: unread when someone else wrote it. */
  #countNew(channel, message, socket) {
    if (!channel.read) {
      if (!socket) return;
      // A channel joined while connected: its read position starts where we came in.
      channel.read = { last_read_seq: message.seq - 1, last_seq: message.seq - 1, unread: 0, mentions: 0 };
    }
    const read = { ...channel.read };
    if (message.seq > read.last_seq) {
      read.last_seq = message.seq;
      if (!message.deleted && !this.isMe(message.username) && message.seq > read.last_read_seq) {
        read.unread += 1;
        if (this.#mentionsMe(message)) read.mentions += 1;
      }
    }
    if (socket) read.last_seq = Math.max(read.last_seq, message.rev);
    channel.read = read;
  }

  #mentionsMe(message) {
    return (message.mentions ?? []).some((name) => this.isMe(name));
  }

  /**
   * A page of messages that ends where the held ones begin (connect history, history()):
   * the channels' floors move down to it. Returns the keys of the channels it touched.
   */
  mergePage(messages, { socket, complete = false, channel = undefined }) {
    const touched = new Set();
    for (const message of messages) {
      this.merge(message, { mode: "page", socket });
      const data = this.ensure(message.channel);
      data.floor = Math.min(data.floor ?? Infinity, message.seq);
      touched.add(keyOf(message.channel));
    }
    if (complete && channel !== undefined) {
      this.ensure(channel).floor = 1; // nothing older exists
      touched.add(keyOf(channel));
    }
    return [...touched];
  }

  /** Move the resume position of every channel to what the socket delivered (after catching up). */
  commitPositions() {
    for (const channel of this.channels.values()) this.commitPosition(channel);
  }

  commitPosition(channel) {
    if (channel.position !== null || channel.seen > 0) channel.position = Math.max(channel.position ?? 0, channel.seen);
  }

  // --- read state

  /** A `read` frame: kept unless an earlier read position than the one held (frames may cross). */
  applyRead(frame) {
    const channel = this.ensure(frame.channel);
    const held = channel.read;
    if (held && frame.last_read_seq < held.last_read_seq) return false;
    channel.read = {
      last_read_seq: frame.last_read_seq,
      last_seq: Math.max(held?.last_seq ?? 0, frame.last_read_seq),
      unread: frame.unread,
      mentions: frame.mentions,
    };
    return true;
  }

  /** Move the read position locally, before the server's `read` frame confirms it. */
  readLocally(channel, seq) {
    const read = channel.read ?? { last_read_seq: 0, last_seq: seq, unread: 0, mentions: 0 };
    if (seq <= read.last_read_seq) return false;
    let { unread, mentions } = read;
    if (seq >= read.last_seq) {
      unread = 0;
      mentions = 0;
    } else if (channel.floor !== null && channel.floor <= seq + 1) {
      // Every message above the new position is held: count them.
      const left = channel.messages().filter((m) => m.seq > seq && !m.deleted && !this.isMe(m.username));
      unread = left.length;
      mentions = left.filter((m) => this.#mentionsMe(m)).length;
    }
    channel.read = { ...read, last_read_seq: seq, unread, mentions };
    return true;
  }

  // --- typing

  applyTyping(frame) {
    this.ensure(frame.channel).typing.set(frame.username, Date.now() + TYPING_SHOWN_MS);
  }

  typingNames(channel) {
    const data = this.get(channel);
    if (!data) return [];
    const now = Date.now();
    return [...data.typing].filter(([, until]) => until > now).map(([name]) => name);
  }
}

// --- writes waiting for their ack -------------------------------------------------

/** Writes in the order they were made, each until the server acknowledges or refuses it. */
class Outbox {
  #items = new Map(); // client_id -> { frame, resolve, reject, link }

  add(frame) {
    return new Promise((resolve, reject) => {
      this.#items.set(frame.client_id, { frame, resolve, reject, link: null });
    });
  }

  get size() {
    return this.#items.size;
  }

  /** Writes not yet sent on `link`, in their original order. */
  unsentOn(link) {
    return [...this.#items.values()].filter((item) => item.link !== link);
  }

  /** How many writes sent on `link` still wait for their answer. */
  inFlightOn(link) {
    let count = 0;
    for (const item of this.#items.values()) if (item.link === link) count += 1;
    return count;
  }

  /** Resolve the write an `ack` answers; false when it is not one of ours. */
  acknowledge(ack) {
    const item = this.#items.get(ack.client_id);
    if (!item) return false;
    this.#items.delete(ack.client_id);
    item.resolve(ack);
    return true;
  }

  /** Reject the write an `error` frame refused for good. */
  refuse(clientId, error) {
    const item = this.#items.get(clientId);
    if (!item) return;
    this.#items.delete(clientId);
    item.reject(error);
  }

  /** Mark the write with `clientId` and every later one as to be sent again. */
  rewindFrom(clientId) {
    let found = false;
    for (const [id, item] of this.#items) {
      found ||= id === clientId;
      if (found) item.link = null;
    }
    return found;
  }

  rejectAll(error) {
    const items = [...this.#items.values()];
    this.#items.clear();
    for (const item of items) item.reject(error);
  }
}

// --- the client -------------------------------------------------------------------

/**
 * The chat client. One instance per logged-in user (and tab). See docs/clients.md.
 */
export class ChatClient {
  #options;
  #baseUrl;
  #WebSocket;
  #fetch;
  #events = new Emitter();
  #state = "idle";
  #store = new ChatState();
  #outbox = new Outbox();
  #user = null;
  #username = null;
  #tokens = null;
  #tokenTimes = null; // { refreshAt, expiresAt } in local ms
  #refreshing = null; // the refresh in flight
  #refreshTimer = null;
  #mustRefresh = false; // the server refused the access token: refresh before the next handshake
  #refreshedAfterRefusal = false; // a 4401 was answered by a refresh since the last good connection
  #running = false; // connect() was called and neither close() nor an end since
  #link = null; // the current socket and its catch-up state
  #attempt = 0; // reconnect attempts since the last good connection
  #reconnectTimer = null;
  #keepaliveTimer = null;
  #outboxPausedUntil = 0;
  #outboxTimer = null;
  #outboxRetries = 0;
  // Writes in flight at once: unlimited, down to 1 after a rate limit, then doubling with each ack.
  #outboxWindow = Infinity;
  #pendingReads = new Map(); // key -> seq to send once connected
  #typingSent = new Map(); // key -> time the last typing frame was sent
  #typingTimers = new Map(); // key -> timer that expires the typing names
  #waiters = []; // connect() promises waiting for `open`

  /** @param {import("./chat-client").ChatClientOptions} [options] */
  constructor(options = {}) {
    this.#options = {
      refreshMarginSeconds: options.refreshMarginSeconds ?? 30,
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 30000,
    };
    this.#baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? "").replace(/\/+$/, "");
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#username = options.username ?? null;
    if (options.tokens) this.#setTokens(options.tokens, { fresh: false, announce: false });
  }

  /** The logged-in user (from login, register then login, or `ready`), else null. */
  get user() {
    return this.#user;
  }

  get state() {
    return this.#state;
  }

  get tokens() {
    return this.#tokens ? { ...this.#tokens } : null;
  }

  // --- accounts ---------------------------------------------------------------

  /** Register, then log in: resolves with the own user. */
  async register(username, email, password) {
    await this.#request("/api/auth/register", { method: "POST", body: { username, email, password } });
    return this.login(username, password);
  }

  /** Log in with a password: keeps the tokens (emitting `tokens`) and resolves with the own user. */
  async login(username, password) {
    const body = await this.#request("/api/auth/login", { method: "POST", body: { username, password } });
    if (this.#store.me !== null && this.#store.me !== body.user.username.toLowerCase()) this.#forgetState();
    this.#user = body.user;
    this.#username = body.user.username;
    this.#setTokens(body, { fresh: true });
    return body.user;
  }

  /** End this session on the server, close the socket, forget the tokens (state `logged_out`). */
  async logout() {
    const refresh = this.#tokens?.refresh;
    this.#stopConnection();
    try {
      if (refresh) await this.api("/api/auth/logout", { method: "POST", body: { refresh } });
    } catch (error) {
      if (!isAuthFailure(error)) throw error;
    } finally {
      this.#end("logged_out", "You logged out.");
    }
  }

  // --- the connection ------------------------------------------------------------

  /**
   * Open the WebSocket; resolves once caught up (state `open`). Reconnects by itself until
   * `close()`; rejects when the session ends (`logged_out`, `forbidden`) or `close()` is called first.
   */
  connect() {
    if (!this.#tokens) return Promise.reject(new ChatError("Log in first.", { code: "not_logged_in" }));
    if (this.#state === "open") return Promise.resolve();
    const opened = new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#running) {
      this.#running = true;
      this.#attempt = 0;
      this.#listenToNetwork(true);
      this.#scheduleRefresh();
      this.#setState("connecting");
      this.#dial();
    }
    return opened;
  }

  /** Close the socket and stop reconnecting; queued sends stay queued for the next `connect()`. */
  close() {
    this.#stopConnection();
    this.#setState("idle");
    this.#releaseWaiters(new ChatError("The client was closed.", { code: "closed" }));
  }

  /** Stop everything that runs: socket, timers, listeners. The state is left to the caller. */
  #stopConnection() {
    this.#running = false;
    this.#listenToNetwork(false);
    this.#dropLink();
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#outboxTimer);
    this.#reconnectTimer = this.#refreshTimer = this.#outboxTimer = null;
  }

  /** The session is over (`logged_out`, `forbidden`): stop, and fail what waits on it. */
  #end(state, detail) {
    this.#stopConnection();
    if (state === "logged_out") {
      this.#tokens = this.#tokenTimes = null;
      this.#user = null;
    }
    const error = new ChatError(detail, { code: state });
    this.#outbox.rejectAll(error);
    if (state === "logged_out") this.#forgetState();
    this.#setState(state);
    this.#releaseWaiters(error);
  }

  /** Drop everything kept for the user who was logged in: the next one starts afresh. */
  #forgetState() {
    this.#outbox.rejectAll(new ChatError("The session ended.", { code: "logged_out" }));
    this.#store = new ChatState();
    this.#pendingReads.clear();
    this.#mustRefresh = this.#refreshedAfterRefusal = false;
  }

  #releaseWaiters(error) {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) error ? waiter.reject(error) : waiter.resolve();
  }

  #setState(state, details = {}) {
    if (state === this.#state && state !== "reconnecting") return;
    this.#state = state;
    this.#events.emit("connection", { state, ...details });
  }

  /** Open a socket now, after making sure the access token is fresh and the username known. */
  async #dial() {
    this.#reconnectTimer = null;
    if (!this.#running) return;
    if (globalThis.navigator?.onLine === false) return this.#setState("offline");
    try {
      await this.#freshAccess();
      if (!this.#username) this.#user = await this.api("/api/users/me");
      this.#username ??= this.#user.username;
    } catch (error) {
      if (!this.#running) return;
      if (isAuthFailure(error)) return this.#end("logged_out", "The session ended.");
      return this.#reconnectLater(null);
    }
    if (!this.#running || this.#link) return;
    if (globalThis.navigator?.onLine === false) return this.#setState("offline");
    try {
      this.#openSocket();
    } catch (error) {
      report(error); // e.g. a baseUrl the WebSocket constructor refuses
      this.#reconnectLater(null);
    }
  }

  #openSocket() {
    const base = this.#baseUrl.replace(/^http/, "ws");
    const url = `${base}/api/ws/${encodeURIComponent(this.#username)}?token=${encodeURIComponent(this.#tokens.access)}`;
    const socket = new this.#WebSocket(url);
    const link = { socket, catchingUp: true, lastSync: null, followUps: new Set(), heardAt: Date.now() };
    this.#link = link;
    socket.onmessage = (event) => this.#link === link && this.#receive(link, event.data);
    socket.onclose = (event) => this.#link === link && this.#closed(event.code);
    socket.onerror = () => {}; // a close event follows
    this.#keepAlive(link);
  }

  /** Forget the current socket and close it (its events are ignored from now on). */
  #dropLink() {
    const link = this.#link;
    this.#link = null;
    clearTimeout(this.#keepaliveTimer);
    if (!link) return;
    try {
      link.socket.close(1000);
    } catch {
      // already closing
    }
  }

  /** The socket closed: act on its close code as the contract means it. */
  #closed(code) {
    this.#dropLink();
    if (!this.#running) return;
    if (code === CLOSE_FORBIDDEN) return this.#end("forbidden", "The server refused this user.");
    if (code === CLOSE_UNAUTHORIZED) return this.#refusedToken();
    this.#reconnectLater(code);
  }

  /** 4401: refresh the token once and reconnect at once; a second 4401 in a row ends the session. */
  #refusedToken() {
    if (this.#refreshedAfterRefusal) return this.#end("logged_out", "The session ended.");
    this.#refreshedAfterRefusal = true;
    this.#mustRefresh = true;
    this.#setState("reconnecting", { code: CLOSE_UNAUTHORIZED, attempt: this.#attempt, delayMs: 0 });
    this.#dial();
  }

  /** Back off: full jitter, except right after a server going away (1001) and while offline. */
  #reconnectLater(code) {
    if (globalThis.navigator?.onLine === false) return this.#setState("offline");
    const delayMs = code === CLOSE_GOING_AWAY && this.#attempt === 0 ? 0 : this.#backoff(this.#attempt);
    this.#attempt += 1;
    this.#setState("reconnecting", { ...(code === null ? {} : { code }), attempt: this.#attempt, delayMs });
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#dial(), delayMs);
  }

  /** delay = random(0, min(max, base * 2^attempt)) */
  #backoff(attempt) {
    const { baseDelayMs, maxDelayMs } = this.#options;
    return Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
  }

  #listenToNetwork(on) {
    const target = globalThis.window ?? globalThis;
    if (typeof target.addEventListener !== "function") return;
    const method = on ? "addEventListener" : "removeEventListener";
    target[method]("offline", this.#wentOffline);
    target[method]("online", this.#cameOnline);
  }

  #wentOffline = () => {
    if (!this.#running) return;
    this.#dropLink();
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#setState("offline");
  };

  #cameOnline = () => {
    if (!this.#running || this.#link) return;
    clearTimeout(this.#reconnectTimer);
    this.#setState("reconnecting", { attempt: this.#attempt, delayMs: 0 });
    this.#dial();
  };

  // --- frames ------------------------------------------------------------------------

  #receive(link, text) {
    link.heardAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    const changed = new Set();
    let emit = true;
    try {
      const apply = this.#frameHandlers[frame.type];
      if (apply) emit = apply.call(this, frame, link, changed) !== false;
    } catch (error) {
      report(error);
    }
    if (emit) this.#events.emit(frame.type, frame);
    this.#announce(changed);
  }

  #announce(keys) {
    for (const key of keys) this.#events.emit("change", { channel: this.#store.names.get(key) ?? key });
  }

  /** Frame type -> how it changes the state; returning false drops the frame (no event). */
  #frameHandlers = {
    ready: this.#onReady,
    history: this.#onHistory,
    synced: this.#onSynced,
    message: this.#onMessage,
    message_updated: this.#onMessageUpdated,
    ack: this.#onAck,
    error: this.#onError,
    read: this.#onRead,
    presence: (frame) => this.#store.applyPresence(frame),
    typing: this.#onTyping,
    subscribed: (frame, link, changed) => {
      this.#store.subscribe(frame.channel);
      changed.add(keyOf(frame.channel));
    },
    unsubscribed: this.#onUnsubscribed,
    channel_deleted: this.#onUnsubscribed,
    member_joined: (frame, link, changed) => changed.add(keyOf(frame.channel)),
    member_left: (frame, link, changed) => changed.add(keyOf(frame.channel)),
  };

  #onReady(frame, link, changed) {
    this.#user = frame.user;
    this.#username = frame.user.username;
    const before = new Set(this.#store.channels.keys());
    link.lastSync = this.#store.applyReady(frame);
    for (const key of new Set([...before, ...this.#store.channels.keys()])) changed.add(key);
  }

  #onHistory(frame, link, changed) {
    if (frame.reason === "sync") return this.#onSyncPage(frame, link, changed);
    for (const key of this.#store.mergePage(frame.messages, { socket: true })) changed.add(key);
    if (frame.reason === "connect" && link.catchingUp) {
      if (Object.keys(link.lastSync).length > 0) this.#sendSync(link, link.lastSync);
      else this.#caughtUp(link);
    }
  }

  /** A page of `sync`: merged, and the channel's position moves to its last rev (rev order). */
  #onSyncPage(frame, link, changed) {
    const channel = this.#store.ensure(frame.channel);
    for (const message of frame.messages) {
      if (this.#store.merge(message, { mode: "sync", socket: true }) !== "dropped") changed.add(keyOf(frame.channel));
      channel.position = Math.max(channel.position ?? 0, message.rev);
    }
    if (frame.has_more) link.followUps.add(keyOf(frame.channel));
  }

  /** `synced`: sync again the channels that had more, else the connection is caught up. */
  #onSynced(frame, link) {
    if (!link.catchingUp) return;
    if (link.followUps.size === 0) return this.#caughtUp(link);
    const after = {};
    for (const key of link.followUps) {
      const channel = this.#store.channels.get(key);
      if (channel) after[channel.name ?? LOBBY] = channel.position;
    }
    link.followUps.clear();
    this.#sendSync(link, after);
  }

  #sendSync(link, after) {
    link.lastSync = after;
    this.#sendFrame({ type: "sync", after });
  }

  /** Caught up (`ready`, history and every sync applied): `open`, then send what waited. */
  #caughtUp(link) {
    link.catchingUp = false;
    this.#store.commitPositions();
    this.#attempt = 0;
    this.#refreshedAfterRefusal = false;
    this.#setState("open");
    this.#releaseWaiters(null);
    this.#flushReads();
    this.#flushOutbox();
  }

  #onMessage(frame, link, changed) {
    const outcome = this.#store.merge(frame.message, { mode: "new", socket: true });
    this.#afterLive(frame.message, link);
    if (outcome === "dropped") return false;
    changed.add(keyOf(frame.message.channel));
    return outcome === "added";
  }

  #onMessageUpdated(frame, link, changed) {
    const outcome = this.#store.merge(frame.message, { mode: "update", socket: true });
    this.#afterLive(frame.message, link);
    if (outcome === "dropped") return false;
    changed.add(keyOf(frame.message.channel));
  }

  /** Live frames come in position order: once caught up, they move the resume position. */
  #afterLive(message, link) {
    if (!link.catchingUp) this.#store.commitPosition(this.#store.ensure(message.channel));
  }

  #onAck(frame) {
    if (!this.#outbox.acknowledge(frame)) return;
    this.#outboxRetries = 0;
    this.#outboxWindow = this.#outboxWindow >= 32 ? Infinity : this.#outboxWindow * 2;
    this.#flushOutbox();
  }

  #onError(frame, link) {
    if (frame.client_id) return this.#writeRefused(frame);
    if (!link.catchingUp || !link.lastSync) return;
    if (frame.code === "rate_limited") {
      // The sync itself was refused: ask again once allowed.
      const after = link.lastSync;
      setTimeout(() => this.#link === link && this.#sendSync(link, after), (frame.retry_after ?? 1) * 1000);
    } else if (frame.code === "unavailable" || frame.code === "internal_error") {
      // A channel's sync failed midway: start over, from the positions that were complete.
      this.#dropLink();
      this.#reconnectLater(null);
    }
  }

  #onRead(frame, link, changed) {
    if (!this.#store.applyRead(frame)) return false;
    changed.add(keyOf(frame.channel));
  }

  #onTyping(frame, link, changed) {
    const key = keyOf(frame.channel);
    this.#store.applyTyping(frame);
    changed.add(key);
    clearTimeout(this.#typingTimers.get(key));
    this.#typingTimers.set(key, setTimeout(() => {
      this.#typingTimers.delete(key);
      this.#announce([key]);
    }, TYPING_SHOWN_MS + 50));
  }

  #onUnsubscribed(frame, link, changed) {
    this.#store.unsubscribe(frame.channel);
    changed.add(keyOf(frame.channel));
  }

  #sendFrame(frame) {
    const link = this.#link;
    if (!link || link.socket.readyState !== SOCKET_OPEN) return false;
    link.socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Ping a socket that has been silent for a while; give it up when the ping gets no answer
   * (or when a handshake or catch-up hangs as long): a dead network often closes nothing.
   */
  #keepAlive(link) {
    clearTimeout(this.#keepaliveTimer);
    const silentFor = Date.now() - link.heardAt;
    if (silentFor >= KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS) {
      this.#dropLink();
      return this.#reconnectLater(CLOSE_ABNORMAL);
    }
    if (silentFor >= KEEPALIVE_MS) this.#sendFrame({ type: "ping" });
    const wait = silentFor >= KEEPALIVE_MS ? KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS - silentFor : KEEPALIVE_MS - silentFor;
    this.#keepaliveTimer = setTimeout(() => this.#link === link && this.#keepAlive(link), wait);
  }

  // --- writes ---------------------------------------------------------------------------

  /**
   * Send to a channel by name, or null for the lobby. Resolves with the server's `ack`;
   * queued while disconnected and resent (same client_id) until acknowledged.
   * @returns {Promise<import("./chat-client").Ack>}
   */
  send(channel, content, { replyTo, clientId } = {}) {
    const frame = { type: "message", channel: wireName(channel), content };
    if (replyTo) frame.reply_to = replyTo;
    return this.#write(frame, clientId);
  }

  /** Change your message's content. */
  edit(id, content) {
    return this.#write({ type: "edit", id, content });
  }

  /** Delete a message (it becomes a tombstone). */
  delete(id) {
    return this.#write({ type: "delete", id });
  }

  /** Add your reaction to a message. */
  react(id, emoji) {
    return this.#write({ type: "react", id, emoji });
  }

  /** Take your reaction back. */
  unreact(id, emoji) {
    return this.#write({ type: "unreact", id, emoji });
  }

  #write(frame, clientId = newClientId()) {
    frame.client_id = clientId;
    if (new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
      // The server would close the socket (1009), again after every resend: refuse it here.
      return Promise.reject(new ChatError("The content is too long.", { code: "content_too_long" }));
    }
    const acked = this.#outbox.add(frame);
    this.#flushOutbox();
    return acked;
  }

  /** Send, in order, the writes not yet sent on this connection (once caught up, within the window). */
  #flushOutbox() {
    const link = this.#link;
    if (this.#state !== "open" || !link || link.catchingUp || Date.now() < this.#outboxPausedUntil) return;
    let inFlight = this.#outbox.inFlightOn(link);
    for (const item of this.#outbox.unsentOn(link)) {
      if (inFlight >= this.#outboxWindow || !this.#sendFrame(item.frame)) return;
      item.link = link;
      inFlight += 1;
    }
  }

  /** An `error` frame naming one of our writes: retry later, or reject it for good. */
  #writeRefused(frame) {
    if (!RETRYABLE_CODES.has(frame.code)) {
      this.#outbox.refuse(frame.client_id, new ChatError(frame.detail, { code: frame.code, body: frame }));
      return this.#flushOutbox(); // the window it held is free
    }
    if (!this.#outbox.rewindFrom(frame.client_id)) return;
    this.#outboxWindow = 1; // then one at a time, until acks show the server takes more
    const waitMs = frame.retry_after != null ? frame.retry_after * 1000 : this.#backoff(this.#outboxRetries);
    this.#outboxRetries += 1;
    this.#outboxPausedUntil = Math.max(this.#outboxPausedUntil, Date.now() + waitMs);
    clearTimeout(this.#outboxTimer);
    this.#outboxTimer = setTimeout(() => this.#flushOutbox(), this.#outboxPausedUntil - Date.now());
  }

  /** Move the read position (default: the last position held for the channel). */
  markRead(channel, seq) {
    const data = this.#store.get(channel);
    if (!data) return;
    const target = seq ?? data.messages().reduce((highest, m) => Math.max(highest, m.rev), data.seen);
    if (!(target > 0) || !this.#store.readLocally(data, target)) return;
    this.#pendingReads.set(keyOf(channel), Math.max(this.#pendingReads.get(keyOf(channel)) ?? 0, target));
    this.#flushReads();
    this.#announce([keyOf(channel)]);
  }

  #flushReads() {
    if (this.#state !== "open") return;
    for (const [key, seq] of this.#pendingReads) {
      const name = this.#store.channels.get(key)?.name ?? null;
      if (!this.#sendFrame({ type: "read", channel: name, seq })) return;
      this.#pendingReads.delete(key);
    }
  }

  /** Tell the channel's other members you are typing (dropped while disconnected). */
  typing(channel) {
    const key = keyOf(channel);
    if (this.#state !== "open" || Date.now() - (this.#typingSent.get(key) ?? 0) < TYPING_SEND_MS) return;
    if (this.#sendFrame({ type: "typing", channel: wireName(channel) })) this.#typingSent.set(key, Date.now());
  }

  /**
   * Older messages of one channel, before `before` (a message id) or the oldest held;
   * merged into the state. Read over REST, so it works while the socket reconnects.
   */
  async history(channel, { before, limit } = {}) {
    const data = this.#store.ensure(channel);
    const oldest = data.oldest();
    const from = before ?? oldest?.id;
    const query = new URLSearchParams({ channel: wireName(channel) ?? "" });
    if (from) query.set("before", from);
    if (limit) query.set("limit", String(limit));
    const page = await this.api(`/api/messages?${query}`);
    const hasMore = page.previous != null;
    const joins = from === oldest?.id; // the page ends where the held messages begin
    if (joins) this.#announce(this.#store.mergePage(page.results, { socket: false, complete: !hasMore, channel }));
    else for (const message of page.results) this.#store.merge(message, { mode: "sync", socket: false });
    this.#announce([keyOf(channel)]);
    return { messages: page.results, hasMore };
  }

  /** Join a public channel: resolves with it; `subscribed` follows on the socket. */
  join(channel) {
    return this.api(`/api/channels/${encodeURIComponent(channel)}/join`, { method: "POST" });
  }

  /** Leave a channel: resolves with it; `unsubscribed` follows on the socket. */
  leave(channel) {
    return this.api(`/api/channels/${encodeURIComponent(channel)}/leave`, { method: "POST" });
  }

  // --- REST -----------------------------------------------------------------------------

  /**
   * Any REST route, authenticated: `api("/api/channels/", { method: "POST", body: {...} })`.
   * The access token is refreshed first when due, and once more after a 401. Rejects with ChatError.
   */
  async api(path, { method = "GET", body } = {}) {
    await this.#freshAccess();
    try {
      return await this.#request(path, { method, body, auth: true });
    } catch (error) {
      if (!(error instanceof ChatError) || error.status !== 401 || !this.#tokens) throw error;
      await this.#refreshTokens();
      return this.#request(path, { method, body, auth: true });
    }
  }

  async #request(path, { method = "GET", body, auth = false }) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.#tokens) headers.Authorization = `Bearer ${this.#tokens.access}`;
    let response;
    try {
      response = await this.#fetch(this.#baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ChatError(`The server could not be reached: ${error.message}`, { code: "network_error" });
    }
    const payload = response.status === 204 ? null : await response.json().catch(() => null);
    if (response.ok) return payload;
    throw this.#httpError(response, payload);
  }

  #httpError(response, payload) {
    const retry = Number.parseFloat(response.headers.get("Retry-After") ?? "");
    const detail = typeof payload?.detail === "string" ? payload.detail : firstFieldError(payload) ?? response.statusText;
    const code = response.status === 429 ? "rate_limited" : (payload?.code ?? null);
    return new ChatError(detail, {
      status: response.status,
      code,
      retryAfter: Number.isFinite(retry) ? retry : null,
      body: payload,
    });
  }

  /** Every page of a paginated list. */
  async #allPages(path) {
    const items = [];
    for (let next = path; next; ) {
      const page = await this.api(next);
      items.push(...page.results);
      next = page.next ? pathOf(page.next) : null;
    }
    return items;
  }

  /** Create a channel (public unless `private`); you own it and are subscribed to it. */
  createChannel(name, { description, private: isPrivate } = {}) {
    const body = { name, private: Boolean(isPrivate) };
    if (description !== undefined) body.description = description;
    return this.api("/api/channels/", { method: "POST", body });
  }

  /** Open (or find) the direct channel with a user: its name is "@a+b". */
  openDirect(username) {
    return this.api(`/api/dms/${encodeURIComponent(username)}`, { method: "POST" });
  }

  /** Add a member to a channel you are in. */
  addMember(channel, username) {
    return this.api(`/api/channels/${encodeURIComponent(channel)}/members`, { method: "POST", body: { username } });
  }

  /** Public channels and the private and direct channels you are in (all pages). */
  listChannels() {
    return this.#allPages("/api/channels/");
  }

  /** Your channels with read state (all pages). */
  myChannels() {
    return this.#allPages("/api/channels/me");
  }

  /** Messages you can read whose content has every word of `q`, newest first. */
  async search(q, { channel, limit } = {}) {
    const query = new URLSearchParams({ q });
    if (channel !== undefined) query.set("channel", wireName(channel) ?? "");
    if (limit) query.set("limit", String(limit));
    return (await this.api(`/api/messages/search?${query}`)).results;
  }

  /** Choose your status ("offline" is invisible); resolves with your user. */
  async setStatus(status) {
    this.#user = await this.api("/api/users/me/status", { method: "POST", body: { status } });
    return this.#user;
  }

  // --- tokens -----------------------------------------------------------------------------

  /**
   * Keep a token pair and plan its refresh. `fresh`: just issued, so its lifetime counts from
   * now (immune to clock skew); otherwise (tokens kept from earlier) its `exp` is read against
   * this machine's clock.
   */
  #setTokens({ access, refresh }, { fresh, announce = true }) {
    this.#tokens = { access, refresh };
    this.#tokenTimes = this.#tokenSchedule(access, fresh);
    if (announce) this.#events.emit("tokens", { access, refresh });
    if (this.#running || fresh) this.#scheduleRefresh();
  }

  /**
   * When a token expires and when to refresh it, in this machine's time. A fresh token's
   * lifetime counts from now, less the time since its `iat` (the server's clock; up to 1 s of
   * truncation and latency): exact when the clocks agree, at most a second off when they do not.
   */
  #tokenSchedule(access, fresh) {
    const times = jwtTimes(access);
    if (!times) return null;
    const now = Date.now();
    const lifetime = times.iat !== null ? times.exp - times.iat : times.exp - now / 1000;
    let expiresAt = times.exp * 1000;
    if (fresh && times.iat !== null) {
      const elapsed = Math.min(Math.max(now - times.iat * 1000, 0), 1000);
      expiresAt = now + lifetime * 1000 - elapsed;
    }
    const margin = Math.min(this.#options.refreshMarginSeconds, lifetime / 2);
    return { expiresAt, refreshAt: expiresAt - margin * 1000 };
  }

  #scheduleRefresh(delayMs = null) {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (!this.#tokenTimes) return;
    const wait = Math.min(delayMs ?? Math.max(0, this.#tokenTimes.refreshAt - Date.now()), LONGEST_TIMER_MS);
    this.#refreshTimer = setTimeout(() => this.#refreshOnTime(), wait);
  }

  async #refreshOnTime() {
    this.#refreshTimer = null;
    try {
      await this.#refreshTokens();
    } catch (error) {
      if (!isAuthFailure(error) && this.#tokens) this.#scheduleRefresh(REFRESH_RETRY_MS);
    }
  }

  /** Refresh now when the server refused the token or it is due (before a handshake or a request). */
  async #freshAccess() {
    const due = this.#tokenTimes && Date.now() >= this.#tokenTimes.refreshAt;
    if (this.#tokens && (this.#mustRefresh || due)) await this.#refreshTokens();
  }

  /** One refresh at a time: every caller waits on the one in flight. */
  #refreshTokens() {
    this.#refreshing ??= this.#rotate().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #rotate() {
    const refresh = this.#tokens?.refresh;
    if (!refresh) throw new ChatError("Log in first.", { status: 401, code: "not_logged_in" });
    try {
      const pair = await this.#request("/api/auth/refresh", { method: "POST", body: { refresh } });
      if (this.#tokens?.refresh !== refresh) return; // logged out or in again meanwhile
      this.#mustRefresh = false;
      this.#setTokens(pair, { fresh: true });
    } catch (error) {
      if (isAuthFailure(error) && this.#tokens?.refresh === refresh) this.#end("logged_out", "The session ended.");
      throw error;
    }
  }

  // --- state kept from the frames ---------------------------------------------------------

  /** Channel names subscribed, sorted ignoring case ("" is not listed; the lobby is always there). */
  channels() {
    return this.#store.channelNames();
  }

  /** A channel's messages held, in position (`seq`) order, edits, deletions and reactions applied. */
  messages(channel) {
    return this.#store.get(channel)?.messages() ?? NOTHING;
  }

  /** Whether older messages than those held exist. */
  hasOlder(channel) {
    const floor = this.#store.get(channel)?.floor ?? null;
    return floor === null || floor > 1; // position 1 is always a channel's first message
  }

  /** The channel's read position and unread counts, if known. */
  readState(channel) {
    return this.#store.get(channel)?.read;
  }

  /** Usernames others see online. */
  online() {
    return this.#store.onlineNames();
  }

  /** Usernames typing in a channel in the last few seconds. */
  typingIn(channel) {
    return this.#store.typingNames(channel);
  }

  /** Writes sent or queued and not yet acknowledged. */
  pending() {
    return this.#outbox.size;
  }

  // --- events -----------------------------------------------------------------------------

  /** Subscribe to a frame type or a client event; returns a function that unsubscribes. */
  on(type, handler) {
    return this.#events.on(type, handler);
  }

  /** Unsubscribe a handler given to `on`. */
  off(type, handler) {
    this.#events.off(type, handler);
  }
}

/** The first message of a DRF field-error body (`{"username": ["..."]}`). */
function firstFieldError(payload) {
  if (!payload || typeof payload !== "object") return null;
  for (const [field, messages] of Object.entries(payload)) {
    const first = Array.isArray(messages) ? messages[0] : messages;
    if (typeof first === "string") return `${field}: ${first}`;
  }
  return null;
}

/** The path and query of a pagination link, so it goes to this client's base URL. */
function pathOf(url) {
  const parsed = new URL(url, "http://localhost");
  return parsed.pathname + parsed.search;
}
