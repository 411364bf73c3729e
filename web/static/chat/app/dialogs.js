// Modal dialogs on the native <dialog>: create a channel, browse channels, open a direct
// message, the member list, and confirming a deletion.

import { h, icon, fill } from "./dom.js";
import { describeError } from "./auth.js";
import { avatar, channelLabel, sameName, snippet, STATUS_LABEL } from "./format.js";

/** Open a modal; returns { dialog, close }. `content` is built with the close function. */
export function openDialog({ title, description = "", testid, build, wide = false }) {
  const titleId = `dialog-title-${Math.random().toString(36).slice(2, 8)}`;
  const dialog = h("dialog", { class: `dialog${wide ? " dialog-wide" : ""}`, "aria-labelledby": titleId, dataset: { testid } });
  const close = () => {
    if (dialog.open) dialog.close();
  };
  dialog.addEventListener("close", () => dialog.remove());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) close(); // the backdrop
  });
  dialog.append(
    h(
      "div", { class: "dialog-head" },
      h("div", {}, h("h2", { id: titleId, class: "dialog-title" }, title), description ? h("p", { class: "dialog-desc" }, description) : null),
      h("button", { type: "button", class: "icon-btn", "aria-label": "Close", onclick: close }, icon("x")),
    ),
    build(close),
  );
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close };
}

function formError() {
  return h("p", { class: "form-error", role: "alert", dataset: { testid: "dialog-error" } });
}

function showError(el, error) {
  const body = error?.body;
  const fields = body && typeof body === "object" && !Array.isArray(body)
    ? Object.entries(body).filter(([key, value]) => key !== "detail" && Array.isArray(value)).map(([, value]) => value.join(" "))
    : [];
  if (error?.status === 404) el.textContent = error.detail || "Not found.";
  else el.textContent = fields.length ? fields.join(" ") : describeError(error);
}

export function createChannelDialog(ws) {
  openDialog({
    title: "Create a channel",
    description: "Channels are where conversations about a topic happen.",
    testid: "create-channel-dialog",
    build(close) {
      const error = formError();
      const name = h("input", { id: "new-channel-name", name: "name", required: true, maxlength: 64, autocomplete: "off", spellcheck: "false", placeholder: "e.g. design-review", pattern: "[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}", dataset: { testid: "channel-name-input" } });
      const description = h("input", { id: "new-channel-description", name: "description", maxlength: 500, placeholder: "What is it about? (optional)", dataset: { testid: "channel-description-input" } });
      const isPrivate = h("input", { type: "checkbox", id: "new-channel-private", name: "private", dataset: { testid: "channel-private-input" } });
      const submit = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "create-channel-submit" } }, "Create channel");
      const form = h(
        "form", { class: "dialog-body", novalidate: true },
        h("div", { class: "field" }, h("label", { for: "new-channel-name" }, "Name"),
          h("div", { class: "input-prefix" }, h("span", { "aria-hidden": "true" }, icon("hash", "icon icon-sm")), name),
          h("p", { class: "field-hint" }, "Letters, digits, dashes and underscores; up to 64.")),
        h("div", { class: "field" }, h("label", { for: "new-channel-description" }, "Description"), description),
        h("label", { class: "check", for: "new-channel-private" }, isPrivate,
          h("span", {}, h("span", { class: "check-title" }, icon("lock", "icon icon-sm"), "Make private"),
            h("span", { class: "check-hint" }, "Only people you add can find and read it."))),
        error,
        h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn btn-ghost", onclick: close }, "Cancel"), submit),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.textContent = "";
        if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name.value.trim())) {
          error.textContent = "A name starts with a letter or digit, then letters, digits, dashes or underscores.";
          name.focus();
          return;
        }
        submit.disabled = true;
        try {
          const channel = await ws.client.createChannel(name.value.trim(), { description: description.value.trim(), private: isPrivate.checked });
          ws.rememberChannel(channel);
          close();
          ws.navigate(channel.name);
        } catch (failure) {
          showError(error, failure);
        } finally {
          submit.disabled = false;
        }
      });
      queueMicrotask(() => name.focus());
      return form;
    },
  });
}

export function browseDialog(ws) {
  openDialog({
    title: "Browse channels",
    description: "Public channels on this server, and the private ones you are in.",
    testid: "browse-dialog",
    wide: true,
    build(close) {
      const filter = h("input", { type: "search", class: "search-input", placeholder: "Search channels", "aria-label": "Search channels", dataset: { testid: "browse-search" } });
      const list = h("ul", { class: "browse-list", dataset: { testid: "browse-list" } }, h("li", { class: "muted-row" }, "Loading…"));
      const error = formError();
      let channels = [];
      const render = () => {
        const query = filter.value.trim().toLowerCase();
        const shown = channels.filter((c) => c.kind !== "direct" && (c.name.toLowerCase().includes(query) || c.description.toLowerCase().includes(query)));
        if (!shown.length) {
          fill(list, h("li", { class: "muted-row" }, query ? "No channel matches." : "No channels yet. Create the first one!"));
          return;
        }
        fill(list, shown.map((channel) => {
          const member = ws.isMember(channel.name);
          const action = member
            ? h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: () => { close(); ws.navigate(channel.name); } }, "Open")
            : h("button", { type: "button", class: "btn btn-primary btn-sm", dataset: { testid: "join-channel" }, onclick: async (event) => {
              event.currentTarget.disabled = true;
              try {
                ws.rememberChannel(await ws.client.join(channel.name));
                close();
                ws.navigate(channel.name);
              } catch (failure) {
                showError(error, failure);
                event.target.disabled = false;
              }
            } }, "Join");
          return h(
            "li", { class: "browse-item", dataset: { testid: "browse-item", channel: channel.name } },
            h("span", { class: "browse-icon" }, icon(channel.kind === "private" ? "lock" : "hash", "icon")),
            h("span", { class: "browse-main" },
              h("span", { class: "browse-name" }, channel.name, member ? h("span", { class: "tag" }, "Joined") : null),
              h("span", { class: "browse-desc" }, channel.description || "No description"),
            ),
            h("span", { class: "browse-count" }, icon("users", "icon icon-sm"), String(channel.member_count)),
            action,
          );
        }));
      };
      filter.addEventListener("input", render);
      ws.client.listChannels().then((all) => {
        channels = all;
        render();
      }, (failure) => showError(error, failure));
      queueMicrotask(() => filter.focus());
      return h("div", { class: "dialog-body" }, filter, list, error);
    },
  });
}

