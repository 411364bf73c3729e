// The sidebar: the brand and connection indicator, channels, direct messages, and you.

import { h, icon, fill } from "./dom.js";
import { avatar, channelLabel, directPeer, isDirect, sameName } from "./format.js";
import { browseDialog, createChannelDialog, directDialog } from "./dialogs.js";

export const hashFor = (name) => (name === "" ? "#/lobby" : `#/c/${encodeURIComponent(name)}`);

export class Sidebar {
  constructor(ws) {
    this.ws = ws;
    this.connLabel = h("span", { class: "conn-label" });
    this.conn = h(
      "div",
      { class: "conn", role: "status", "aria-live": "polite", dataset: { testid: "connection", state: "idle" } },
      h("span", { class: "conn-dot", "aria-hidden": "true" }),
      this.connLabel,
    );
    this.channelList = h("ul", { class: "nav-list", dataset: { testid: "channel-list" } });
    this.dmList = h("ul", { class: "nav-list", dataset: { testid: "dm-list" } });
    this.userCard = h("div", { class: "user-card", dataset: { testid: "user-card" } });
    const headButton = (name, label, testid, onclick) => h(
      "button", { type: "button", class: "icon-btn icon-btn-sm", "aria-label": label, title: label, dataset: { testid }, onclick }, icon(name),
    );
    this.el = h(
      "aside",
      { class: "sidebar", "aria-label": "Sidebar" },
      h("div", { class: "sidebar-header" },
        h("div", { class: "brand" }, h("span", { class: "brand-mark" }, icon("message")), h("span", { class: "brand-name" }, "Chat")),
        this.conn),
      h(
        "nav", { class: "sidebar-nav", "aria-label": "Channels and direct messages" },
        h("section", { class: "nav-section", "aria-labelledby": "nav-channels" },
          h("div", { class: "section-head" }, h("h2", { id: "nav-channels" }, "Channels"),
            h("span", { class: "section-actions" },
              headButton("search", "Browse channels", "browse-channels", () => browseDialog(ws)),
              headButton("plus", "Create a channel", "create-channel", () => createChannelDialog(ws)))),
          this.channelList),
        h("section", { class: "nav-section", "aria-labelledby": "nav-dms" },
          h("div", { class: "section-head" }, h("h2", { id: "nav-dms" }, "Direct messages"),
            h("span", { class: "section-actions" }, headButton("plus", "New direct message", "new-dm", () => directDialog(ws)))),
          this.dmList),
      ),
      this.userCard,
    );
  }

  render() {
    const ws = this.ws;
    const focused = document.activeElement?.dataset?.channel;
    const names = ws.client.channels();
    const label = (name) => channelLabel(name, ws.me).toLowerCase();
    fill(this.channelList, ["", ...names.filter((name) => !isDirect(name))].map((name) => this.item(name)));
    const dms = names.filter(isDirect).sort((a, b) => label(a).localeCompare(label(b)));
    fill(this.dmList, dms.length
      ? dms.map((name) => this.item(name))
      : h("li", { class: "nav-empty" }, h("button", { type: "button", class: "link", onclick: () => directDialog(ws) }, "Start a conversation")));
    if (focused !== undefined) {
      [...this.el.querySelectorAll("[data-channel]")].find((el) => el.dataset.channel === focused)?.focus();
    }
  }

  item(name) {
    const ws = this.ws;
    const read = ws.client.readState(name === "" ? null : name);
    const unread = read?.unread ?? 0;
    const mentions = read?.mentions ?? 0;
    const kind = ws.kindOf(name);
    const active = sameName(name, ws.current);
    const label = channelLabel(name, ws.me);
    const self = kind === "direct" && sameName(directPeer(name, ws.me), ws.me);
    const lead = kind === "direct"
      ? avatar(directPeer(name, ws.me), { size: "sm", presence: ws.presenceOf(directPeer(name, ws.me)) })
      : h("span", { class: "nav-icon" }, icon(kind === "lobby" ? "globe" : kind === "private" ? "lock" : "hash", "icon icon-sm"));
    let badge = null;
    if (mentions > 0) {
      badge = h("span", { class: "badge badge-alert", dataset: { testid: "mention-badge" } }, `@${mentions > 99 ? "99+" : mentions}`);
    } else if (unread > 0) {
      badge = h("span", { class: `badge${kind === "direct" ? " badge-alert" : ""}`, dataset: { testid: "unread-badge" } }, unread > 99 ? "99+" : String(unread));
    }
    const described = [label, kind === "private" ? "private channel" : null, unread ? `${unread} unread` : null, mentions ? `${mentions} mentions` : null];
    return h(
      "li", {},
      h(
        "a",
        {
          href: hashFor(name),
          class: `nav-item${active ? " is-active" : ""}${unread ? " is-unread" : ""}`,
          "aria-current": active ? "page" : null,
          "aria-label": described.filter(Boolean).join(", "),
          dataset: { testid: "channel-item", channel: name, kind },
        },
        lead,
        h("span", { class: "nav-label" }, label, self ? h("span", { class: "muted" }, " (you)") : null),
        badge,
      ),
    );
  }

  renderUser() {
    const ws = this.ws;
    const status = ws.ownStatus();
    const select = h(
      "select",
      { class: "status-select", "aria-label": "Your status", dataset: { testid: "status-select" } },
      [["online", "Online"], ["away", "Away"], ["offline", "Invisible"]].map(([value, text]) => h("option", { value, selected: value === status ? true : null }, text)),
    );
    select.value = status;
    select.addEventListener("change", () => ws.setStatus(select.value));
    fill(
      this.userCard,
      avatar(ws.me, { presence: ws.presenceOf(ws.me) }),
      h("div", { class: "user-main" }, h("span", { class: "user-name", dataset: { testid: "current-user" } }, ws.me), select),
      h("button", { type: "button", class: "icon-btn", "aria-label": "Log out", title: "Log out", dataset: { testid: "logout" }, onclick: () => ws.logout() }, icon("logout")),
    );
  }

  /** Show the client's connection state in the pill and in `mirrors`; a reconnect counts down. */
  renderConnection(event, mirrors = []) {
    clearInterval(this.countdown);
    this.conn.dataset.state = event.state;
    const labels = {
      idle: "Not connected", connecting: "Connecting…", open: "Connected", offline: "Offline",
      logged_out: "Logged out", forbidden: "Access refused",
    };
    if (event.state === "reconnecting") {
      const until = Date.now() + (event.delayMs ?? 0);
      const tick = () => {
        const seconds = Math.ceil((until - Date.now()) / 1000);
        const text = seconds > 0 ? `Reconnecting in ${seconds}s` : "Reconnecting…";
        for (const label of [this.connLabel, ...mirrors]) label.textContent = text;
      };
      tick();
      this.countdown = setInterval(tick, 250);
    } else {
      for (const label of [this.connLabel, ...mirrors]) label.textContent = labels[event.state] ?? event.state;
    }
  }

  stop() {
    clearInterval(this.countdown);
  }
}

