// genrec's demo page: plain JavaScript against the app's own API, nothing loaded from elsewhere.
//
// A user (`/?user=196`) shows that user's stored history and recommendations; clicking a
// recommended item posts it as an event (POST /v1/events, the write key) and reloads both.
// Without a user, titles found by search build an explicit history that is sent with each
// request. Keys are asked for only when the server answers 401/403, kept in localStorage and
// sent as X-API-Key: the write key on writes, the read key (if the server wants one) on reads
// (catalog reads too, should a server protect them; the live strip never prompts). Every
// string from the server is set as text, never parsed as HTML.
"use strict";

const K = 10;
const HISTORY_SHOWN = 20;
const STATS_EVERY_MS = 2000;
const KEY_NAMES = { read: "genrec.readKey", write: "genrec.writeKey" };

const state = {
  user: null, // a user ID, or null when the page builds an explicit history
  history: [], // the explicit history: [{item_id, title}], oldest first
  shown: [], // item IDs of the recommendations on screen
  titles: new Map(), // item ID → title, from every answer seen
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function serverMs(response) {
  const timing = response.headers.get("Server-Timing") || "";
  const match = /app;dur=([\d.]+)/.exec(timing);
  return match ? Number(match[1]) : null;
}

// One API call. `scope` says which key the call needs if the server asks for one; a 503 with
// Retry-After (load shed) is retried after the wait the server asks for.
async function api(method, path, body, scope) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = scope ? localStorage.getItem(KEY_NAMES[scope]) : null;
    if (key) headers["X-API-Key"] = key;
    const started = performance.now();
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const roundTrip = performance.now() - started;
    const data = await response.json().catch(() => null);
    if (response.ok) return { data, serverMs: serverMs(response), roundTrip };
    const detail = (data && data.detail) || response.statusText;
    if (scope && (response.status === 401 || response.status === 403) && attempt < 2) {
      if (await askKey(scope, response.status, detail)) continue;
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    if (response.status === 503 && retryAfter > 0 && attempt < 3) {
      say(`The server is busy (${detail}); retrying in ${retryAfter} s.`);
      await new Promise((resolve) => setTimeout(resolve, 1000 * retryAfter));
      say("");
      continue;
    }
    throw new ApiError(response.status, detail);
  }
}

