// The composer: Enter sends, Shift+Enter breaks the line, a reply bar above, typing below.

import { h, icon, fill } from "./dom.js";
import { snippet } from "./format.js";
import { autosize } from "./messages.js";

const MAX_CHARS = 1000;
const TYPING_EVERY_MS = 2000;

export class Composer {
  constructor(ws) {
    this.ws = ws;
    this.drafts = new Map();
    this.replyTo = null;
    this.lastTyping = 0;
    this.area = h("textarea", { class: "composer-input", rows: "1", id: "composer-input", dataset: { testid: "composer" } });
    this.sendButton = h(
      "button",
      { type: "submit", class: "send-btn", "aria-label": "Send message", title: "Send", dataset: { testid: "send-button" }, disabled: true },
      icon("send"),
    );
    this.replyBar = h("div", { class: "reply-bar", hidden: true, dataset: { testid: "reply-bar" } });
    this.typingLine = h("div", { class: "typing", "aria-live": "polite", dataset: { testid: "typing" } });
    this.counter = h("span", { class: "char-count", "aria-live": "polite" });
    this.pendingNote = h("span", { class: "pending-note", dataset: { testid: "pending" } });
    this.form = h(
      "form",
      { class: "composer", dataset: { testid: "composer-form" } },
      this.replyBar,
      h("div", { class: "composer-box" }, h("label", { class: "sr-only", for: "composer-input" }, "Message"), this.area, this.sendButton),
      h(
        "div", { class: "composer-footer" },
        this.typingLine,
        h("span", { class: "composer-meta" }, this.pendingNote, this.counter,
          h("span", { class: "composer-hint" }, h("kbd", {}, "Enter"), " to send, ", h("kbd", {}, "Shift"), " + ", h("kbd", {}, "Enter"), " for a new line")),
      ),
    );
    this.el = this.form;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.area.addEventListener("keydown", (event) => this.onKeydown(event));
    this.area.addEventListener("input", () => this.onInput());
  }

  /** Called when a channel is opened: keep the draft of the one left, restore this one's. */
  setChannel(channel, label) {
    if (this.channel !== undefined) this.drafts.set(this.channel, this.area.value);
    this.channel = channel;
    this.area.value = this.drafts.get(channel) ?? "";
    this.area.placeholder = `Message ${label}`;
    this.area.setAttribute("aria-label", `Message ${label}`);
    this.setReply(null);
    this.onInput(false);
  }

  setReply(message) {
    this.replyTo = message;
    if (!message) {
      this.replyBar.hidden = true;
      this.replyBar.replaceChildren();
      return;
    }
    fill(
      this.replyBar,
      icon("reply", "icon icon-sm"),
      h("span", { class: "reply-label" }, "Replying to ", h("strong", {}, message.username)),
      h("span", { class: "reply-snippet" }, snippet(message.content, 120)),
      h("button", { type: "button", class: "icon-btn icon-btn-sm", "aria-label": "Cancel reply", dataset: { testid: "cancel-reply" }, onclick: () => { this.setReply(null); this.focus(); } }, icon("x")),
    );
    this.replyBar.hidden = false;
  }

  focus() {
    this.area.focus();
  }

  onKeydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "Escape" && this.replyTo) {
      event.preventDefault();
      this.setReply(null);
    } else if (event.key === "ArrowUp" && this.area.value === "") {
      if (this.ws.editLastOwn()) event.preventDefault();
    }
  }

  onInput(typing = true) {
    autosize(this.area);
    const length = [...this.area.value.trim()].length;
    this.sendButton.disabled = length === 0 || length > MAX_CHARS;
    this.counter.textContent = length > MAX_CHARS - 100 ? `${length} / ${MAX_CHARS}` : "";
    this.counter.classList.toggle("is-over", length > MAX_CHARS);
    if (typing && length > 0 && Date.now() - this.lastTyping > TYPING_EVERY_MS) {
      this.lastTyping = Date.now();
      this.ws.sendTyping();
    }
  }

  submit() {
    const content = this.area.value.trim();
    const length = [...content].length;
    if (!length || length > MAX_CHARS) return;
    this.ws.sendMessage(content, this.replyTo);
    this.area.value = "";
    this.drafts.delete(this.channel);
    this.lastTyping = 0;
    this.setReply(null);
    this.onInput(false);
  }

  setTyping(names) {
    if (!names.length) {
      this.typingLine.replaceChildren();
      return;
    }
    const who = names.length === 1 ? [h("strong", {}, names[0]), " is typing"]
      : names.length === 2 ? [h("strong", {}, names[0]), " and ", h("strong", {}, names[1]), " are typing"]
        : ["Several people are typing"];
    fill(this.typingLine, h("span", { class: "typing-dots", "aria-hidden": "true" }, h("span"), h("span"), h("span")), who, "…");
  }

  setPending(count) {
    this.pendingNote.textContent = count ? `${count} waiting to send` : "";
  }
}