export function directDialog(ws) {
  openDialog({
    title: "New direct message",
    description: "A private conversation between you and one other person.",
    testid: "dm-dialog",
    build(close) {
      const error = formError();
      const options = h("datalist", { id: "dm-users" });
      const input = h("input", { id: "dm-username", name: "username", required: true, autocomplete: "off", spellcheck: "false", list: "dm-users", placeholder: "Username", dataset: { testid: "dm-username" } });
      const submit = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "dm-submit" } }, "Open conversation");
      const form = h(
        "form", { class: "dialog-body", novalidate: true },
        h("div", { class: "field" }, h("label", { for: "dm-username" }, "To"), input, options),
        error,
        h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn btn-ghost", onclick: close }, "Cancel"), submit),
      );
      ws.client.api("/api/users/?limit=200").then((page) => {
        fill(options, page.results.filter((user) => !sameName(user.username, ws.me)).map((user) => h("option", { value: user.username })));
      }, () => {});
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.textContent = "";
        const username = input.value.trim().replace(/^@/, "");
        if (!username) {
          input.focus();
          return;
        }
        submit.disabled = true;
        try {
          const channel = await ws.client.openDirect(username);
          ws.rememberChannel(channel);
          close();
          ws.navigate(channel.name);
        } catch (failure) {
          if (failure?.status === 404) error.textContent = `Nobody is called “${username}”.`;
          else showError(error, failure);
        } finally {
          submit.disabled = false;
        }
      });
      queueMicrotask(() => input.focus());
      return form;
    },
  });
}

export function membersDialog(ws, name) {
  openDialog({
    title: `Members of ${channelLabel(name, ws.me)}`,
    testid: "members-dialog",
    build(close) {
      const list = h("ul", { class: "member-list", dataset: { testid: "member-list" } }, h("li", { class: "muted-row" }, "Loading…"));
      const error = formError();
      const load = () => ws.client.api(`/api/channels/${encodeURIComponent(name)}`).then((channel) => {
        ws.rememberChannel(channel);
        fill(list, channel.members.map((username) => {
          const status = ws.presenceOf(username);
          return h(
            "li", { class: "member", dataset: { testid: "member", username } },
            avatar(username, { presence: status }),
            h("span", { class: "member-name" }, username, sameName(username, ws.me) ? h("span", { class: "muted" }, " (you)") : null),
            channel.owner && sameName(channel.owner, username) ? h("span", { class: "tag" }, "Owner") : null,
            h("span", { class: "member-status" }, STATUS_LABEL[status]),
          );
        }));
      }, (failure) => showError(error, failure));
      load();
      const body = h("div", { class: "dialog-body" }, list, error);
      const kind = ws.kindOf(name);
      if (kind !== "direct") {
        const input = h("input", { id: "add-member", required: true, autocomplete: "off", placeholder: "Username", "aria-label": "Username to add", dataset: { testid: "add-member-input" } });
        const form = h(
          "form", { class: "inline-form" },
          input,
          h("button", { type: "submit", class: "btn btn-primary btn-sm", dataset: { testid: "add-member-submit" } }, icon("userPlus", "icon icon-sm"), "Add"),
        );
        form.addEventListener("submit", async (event) => {
          event.preventDefault();
          error.textContent = "";
          try {
            await ws.client.addMember(name, input.value.trim().replace(/^@/, ""));
            input.value = "";
            load();
          } catch (failure) {
            if (failure?.status === 404) error.textContent = `Nobody is called “${input.value.trim()}”.`;
            else showError(error, failure);
          }
        });
        body.prepend(h("p", { class: "field-hint" }, kind === "private" ? "Only members can see this private channel. Add people by username." : "Add people by username."), form);
      }
      return body;
    },
  });
}

/** Ask before deleting a message; resolves true when confirmed. */
export function confirmDelete(message) {
  return new Promise((resolve) => {
    let confirmed = false;
    const { dialog } = openDialog({
      title: "Delete message",
      description: "This cannot be undone: everyone will see “message deleted” in its place.",
      testid: "confirm-dialog",
      build(close) {
        const yes = h("button", { type: "button", class: "btn btn-danger", dataset: { testid: "confirm-delete" }, onclick: () => { confirmed = true; close(); } }, "Delete");
        queueMicrotask(() => yes.focus());
        return h(
          "div", { class: "dialog-body" },
          h("blockquote", { class: "delete-preview" }, snippet(message.content, 200)),
          h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn btn-ghost", onclick: close }, "Cancel"), yes),
        );
      },
    });
    dialog.addEventListener("close", () => resolve(confirmed));
  });
}

