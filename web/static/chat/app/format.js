// Names, times, avatars and message text: pure helpers shared by the views.

import { h } from "./dom.js";

const sameName = (a, b) => a.toLowerCase() === b.toLowerCase();
export { sameName };

/** "" is the lobby; "@ada+bob" a direct channel; anything else a public or private channel. */
export const isDirect = (name) => name.startsWith("@");

/** The other person of a direct channel ("@ada+bob" seen by ada is "bob"); notes to self name you. */
export function directPeer(name, me) {
  const [first, second] = name.slice(1).split("+");
  if (second === undefined) return first;
  return sameName(first, me) ? second : first;
}

export function channelLabel(name, me) {
  if (name === "") return "lobby";
  if (isDirect(name)) return directPeer(name, me);
  return name;
}

const PALETTE = 8;
/** One of the palette's colours for a name, always the same (FNV-1a over its code points). */
export function avatarColor(username) {
  let hash = 2166136261;
  for (const char of username.toLowerCase()) hash = Math.imul(hash ^ char.codePointAt(0), 16777619) >>> 0;
  return `avatar-c${hash % PALETTE}`;
}

export function avatar(username, { size = "md", presence = null } = {}) {
  const initial = [...username][0]?.toUpperCase() ?? "?";
  return h(
    "span",
    { class: `avatar avatar-${size} ${avatarColor(username)}`, "aria-hidden": "true" },
    initial,
    presence === null ? null : presenceDot(username, presence),
  );
}

/** A dot kept current by Workspace.updatePresence through its data-presence-user. */
export function presenceDot(username, status) {
  return h("span", { class: "presence", dataset: { presenceUser: username.toLowerCase(), presence: status } });
}

export const STATUS_LABEL = { online: "Online", away: "Away", offline: "Offline" };

// --- time ---
const DAY = 86_400_000;
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const clock = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const longDay = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });

const startOfDay = (date) => new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();

/** "just now", "4 minutes ago", "2 hours ago", then "Yesterday at 9:41", then "Nov 3 at 9:41". */
export function relativeTime(iso, now = Date.now()) {
  const date = new Date(iso);
  const seconds = Math.round((now - date.getTime()) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return relative.format(-Math.round(seconds / 60), "minute");
  const days = Math.round((startOfDay(new Date(now)) - startOfDay(date)) / DAY);
  if (days === 0) return relative.format(-Math.round(seconds / 3600), "hour");
  if (days === 1) return `Yesterday at ${clock.format(date)}`;
  return `${shortDate.format(date)} at ${clock.format(date)}`;
}

export const fullTime = (iso) => fullDate.format(new Date(iso));
export const clockTime = (iso) => clock.format(new Date(iso));
export const dayKey = (iso) => startOfDay(new Date(iso));

export function dayLabel(iso, now = Date.now()) {
  const days = Math.round((startOfDay(new Date(now)) - dayKey(iso)) / DAY);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return longDay.format(new Date(iso));
}

export function timeElement(iso, className = "msg-time") {
  return h("time", { class: className, datetime: iso, title: fullTime(iso), dataset: { ts: iso } }, relativeTime(iso));
}

// --- message text ---
const MENTION = /@([A-Za-z0-9_.-]+)/g;

/**
 * The content as text nodes, with the `@names` the server recognised (message.mentions) in spans.
 * A trailing ".", "-" or "_" is not part of a mention unless the name has it, as the contract reads them.
 */
export function messageText(message) {
  const names = new Map(message.mentions.map((name) => [name.toLowerCase(), name]));
  const parts = [];
  let last = 0;
  for (const match of message.content.matchAll(MENTION)) {
    let run = match[1];
    while (run && !names.has(run.toLowerCase()) && /[._-]$/.test(run)) run = run.slice(0, -1);
    if (!names.has(run.toLowerCase())) continue;
    parts.push(message.content.slice(last, match.index));
    parts.push(h("span", { class: "mention", dataset: { testid: "mention" } }, `@${run}`));
    last = match.index + 1 + run.length;
  }
  parts.push(message.content.slice(last));
  return parts.filter((part) => part !== "");
}

export function snippet(content, length = 90) {
  const line = content.replace(/\s+/g, " ").trim();
  return [...line].length > length ? `${[...line].slice(0, length).join("")}…` : line;
}