// The key dialog: resolves true when a key was saved (the call is retried), false on cancel.
function askKey(scope, status, detail) {
  const dialog = $("key-dialog");
  $("key-title").textContent = scope === "write" ? "Write key" : "Read key";
  $("key-reason").textContent =
    `The server answered ${status}: ${detail}. ` +
    (scope === "write"
      ? "Posting events needs the server's GENREC_API_KEY."
      : "Reading user data needs the server's GENREC_READ_API_KEY.");
  const input = $("key-input");
  input.value = localStorage.getItem(KEY_NAMES[scope]) || "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const key = input.value.trim();
        if (dialog.returnValue === "save" && key) {
          localStorage.setItem(KEY_NAMES[scope], key);
          resolve(true);
        } else {
          resolve(false);
        }
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function remember(items) {
  for (const item of items) if (item.title) state.titles.set(item.item_id, item.title);
}

async function titlesOf(ids) {
  const unknown = [...new Set(ids.filter((id) => !state.titles.has(id)))].slice(0, 100);
  if (unknown.length) {
    const query = unknown.map((id) => `id=${encodeURIComponent(id)}`).join("&");
    const { data } = await api("GET", `/v1/items?${query}&limit=50`, undefined, "read");
    remember(data.items);
  }
  return ids.map((id) => ({ item_id: id, title: state.titles.get(id) || id }));
}

// --- history --------------------------------------------------------------------------

function renderHistory(items, who) {
  const list = $("history");
  list.replaceChildren();
  const recent = items.slice(-HISTORY_SHOWN).reverse(); // newest first
  for (const item of recent) {
    const li = el("li");
    li.append(el("span", item.title, "title"), el("span", item.item_id, "id"));
    li.dataset.itemId = item.item_id;
    list.append(li);
  }
  if (!items.length) list.append(el("li", "empty", "empty"));
  $("history-who").textContent = who && items.length ? `${who} · newest first` : who;
  $("clear-history").hidden = state.user !== null || !items.length;
}

// --- recommendations ------------------------------------------------------------------

function renderRecs(answer, timing) {
  const body = $("recs").tBodies[0];
  const before = new Set(state.shown);
  body.replaceChildren();
  remember(answer.items);
  answer.items.forEach((item, i) => {
    const row = el("tr");
    row.dataset.itemId = item.item_id;
    row.tabIndex = 0;
    row.title = state.user ? "Post as an event for this user" : "Add to the history";
    const fresh = before.size > 0 && !before.has(item.item_id);
    row.classList.toggle("new", fresh);
    const title = el("td", "", "title");
    title.append(el("span", item.title), el("span", item.item_id, "id"));
    row.append(
      el("td", String(i + 1), "rank"),
      title,
      el("td", item.score.toFixed(3), "num"),
      el("td", item.semantic_id.join("·"), "code"),
    );
    row.addEventListener("click", () => choose(item));
    row.addEventListener("keydown", (e) => e.key === "Enter" && choose(item));
    body.append(row);
  });
  state.shown = answer.items.map((item) => item.item_id);
  const server = timing.serverMs === null ? "?" : timing.serverMs.toFixed(1);
  $("recs-meta").textContent =
    `${answer.items.length} items · beam width ${answer.beam_width} ` +
    `(per level ${answer.beam_widths.join(" → ")}) · server ${server} ms ` +
    `(round trip ${timing.roundTrip.toFixed(1)} ms) · history ${answer.history_length} · ` +
    `model ${answer.model_version}`;
  $("recs-hint").hidden = !answer.items.length;
  document.body.dataset.recsVersion = String(Number(document.body.dataset.recsVersion) + 1);
}

async function recommend() {
  const request = state.user
    ? { user_id: state.user, k: K }
    : { history: state.history.map((item) => item.item_id), k: K };
  const { data, serverMs: ms, roundTrip } = await api("POST", "/v1/recommend", request, "read");
  renderRecs(data, { serverMs: ms, roundTrip });
  return data;
}

async function showUser(user) {
  state.user = user;
  state.shown = [];
  $("user").value = user;
  const url = new URL(location.href);
  url.searchParams.set("user", user);
  history.replaceState(null, "", url);
  await refreshUser();
}

async function refreshUser() {
  const path = `/v1/users/${encodeURIComponent(state.user)}/history`;
  const [stored] = await Promise.all([api("GET", path, undefined, "read"), recommend()]);
  renderHistory(await titlesOf(stored.data.items), `user ${state.user}`);
}

function useHistory() {
  if (state.user !== null) {
    state.user = null;
    state.shown = [];
    const url = new URL(location.href);
    url.searchParams.delete("user");
    history.replaceState(null, "", url);
  }
  renderHistory(state.history, "(built here)");
}

// A click on a recommendation: the user "consumes" it.
async function choose(item) {
  try {
    if (state.user) {
      const event = { events: [{ user_id: state.user, item_id: item.item_id }] };
      await api("POST", "/v1/events", event, "write");
      await refreshUser();
      say(`Posted “${item.title}” for user ${state.user}; the list above follows it.`);
    } else {
      state.history.push({ item_id: item.item_id, title: item.title });
      useHistory();
      await recommend();
      say(`Added “${item.title}” to the history.`);
    }
  } catch (e) {
    say(e.message, true);
  }
}

// --- search -----------------------------------------------------------------------------

function renderSearch(items, total) {
  const list = $("search-results");
  list.replaceChildren();
  remember(items);
  for (const item of items) {
    const li = el("li");
    const add = el("button", "+", "add");
    add.type = "button";
    add.title = "Add to the history";
    add.addEventListener("click", async () => {
      state.history.push({ item_id: item.item_id, title: item.title });
      useHistory();
      try {
        await recommend();
      } catch (e) {
        say(e.message, true);
      }
    });
    li.append(add, el("span", item.title, "title"), el("span", item.item_id, "id"));
    list.append(li);
  }
  if (total > items.length) list.append(el("li", `… ${total - items.length} more`, "empty"));
}

let searchTimer = null;
let searchSeq = 0; // only the latest search's answer is shown
function search(query) {
  clearTimeout(searchTimer);
  const seq = ++searchSeq;
  searchTimer = setTimeout(async () => {
    const words = query.trim();
    try {
      const path = words
        ? `/v1/items?q=${encodeURIComponent(words)}&limit=8`
        : "/v1/items?limit=8";
      const { data } = await api("GET", path, undefined, "read");
      if (seq !== searchSeq) return;
      renderSearch(data.items, words ? data.total : data.items.length);
      $("search-results").dataset.query = words;
    } catch (e) {
      say(e.message, true);
    }
  }, 150);
}

// --- live strip -------------------------------------------------------------------------

const fmt = (value, digits = 1, unit = "") =>
  value === null || value === undefined ? "–" : `${value.toFixed(digits)}${unit}`;

async function pollStats() {
  if (!document.hidden) {
    try {
      const { data: s } = await api("GET", "/v1/stats");
      $("live-model").textContent = s.model_version || "–";
      $("live-rps").textContent = fmt(s.requests_per_s);
      $("live-latency").textContent = `${fmt(s.p50_ms)} / ${fmt(s.p99_ms, 1, " ms")}`;
      $("live-beam").textContent =
        s.beam_width === null ? "–" : `${s.beam_width} (mean ${fmt(s.mean_beam_width, 0)})`;
      $("live-queue").textContent = String(s.queue_depth);
      $("live-cache").textContent =
        s.cache_hit_rate === null ? "–" : `${Math.round(100 * s.cache_hit_rate)}%`;
      $("live").classList.remove("stale");
    } catch {
      $("live").classList.add("stale");
    }
  }
  setTimeout(pollStats, STATS_EVERY_MS);
}

// --- start --------------------------------------------------------------------------------

function start() {
  $("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const user = $("user").value.trim();
    if (!user) return;
    try {
      say("");
      await showUser(user);
    } catch (err) {
      say(err.message, true);
    }
  });
  $("search").addEventListener("input", (e) => search(e.target.value));
  $("clear-history").addEventListener("click", () => {
    state.history = [];
    useHistory();
    $("recs").tBodies[0].replaceChildren();
    state.shown = [];
    $("recs-meta").textContent = "Add titles to a history.";
  });
  search("");
  pollStats();
  const user = new URLSearchParams(location.search).get("user");
  if (user) {
    showUser(user).catch((e) => say(e.message, true));
  } else {
    renderHistory([], "");
  }
}

start();
