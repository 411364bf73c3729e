// The web app at `/`: signs in with the ChatClient, keeps its tokens so a reload stays signed in,
// and hands the page to the Workspace. Everything shown is built as DOM text, never as HTML.

import { ChatClient } from "./chat-client.js";
import { showAuth } from "./app/auth.js";
import { Workspace } from "./app/workspace.js";

const SESSION_KEY = "chat.session";
const root = document.getElementById("app");

function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null");
    return session?.tokens?.access && session?.tokens?.refresh ? session : null;
  } catch {
    return null;
  }
}

function saveSession(changes) {
  localStorage.setItem(SESSION_KEY, JSON.stringify({ ...loadSession(), ...changes }));
}

function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

/** A client that writes every new pair of tokens (login, refresh) to localStorage. */
function makeClient(session) {
  const client = new ChatClient(session ? { tokens: session.tokens, username: session.username } : {});
  client.on("tokens", (tokens) => {
    if (tokens?.access) saveSession({ tokens });
  });
  return client;
}

function signIn(notice = "") {
  document.title = "Chat";
  root.classList.remove("is-signed-in");
  const enter = async (client, user) => {
    saveSession({ tokens: client.tokens, username: user.username });
    openWorkspace(client, user.username);
  };
  showAuth(root, {
    notice,
    onLogin: async (username, password) => {
      const client = makeClient(null);
      enter(client, await client.login(username, password));
    },
    onRegister: async (username, email, password) => {
      const client = makeClient(null);
      enter(client, await client.register(username, email, password));
    },
  });
}

function openWorkspace(client, username) {
  root.classList.add("is-signed-in");
  const workspace = new Workspace(root, client, {
    username,
    onEnded: (notice) => {
      clearSession();
      signIn(notice);
    },
  });
  workspace.start();
}

const session = loadSession();
if (session) openWorkspace(makeClient(session), session.username);
else signIn();
