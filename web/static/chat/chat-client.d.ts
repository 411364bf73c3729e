// Type declarations for chat-client.js, the chat server's browser client.
// One dependency-free ES module: `import { ChatClient } from "/static/chat/chat-client.js"`.
// docs/clients.md documents every method and guarantee; the wire protocol is docs/websocket.md.

/** A user as others see them; the user's own profile adds `email`. */
export interface User {
  id: string;
  username: string;
  status: "online" | "away" | "offline";
  is_online: boolean;
  last_seen: string | null;
  date_joined: string;
  email?: string;
}

export interface Reaction {
  emoji: string;
  usernames: string[];
}

/** A message in its latest known state. `channel` is null for the lobby. */
export interface Message {
  id: string;
  seq: number;
  rev: number;
  channel: string | null;
  username: string;
  user_id: string;
  content: string;
  created_at: string;
  client_id: string | null;
  reply_to: string | null;
  edited_at: string | null;
  deleted: boolean;
  reactions: Reaction[];
  mentions: string[];
}

export interface Channel {
  id: string;
  name: string;
  description: string;
  owner: string | null;
  member_count: number;
  created_at: string;
  kind: "public" | "private" | "direct";
  members?: string[];
  last_read_seq?: number;
  unread?: number;
  mentions?: number;
}

/** The server's answer to a stored send or change. */
export interface Ack {
  type: "ack";
  client_id: string | null;
  id: string;
  seq: number;
  rev: number;
}

/** Read state of one channel ("" is the lobby). */
export interface ReadState {
  last_read_seq: number;
  last_seq: number;
  unread: number;
  mentions: number;
}

export interface Tokens {
  access: string;
  refresh: string;
}

/**
 * - `idle`: not connected yet (or after `close()`);
 * - `connecting`: the first connection is being opened;
 * - `open`: connected, and caught up (`ready`, `history` and any `sync` applied);
 * - `reconnecting`: the connection was lost; a new one is opened after `delayMs`;
 * - `offline`: the browser reports no network; reconnects as soon as it is back;
 * - `logged_out`: the session ended (logout elsewhere, or the refresh token was refused);
 * - `forbidden`: the server refused this user (4403); the client does not retry.
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "offline" | "logged_out" | "forbidden";

export interface ConnectionEvent {
  state: ConnectionState;
  /** The close code that caused a reconnect, when there was one. */
  code?: number;
  /** Reconnect attempts since the last successful connection. */
  attempt?: number;
  /** Milliseconds until the next attempt (`reconnecting`). */
  delayMs?: number;
}

export interface ChatClientOptions {
  /** The server's origin, e.g. "https://chat.example.com"; default: the page's own origin. */
  baseUrl?: string;
  /** Start from tokens obtained earlier (a page reload); without `username`, `connect()` asks `/api/users/me`. */
  tokens?: Tokens;
  username?: string;
  /** Refresh the access token this many seconds before it expires (default 30, at most half its lifetime). */
  refreshMarginSeconds?: number;
  /** Reconnect backoff: full jitter, delay = random(0, min(maxDelayMs, baseDelayMs * 2 ** attempt)). */
  baseDelayMs?: number; // default 500
  maxDelayMs?: number; // default 30000
  /** Injected for tests and non-browser runtimes; default: the global ones. */
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
}

/** A refused request or frame: an HTTP status and/or the contract's error code. */
export declare class ChatError extends Error {
  status: number | null; // HTTP status, or null for an `error` frame
  code: string | null; // e.g. "content_too_long", "not_a_member", "rate_limited"
  detail: string;
  retryAfter: number | null; // seconds, for rate limits
  body: unknown;
}

/** Every frame type the server sends, with its frame, plus the client's own events. */
export interface ChatEvents {
  ready: { type: "ready"; user: User; channels: string[]; online: string[]; unread: Record<string, ReadState> };
  history: { type: "history"; reason: "connect" | "request" | "sync"; channel?: string | null; messages: Message[]; has_more: boolean };
  synced: { type: "synced" };
  /** A new message not seen before (duplicates are dropped before handlers run). */
  message: { type: "message"; message: Message };
  /** A change newer than the state held (older or repeated changes are dropped). */
  message_updated: { type: "message_updated"; change: "edited" | "deleted" | "reactions"; message: Message };
  ack: Ack;
  presence: { type: "presence"; username: string; status: User["status"]; is_online: boolean; last_seen: string | null };
  typing: { type: "typing"; channel: string | null; username: string };
  member_joined: { type: "member_joined"; channel: string; username: string };
  member_left: { type: "member_left"; channel: string; username: string };
  subscribed: { type: "subscribed"; channel: string };
  unsubscribed: { type: "unsubscribed"; channel: string };
  channel_deleted: { type: "channel_deleted"; channel: string };
  read: { type: "read"; channel: string | null; last_read_seq: number; unread: number; mentions: number };
  error: { type: "error"; code: string; detail: string; client_id?: string | null; retry_after?: number };
  pong: { type: "pong" };
  /** The client's connection state changed. */
  connection: ConnectionEvent;
  /** New tokens (login, refresh): store them to construct the client again after a reload. */
  tokens: Tokens;
  /** Something in a channel's state changed (messages, read state, members): re-render it. "" is the lobby. */
  change: { channel: string };
}

