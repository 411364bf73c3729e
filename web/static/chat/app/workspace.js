// The signed-in app: the sidebar, the open channel's header, messages and composer, wired to the
// ChatClient's events. Every view reads the client's state; nothing here keeps a copy of messages.

import { h, icon, fill } from "./dom.js";
import { describeError } from "./auth.js";
import { channelLabel, directPeer, isDirect, relativeTime, sameName, STATUS_LABEL } from "./format.js";
import { MessageList } from "./messages.js";
import { Composer } from "./composer.js";
import { Sidebar, hashFor } from "./sidebar.js";
import { confirmDelete, membersDialog } from "./dialogs.js";
import { EmojiPicker } from "./picker.js";

const arg = (name) => (name === "" ? null : name);
const HISTORY_TIMEOUT_MS = 15_000;

export class Workspace {
  /** `onEnded(notice)` is called once the session is over (logged out here or elsewhere). */
  constructor(root, client, { username, onEnded }) {
    this.root = root;
    this.client = client;
    this.fallbackName = username;
    this.onEnded = onEnded;
    this.current = null;
    this.info = new Map();
    this.statuses = new Map();
    this.parents = new Map();
    this.requested = new Set();
    this.marked = new Map();
    this.dirty = new Set();
    this.loadingOlder = false;
    this.editingId = null;
    this.editDraft = null;
    this.timers = [];
    this.offs = [];
    this.inflight = new Set();
  }

