// The sign-in screen: one card, two tabs (log in, create an account).

import { ChatError } from "../chat-client.js";
import { h, fill, icon } from "./dom.js";

/** A failure's message for a person: a ChatError's detail, or what a failed request means. */
export function describeError(error) {
  if (!(error instanceof ChatError)) {
    return error instanceof TypeError
      ? "The server cannot be reached. Check your connection."
      : error?.message || "Something went wrong. Please try again.";
  }
  if (error.status === 429 || error.code === "rate_limited") {
    return `Too many requests. Try again in ${error.retryAfter ?? "a few"} seconds.`;
  }
  if (error.status === 401) return "Your session has ended. Log in again.";
  return error.detail || error.message || "Something went wrong. Please try again.";
}

function fieldErrors(error) {
  const body = error?.body;
  if (!body || typeof body !== "object" || Array.isArray(body)) return {};
  const errors = {};
  for (const [field, value] of Object.entries(body)) {
    if (field !== "detail" && Array.isArray(value)) errors[field] = value.join(" ");
  }
  return errors;
}

function field({ name, label, type = "text", autocomplete, hint, attrs = {} }) {
  const id = `auth-${name}`;
  return h(
    "div",
    { class: "field", dataset: { field: name } },
    h("label", { for: id }, label),
    h("input", { id, name, type, autocomplete, required: true, dataset: { testid: `auth-${name}` }, ...attrs }),
    hint ? h("p", { class: "field-hint", id: `${id}-hint` }, hint) : null,
    h("p", { class: "field-error", id: `${id}-error`, role: "alert" }),
  );
}

/**
 * Show the screen in `root`. `onLogin(username, password)` and `onRegister(username, email, password)`
 * return promises; a rejection is shown on the form. `notice` is shown above it (e.g. a session ended).
 */
export function showAuth(root, { onLogin, onRegister, notice = "" }) {
  let mode = "login";
  const tabs = {
    login: h("button", { type: "button", role: "tab", class: "auth-tab", dataset: { testid: "tab-login" } }, "Log in"),
    register: h("button", { type: "button", role: "tab", class: "auth-tab", dataset: { testid: "tab-register" } }, "Create account"),
  };
  const status = h("p", { class: "auth-status", role: "status", dataset: { testid: "auth-status" } }, notice);
  const fields = h("div", { class: "auth-fields" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block", dataset: { testid: "auth-submit" } });
  const form = h("form", { class: "auth-form", novalidate: true, dataset: { testid: "auth-form" } }, status, fields, submit);

  function render() {
    for (const [name, tab] of Object.entries(tabs)) {
      tab.setAttribute("aria-selected", String(name === mode));
      tab.tabIndex = name === mode ? 0 : -1;
    }
    form.setAttribute("aria-label", mode === "login" ? "Log in" : "Create an account");
    fill(
      fields,
      field({ name: "username", label: "Username", autocomplete: "username", attrs: { autocapitalize: "none", spellcheck: "false", minlength: 3, maxlength: 32, pattern: "[A-Za-z0-9_.\\-]{3,32}" },
        hint: mode === "register" ? "3 to 32 letters, digits, dots, dashes or underscores." : null }),
      mode === "register" ? field({ name: "email", label: "Email", type: "email", autocomplete: "email" }) : null,
      field({ name: "password", label: "Password", type: "password",
        autocomplete: mode === "login" ? "current-password" : "new-password",
        hint: mode === "register" ? "At least 8 characters, not too common." : null }),
    );
    submit.textContent = mode === "login" ? "Log in" : "Create account";
  }

  function select(next) {
    if (next === mode) return;
    const username = form.elements.username?.value ?? "";
    mode = next;
    status.textContent = "";
    render();
    form.elements.username.value = username;
    tabs[mode].focus();
  }
  tabs.login.addEventListener("click", () => select("login"));
  tabs.register.addEventListener("click", () => select("register"));
  const tablist = h("div", { class: "auth-tabs", role: "tablist", "aria-label": "Log in or create an account" }, tabs.login, tabs.register);
  tablist.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") select(mode === "login" ? "register" : "login");
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const error of form.querySelectorAll(".field-error")) error.textContent = "";
    for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
    status.textContent = "";
    status.classList.remove("is-error");
    const values = Object.fromEntries(new FormData(form));
    const missing = [...form.querySelectorAll("input")].find((input) => !input.value.trim());
    if (missing) {
      showFieldError(missing.name, "Required.");
      missing.focus();
      return;
    }
    submit.disabled = true;
    submit.classList.add("is-busy");
    try {
      if (mode === "login") await onLogin(values.username.trim(), values.password);
      else await onRegister(values.username.trim(), values.email.trim(), values.password);
    } catch (error) {
      const errors = fieldErrors(error);
      const shown = Object.entries(errors).filter(([name, text]) => showFieldError(name, text));
      if (!shown.length) {
        status.textContent = error instanceof ChatError && error.status === 401 ? "Wrong username or password." : describeError(error);
        status.classList.add("is-error");
      }
    } finally {
      submit.disabled = false;
      submit.classList.remove("is-busy");
    }
  });

  function showFieldError(name, text) {
    const input = form.elements[name];
    if (!input) return false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", `auth-${name}-error`);
    form.querySelector(`#auth-${name}-error`).textContent = text;
    return true;
  }

  render();
  fill(
    root,
    h(
      "div",
      { class: "auth-screen" },
      h(
        "section",
        { class: "auth-card", "aria-labelledby": "auth-title" },
        h("div", { class: "brand brand-lg" }, h("span", { class: "brand-mark" }, icon("message")), h("span", { class: "brand-name" }, "Chat")),
        h("h1", { id: "auth-title", class: "auth-title" }, "Welcome"),
        h("p", { class: "auth-subtitle" }, "Log in or create an account to join the conversation."),
        tablist,
        form,
      ),
    ),
  );
  if (notice) status.classList.add("is-notice");
  form.elements.username.focus();
}
