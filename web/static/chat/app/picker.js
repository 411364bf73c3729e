// The reaction picker: a small popover of common emoji beside the button that opened it.

import { h } from "./dom.js";

export const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀", "🔥", "✅"];

export class EmojiPicker {
  /** `onPick(message, emoji)` is called with the message the picker was opened for. */
  constructor(onPick) {
    this.onPick = onPick;
    this.message = null;
    this.el = h(
      "div",
      { class: "picker", role: "dialog", "aria-label": "Pick a reaction", hidden: true, dataset: { testid: "emoji-picker" } },
      EMOJI.map((emoji) => h(
        "button",
        { type: "button", class: "picker-emoji", "aria-label": `React with ${emoji}`, dataset: { testid: "emoji-option", emoji }, onclick: () => this.pick(emoji) },
        emoji,
      )),
    );
    this.el.addEventListener("keydown", (event) => {
      const buttons = [...this.el.querySelectorAll("button")];
      const index = buttons.indexOf(document.activeElement);
      if (event.key === "Escape") {
        event.preventDefault();
        this.close(true);
      } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        event.preventDefault();
        const step = event.key === "ArrowRight" ? 1 : -1;
        buttons[(index + step + buttons.length) % buttons.length].focus();
      }
    });
    this.onOutside = (event) => {
      if (!this.el.contains(event.target) && event.target !== this.anchor && !this.anchor?.contains(event.target)) this.close();
    };
  }

  open(anchor, message) {
    if (!this.el.hidden && this.message?.id === message.id) {
      this.close(true);
      return;
    }
    this.anchor = anchor;
    this.message = message;
    this.el.hidden = false;
    const box = anchor.getBoundingClientRect();
    const width = this.el.offsetWidth;
    const height = this.el.offsetHeight;
    const above = box.top - height - 8;
    this.el.style.top = `${above > 8 ? above : box.bottom + 8}px`;
    this.el.style.left = `${Math.max(8, Math.min(window.innerWidth - width - 8, box.right - width))}px`;
    document.addEventListener("mousedown", this.onOutside, true);
    this.el.querySelector("button").focus();
  }

  pick(emoji) {
    const message = this.message;
    this.close(true);
    if (message) this.onPick(message, emoji);
  }

  close(restoreFocus = false) {
    if (this.el.hidden) return;
    this.el.hidden = true;
    document.removeEventListener("mousedown", this.onOutside, true);
    if (restoreFocus && this.anchor?.isConnected) this.anchor.focus();
    this.message = null;
  }
}