  /** A background request of the app's own, awaited before logging out so none meets a closed session. */
  track(promise) {
    this.inflight.add(promise);
    const forget = () => this.inflight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  get me() {
    return this.client.user?.username ?? this.fallbackName ?? "";
  }

  // --- life cycle ---

  async start() {
    this.sidebar = new Sidebar(this);
    this.list = new MessageList(this);
    this.composer = new Composer(this);
    this.picker = new EmojiPicker((message, emoji) => this.toggleReaction(message, emoji));
    this.header = h("header", { class: "chat-header", dataset: { testid: "channel-header" } });
    this.banner = h("div", { class: "conn-banner", hidden: true, dataset: { testid: "connection-banner" } });
    this.toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
    fill(
      this.root,
      h(
        "div", { class: "workspace" },
        this.sidebar.el,
        h("main", { class: "chat", "aria-labelledby": "channel-title" },
          this.header, this.banner, h("div", { class: "chat-body" }, this.list.el, this.list.newPill), this.composer.el),
      ),
      this.toasts,
      this.picker.el,
    );
    this.wire();
    this.sidebar.renderConnection({ state: this.client.state });
    this.sidebar.renderUser();
    this.open(this.routeChannel());
    try {
      await this.client.connect();
    } catch (error) {
      if (!this.ended && this.client.state !== "logged_out") this.toast(describeError(error));
    }
  }

  wire() {
    const c = this.client;
    const membership = (frame) => {
      this.refreshChannels();
      if ((frame.type === "unsubscribed" || frame.type === "channel_deleted") && sameName(frame.channel, this.current)) {
        if (frame.type === "channel_deleted") this.toast(`${frame.channel} was deleted.`);
        this.navigate("");
      }
    };
    this.offs.push(
      c.on("change", ({ channel }) => this.schedule(channel)),
      c.on("connection", (event) => this.onConnection(event)),
      c.on("ready", (frame) => {
        for (const name of frame.online) if (!this.statuses.has(name.toLowerCase())) this.statuses.set(name.toLowerCase(), "online");
        this.sidebar.renderUser();
      }),
      c.on("presence", (frame) => {
        this.statuses.set(frame.username.toLowerCase(), frame.is_online ? frame.status : "offline");
        this.updatePresence();
      }),
      c.on("typing", (frame) => {
        if (sameName(frame.channel ?? "", this.current)) this.updateTyping();
      }),
      c.on("subscribed", membership),
      c.on("unsubscribed", membership),
      c.on("channel_deleted", membership),
      c.on("member_joined", (frame) => this.countMember(frame, +1)),
      c.on("member_left", (frame) => this.countMember(frame, -1)),
      c.on("ack", () => this.composer.setPending(c.pending())),
      c.on("error", (frame) => {
        if (!frame.client_id) this.toast(frame.detail || frame.code);
      }),
    );
    const onHash = () => this.open(this.routeChannel());
    const onFocus = () => this.maybeMarkRead();
    window.addEventListener("hashchange", onHash);
    window.addEventListener("focus", onFocus);
    document.addEventListener("visibilitychange", onFocus);
    this.offs.push(
      () => window.removeEventListener("hashchange", onHash),
      () => window.removeEventListener("focus", onFocus),
      () => document.removeEventListener("visibilitychange", onFocus),
    );
    this.timers.push(
      setInterval(() => this.updateTyping(), 1000),
      setInterval(() => {
        for (const el of this.root.querySelectorAll("time[data-ts]")) el.textContent = relativeTime(el.dataset.ts);
      }, 30_000),
    );
  }

  onConnection(event) {
    const banners = {
      reconnecting: "Connection lost. Messages you send will be delivered once it is back.",
      offline: "You are offline. Messages you send will be delivered once you are back online.",
      forbidden: "The server refused this account.",
    };
    const label = h("strong");
    this.sidebar.renderConnection(event, [label]);
    this.banner.hidden = !banners[event.state];
    fill(this.banner, h("span", { class: "conn-dot", "aria-hidden": "true" }), label, " ", banners[event.state] ?? "");
    this.banner.dataset.state = event.state;
    this.composer.setPending(this.client.pending());
    this.updatePresence();
    if (event.state === "open") {
      this.refreshChannels();
      this.seedPresence();
      this.sidebar.renderUser();
      this.ensureHistory();
      this.schedule(this.current);
    } else if (event.state === "logged_out") {
      this.end(this.loggingOut ? "You have logged out." : "Your session has ended. Please log in again.");
    } else if (event.state === "forbidden") {
      this.end("This account cannot connect. It may have been deactivated.");
    }
  }

  async logout() {
    if (this.loggingOut) return;
    this.loggingOut = true;
    this.client.close(); // first, so the server's closing of this session's socket is not taken for a lost one
    clearTimeout(this.refreshTimer);
    await Promise.allSettled([...this.inflight]);
    try {
      await this.client.logout();
    } finally {
      this.end("You have logged out.");
    }
  }

  end(notice) {
    if (this.ended) return;
    this.ended = true;
    this.offs.forEach((off) => off());
    this.timers.forEach((timer) => clearInterval(timer));
    clearTimeout(this.refreshTimer);
    clearTimeout(this.flushTimer);
    this.sidebar.stop();
    this.picker.close();
    this.client.close();
    document.querySelectorAll("dialog").forEach((dialog) => dialog.remove());
    this.onEnded(notice);
  }

  // --- channels ---

  routeChannel() {
    const match = location.hash.match(/^#\/c\/(.+)$/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  navigate(name) {
    const hash = hashFor(name);
    if (location.hash === hash) this.open(name);
    else location.hash = hash;
  }

  canonical(name) {
    if (name === "") return "";
    return this.client.channels().find((known) => sameName(known, name)) ?? this.info.get(name.toLowerCase())?.name ?? name;
  }

  isMember(name) {
    return name === "" || this.client.channels().some((known) => sameName(known, name));
  }

  rememberChannel(channel) {
    this.info.set(channel.name.toLowerCase(), { ...this.info.get(channel.name.toLowerCase()), ...channel });
    if (sameName(channel.name, this.current)) this.renderHeader();
  }

  /**
   * Someone else joined or left: the header's member count follows without asking the server.
   * (Your own joins and leaves come with `subscribed`/`unsubscribed`, which reload your channels.)
   */
  countMember({ channel: name, username }, delta) {
    const info = this.info.get(name.toLowerCase());
    if (sameName(username, this.me) || info?.member_count === undefined) return;
    info.member_count = Math.max(0, info.member_count + delta);
    if (sameName(name, this.current)) this.renderHeader();
  }

  kindOf(name) {
    if (name === "") return "lobby";
    return this.info.get(name.toLowerCase())?.kind ?? (isDirect(name) ? "direct" : "public");
  }

  refreshChannels() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(async () => {
      if (this.ended || this.loggingOut) return;
      try {
        for (const channel of await this.track(this.client.myChannels())) this.rememberChannel(channel);
        this.sidebar.render();
        this.renderHeader();
      } catch (error) {
        if (!this.ended && error?.status !== 401) this.toast(describeError(error));
      }
    }, 150);
  }

  open(name) {
    name = this.canonical(name);
    if (this.current === name) return;
    this.current = name;
    this.editingId = null;
    this.editDraft = null;
    this.loadingOlder = false;
    this.picker.close();
    const read = this.client.readState(arg(name));
    this.list.reset(read && read.unread > 0 ? read.last_read_seq : null);
    const label = channelLabel(name, this.me);
    this.composer.setChannel(name, this.kindOf(name) === "direct" ? label : name === "" ? "the lobby" : `#${label}`);
    this.updateTitle();
    this.renderHeader();
    this.sidebar.render();
    this.list.render();
    this.updateTyping();
    this.ensureHistory();
    this.maybeMarkRead();
    this.composer.focus();
  }

  /** The first time a channel is opened, ask for its recent history (the connect history is shared). */
  ensureHistory() {
    if (this.client.state !== "open" || this.requested.has(this.current)) return;
    this.requested.add(this.current);
    if (this.client.messages(arg(this.current)).length < 50) this.loadOlder(true);
  }

  async loadOlder(first = false) {
    const channel = this.current;
    if (this.loadingOlder || this.client.state !== "open" || (!first && !this.client.hasOlder(arg(channel)))) return;
    this.loadingOlder = true;
    this.list.render();
    const oldest = this.client.messages(arg(channel))[0];
    let timer;
    try {
      await Promise.race([
        this.client.history(arg(channel), oldest ? { before: oldest.id, limit: 50 } : { limit: 50 }),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error("The server did not answer in time.")), HISTORY_TIMEOUT_MS); }),
      ]);
    } catch (error) {
      if (!this.ended) this.toast(describeError(error));
    } finally {
      clearTimeout(timer);
      if (this.current === channel) {
        this.loadingOlder = false;
        this.list.render();
      }
    }
  }

  /** Whether older messages may exist: until the channel's history was asked for, assume so. */
  hasOlder() {
    return !this.requested.has(this.current) || this.client.hasOlder(arg(this.current));
  }

  /** Nothing to show yet: the channel's first history has not been asked for or has not come. */
  awaitingFirst() {
    return !this.requested.has(this.current) && this.currentMessages().length === 0;
  }

  currentMessages() {
    return this.client.messages(arg(this.current));
  }

  schedule(channel) {
    this.dirty.add(channel ?? "");
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      const dirty = [...this.dirty];
      this.dirty.clear();
      if (this.ended) return;
      this.sidebar.render();
      this.updateTitle();
      if (dirty.some((name) => sameName(name, this.current))) {
        this.list.render();
        this.maybeMarkRead();
      }
      this.composer.setPending(this.client.pending());
    }, 0);
  }

  /** The tab's title: the open channel, after the number of unread messages elsewhere. */
  updateTitle() {
    const name = this.current;
    const unread = ["", ...this.client.channels()]
      .filter((channel) => !sameName(channel, name))
      .reduce((sum, channel) => sum + (this.client.readState(arg(channel))?.unread ?? 0), 0);
    const label = `${this.kindOf(name) === "public" ? "#" : ""}${channelLabel(name, this.me)}`;
    document.title = `${unread ? `(${unread}) ` : ""}${label} · Chat`;
  }

  /** Move the read position when the open channel is seen: the window is visible and focused. */
  maybeMarkRead() {
    if (this.client.state !== "open" || document.visibilityState !== "visible" || !document.hasFocus()) return;
    const channel = this.current;
    const read = this.client.readState(arg(channel));
    const messages = this.client.messages(arg(channel));
    const last = messages.reduce((top, message) => Math.max(top, message.seq, message.rev), 0);
    const behind = (read?.unread ?? 0) > 0 || last > (read?.last_read_seq ?? 0);
    if (!behind || this.marked.get(channel) === last) return;
    this.marked.set(channel, last);
    this.client.markRead(arg(channel));
  }

  // --- presence ---

  async seedPresence() {
    try {
      const page = await this.track(this.client.api("/api/users/online?limit=200"));
      for (const user of page.results) this.statuses.set(user.username.toLowerCase(), user.is_online ? user.status : "offline");
      this.updatePresence();
    } catch {
      // Presence dots fall back to the ready frame's list.
    }
  }

  ownStatus() {
    return this.ownChosen ?? this.client.user?.status ?? "online";
  }

  presenceOf(username) {
    if (sameName(username, this.me)) {
      const chosen = this.ownStatus();
      return this.client.state === "open" && chosen !== "offline" ? chosen : "offline";
    }
    const known = this.statuses.get(username.toLowerCase());
    if (known) return known;
    return this.client.online().some((name) => sameName(name, username)) ? "online" : "offline";
  }

  updatePresence() {
    for (const dot of document.querySelectorAll("[data-presence-user]")) dot.dataset.presence = this.presenceOf(dot.dataset.presenceUser);
    if (this.current !== null && this.kindOf(this.current) === "direct") this.renderHeader();
  }

  async setStatus(status) {
    try {
      const user = await this.client.setStatus(status);
      this.ownChosen = user.status;
    } catch (error) {
      this.toast(describeError(error));
    }
    this.sidebar.renderUser();
    this.updatePresence();
  }

  // --- the header ---

  headerSig() {
    const info = this.info.get(this.current.toLowerCase());
    return `${this.kindOf(this.current)}|${info?.description ?? ""}|${info?.owner ?? ""}`;
  }

  renderHeader() {
    const name = this.current;
    if (name === null) return;
    const kind = this.kindOf(name);
    const info = this.info.get(name.toLowerCase());
    const label = channelLabel(name, this.me);
    let lead;
    let description;
    if (kind === "direct") {
      const peer = directPeer(name, this.me);
      const status = this.presenceOf(peer);
      lead = h("span", { class: "title-icon" }, icon("message", "icon"));
      description = h("span", { class: "dm-status" }, h("span", { class: "presence presence-inline", dataset: { presence: status } }), STATUS_LABEL[status]);
    } else {
      lead = h("span", { class: "title-icon" }, icon(kind === "lobby" ? "globe" : kind === "private" ? "lock" : "hash", "icon"));
      description = kind === "lobby" ? "Everyone on this server" : info?.description || "";
    }
    const actions = h("div", { class: "chat-actions" });
    if (kind === "lobby") {
      actions.append(h("span", { class: "member-count is-static", dataset: { testid: "member-count" } }, icon("users", "icon icon-sm"), "Everyone"));
    } else {
      const count = info?.member_count;
      actions.append(h(
        "button",
        { type: "button", class: "member-count", "aria-label": `Members${count ? `: ${count}` : ""}`, title: "Members", dataset: { testid: "member-count" }, onclick: () => membersDialog(this, name) },
        icon("users", "icon icon-sm"), count === undefined ? "" : String(count),
      ));
    }
    if ((kind === "public" || kind === "private") && info && !sameName(info.owner ?? "", this.me)) {
      actions.append(h(
        "button",
        { type: "button", class: "icon-btn", "aria-label": `Leave ${label}`, title: "Leave channel", dataset: { testid: "leave-channel" }, onclick: () => this.leave(name) },
        icon("door"),
      ));
    }
    fill(
      this.header,
      h(
        "div", { class: "chat-heading" },
        h("div", { class: "chat-title" }, lead, h("h1", { id: "channel-title", dataset: { testid: "channel-title" } }, label),
          kind === "private" ? h("span", { class: "tag tag-private" }, "Private") : null),
        description ? h("p", { class: "chat-description", dataset: { testid: "channel-description" } }, description) : null,
      ),
      actions,
    );
  }

  async leave(name) {
    try {
      await this.client.leave(name);
      this.navigate("");
    } catch (error) {
      this.toast(describeError(error));
    }
  }

  introText() {
    const name = this.current;
    const kind = this.kindOf(name);
    const info = this.info.get(name.toLowerCase());
    if (kind === "lobby") {
      return { iconName: "globe", title: "Welcome to the lobby", text: "Everyone on this server reads the lobby. Say hello, or create a channel for a topic." };
    }
    if (kind === "direct") {
      const peer = directPeer(name, this.me);
      if (sameName(peer, this.me)) return { iconName: "message", title: "Your notes", text: "A space of your own: nobody else can read it." };
      return { iconName: "message", title: `This is the beginning of your conversation with ${peer}`, text: "Only the two of you can see these messages." };
    }
    const owner = info?.owner ? `${info.owner} created this channel.` : "";
    if (kind === "private") {
      return { iconName: "lock", title: `This is the very beginning of ${name}`, text: info?.description || `${owner} It is private: only its members can see it.`.trim() };
    }
    return { iconName: "hash", title: `This is the very beginning of #${name}`, text: info?.description || `${owner} Start the conversation.`.trim() };
  }

  // --- actions on messages ---

  latest(message) {
    return this.client.messages(message.channel).find((held) => held.id === message.id) ?? message;
  }

  /** A replied-to message not held in the channel (further up): fetched once, then re-rendered. */
  parentOf(id) {
    if (!this.parents.has(id)) {
      this.parents.set(id, null);
      this.track(this.client.api(`/api/messages/${encodeURIComponent(id)}`)).then((message) => {
        this.parents.set(id, message);
        if (!this.ended) this.list.render();
      }, () => {});
    }
    return this.parents.get(id);
  }

  canDelete(message) {
    if (message.deleted) return false;
    if (sameName(message.username, this.me)) return true;
    const info = this.info.get(this.current.toLowerCase());
    return this.kindOf(this.current) !== "direct" && Boolean(info?.owner) && sameName(info.owner, this.me);
  }

  sendMessage(content, replyTo) {
    this.list.forceBottom = true;
    this.client.send(arg(this.current), content, replyTo ? { replyTo: replyTo.id } : {}).catch((error) => this.toast(describeError(error)));
    this.composer.setPending(this.client.pending());
  }

  sendTyping() {
    if (this.client.state === "open") this.client.typing(arg(this.current));
  }

  updateTyping() {
    if (this.current === null) return;
    this.composer.setTyping(this.client.typingIn(arg(this.current)).filter((name) => !sameName(name, this.me)));
  }

  toggleReaction(message, emoji) {
    const current = this.latest(message);
    const mine = current.reactions.some((reaction) => reaction.emoji === emoji && reaction.usernames.some((name) => sameName(name, this.me)));
    const done = mine ? this.client.unreact(message.id, emoji) : this.client.react(message.id, emoji);
    done.catch((error) => this.toast(describeError(error)));
  }

  openPicker(anchor, message) {
    this.picker.open(anchor, message);
  }

  startReply(message) {
    this.composer.setReply(message);
    this.composer.focus();
  }

  startEdit(message) {
    this.editingId = message.id;
    this.editDraft = null;
    this.list.render();
  }

  editLastOwn() {
    const own = this.currentMessages().filter((message) => !message.deleted && sameName(message.username, this.me)).at(-1);
    if (!own) return false;
    this.startEdit(own);
    return true;
  }

  saveEdit(message, value) {
    const content = value.trim();
    if (!content) {
      this.toast("A message cannot be empty: delete it instead.");
      return;
    }
    if (content !== this.latest(message).content) {
      this.client.edit(message.id, content).catch((error) => this.toast(describeError(error)));
    }
    this.cancelEdit();
  }

  cancelEdit() {
    this.editingId = null;
    this.editDraft = null;
    this.list.render();
    this.composer.focus();
  }

  async confirmDelete(message) {
    if (await confirmDelete(message)) {
      this.client.delete(message.id).catch((error) => this.toast(describeError(error)));
    }
    this.composer.focus();
  }

  jumpTo(id) {
    if (!this.list.reveal(id)) this.toast("The original message is further up: scroll up to load it.");
  }

  // --- toasts ---

  toast(text) {
    if (!text || [...this.toasts.children].some((toast) => toast.textContent === text)) return;
    const toast = h("div", { class: "toast", dataset: { testid: "toast" } }, text);
    this.toasts.append(toast);
    setTimeout(() => toast.remove(), 6000);
  }
}
