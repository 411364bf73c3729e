// The message list of the open channel: rows built from the client's state and kept by key,
// so an edit box, the focus and the reading position survive every re-render.

import { h, icon } from "./dom.js";
import {
  avatar, clockTime, dayKey, dayLabel, fullTime, messageText, sameName, snippet, timeElement,
} from "./format.js";

const GROUP_GAP_MS = 5 * 60_000;
const NEAR_BOTTOM_PX = 48;
const LOAD_OLDER_PX = 240;

export class MessageList {
  /** `ws` is the Workspace: the client, the open channel and the actions on messages. */
  constructor(ws) {
    this.ws = ws;
    this.inner = h("div", { class: "messages-inner" });
    this.el = h(
      "div",
      { class: "messages", role: "log", "aria-label": "Messages", tabindex: "0", dataset: { testid: "message-list" } },
      this.inner,
    );
    this.newPill = h(
      "button",
      { type: "button", class: "new-pill", hidden: true, dataset: { testid: "new-messages" }, onclick: () => this.scrollToBottom(true) },
      icon("arrowDown", "icon icon-sm"),
      "New messages",
    );
    this.nodes = new Map();
    this.lastId = null;
    this.el.addEventListener("scroll", () => this.onScroll(), { passive: true });
  }

  /** Called when another channel is opened: start from a clean list scrolled to the bottom. */
  reset(unreadAfterSeq) {
    this.nodes.clear();
    this.inner.replaceChildren();
    this.unreadAfterSeq = unreadAfterSeq;
    this.lastId = null;
    this.newPill.hidden = true;
    this.forceBottom = true;
  }