export declare class ChatClient {
  constructor(options?: ChatClientOptions);

  /** The logged-in user (from login, register then login, or `ready`), else null. */
  readonly user: User | null;
  readonly state: ConnectionState;
  readonly tokens: Tokens | null;

  // --- accounts (REST) ---
  /** Register, then log in: resolves with the own user. */
  register(username: string, email: string, password: string): Promise<User>;
  login(username: string, password: string): Promise<User>;
  /** End this session on the server, close the socket, forget the tokens. */
  logout(): Promise<void>;

  // --- the connection ---
  /** Open the WebSocket; resolves once caught up (state `open`). Reconnects by itself until `close()`. */
  connect(): Promise<void>;
  /** Close the socket and stop reconnecting; queued sends stay queued for the next `connect()`. */
  close(): void;

  // --- writes: each returns the server's ack; queued while disconnected and resent until acknowledged ---
  /** Send to a channel by name, or null for the lobby. */
  send(channel: string | null, content: string, options?: { replyTo?: string; clientId?: string }): Promise<Ack>;
  edit(id: string, content: string): Promise<Ack>;
  delete(id: string): Promise<Ack>;
  react(id: string, emoji: string): Promise<Ack>;
  unreact(id: string, emoji: string): Promise<Ack>;
  /** Move the read position (default: the last position held for the channel). */
  markRead(channel: string | null, seq?: number): void;
  /** Tell the channel's other members you are typing (dropped while disconnected). */
  typing(channel: string | null): void;
  /** Older messages of one channel, before `before` (a message id) or the oldest held; merged into the state. */
  history(channel: string | null, options?: { before?: string; limit?: number }): Promise<{ messages: Message[]; hasMore: boolean }>;
  join(channel: string): Promise<Channel>;
  leave(channel: string): Promise<Channel>;

  // --- REST helpers (authenticated, the token refreshed on a 401 once) ---
  /** Any REST route: `api("/api/channels/", { method: "POST", body: {...} })`; rejects with ChatError. */
  api<T = unknown>(path: string, options?: { method?: string; body?: unknown }): Promise<T>;
  createChannel(name: string, options?: { description?: string; private?: boolean }): Promise<Channel>;
  /** Open (or find) the direct channel with a user: its name is "@a+b". */
  openDirect(username: string): Promise<Channel>;
  addMember(channel: string, username: string): Promise<Channel>;
  /** Public channels and the private and direct channels you are in (all pages). */
  listChannels(): Promise<Channel[]>;
  /** Your channels with read state (all pages). */
  myChannels(): Promise<Channel[]>;
  search(q: string, options?: { channel?: string | null; limit?: number }): Promise<Message[]>;
  setStatus(status: User["status"]): Promise<User>;

  // --- state kept from the frames ---
  /** Channel names subscribed, sorted ignoring case ("" is not listed; the lobby is always there). */
  channels(): string[];
  /** A channel's messages held, in position (`seq`) order, edits, deletions and reactions applied. */
  messages(channel: string | null): Message[];
  /** Whether older messages than those held exist (the oldest held is not the channel's first position). */
  hasOlder(channel: string | null): boolean;
  readState(channel: string | null): ReadState | undefined;
  /** Usernames others see online. */
  online(): string[];
  /** Usernames typing in a channel in the last few seconds. */
  typingIn(channel: string | null): string[];
  /** Writes sent or queued and not yet acknowledged. */
  pending(): number;

  // --- events ---
  /** Subscribe; returns a function that unsubscribes. */
  on<K extends keyof ChatEvents>(type: K, handler: (event: ChatEvents[K]) => void): () => void;
  off<K extends keyof ChatEvents>(type: K, handler: (event: ChatEvents[K]) => void): void;
}