  atBottom() {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(smooth = false) {
    this.el.scrollTo({ top: this.el.scrollHeight, behavior: smooth ? "smooth" : "instant" });
    this.newPill.hidden = true;
  }

  onScroll() {
    if (this.atBottom()) this.newPill.hidden = true;
    if (this.el.scrollTop < LOAD_OLDER_PX) this.ws.loadOlder();
  }

  /** The first row in view and its distance from the top, to keep it in place across a render. */
  captureAnchor() {
    if (this.forceBottom || this.atBottom()) return { bottom: true };
    const top = this.el.scrollTop;
    for (const row of this.inner.children) {
      if (row.offsetTop + row.offsetHeight > top) return { row, offset: row.offsetTop - top };
    }
    return { bottom: true };
  }

  restoreAnchor(anchor) {
    if (anchor.bottom) this.el.scrollTop = this.el.scrollHeight;
    else if (anchor.row.isConnected) this.el.scrollTop = anchor.row.offsetTop - anchor.offset;
  }

  render() {
    const anchor = this.captureAnchor();
    this.forceBottom = false;
    const rows = this.rows();
    const keep = new Set();
    let cursor = this.inner.firstChild;
    for (const row of rows) {
      keep.add(row.key);
      let node = this.nodes.get(row.key);
      if (node && node.sig !== row.sig) {
        if (node.el === cursor) cursor = cursor.nextSibling;
        node.el.remove();
        node = null;
      }
      if (!node) {
        node = { el: row.build(), sig: row.sig };
        this.nodes.set(row.key, node);
      }
      if (node.el === cursor) cursor = cursor.nextSibling;
      else this.inner.insertBefore(node.el, cursor);
    }
    for (const [key, node] of this.nodes) {
      if (!keep.has(key)) {
        node.el.remove();
        this.nodes.delete(key);
      }
    }
    this.restoreAnchor(anchor);
    const messages = this.ws.currentMessages();
    const lastId = messages.at(-1)?.id ?? null;
    if (lastId !== this.lastId && this.lastId !== null && !anchor.bottom) this.newPill.hidden = false;
    this.lastId = lastId;
    const editor = this.inner.querySelector(".edit-input");
    if (editor && document.activeElement !== editor) {
      editor.focus();
      editor.setSelectionRange(editor.value.length, editor.value.length);
    }
  }

  rows() {
    const ws = this.ws;
    const messages = ws.currentMessages();
    const byId = new Map(messages.map((message) => [message.id, message]));
    const rows = [];
    const olderExists = ws.hasOlder();
    if (ws.loadingOlder || ws.awaitingFirst()) {
      rows.push({ key: "loader", sig: "", build: () => h(
        "div", { class: "history-loader", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Loading messages…",
      ) });
    } else if (!olderExists) {
      const empty = messages.length === 0;
      rows.push({ key: "intro", sig: `${empty}|${ws.current}|${ws.headerSig()}`, build: () => this.intro(empty) });
    }
    let previous = null;
    let unreadShown = false;
    for (const message of messages) {
      const day = dayKey(message.created_at);
      if (!previous || dayKey(previous.created_at) !== day) {
        rows.push({ key: `day:${day}`, sig: dayLabel(message.created_at), build: () => h(
          "div", { class: "day-divider", role: "separator" }, h("span", {}, dayLabel(message.created_at)),
        ) });
      }
      if (!unreadShown && this.unreadAfterSeq !== null && message.seq > this.unreadAfterSeq && !sameName(message.username, ws.me)) {
        unreadShown = true;
        rows.push({ key: "unread", sig: "", build: () => h(
          "div", { class: "unread-divider", role: "separator", dataset: { testid: "unread-divider" } }, h("span", {}, "New"),
        ) });
      }
      const grouped = Boolean(
        previous && !message.reply_to && sameName(previous.username, message.username)
          && dayKey(previous.created_at) === day
          && new Date(message.created_at) - new Date(previous.created_at) < GROUP_GAP_MS,
      );
      const parent = message.reply_to ? byId.get(message.reply_to) ?? ws.parentOf(message.reply_to) : null;
      const editing = ws.editingId === message.id;
      const sig = [message.rev, message.deleted, grouped, editing, parent ? `${parent.id}:${parent.rev}` : "-", ws.canDelete(message)].join("|");
      rows.push({ key: message.id, sig, build: () => this.message(message, { grouped, parent, editing }) });
      previous = message;
    }
    return rows;
  }

  intro(empty) {
    const ws = this.ws;
    const { title, text, iconName } = ws.introText();
    return h(
      "div",
      { class: `channel-intro${empty ? " is-empty" : ""}`, dataset: { testid: empty ? "empty-state" : "channel-intro" } },
      h("div", { class: "intro-icon" }, icon(iconName, "icon icon-xl")),
      h("h2", { class: "intro-title" }, title),
      h("p", { class: "intro-text" }, text),
      empty ? h("p", { class: "intro-hint" }, "Messages you send here will appear in this space.") : null,
    );
  }

  message(message, { grouped, parent, editing }) {
    const ws = this.ws;
    const mine = sameName(message.username, ws.me);
    const mentionsMe = message.mentions.some((name) => sameName(name, ws.me));
    const classes = ["msg"];
    if (grouped) classes.push("is-grouped");
    if (mine) classes.push("is-mine");
    if (mentionsMe && !mine) classes.push("is-mention");
    if (message.deleted) classes.push("is-deleted");
    if (editing) classes.push("is-editing");
    const article = h("article", {
      class: classes.join(" "),
      id: `msg-${message.id}`,
      dataset: { testid: "message", messageId: message.id, author: message.username },
      "aria-label": `${message.username}, ${fullTime(message.created_at)}`,
    });
    const gutter = grouped
      ? h("div", { class: "msg-gutter" }, h("time", { class: "msg-hover-time", datetime: message.created_at, title: fullTime(message.created_at) }, clockTime(message.created_at)))
      : h("div", { class: "msg-gutter" }, avatar(message.username, { presence: ws.presenceOf(message.username) }));
    const body = h("div", { class: "msg-body" });
    if (message.reply_to) body.append(this.quote(message.reply_to, parent));
    if (!grouped) {
      body.append(h(
        "div", { class: "msg-meta" },
        h("span", { class: "msg-author", dataset: { testid: "message-author" } }, message.username),
        timeElement(message.created_at),
      ));
    }
    if (message.deleted) {
      body.append(h("div", { class: "msg-content msg-tombstone" }, icon("trash", "icon icon-xs"), h("span", { class: "msg-text", dataset: { testid: "message-text" } }, "message deleted")));
    } else if (editing) {
      body.append(this.editor(message));
    } else {
      body.append(h(
        "div", { class: "msg-content" },
        h("span", { class: "msg-text", dataset: { testid: "message-text" } }, messageText(message)),
        message.edited_at
          ? h("span", { class: "msg-edited", title: `Edited ${fullTime(message.edited_at)}`, dataset: { testid: "edited-marker" } }, "(edited)")
          : null,
      ));
      if (message.reactions.length) body.append(this.reactions(message));
    }
    article.append(gutter, body);
    if (!message.deleted && !editing) article.append(this.actions(message, mine));
    return article;
  }

  quote(id, parent) {
    const ws = this.ws;
    const content = parent
      ? [
        avatar(parent.username, { size: "xs" }),
        h("span", { class: "quote-author" }, parent.username),
        parent.deleted
          ? h("span", { class: "quote-text is-deleted" }, "message deleted")
          : h("span", { class: "quote-text" }, snippet(parent.content)),
      ]
      : h("span", { class: "quote-text is-missing" }, "Original message not loaded");
    return h(
      "button",
      {
        type: "button", class: "msg-quote", dataset: { testid: "reply-quote", replyTo: id },
        "aria-label": parent ? `Reply to ${parent.username}: show the original message` : "Show the original message",
        onclick: () => ws.jumpTo(id),
      },
      h("span", { class: "quote-spine", "aria-hidden": "true" }),
      content,
    );
  }

  reactions(message) {
    const ws = this.ws;
    return h(
      "div",
      { class: "reactions", dataset: { testid: "reactions" } },
      message.reactions.map((reaction) => {
        const mine = reaction.usernames.some((name) => sameName(name, ws.me));
        const who = reaction.usernames.join(", ");
        return h(
          "button",
          {
            type: "button",
            class: `reaction${mine ? " is-mine" : ""}`,
            "aria-pressed": String(mine),
            "aria-label": `${reaction.emoji} ${reaction.usernames.length}, by ${who}${mine ? ", click to remove yours" : ", click to add yours"}`,
            title: `${who} reacted with ${reaction.emoji}`,
            dataset: { testid: "reaction", emoji: reaction.emoji },
            onclick: () => ws.toggleReaction(message, reaction.emoji),
          },
          h("span", { class: "reaction-emoji" }, reaction.emoji),
          h("span", { class: "reaction-count", dataset: { testid: "reaction-count" } }, String(reaction.usernames.length)),
        );
      }),
      h(
        "button",
        { type: "button", class: "reaction reaction-add", "aria-label": "Add a reaction", title: "Add a reaction", onclick: (event) => ws.openPicker(event.currentTarget, message) },
        icon("smile", "icon icon-sm"),
        h("span", { class: "reaction-plus", "aria-hidden": "true" }, "+"),
      ),
    );
  }

  actions(message, mine) {
    const ws = this.ws;
    const button = (name, label, testid, onclick) => h(
      "button", { type: "button", class: "icon-btn", "aria-label": label, title: label, dataset: { testid }, onclick }, icon(name),
    );
    return h(
      "div",
      { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" },
      button("smile", "Add reaction", "react-button", (event) => ws.openPicker(event.currentTarget, message)),
      button("reply", "Reply", "reply-button", () => ws.startReply(message)),
      mine ? button("edit", "Edit message", "edit-button", () => ws.startEdit(message)) : null,
      ws.canDelete(message) ? button("trash", "Delete message", "delete-button", () => ws.confirmDelete(message)) : null,
    );
  }

  editor(message) {
    const ws = this.ws;
    const area = h("textarea", { class: "edit-input", rows: "1", "aria-label": "Edit message", dataset: { testid: "edit-input" } });
    area.value = ws.editDraft ?? message.content;
    const save = () => ws.saveEdit(message, area.value);
    area.addEventListener("input", () => {
      ws.editDraft = area.value;
      autosize(area);
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        ws.cancelEdit();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        save();
      }
    });
    requestAnimationFrame(() => autosize(area));
    return h(
      "div",
      { class: "msg-editor" },
      area,
      h(
        "div", { class: "edit-bar" },
        h("span", { class: "edit-hint" }, "Escape to cancel · Enter to save"),
        h("button", { type: "button", class: "btn btn-ghost btn-sm", dataset: { testid: "edit-cancel" }, onclick: () => ws.cancelEdit() }, "Cancel"),
        h("button", { type: "button", class: "btn btn-primary btn-sm", dataset: { testid: "edit-save" }, onclick: save }, "Save"),
      ),
    );
  }

  /** Scroll a message into view and flash it; false when it is not in the list. */
  reveal(id) {
    const node = this.nodes.get(id);
    if (!node) return false;
    node.el.scrollIntoView({ block: "center", behavior: "smooth" });
    node.el.classList.remove("is-flash");
    void node.el.offsetWidth;
    node.el.classList.add("is-flash");
    return true;
  }
}

/** Grow a textarea with its content, up to the height its CSS allows. */
export function autosize(area) {
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight}px`;
}
