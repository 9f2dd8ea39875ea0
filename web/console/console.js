/* Pollcheck console for the core team: coverage, findings, review and the statement.

   Data comes from the API's own routes with the same bearer token as any client. Findings
   views carry ETags: every read sends If-None-Match, so a console left idle costs 304s.
   What changed is told by GET /missions/{id}/events (server-sent events, read with fetch
   because EventSource cannot send the token); where that route is missing or a proxy drops
   the stream, the console polls instead. When the server cannot be reached the page says
   so and greys out: it never looks live when it is not. */
"use strict";

const POLL_MS = 3000;
const STREAM_IDLE_MS = 45000; // no byte (not even a keepalive) for this long: reconnect
const SSE_RETRY_MS = 60000; // while polling, try the event stream again this often
const VIEW_RETRY_MS = 1500; // a view older than the announced data version is asked again
const LAG_NOTE_S = 5; // figures further behind than this are said in the header
const PHASES = ["opening", "voting", "closing", "incident"];
const MISSING_SHOWN = 12; // station codes listed per team not reported from; the rest counted
const STATES = ["verified", "has_issues", "rejected"];

const state = {
  token: localStorage.getItem("pc.console.token"),
  lang: localStorage.getItem("pc.console.lang") || (navigator.language || "en").slice(0, 2),
  me: null,
  filters: JSON.parse(sessionStorage.getItem("pc.console.filters") || "{}"),
  views: new Map(), // url → {etag, data}
  lists: {}, // stations, checklists, observers: {version, data}
  dataVersion: null,
  announced: 0, // the newest findings data version the event stream told of
  live: "connecting",
  lag: { findings: 0, replica: 0 }, // seconds behind, as the last view read said (noteLag)
  lastOk: null,
  page: null,
  queueSel: 0,
};
if (!TEXTS[state.lang]) state.lang = "en";

// --- small helpers ----------------------------------------------------------------------

// t() and h(): web/dom.js

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(state.lang, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

function phaseName(p) {
  return t("phase_" + p);
}

function stateName(v) {
  return t("state_" + v);
}

function link(id, text) {
  if (!canReadChecklists()) return h("span", { text: text || shortId(id) });
  return h("a", { href: "#/checklist/" + id, text: text || shortId(id) });
}

function shortId(id) {
  return String(id).slice(0, 8);
}

// toast(): web/dom.js

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function isStaff() {
  return state.me && (state.me.role === "admin" || state.me.role === "analyst");
}
function isAdmin() {
  return state.me && state.me.role === "admin";
}
function canReview() {
  return state.me && state.me.role === "analyst"; // the review route's own rule
}
function canReadChecklists() {
  return isStaff();
}
function mid() {
  return state.me.mission.id;
}

// --- the API ------------------------------------------------------------------------------

class AuthError extends Error {}
class Away extends Error {}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, opts.headers || {});
  let res;
  try {
    res = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
  } catch (e) {
    setLive("reconnecting");
    throw new Away(t("server_away"));
  }
  if (res.status === 401) {
    sessionEnded();
    throw new AuthError("signed out");
  }
  if (res.status === 503 || res.status === 502 || res.status === 504) {
    setLive("reconnecting");
    throw new Away(t("server_away"));
  }
  return res;
}

async function json(path) {
  const res = await api(path);
  if (!res.ok) throw new Error(await reason(res));
  return res.json();
}

async function reason(res) {
  try {
    const body = await res.json();
    return body.detail || body.error || res.statusText;
  } catch (e) {
    return res.status + " " + res.statusText;
  }
}

function filterQuery(extra) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(Object.assign({}, state.filters, extra || {}))) {
    if (v === "" || v === null || v === undefined) continue;
    q.set(k, k.startsWith("observed_") ? new Date(v).toISOString() : v);
  }
  if (!q.has("lang")) q.set("lang", state.lang);
  return q.toString();
}

/* A findings view with the filters, revalidated by its ETag (304: the copy held). */
async function view(name, extra) {
  const path = name === "statement" ? "/statement" : name === "findings" ? "/findings" : "/findings/" + name;
  const url = `/missions/${mid()}${path}?` + filterQuery(extra);
  const held = state.views.get(url);
  const res = await api(url, { headers: held ? { "If-None-Match": held.etag } : {} });
  noteLag(res.headers);
  if (res.status === 304 && held) return behind(held.data);
  if (!res.ok) throw new Error(await reason(res));
  const data = await res.json();
  state.views.set(url, { etag: res.headers.get("ETag"), data });
  if (state.views.size > 200) state.views.delete(state.views.keys().next().value);
  noteVersion(data.version);
  return behind(data);
}

/* While data arrives the server may serve a view computed a moment before the newest data
   version (it reuses a view for about a second, longer for a slow one): when the stream has
   announced a newer version than the view holds, ask again shortly, so the panel does not
   stay a version behind until the next event. */
function behind(data) {
  if (typeof data.version === "number" && data.version < state.announced) refreshSoon(VIEW_RETRY_MS);
  return data;
}

/* Each view says how far its figures are behind: the findings behind the checklists
   received (X-Findings-Lag: at the peak of the day the server folds checklists into the
   findings a few seconds after they arrive, longer when it cannot keep up), and, where the
   dashboards read a streaming replica, the replica behind the main database
   (X-Replica-Lag). Read from a replica, the findings' lag includes the replica's. Past a
   few seconds the header says how far behind the figures are, and why: the replica, unless
   the findings are further behind than it by more than a few seconds. */
function noteLag(headers) {
  // An answer that is not a view's (an error, a 503 under load) says nothing of the lag.
  if (!headers.has("X-Findings-Lag") && !headers.has("X-Replica-Lag")) return;
  const seconds = (name) => {
    const v = parseFloat(headers.get(name));
    return Number.isFinite(v) ? v : 0;
  };
  state.lag = { findings: seconds("X-Findings-Lag"), replica: seconds("X-Replica-Lag") };
  drawLag();
}

/* The note as the last view said, in the console's language (drawn again when it changes,
   also on a page that reads no view). */
function drawLag() {
  const el = document.getElementById("lag");
  if (!el) return;
  const { findings, replica } = state.lag;
  const lag = Math.max(findings, replica);
  let text = "";
  if (lag >= LAG_NOTE_S) {
    if (replica >= LAG_NOTE_S && findings - replica < LAG_NOTE_S) text = t("replica_lag", { s: Math.round(lag) });
    else if (findings >= 120) text = t("findings_lag_min", { m: Math.round(findings / 60) });
    else text = t("findings_lag", { s: Math.round(findings) });
  }
  el.hidden = !text;
  // Set only when it changes: the note is a live region, read out on each change.
  if (el.textContent !== text) el.textContent = text;
}

function noteVersion(v) {
  if (typeof v === "number" && (state.dataVersion === null || v > state.dataVersion)) state.dataVersion = v;
}

/* A list kept until the data version moves (the lists have no ETags of their own), and
   read again at most every LIST_MIN_AGE_MS while checklists pour in: the observers are many
   pages, and the queue is ranked afresh for each read. Dropping it (`forget`) reads it at
   once, as after one's own decision. */
const LIST_MIN_AGE_MS = 10000;
async function list(name, load, keep) {
  const held = state.lists[name];
  const fresh = held && (keep || held.version === state.dataVersion || Date.now() - held.at < LIST_MIN_AGE_MS);
  if (fresh) {
    return held.data;
  }
  const data = await load();
  state.lists[name] = { version: state.dataVersion, data, at: Date.now() };
  return data;
}

function forget() {
  state.dataVersion = null;
  delete state.lists.queue;
}

// --- live state -------------------------------------------------------------------------

let recovering = false;
/* While the server or its database is away, try the page again every few seconds, whatever
   the event stream is doing (it may be up while the database is not). */
async function recover() {
  if (recovering) return;
  recovering = true;
  try {
    while (state.live === "reconnecting" && state.me) {
      await sleep(POLL_MS);
      await refresh();
    }
  } finally {
    recovering = false;
  }
}

function setLive(mode) {
  state.live = mode;
  if (mode === "reconnecting") recover();
  if (mode !== "reconnecting") state.lastOk = new Date();
  const el = document.getElementById("live");
  if (!el) return;
  el.className = mode;
  el.textContent =
    mode === "reconnecting"
      ? t("live_reconnecting")
      : mode === "polling"
      ? t("live_polling")
      : mode === "live"
      ? t("live_live")
      : t("live_connecting");
  const main = document.getElementById("main");
  const stale = mode === "reconnecting" && state.me;
  main.classList.toggle("stale", Boolean(stale));
  let note = document.getElementById("stale-note");
  if (stale && !note) {
    note = h("p", { id: "stale-note", class: "stale-note", role: "alert" });
    main.prepend(note);
  }
  if (note) {
    if (stale) note.textContent = t("stale_note", { time: state.lastOk ? when(state.lastOk) : "—" });
    else note.remove();
  }
}

let refreshTimer = null;
function refreshSoon(delay) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, delay === undefined ? 300 : delay);
}

function showProblem(text) {
  const el = document.getElementById("problem");
  if (el && el.textContent !== text) el.textContent = text;
}

let refreshing = false;
let refreshAgain = false;
async function refresh() {
  if (!state.me || !state.page) return;
  if (refreshing) {
    refreshAgain = true; // the page may have changed meanwhile: once more when this one ends
    return;
  }
  refreshing = true;
  refreshAgain = false;
  try {
    await state.page.update();
    if (state.live === "reconnecting") setLive(stream.mode === "stream" ? "live" : "polling");
    else state.lastOk = new Date();
    showProblem("");
  } catch (e) {
    if (!(e instanceof Away) && !(e instanceof AuthError)) showProblem(t("load_failed", { detail: e.message }));
  } finally {
    refreshing = false;
    if (refreshAgain) refreshSoon(0);
  }
}

const stream = { mode: "none", lastId: null, abort: null, generation: 0 };

/* Follow the event stream; fall back to polling where it is missing or cut. */
async function follow() {
  const generation = ++stream.generation;
  let drops = 0;
  let wait = 2000;
  while (state.token && generation === stream.generation) {
    const ctrl = new AbortController();
    stream.abort = ctrl;
    let res;
    try {
      const headers = { Authorization: "Bearer " + state.token, Accept: "text/event-stream" };
      if (stream.lastId) headers["Last-Event-ID"] = stream.lastId;
      res = await fetch(`/missions/${mid()}/events`, { headers, cache: "no-store", signal: ctrl.signal });
    } catch (e) {
      setLive("reconnecting");
      await sleep(wait);
      continue;
    }
    if (res.status === 401) return sessionEnded();
    const type = res.headers.get("content-type") || "";
    if (!res.ok || !type.startsWith("text/event-stream")) {
      if (res.status >= 500) {
        setLive("reconnecting");
        await sleep(wait);
        continue;
      }
      return poll(generation); // no such route here (yet): poll with ETags
    }
    const opened = Date.now();
    let events = 0;
    try {
      await readEvents(res, ctrl, (ev) => {
        events += 1;
        if (ev.retry) wait = ev.retry;
        onEvent(ev);
      });
    } catch (e) {
      if (generation !== stream.generation) return;
    }
    if (generation !== stream.generation) return;
    // A stream cut again and again before it carried anything: a proxy that drops streams.
    drops = events === 0 || Date.now() - opened < 5000 ? drops + 1 : 0;
    if (drops >= 3) return poll(generation);
    await sleep(wait); // a stream that ended cleanly: follow it again, from the last id
  }
}

async function readEvents(res, ctrl, handle) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let idle = setTimeout(() => ctrl.abort(), STREAM_IDLE_MS);
  let ev = { event: "message", data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(idle);
      idle = setTimeout(() => ctrl.abort(), STREAM_IDLE_MS);
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.slice(nl, nl + 2) === "\r\n" ? 2 : 1));
        if (line === "") {
          if (ev.data.length || ev.event !== "message") handle(ev);
          ev = { event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // keepalive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") ev.event = val;
        else if (field === "data") ev.data.push(val);
        else if (field === "id") ev.id = val;
        else if (field === "retry" && /^\d+$/.test(val)) ev.retry = Number(val);
      }
    }
  } finally {
    clearTimeout(idle);
  }
}

/* Another decision on a checklist whose review form is open (one's own closes the form). */
function changedUnder(ev) {
  for (const form of document.querySelectorAll(".review")) {
    if (form.dataset.id === ev.checklist_id) {
      form.querySelector(".under").textContent = t("changed_under", { state: stateName(ev.state) });
    }
  }
}

function onEvent(ev) {
  if (ev.id) stream.lastId = ev.id;
  let data = {};
  try {
    data = ev.data.length ? JSON.parse(ev.data.join("\n")) : {};
  } catch (e) {
    data = {};
  }
  if (ev.event === "unauthorized") return sessionEnded();
  if (stream.mode !== "stream" || state.live !== "live") {
    stream.mode = "stream";
    setLive("live");
  }
  if (typeof data.data_version === "number") state.announced = Math.max(state.announced, data.data_version);
  if (ev.event === "hello") {
    if (data.data_version !== state.dataVersion) refreshSoon(0);
  } else if (ev.event === "reset") {
    state.views.clear();
    state.lists = {};
    refreshSoon(0);
  } else if (ev.event === "findings") {
    refreshSoon(100);
  } else if (ev.event === "checklist" || ev.event === "review") {
    state.dataVersion = null; // the lists follow the checklists, not the folded findings
    if (ev.event === "review") changedUnder(data);
    refreshSoon(300);
  }
}

async function poll(generation) {
  stream.mode = "poll";
  setLive("polling");
  const lastTry = Date.now();
  while (state.token && generation === stream.generation) {
    await sleep(POLL_MS);
    if (generation !== stream.generation) return;
    await refresh();
    if (Date.now() - lastTry > SSE_RETRY_MS) return follow(); // the stream may be back
  }
}

// --- sign in ------------------------------------------------------------------------------

function tokenFromLink() {
  const m = /[#&]token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  // Keep the token out of the address bar, the history and screenshots.
  history.replaceState(null, "", location.pathname + "#/overview");
  return decodeURIComponent(m[1]);
}

async function signIn(token, msg) {
  token = (token || "").trim();
  if (!token) return;
  let res;
  try {
    res = await fetch("/me", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  } catch (e) {
    msg.textContent = t("sign_in_offline");
    return;
  }
  const me = res.ok ? await res.json() : null;
  if (!me) msg.textContent = t("sign_in_bad");
  else if (me.role === "observer") msg.textContent = t("sign_in_observer");
  else {
    localStorage.setItem("pc.console.token", token);
    state.token = token;
    await start(me);
  }
}

function sessionEnded(signedOut) {
  if (!state.token && !state.me) return; // told once, though several requests learn it
  stream.generation++;
  if (stream.abort) stream.abort.abort();
  localStorage.removeItem("pc.console.token");
  const was = Boolean(state.me);
  state.token = null;
  state.me = null;
  state.views.clear();
  state.announced = 0;
  state.lists = {};
  state.lag = { findings: 0, replica: 0 }; // the next mission's views will say theirs
  showSignIn(was && signedOut !== true ? t("session_ended") : "");
}

function showSignIn(message) {
  document.getElementById("nav").replaceChildren();
  document.getElementById("filters").replaceChildren();
  document.getElementById("live").className = "";
  document.getElementById("live").textContent = "";
  drawTools();
  drawLag();
  const msg = h("p", { class: "error", role: "alert", text: message || "" });
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", spellcheck: "false",
    placeholder: "pc_…", "aria-describedby": "token-help",
  });
  const main = document.getElementById("main");
  main.classList.remove("stale");
  main.replaceChildren(
    h(
      "section",
      { class: "card signin" },
      h("h1", { text: t("sign_in_title") }),
      h("p", { id: "token-help", text: t("sign_in_help") }),
      h(
        "form",
        { onsubmit: (e) => { e.preventDefault(); signIn(input.value, msg); } },
        h("label", { for: "token", text: t("token_label") }),
        input,
        h("button", { class: "btn primary", type: "submit", text: t("sign_in") })
      ),
      msg
    )
  );
  document.title = t("sign_in_title") + " · Pollcheck";
}

async function start(me) {
  state.me = me;
  drawTools();
  drawNav();
  drawFilters();
  setLive("connecting");
  if (!location.hash.startsWith("#/")) history.replaceState(null, "", "#/overview");
  await route();
  follow();
}

// --- chrome: navigation, tools, filters ------------------------------------------------

const PAGES = [
  ["overview", "nav_overview"],
  ["findings", "nav_findings"],
  ["critical", "nav_critical"],
  ["incidents", "nav_incidents"],
  ["counting", "nav_counting"],
  ["queue", "nav_queue"],
  ["statement", "nav_statement"],
  ["sms", "nav_sms"],
  ["exports", "nav_exports"],
  ["cards", "nav_cards"],
];

function drawNav() {
  const here = (location.hash.slice(2).split("/")[0] || "overview").split("?")[0];
  const pages = PAGES.filter(([p]) => (!["queue", "sms"].includes(p) || isStaff()) && (p !== "cards" || isAdmin()));
  document.getElementById("nav").replaceChildren(
    ...pages.map(([p, key]) =>
      h("a", { href: "#/" + p, "aria-current": p === here ? "page" : null, text: t(key) })
    )
  );
}

function drawTools() {
  const lang = h(
    "select",
    {
      "aria-label": t("language"),
      onchange: (e) => {
        state.lang = e.target.value;
        localStorage.setItem("pc.console.lang", state.lang);
        document.documentElement.lang = state.lang;
        if (state.me) {
          drawTools(); // the role, "Sign out" and this very list's label, in the new language
          drawLag();
          document.querySelector("#tools select").focus(); // where the keyboard was
          drawNav();
          drawFilters();
          setLive(state.live);
          route();
        } else showSignIn();
      },
    },
    Object.keys(TEXTS).map((l) => h("option", { value: l, selected: l === state.lang, text: TEXTS[l]._name }))
  );
  const out = state.me
    ? h("button", {
        class: "link", type: "button", text: t("sign_out"),
        onclick: () => { sessionEnded(true); },
      })
    : null;
  const who = state.me ? h("span", { class: "who", title: state.me.mission.name, text: `${state.me.mission.name} · ${t("role_" + state.me.role)}` }) : null;
  document.getElementById("tools").replaceChildren(...[who, lang, out].filter(Boolean));
  document.documentElement.lang = state.lang;
}

const FILTERS = ["location", "abroad", "phase", "team", "observed_from", "observed_to", "template"];

function drawFilters() {
  const f = state.filters;
  const field = (name, control) => h("label", { for: "f-" + name }, t("filter_" + name), control);
  const text = (name, list) =>
    h("input", { id: "f-" + name, name, value: f[name] || "", list: list || null, autocomplete: "off" });
  const select = (name, options) =>
    h(
      "select",
      { id: "f-" + name, name },
      options.map(([v, label]) => h("option", { value: v, selected: (f[name] || "") === v, text: label }))
    );
  const form = h(
    "form",
    {
      "aria-label": t("filters"),
      onsubmit: (e) => {
        e.preventDefault();
        const data = new FormData(e.target);
        state.filters = {};
        for (const k of FILTERS) if (data.get(k)) state.filters[k] = data.get(k);
        sessionStorage.setItem("pc.console.filters", JSON.stringify(state.filters));
        refreshSoon(0);
      },
    },
    field("location", text("location", "regions")),
    field("abroad", select("abroad", [["", t("any")], ["false", t("in_country")], ["true", t("abroad")]])),
    field("phase", select("phase", [["", t("any")], ...PHASES.map((p) => [p, phaseName(p)])])),
    field("team", text("team", "teams")),
    field("observed_from", h("input", { id: "f-observed_from", name: "observed_from", type: "datetime-local", value: f.observed_from || "" })),
    field("observed_to", h("input", { id: "f-observed_to", name: "observed_to", type: "datetime-local", value: f.observed_to || "" })),
    field("template", text("template", "templates")),
    h("button", { class: "btn primary", type: "submit", text: t("apply") }),
    h("button", {
      class: "btn", type: "button", text: t("clear"),
      onclick: () => {
        state.filters = {};
        sessionStorage.removeItem("pc.console.filters");
        drawFilters();
        refreshSoon(0);
      },
    }),
    h("datalist", { id: "regions" }),
    h("datalist", { id: "teams" }),
    h("datalist", { id: "templates" })
  );
  document.getElementById("filters").replaceChildren(form);
  fillChoices();
}

async function fillChoices() {
  try {
    const tpls = await json(`/missions/${mid()}/templates`);
    const codes = [...new Set(tpls.data.map((x) => x.code))];
    document.getElementById("templates").replaceChildren(...codes.map((c) => h("option", { value: c })));
    if (isStaff()) {
      const obs = await observersList();
      const teams = [...new Set(obs.map((o) => o.team).filter(Boolean))].sort();
      document.getElementById("teams").replaceChildren(...teams.map((c) => h("option", { value: c })));
      const locs = await json(`/missions/${mid()}/locations`);
      document.getElementById("regions").replaceChildren(...locs.map((l) => h("option", { value: l.path })));
    }
  } catch (e) {
    /* the choices are a convenience; the fields take any text */
  }
}

async function observersList() {
  return list("observers", async () => {
    const out = [];
    for (let offset = 0; offset < 50000; offset += 1000) {
      const page = await json(`/missions/${mid()}/observers?limit=1000&offset=${offset}`);
      out.push(...page.data);
      if (out.length >= page.count || !page.data.length) break;
    }
    return out;
  }, true);
}

// --- pages ---------------------------------------------------------------------------------

/* A page is a set of panels; each draws again only when its data changed. */
function panel(id, title, extraClass) {
  return h("section", { class: "card " + (extraClass || ""), id: "p-" + id, "aria-labelledby": "h-" + id },
    h("h2", { id: "h-" + id, text: title }), h("div", { class: "body" }, h("p", { class: "muted loading", text: "…" })));
}

function fill(id, data, draw) {
  const el = document.getElementById("p-" + id);
  if (!el) return;
  if (el._data === data) return; // the same copy (a 304): nothing to draw
  el._data = data;
  el.querySelector(".body").replaceChildren(...[].concat(draw(data)).filter(Boolean));
}

async function route() {
  const hash = location.hash.slice(2) || "overview";
  const [name, arg] = hash.split("/");
  const make = PAGE_MAKERS[name] || PAGE_MAKERS.overview;
  if ((["queue", "sms"].includes(name) && !isStaff()) || (name === "cards" && !isAdmin())) return PAGE_MAKERS.overview();
  drawNav();
  document.getElementById("filters").hidden = ["checklist", "queue", "cards", "sms"].includes(name);
  const page = make(arg);
  state.page = page;
  const main = document.getElementById("main");
  main.classList.remove("stale");
  main.replaceChildren(h("p", { id: "problem", class: "error", role: "alert" }), ...page.nodes);
  document.title = page.title + " · Pollcheck";
  await refresh();
  if (page.after) page.after();
}

const PAGE_MAKERS = {
  overview: () => ({
    title: t("nav_overview"),
    nodes: [
      h("h1", { text: t("nav_overview") }),
      h("div", { class: "grid" },
        panel("coverage", t("coverage")),
        panel("map", t("map")),
        panel("arrivals", t("arrivals")),
        panel("missing", t("missing")),
        panel("feed", t("feed"), "wide")),
    ],
    async update() {
      const map = drawMap(); // asked beside the other views, not after them
      const [cov, crit, inc] = await Promise.all([view("coverage"), view("critical"), view("incidents")]);
      fill("coverage", cov, drawCoverage);
      fill("arrivals", cov, drawArrivals);
      fill("missing", cov, drawMissing);
      fill("feed", crit.version + "|" + crit.computed_at + "|" + inc.computed_at, () => drawFeed(crit, inc));
      await map;
    },
  }),
  findings: () => ({
    title: t("nav_findings"),
    byRegion: false,
    nodes: [
      h("h1", { text: t("nav_findings") }),
      h("p", {},
        h("label", {}, h("input", {
          type: "checkbox", id: "by-region",
          onchange: () => { document.getElementById("p-findings")._data = null; refreshSoon(0); },
        }), " ", t("by_region"))),
      panel("findings", t("findings_per_question"), "wide"),
    ],
    async update() {
      const f = await view("findings");
      let regional = null;
      if (document.getElementById("by-region") && document.getElementById("by-region").checked) {
        const cov = await view("coverage");
        const names = cov.regions.filter((r) => !r.abroad).map((r) => r.region);
        const views = await Promise.all(names.map((r) => view("findings", { location: r })));
        regional = names.map((r, i) => [r, views[i]]);
      }
      fill("findings", regional ? [f, ...regional.map((x) => x[1])] : f, () => drawFindings(f, regional));
    },
  }),
  critical: () => ({
    title: t("nav_critical"),
    nodes: [h("h1", { text: t("nav_critical") }), h("div", { class: "grid" },
      panel("crit-q", t("critical_by_question"), "wide"), panel("crit-list", t("critical_checklists"), "wide"))],
    async update() {
      const c = await view("critical");
      fill("crit-q", c, drawCriticalQuestions);
      fill("crit-list", c, drawCriticalList);
    },
  }),
  incidents: () => ({
    title: t("nav_incidents"),
    nodes: [h("h1", { text: t("nav_incidents") }), h("div", { class: "grid" },
      panel("inc-type", t("incidents_by_type")), panel("inc-region", t("incidents_by_region")),
      panel("inc-list", t("incident_reports"), "wide"))],
    async update() {
      const v = await view("incidents");
      fill("inc-type", v, drawIncidentTypes);
      fill("inc-region", v, (x) => table([t("region"), t("count")], x.by_region.map((r) => [r.region, num(r.count)])));
      fill("inc-list", v, drawIncidentList);
    },
  }),
  counting: () => ({
    title: t("nav_counting"),
    nodes: [h("h1", { text: t("nav_counting") }), h("div", { class: "grid" },
      panel("cnt-checks", t("counting_checks")), panel("cnt-totals", t("counting_totals")),
      panel("cnt-failing", t("counting_failing"), "wide"), panel("cnt-conflicts", t("counting_conflicts"), "wide"))],
    async update() {
      const v = await view("counting");
      fill("cnt-checks", v, drawChecks);
      fill("cnt-totals", v, drawTotals);
      fill("cnt-failing", v, drawFailing);
      fill("cnt-conflicts", v, drawConflicts);
    },
  }),
  queue: () => queuePage(),
  checklist: (id) => checklistPage(id),
  statement: () => statementPage(),
  exports: () => exportsPage(),
  cards: () => cardsPage(),
  sms: () => smsPage(),
};

// --- drawing helpers ----------------------------------------------------------------------

function num(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString(state.lang);
}

function table(head, rows, opts) {
  if (!rows.length) return h("p", { class: "muted", text: t("nothing_yet") });
  const numeric = (opts && opts.numeric) || [];
  return h("div", { class: "scroll", tabindex: "0" }, h("table", { class: (opts && opts.class) || "" },
    h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { scope: "col", class: numeric.includes(i) ? "n" : null, text: c })))),
    h("tbody", {}, rows.map((r) => h("tr", { class: r.rowClass || null, "data-id": r.id || null },
      r.map((c, i) => h("td", { class: numeric.includes(i) ? "n" : null }, c)))))));
}

/* Bars as inline SVG: [label, value] pairs. */
function barChart(pairs, title) {
  const W = 560, H = 150, pad = 22;
  const max = Math.max(1, ...pairs.map((p) => p[1]));
  const bw = Math.max(4, Math.min(40, (W - 2 * pad) / Math.max(1, pairs.length) - 4));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H + 20}`, class: "bars", role: "img", "aria-label": title });
  pairs.forEach(([label, v], i) => {
    const x = pad + i * (bw + 4);
    const bh = ((H - pad) * v) / max;
    svg.append(s("rect", { x, y: H - bh, width: bw, height: bh, fill: "#0a58a8" }, s("title", {}, `${label}: ${v}`)));
    if (pairs.length <= 24 || i % 2 === 0) svg.append(s("text", { x: x + bw / 2, y: H + 14, "font-size": 11, "text-anchor": "middle" }, label));
    if (v) svg.append(s("text", { x: x + bw / 2, y: H - bh - 3, "font-size": 10, "text-anchor": "middle" }, v));
  });
  return svg;
}

const SHADES = ["#0a58a8", "#8fb3dc", "#5f6b7a", "#c9b458", "#a37acc", "#3d9a8b", "#d0d5db"];
const SCALE_SHADES = ["#1e6b2f", "#7dbb6f", "#f0a95a", "#b3261e"]; // very good … very bad

/* One horizontal bar of answer shares, with its legend. */
function shareBar(answers, total, scale) {
  const bar = h("div", { class: "sbar", role: "img", "aria-label": answers.map((a) => `${a.label}: ${a.text}`).join("; ") });
  const legend = h("div", { class: "legend" });
  answers.forEach((a, i) => {
    const colour = (scale ? SCALE_SHADES : SHADES)[i % SHADES.length];
    const w = total ? (100 * a.count) / total : 0;
    if (w > 0) bar.append(h("span", { style: `width:${w}%;background:${colour}`, title: `${a.label}: ${a.text}` }));
    legend.append(h("span", {}, h("span", { class: "dot", style: `background:${colour}` }), `${a.label}: ${a.text}`));
  });
  return [bar, legend];
}

// --- overview ------------------------------------------------------------------------------

function drawCoverage(cov) {
  const head = [t("region"), t("stations"), ...PHASES.map(phaseName), t("any_phase")];
  const rows = cov.regions.map((r) => {
    const row = [
      r.abroad ? `${r.region} (${t("abroad")})` : r.region,
      num(r.stations),
      ...PHASES.map((p) => {
        const o = r.observed[p];
        return o ? `${num(o.stations)} / ${num(r.stations)}` : `0 / ${num(r.stations)}`;
      }),
      `${num(r.observed_any_phase)} / ${num(r.stations)}`,
    ];
    return row;
  });
  return [
    table(head, rows, { numeric: [1, 2, 3, 4, 5, 6] }),
    h("p", { class: "muted", text: t("as_of", { time: when(cov.computed_at), version: cov.version }) }),
  ];
}

function drawArrivals(cov) {
  const pairs = cov.arrivals_per_hour.slice(-24).map((a) => [a.hour.slice(11, 13), a.checklists]);
  if (!pairs.length) return h("p", { class: "muted", text: t("nothing_yet") });
  return [barChart(pairs, t("arrivals")), h("p", { class: "muted", text: t("arrivals_note") })];
}

// Per team: a station counts as covered once any member reported there (the API's
// teams_missing); each member's own figures beside it (observers_missing).
function drawMissing(cov) {
  const own = new Map(cov.observers_missing.data.map((o) => [o.code, o]));
  const phase = state.filters.phase ? phaseName(state.filters.phase) : t("any_phase");
  const rows = cov.teams_missing.data.map((team) => [
    team.members.length === 1 && team.team === team.members[0].code ? t("no_team") : team.team,
    team.members.map((m) => {
      const o = own.get(m.code);
      return `${m.name} (${m.code})` + (o ? `: ${o.missing}/${o.assigned}` : "");
    }).join("; "),
    `${num(team.missing)} / ${num(team.assigned)}`,
    team.missing_stations.slice(0, MISSING_SHOWN).join(", ") +
      (team.missing_stations.length > MISSING_SHOWN
        ? " " + t("missing_more", { n: num(team.missing_stations.length - MISSING_SHOWN) })
        : ""),
  ]);
  const out = [h("p", { class: "muted", text: t("missing_note", { phase }) }),
    table([t("team"), t("observers"), t("stations_missing"), t("missing_at")], rows, { numeric: [2] })];
  if (cov.teams_missing.count > rows.length) {
    out.push(h("p", { class: "muted", text: t("queue_more", { n: num(cov.teams_missing.count - rows.length) }) }));
  }
  return out;
}

function drawFeed(crit, inc) {
  const items = [
    ...crit.checklists.map((c) => ({ at: c.observed_at, id: c.checklist_id, kind: "critical", text: `${c.code}=${c.value}`, station: c.station, region: c.region, phase: c.phase })),
    ...inc.reports.map((r) => ({ at: r.observed_at, id: r.checklist_id, kind: "incident", text: `${r.type} (${r.source})${r.description ? ": " + r.description : ""}`, station: r.station, region: r.region, phase: "incident" })),
  ].sort((a, b) => (a.at < b.at ? 1 : -1)).slice(0, 40);
  if (!items.length) return h("p", { class: "muted", text: t("nothing_yet") });
  const labels = new Map(crit.by_question.map((q) => [`${q.code}=${q.value}`, `${q.label}: ${q.answer}`]));
  return h("ul", { class: "feed", id: "feed" }, items.map((i) =>
    h("li", { "data-id": i.id },
      h("span", { class: "badge " + (i.kind === "critical" ? "bad" : "warn"), text: t(i.kind) }),
      when(i.at), " · ", h("strong", { text: i.station }), ` (${i.region}) · `,
      labels.get(i.text) || i.text, " · ", link(i.id, t("open_checklist")))));
}

const MAP_COLOURS = { none: "#ffffff", opening: "#9ecae1", voting: "#3182bd", closing: "#08306b", incident: "#f0a95a" };

async function drawMap() {
  const el = document.getElementById("p-map");
  if (!el) return;
  const body = el.querySelector(".body");
  // Each station's phases and critical answers within the filters, as the server counts
  // them (the fold's visits): no longer every station and every latest checklist fetched.
  const found = await view("map");
  const key = [found.version, found.computed_at, JSON.stringify(state.filters)];
  if (el._data && el._data.every((x, i) => x === key[i])) return;
  el._data = key;
  const shown = found.stations;
  const furthest = (phases) => ["closing", "voting", "opening", "incident"].find((p) => phases.includes(p)) || "none";
  let map = body.querySelector("#map");
  if (!map) {
    map = h("div", { id: "map", role: "region", "aria-label": t("map_label") });
    const legend = h("div", { class: "legend" },
      Object.entries(MAP_COLOURS).map(([k, c]) => h("span", {}, h("span", { class: "dot", style: `background:${c}` }), t(k === "none" ? "not_observed" : "furthest_" + k))),
      h("span", {}, h("span", { class: "dot", style: "background:#fff;border:3px solid #b3261e" }), t("critical")));
    const summary = h("p", { class: "muted", id: "map-summary" });
    body.replaceChildren(map, legend, summary);
  }
  const placeless = found.placeless;
  body.querySelector("#map-summary").textContent = [t("map_summary", { observed: num(found.observed), total: tn("n_stations_of", shown.length, num(shown.length)) }), placeless ? tn("map_no_coordinates", placeless, num(placeless)) : ""].join(" ").trim();
  if (typeof L === "undefined") return;
  if (!state.map || state.map.getContainer() !== map) {
    state.map = L.map(map, { attributionControl: Boolean(state.settings && state.settings.map_tile_url), zoomControl: true });
    if (state.settings && state.settings.map_tile_url) {
      L.tileLayer(state.settings.map_tile_url, { attribution: state.settings.map_tile_attribution || "", maxZoom: 19 }).addTo(state.map);
    }
    state.markers = L.layerGroup().addTo(state.map);
    state.mapFitted = false;
  }
  state.markers.clearLayers();
  const points = [];
  for (const st of shown) {
    const phase = furthest(st.phases);
    const marker = L.circleMarker([st.latitude, st.longitude], {
      radius: 7, weight: st.critical ? 3 : 1, color: st.critical ? "#b3261e" : "#333",
      fillColor: MAP_COLOURS[phase], fillOpacity: 0.95,
    });
    marker.bindTooltip(`${st.code} ${st.name}: ${st.phases.length ? st.phases.map(phaseName).join(", ") : t("not_observed")}`);
    marker.addTo(state.markers);
    points.push([st.latitude, st.longitude]);
  }
  if (points.length && !state.mapFitted) {
    state.map.fitBounds(points, { padding: [20, 20], maxZoom: 13 });
    state.mapFitted = true;
  } else if (!points.length) state.map.setView([0, 0], 1);
}

// --- findings ------------------------------------------------------------------------------

function drawFindings(f, regional) {
  const out = [h("p", { class: "muted", text: t("findings_note", { n: f.small_denominator, time: when(f.computed_at) }) })];
  for (const p of f.phases) {
    if (state.filters.phase && p.phase !== state.filters.phase) continue;
    out.push(h("h3", { text: `${phaseName(p.phase)}: ${t("observations_stations", { o: tn("n_observations", p.observations, num(p.observations)), s: tn("n_stations_at", p.stations, num(p.stations)) })}` }));
    const qs = h("div", { class: "qs" });
    out.push(qs);
    for (const q of p.questions) {
      const answers = (q.answers || []).filter((a) => a.value !== "na");
      const parts = [
        h("div", { class: "label" }, `${q.code}. ${q.label}`),
        h("div", { class: "muted", text: t("answered_of", { answered: num(q.answered), asked: num(q.asked), stations: tn("n_stations", q.stations, num(q.stations)), na: num(q.not_applicable) }) }),
      ];
      if (["scale4", "yes_no", "single"].includes(q.type) && answers.length) parts.push(...shareBar(answers, q.answered - (q.not_applicable || 0), q.type === "scale4"));
      else if (answers.length) parts.push(h("div", { class: "legend" }, answers.map((a) => h("span", {}, `${a.label}: ${a.text}`))));
      else if (q.total !== undefined) parts.push(h("div", { text: t("total", { n: num(q.total) }) }));
      if (regional && q.type === "yes_no") parts.push(drawByRegion(p.phase, q, regional));
      qs.append(h("div", { class: "q", "data-code": q.code }, parts));
    }
  }
  if (out.length === 1) out.push(h("p", { class: "muted", text: t("nothing_yet") }));
  return out;
}

function drawByRegion(phase, q, regional) {
  const rows = regional.map(([region, v]) => {
    const p = v.phases.find((x) => x.phase === phase);
    const rq = p && p.questions.find((x) => x.code === q.code);
    const yes = rq && rq.answers.find((a) => a.value === "yes");
    return [region, yes];
  });
  return h("div", { class: "regions", role: "group", "aria-label": t("yes_by_region") },
    h("div", { class: "muted", text: t("yes_by_region") }),
    rows.map(([region, yes]) => h("div", { class: "row" }, h("span", { text: region }),
      h("span", { class: "track" }, h("span", { style: `width:${yes ? Math.round(100 * yes.share) : 0}%` })),
      h("span", { class: "n", text: yes ? yes.text : "—" }))));
}

// --- critical, incidents, counting --------------------------------------------------------

function drawCriticalQuestions(c) {
  return table([t("question"), t("answer"), t("count"), t("stations"), t("regions"), t("pattern")],
    c.by_question.map((q) => [`${q.code}. ${q.label}`, q.answer, num(q.count), num(q.stations),
      q.regions.map((r) => `${r.region} ${r.count}`).join(", "), q.pattern]), { numeric: [2, 3] });
}

function drawCriticalList(c) {
  return table([t("observed_at"), t("station"), t("region"), t("phase"), t("answer"), ""],
    c.checklists.map((x) => [when(x.observed_at), x.station, x.region, phaseName(x.phase), `${x.code} = ${x.value}`, link(x.checklist_id, t("open_checklist"))]));
}

function drawIncidentTypes(v) {
  return table([t("type"), t("count"), t("observed"), t("reported")],
    v.by_type.map((x) => [x.label, num(x.count), num(x.observed), num(x.reported)]), { numeric: [1, 2, 3] });
}

function drawIncidentList(v) {
  return table([t("observed_at"), t("station"), t("region"), t("type"), t("source"), t("description"), ""],
    v.reports.map((r) => [when(r.observed_at), r.station, r.region, r.type, r.source, r.description || "", link(r.checklist_id, t("open_checklist"))]));
}

function drawChecks(v) {
  return table([t("check"), t("failed"), t("checked")],
    v.checks.map((c) => [c.rule, num(c.failed), num(c.checked)]), { numeric: [1, 2] });
}

function drawTotals(v) {
  if (!v.totals) return h("p", { class: "muted", text: t("nothing_yet") });
  const tot = v.totals;
  return [
    h("p", { text: t("counting_totals_basis", { stations: tn("n_stations", tot.stations, num(tot.stations)) }) }),
    table([t("figure"), t("value")], Object.entries(tot.figures).map(([k, x]) => [figureLabel(v, k), num(x)]), { numeric: [1] }),
    table([t("option"), t("votes"), t("share")], tot.options.map((o) => [figureLabel(v, o.code), num(o.votes), o.text]), { numeric: [1, 2] }),
  ];
}

/* A figure of a report, by its key in `figures` (a protocol figure's name or an option's
   code): its question's label in the console's language, else the key. */
function figureLabel(v, key) {
  const code = (v.protocol || {})[key] || key;
  return (v.labels || {})[code] || key;
}

/* A failing report's figures by the checks' rules' letters (R 1,000, …, v1 312), each
   labelled in full on hover. */
function figureList(v, figures) {
  const symbols = v.symbols || {};
  return Object.entries(figures).map(([k, n], i) => [i ? ", " : "",
    h("abbr", { title: figureLabel(v, k), text: `${symbols[k] || k} ${n === null ? "–" : num(n)}` })]);
}

function drawFailing(v) {
  const rule = new Map(v.checks.map((c) => [c.check, c.rule]));
  return table([t("station"), t("review_state"), t("fails"), t("figures"), ""],
    v.failing.map((x) => [h("span", { class: "code", text: x.station }), stateName(x.review_state), h("ul", {}, x.fails.map((f) => h("li", { text: rule.get(f) || f }))),
      figureList(v, x.figures), link(x.checklist_id, t("open_checklist"))]));
}

function drawConflicts(v) {
  if (!v.conflicts.length) return h("p", { class: "muted", text: t("nothing_yet") });
  return v.conflicts.map((c) => {
    const keys = Object.keys(c.reports[0].figures);
    const differ = new Set(c.differing);
    return h("div", { class: "conflict" }, h("h3", { text: `${t("station")} ${c.station}` }),
      h("div", { class: "scroll", tabindex: "0" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("figure") }),
          c.reports.map((r) => h("th", { scope: "col", class: "n" }, link(r.checklist_id), h("br"), when(r.received_at), " · ", stateName(r.review_state))))),
        h("tbody", {}, keys.map((k) => h("tr", {}, h("td", { text: figureLabel(v, k) }),
          c.reports.map((r) => h("td", { class: "n" + (differ.has(k) ? " diff" : ""), text: num(r.figures[k]) }))))))));
  });
}

// --- the checklist page -------------------------------------------------------------------

const templateCache = new Map();
async function templateOf(code, version) {
  const key = code + "/" + version;
  if (!templateCache.has(key)) templateCache.set(key, await json(`/missions/${mid()}/templates/${encodeURIComponent(code)}/${version}`));
  return templateCache.get(key);
}

function labelOf(labels) {
  if (!labels) return "";
  return labels[state.lang] || labels.en || Object.values(labels)[0] || "";
}

function answerText(q, value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((v) => answerText(q, v)).join(", ");
  const v = String(value);
  if (v === "na") return t("na");
  if (q && q.options) {
    const o = q.options.find((x) => x.code === v);
    if (o) return labelOf(o.label);
  }
  if (q && (q.type === "yes_no" || q.type === "scale4")) return t("ans_" + v);
  return v;
}

function checklistPage(id) {
  const page = {
    title: t("checklist"),
    nodes: [h("p", {}, h("a", { href: "#/queue", text: "← " + t("nav_queue") })), h("div", { id: "cl" }, h("p", { class: "muted loading", text: "…" }))],
    held: null,
    async update() {
      const detail = await json(`/checklists/${id}`);
      const [versions, reviews, files] = await Promise.all([
        json(`/checklists/${id}/versions`),
        json(`/checklists/${id}/reviews`),
        api(`/checklists/${id}/attachments`).then((r) => (r.ok ? r.json() : null)),
      ]);
      const sig = JSON.stringify([detail, versions, reviews.count]);
      if (sig === page.held) return;
      const first = page.held === null;
      page.held = sig;
      const details = await Promise.all(versions.map((v) => (v.id === detail.id ? detail : json(`/checklists/${v.id}`))));
      const tpl = await templateOf(detail.template, detail.template_version);
      const [observer, station] = await Promise.all([
        json(`/missions/${mid()}/observers/${detail.observer_id}`).catch(() => null),
        json(`/missions/${mid()}/stations/${encodeURIComponent(detail.station)}`).catch(() => null),
      ]);
      const latest = details.find((d) => d.is_latest) || detail;
      const box = document.getElementById("cl");
      const form = box.querySelector(".review");
      const kept = form && !first ? form : null; // an open form keeps what was typed
      box.replaceChildren(...drawChecklist(latest, details, tpl, observer, station, reviews, files, kept));
    },
  };
  return page;
}

function drawChecklist(latest, details, tpl, observer, station, reviews, files, keptForm) {
  const questions = [];
  for (const sec of tpl.definition.sections) for (const q of sec.questions) questions.push(q);
  const out = [
    h("h1", { text: `${t("checklist")} ${latest.station} · ${phaseName(latest.phase)} · v${latest.version}` }),
    h("div", { class: "grid" },
      h("section", { class: "card" }, h("h2", { text: t("about") }),
        h("dl", { class: "about" },
          h("dt", { text: t("station") }), h("dd", { text: station ? `${station.code} ${station.name} (${station.location_path})` : latest.station }),
          h("dt", { text: t("observer") }), h("dd", { text: observer ? `${observer.name} (${observer.code}${observer.team ? ", " + observer.team : ""})` : latest.observer_id }),
          h("dt", { text: t("observed_at") }), h("dd", { text: `${when(latest.observed_at)} (UTC${latest.observed_utc_offset_min >= 0 ? "+" : ""}${latest.observed_utc_offset_min / 60})` }),
          h("dt", { text: t("received_at") }), h("dd", { text: when(latest.received_at) }),
          h("dt", { text: t("clock") }), h("dd", {}, latest.clock_flagged
            ? h("span", { class: "badge warn", text: t("clock_flagged", { s: latest.clock_skew_s }) })
            : t("clock_ok")),
          h("dt", { text: t("review_state") }), h("dd", {}, h("span", { class: "badge", id: "state", text: stateName(latest.review_state) }),
            latest.quarantined ? h("span", { class: "badge bad", text: t("quarantined") }) : null))),
      h("section", { class: "card" }, h("h2", { text: t("review_history") }),
        reviews.data.length
          ? h("ol", { class: "feed" }, reviews.data.map((r) => h("li", {},
              `${when(r.created_at)} · v${r.version} · ${stateName(r.state_before)} → ${stateName(r.state_after)}`,
              r.quarantined_before !== r.quarantined_after ? ` · ${r.quarantined_after ? t("quarantined") : t("released")}` : "",
              h("br"), h("q", { text: r.comment }))))
          : h("p", { class: "muted", text: t("not_reviewed") }),
        canReview() && latest.is_latest ? (keptForm || reviewForm(latest)) : null)),
  ];
  // Versions side by side: what changed is marked.
  const head = [t("question"), ...details.map((d) => `v${d.version} · ${when(d.received_at)}`)];
  const rows = [];
  for (const q of questions) {
    const vals = details.map((d) => d.answers[q.code]);
    if (vals.every((v) => v === undefined)) continue;
    const shown = vals.map((v) => answerText(q, v));
    const changed = details.length > 1 && new Set(shown).size > 1;
    const row = [`${q.code}. ${labelOf(q.label)}`, ...shown.map((x, i) => h("span", { class: changed && i > 0 && shown[i] !== shown[i - 1] ? "diff" : null, text: x }))];
    row.rowClass = changed ? "changed" : null;
    rows.push(row);
  }
  out.push(h("section", { class: "card wide", "aria-labelledby": "h-answers" },
    h("h2", { id: "h-answers", text: details.length > 1 ? t("versions_side_by_side") : t("answers") }),
    table(head, rows, { class: "answers" })));
  if (files && files.data && files.data.length) {
    const thumbs = h("div", { class: "thumbs" });
    for (const f of files.data) {
      const item = h("div", {}, h("div", { text: `${f.name} (${f.content_type})` }));
      thumbs.append(item);
      if (!f.complete) { item.append(h("span", { class: "badge warn", text: t("not_uploaded") })); continue; }
      api(`/checklists/${latest.id}/attachments/${encodeURIComponent(f.name)}`).then(async (res) => {
        if (!res.ok) return;
        const url = URL.createObjectURL(await res.blob());
        if (f.content_type.startsWith("image/")) item.append(h("img", { src: url, alt: `${t("attachment")} ${f.name}` }));
        else item.append(h("a", { href: url, download: f.name, text: t("open_file") }));
      }).catch(() => {});
    }
    out.push(h("section", { class: "card wide" }, h("h2", { text: t("attachments") }), thumbs));
  }
  return out;
}

/* The review form: a decision (or a quarantine change) with a comment, sent with the state
   the analyst saw, so that a decision taken meanwhile by someone else is never overwritten. */
function reviewForm(cl, onDone) {
  const msg = h("p", { class: "error", role: "alert" });
  const under = h("p", { class: "under notice", role: "status" });
  const comment = h("textarea", { id: "comment-" + cl.id, name: "comment", required: true, maxlength: 2000 });
  let choice = null;
  const buttons = [...STATES, "quarantine"].map((st, i) =>
    h("button", {
      type: "button", class: "btn", "aria-pressed": "false", "data-decision": st,
      "aria-keyshortcuts": String(i + 1),
      text: `${i + 1} ${st === "quarantine" ? (cl.quarantined ? t("release") : t("quarantine")) : t("do_" + st)}`,
      onclick: (e) => {
        choice = st;
        for (const b of buttons) b.setAttribute("aria-pressed", String(b === e.currentTarget));
        comment.focus();
      },
    }));
  const form = h("form", {
    class: "review", "data-id": cl.id, "data-state": cl.review_state,
    onkeydown: (e) => {
      if (e.target === comment) {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
        return;
      }
      const n = Number(e.key);
      if (n >= 1 && n <= 4) { e.preventDefault(); buttons[n - 1].click(); }
    },
    onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = "";
      if (!choice) { msg.textContent = t("choose_decision"); buttons[0].focus(); return; }
      if (!comment.value.trim()) { msg.textContent = t("comment_needed"); comment.focus(); return; }
      const body = { comment: comment.value.trim(), expected_state: cl.review_state, expected_quarantined: cl.quarantined };
      if (choice === "quarantine") body.quarantined = !cl.quarantined;
      else body.state = choice;
      send.disabled = true;
      try {
        const res = await api(`/checklists/${cl.id}/review`, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        if (res.ok) {
          toast(t("review_saved"));
          forget();
          if (onDone) onDone();
          else { form.remove(); refreshSoon(0); }
          return;
        }
        const problem = await res.json().catch(() => ({}));
        msg.textContent = problem.code === "review_changed"
          ? t("review_changed", { detail: problem.detail })
          : problem.code === "not_latest_version" ? t("review_not_latest") : t("review_failed", { detail: problem.detail || res.status });
      } catch (err) {
        msg.textContent = t("review_failed", { detail: err.message });
      } finally {
        send.disabled = false;
      }
    },
  });
  const send = h("button", { type: "submit", class: "btn primary", text: t("save_decision") });
  form.append(
    h("fieldset", {}, h("legend", { text: t("decision") }), buttons),
    h("label", { for: "comment-" + cl.id, text: t("comment") }), comment,
    h("p", { class: "muted" }, t("keys_help")),
    send, msg, under);
  return form;
}

// --- the review queue -----------------------------------------------------------------------

function queuePage() {
  const filterBox = h("form", { class: "card", "aria-label": t("queue_filters"), onchange: () => { page.drawn = null; refreshSoon(0); }, onsubmit: (e) => e.preventDefault() },
    h("label", {}, t("reason"), " ", h("select", { id: "q-reason" },
      ["", "critical", "counting", "clock", "unreviewed"].map((r) => h("option", { value: r, text: r ? t("reason_" + r) : t("any") })))), " ",
    h("label", {}, t("phase"), " ", h("select", { id: "q-phase" }, ["", ...PHASES].map((p) => h("option", { value: p, text: p ? phaseName(p) : t("any") })))), " ",
    h("label", {}, t("review_state"), " ", h("select", { id: "q-state" },
      [["open", t("state_open")], ["", t("any")], ["received", stateName("received")], ["has_issues", stateName("has_issues")], ["verified", stateName("verified")], ["rejected", stateName("rejected")]]
        .map(([v, l]) => h("option", { value: v, text: l })))), " ",
    h("label", {}, t("station"), " ", h("input", { id: "q-station", size: 10 })));
  const page = {
    title: t("nav_queue"),
    drawn: null,
    nodes: [h("h1", { text: t("nav_queue") }), h("p", { class: "muted", text: t("queue_help") }), filterBox,
      h("section", { class: "card", id: "queue", "aria-labelledby": "h-queue" }, h("h2", { id: "h-queue", text: t("queue_list") }), h("div", { class: "body" }, h("p", { class: "muted loading", text: "…" })))],
    async update() {
      const query = queueQuery(filterBox);
      if (state.lists.queue && state.lists.queue.data.query !== query) delete state.lists.queue;
      const first = await list("queue", () => queueFirst(query));
      if (page.drawn === first) return;
      if (document.querySelector("#queue tr.inline")) return; // never redraw under an open review form
      page.drawn = first;
      drawQueue(first);
    },
    after() {
      const first = document.querySelector("#queue tbody tr");
      if (first) first.focus();
    },
  };
  return page;
}

/* The queue's filters as the server takes them (`GET /missions/{id}/review-queue`): the
   server ranks every latest checklist, so the console reads only the page it shows. */
function queueQuery(box) {
  const q = new URLSearchParams({ limit: String(QUEUE_PAGE) });
  const pick = { reason: "#q-reason", phase: "#q-phase", station: "#q-station" };
  for (const [k, sel] of Object.entries(pick)) {
    const v = box.querySelector(sel).value.trim();
    if (v) q.set(k, v);
  }
  q.set("state", box.querySelector("#q-state").value || "any");
  q.set("lang", state.lang);
  return q.toString();
}

const QUEUE_PAGE = 100;

async function queueFirst(query) {
  const page = await json(`/missions/${mid()}/review-queue?${query}`);
  return { query, items: page.data, said: pageSays(page), total: page.total, limit: page.total_limit, next: page.next_cursor };
}

/* What a page of the queue says of the checks and critical answers its items name. */
function pageSays(page) {
  return { checks: page.checks || {}, answers: page.answers || {} };
}

/* One checklist of the queue; `said` (`pageSays`) gives its critical answers and failed
   counting checks in the console's language. */
function queueRow(i, said) {
  const c = i.checklist;
  return h("tr", { tabindex: "0", "data-id": c.id,
      onkeydown: (e) => queueKey(e, c), onclick: (e) => { if (e.target.tagName !== "A" && e.target.tagName !== "BUTTON") openInline(e.currentTarget, c); } },
    h("td", {}, i.reasons.map((r) => h("span", { class: "badge " + (r === "critical" ? "bad" : r === "unreviewed" ? "" : "warn"), text: t("reason_" + r) })),
      h("div", { class: "muted", text: i.critical.map((a) => said.answers[a] || a).concat(i.fails.map((f) => said.checks[f] || f)).join("; ") })),
    h("td", { class: "code", text: c.station }), h("td", { text: phaseName(c.phase) }), h("td", { text: when(c.observed_at) }),
    h("td", {}, stateName(c.review_state), c.quarantined ? h("span", { class: "badge bad", text: t("quarantined") }) : null),
    h("td", {}, link(c.id, t("open_checklist")), " ", h("button", { class: "btn", type: "button", text: t("review"), onclick: (e) => openInline(e.currentTarget.closest("tr"), c) })));
}

function queueTotal(held) {
  return held.total >= held.limit ? t("queue_count_many", { n: num(held.limit) }) : tn("queue_count", held.total, num(held.total));
}

function drawQueue(held) {
  const body = document.querySelector("#queue .body");
  document.getElementById("h-queue").textContent = queueTotal(held);
  if (!held.items.length) return body.replaceChildren(h("p", { class: "muted", text: t("queue_empty") }));
  const tbody = h("tbody", {}, held.items.map((i) => queueRow(i, held.said)));
  const shown = h("p", { class: "muted", "aria-live": "polite" });
  const more = h("button", { class: "btn", type: "button", text: t("queue_show_more") });
  let cursor = held.next;
  const tell = () => {
    shown.textContent = t("queue_shown", { n: num(tbody.querySelectorAll("tr[data-id]").length) });
    more.hidden = !cursor;
  };
  more.onclick = async () => {
    more.disabled = true;
    try {
      const page = await json(`/missions/${mid()}/review-queue?${held.query}&cursor=${encodeURIComponent(cursor)}`);
      const known = new Set([...tbody.querySelectorAll("tr[data-id]")].map((r) => r.dataset.id));
      tbody.append(...page.data.filter((i) => !known.has(i.checklist.id)).map((i) => queueRow(i, pageSays(page))));
      cursor = page.next_cursor;
      tell();
    } catch (e) {
      if (!(e instanceof AuthError)) toast(e.message);
    } finally {
      more.disabled = false;
    }
  };
  tell();
  body.replaceChildren(
    h("p", { class: "muted", text: t("queue_keys") }),
    h("div", { class: "scroll queue", tabindex: "0" }, h("table", {}, h("thead", {}, h("tr", {}, [t("reason"), t("station"), t("phase"), t("observed_at"), t("review_state"), ""].map((x) => h("th", { scope: "col", text: x })))), tbody)),
    h("p", {}, shown, " ", more));
}

function queueKey(e, c) {
  const row = e.currentTarget;
  if (e.target !== row) return;
  if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); nextRow(row, 1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); nextRow(row, -1); }
  else if (e.key === "Enter") { e.preventDefault(); openInline(row, c); }
  else if (e.key === "o") { location.hash = "#/checklist/" + c.id; }
}

function nextRow(row, step) {
  let r = step > 0 ? row.nextElementSibling : row.previousElementSibling;
  while (r && !r.dataset.id) r = step > 0 ? r.nextElementSibling : r.previousElementSibling;
  if (r) r.focus();
}

function openInline(row, c) {
  const open = row.nextElementSibling;
  if (open && open.classList.contains("inline")) { open.remove(); row.focus(); return; }
  document.querySelectorAll("#queue tr.inline").forEach((x) => x.remove());
  const form = reviewForm(c, () => {
    const next = (open && open.classList.contains("inline") ? open : row.nextElementSibling) || null;
    const after = next && next.nextElementSibling;
    row.remove();
    if (next) next.remove();
    forget();
    if (after) after.focus();
    refreshSoon(500);
  });
  const cell = h("td", { colspan: "6" }, form);
  row.after(h("tr", { class: "inline" }, cell));
  form.querySelector("button").focus();
}

// --- the statement -----------------------------------------------------------------------

function statementPage() {
  const langs = (state.me.mission.languages || ["en"]);
  const pick = h("select", { id: "st-lang", onchange: () => { page.held = null; refreshSoon(0); } },
    langs.map((l) => h("option", { value: l, selected: l === state.lang, text: (TEXTS[l] && TEXTS[l]._name) || l })));
  const download = h("button", { class: "btn", type: "button", text: t("download_md"), onclick: () => downloadStatement(pick.value, "md") });
  const word = h("button", { class: "btn", type: "button", id: "st-docx", text: t("download_docx"), onclick: () => downloadStatement(pick.value, "docx") });
  const page = {
    title: t("nav_statement"),
    held: null,
    nodes: [h("h1", { text: t("nav_statement") }),
      h("p", {}, h("label", { for: "st-lang", text: t("statement_language") + " " }), pick, " ", download, " ", word),
      h("article", { class: "statement", id: "statement" }, h("p", { class: "muted loading", text: "…" }))],
    async update() {
      const v = await view("statement", { format: "json", lang: pick.value });
      if (v === page.held) return;
      page.held = v;
      document.getElementById("statement").replaceChildren(...drawStatement(v));
    },
  };
  return page;
}

function drawStatement(v) {
  const lines = v.markdown.split("\n");
  const title = (lines.find((l) => l.startsWith("# ")) || "").slice(2);
  const headings = lines.filter((l) => l.startsWith("## ")).map((l) => l.slice(3));
  const notes = new Map();
  for (const l of lines) {
    const m = /^\[\^(\d+)\]: (.*)$/.exec(l);
    if (m) notes.set(Number(m[1]), m[2]);
  }
  const out = [h("h2", { text: title }), h("p", { class: "muted", text: t("statement_note", { time: when(v.computed_at), version: v.version }) })];
  let current = null;
  let para = null;
  let n = 0;
  let hi = 0;
  const footnotes = [];
  for (const sentence of v.sentences) {
    if (sentence.paragraph !== current) {
      current = sentence.paragraph;
      out.push(h("h3", { text: headings[hi++] || "" }));
      para = h("p");
      out.push(para);
    }
    para.append(sentence.text);
    if (sentence.evidence && Object.keys(sentence.evidence).length) {
      n += 1;
      para.append(h("sup", {}, h("a", { href: "#note-" + n, id: "ref-" + n, "aria-label": t("evidence_n", { n }), text: `[${n}]`,
        onclick: (e) => { e.preventDefault(); document.getElementById("note-" + e.currentTarget.id.slice(4)).scrollIntoView(); } })));
      const ids = sentence.evidence.checklist_ids || [];
      footnotes.push(h("li", { id: "note-" + n, "data-note": n }, notes.get(n) ? notes.get(n).replace(/;?\s*(checklists|анкеты) [^;]*$/, "") : "",
        ids.length ? h("div", { class: "evidence" }, t("evidence_checklists", { n: ids.length }), " ", ids.map((id, i) => [i ? ", " : "", link(id)])) : null));
    }
    para.append(" ");
  }
  if (footnotes.length) out.push(h("h3", { text: headings[hi] || t("evidence") }), h("ol", { class: "notes" }, footnotes));
  return out;
}

/* The statement as Markdown or as a Word document (real footnotes, the evidence annex). */
async function downloadStatement(lang, format) {
  const extra = format === "docx" ? { lang, format } : { lang };
  try {
    const res = await api(`/missions/${mid()}/statement?` + filterQuery(extra));
    if (!res.ok) throw new Error(await reason(res));
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: `statement-${lang}.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    if (!(e instanceof AuthError)) toast(e.message);
  }
}

// --- exports -------------------------------------------------------------------------------

/* What GET /missions/{id}/exports/{kind} serves: checklist-level exports carry observers'
   identities and free text, so only staff see them offered (the API refuses a viewer too). */
const EXPORT_KINDS = [
  ["checklists", ["csv", "xlsx"], true],
  ["findings", ["csv", "xlsx"], false],
  ["counting", ["csv", "xlsx"], false],
  ["incidents", ["csv", "xlsx"], false],
  ["critical", ["csv", "xlsx"], false],
  ["stations", ["csv", "xlsx", "geojson"], false],
];

function exportsPage() {
  const kinds = EXPORT_KINDS.filter(([, , staff]) => !staff || isStaff());
  const field = (id, label, control) => h("p", { class: "field" }, h("label", { for: id, text: label }), " ", control);
  const kind = h("select", { id: "ex-kind", onchange: () => sync() },
    kinds.map(([k]) => h("option", { value: k, text: t("export_" + k) })));
  const format = h("select", { id: "ex-format" });
  const versions = h("select", { id: "ex-versions" },
    ["latest", "all", "counting"].map((v) => h("option", { value: v, text: t("export_versions_" + v) })));
  const values = h("select", { id: "ex-values" },
    ["codes", "labels"].map((v) => h("option", { value: v, text: t("export_values_" + v) })));
  const langs = state.me.mission.languages || ["en"];
  const lang = h("select", { id: "ex-lang" },
    langs.map((l) => h("option", { value: l, selected: l === state.lang, text: (TEXTS[l] && TEXTS[l]._name) || l })));
  const only = h("div", { id: "ex-checklist-options" },
    field("ex-versions", t("export_versions"), versions),
    field("ex-values", t("export_values"), values),
    field("ex-lang", t("export_lang"), lang));
  const status = h("p", { id: "ex-status", class: "muted", role: "status" });
  const go = h("button", { class: "btn primary", type: "button", id: "ex-download", text: t("export_download") });
  const sync = () => {
    const [, formats] = EXPORT_KINDS.find(([k]) => k === kind.value);
    const before = format.value;
    format.replaceChildren(...formats.map((f) => h("option", { value: f, selected: f === before, text: f.toUpperCase() })));
    only.hidden = kind.value !== "checklists";
  };
  sync();
  go.onclick = async () => {
    const extra = { format: format.value };
    if (kind.value === "checklists") Object.assign(extra, { versions: versions.value, values: values.value, lang: lang.value });
    go.disabled = true;
    try {
      await downloadExport(`/missions/${mid()}/exports/${kind.value}?` + filterQuery(extra), status);
    } finally {
      go.disabled = false;
    }
  };
  const odata = `${location.origin}/missions/${mid()}/odata`;
  return {
    title: t("nav_exports"),
    nodes: [
      h("h1", { text: t("nav_exports") }),
      h("section", { class: "card exports" },
        h("h2", { text: t("export_title") }),
        h("p", { class: "muted", text: t("export_note") }),
        field("ex-kind", t("export_what"), kind),
        field("ex-format", t("export_format"), format),
        only,
        h("p", {}, go),
        status),
      h("section", { class: "card exports" },
        h("h2", { text: t("odata_title") }),
        h("p", { text: t("odata_note") }),
        h("p", {}, h("code", { id: "odata-url", text: odata }))),
    ],
    async update() {},
  };
}

/* Fetch an export with the console's token (a plain link cannot carry it), saying how much
   has arrived, then hand it to the browser as a download under the server's file name. */
async function downloadExport(url, status) {
  status.textContent = t("export_waiting");
  try {
    const res = await api(url);
    if (!res.ok) throw new Error(await reason(res));
    const parts = [];
    let got = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      got += value.length;
      status.textContent = t("export_received", { size: (got / 1048576).toFixed(1) });
    }
    const header = res.headers.get("Content-Disposition") || "";
    const m = /filename\*=UTF-8''([^;]+)/.exec(header) || /filename="([^"]+)"/.exec(header);
    const name = m ? decodeURIComponent(m[1]) : "pollcheck-export";
    const blob = new Blob(parts, { type: res.headers.get("Content-Type") || "application/octet-stream" });
    const href = URL.createObjectURL(blob);
    const a = h("a", { href, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
    status.textContent = t("export_done", { name, size: (got / 1048576).toFixed(1), version: res.headers.get("X-Data-Version") || "?" });
  } catch (e) {
    status.textContent = e instanceof AuthError ? "" : t("export_failed", { detail: e.message });
  }
}

// --- SMS log (staff) ------------------------------------------------------------------------

const SMS_OUTCOMES = ["stored", "pending", "invalid", "unknown_number", "revoked", "rate_limited", "reply"];

/* Every SMS in and out, newest first, with what it became (GET /missions/{id}/sms/messages). */
function smsPage() {
  const text = h("input", { id: "sms-text", type: "search", autocomplete: "off" });
  const phone = h("input", { id: "sms-phone", autocomplete: "off", size: 14 });
  const station = h("input", { id: "sms-station", autocomplete: "off", size: 10 });
  const outcome = h("select", { id: "sms-outcome" },
    ["", ...SMS_OUTCOMES].map((o) => h("option", { value: o, text: o ? t("sms_" + o) : t("any") })));
  const form = h("form", { class: "card", "aria-label": t("sms_filters"), onsubmit: (e) => { e.preventDefault(); page.drawn = null; refreshSoon(0); } },
    h("label", {}, t("sms_text"), " ", text), " ",
    h("label", {}, t("sms_phone"), " ", phone), " ",
    h("label", {}, t("station"), " ", station), " ",
    h("label", {}, t("sms_outcome"), " ", outcome), " ",
    h("button", { class: "btn primary", type: "submit", text: t("sms_search") }));
  outcome.onchange = () => { page.drawn = null; refreshSoon(0); };
  const page = {
    title: t("nav_sms"),
    drawn: null,
    nodes: [h("h1", { text: t("nav_sms") }), h("p", { class: "muted", text: t("sms_help") }), form,
      h("section", { class: "card", id: "sms", "aria-labelledby": "h-sms" }, h("h2", { id: "h-sms", text: t("sms_list") }), h("div", { class: "body" }, h("p", { class: "muted loading", text: "…" })))],
    async update() {
      const q = new URLSearchParams({ limit: "200" });
      for (const [k, el] of [["text", text], ["phone", phone], ["station", station], ["outcome", outcome]]) if (el.value.trim()) q.set(k, el.value.trim());
      const data = await json(`/missions/${mid()}/sms/messages?` + q);
      const key = JSON.stringify(data.data.map((m) => [m.id, m.outcome]));
      if (page.drawn === key) return;
      page.drawn = key;
      drawSms(data);
    },
  };
  return page;
}

function drawSms(data) {
  const body = document.querySelector("#sms .body");
  if (!data.data.length) {
    body.replaceChildren(h("p", { class: "muted", text: t("sms_empty") }));
    return;
  }
  const rows = data.data.map((m) => h("tr", { "data-sms": m.id, "data-outcome": m.outcome },
    h("td", { text: when(m.created_at) }),
    h("td", { text: m.direction === "in" ? "→" : "←", title: t(m.direction === "in" ? "sms_in" : "sms_out") }),
    h("td", { text: m.phone }),
    h("td", { class: "sms-text", text: m.text }),
    h("td", {}, h("span", { class: "badge sms-" + m.outcome, text: t("sms_" + m.outcome) }),
      (m.errors || []).length ? h("div", { class: "muted", text: m.errors.map((e) => e.message || e.code).join("; ") }) : null),
    h("td", { text: [m.station, m.phase ? phaseName(m.phase) : ""].filter(Boolean).join(" · ") }),
    h("td", {}, m.checklist_id && canReadChecklists() ? link(m.checklist_id, t("sms_checklist")) : "")));
  const table = h("table", {},
    h("thead", {}, h("tr", {}, ...["sms_when", "sms_dir", "sms_phone", "sms_text", "sms_outcome", "station", "sms_checklist"].map((k) => h("th", { text: k === "sms_dir" ? "" : t(k) })))),
    h("tbody", {}, rows));
  body.replaceChildren(...[table, data.next_cursor ? h("p", { class: "muted", text: t("sms_more") }) : null].filter(Boolean));
}

// --- sign-in cards (admins) ---------------------------------------------------------------

/* New observer tokens as a printable page of QR codes, for the web app or ODK Collect
   (POST /missions/{id}/signin-cards, as `pollcheck token qr --sheet`). */
function cardsPage() {
  const field = (id, label, control) => h("p", { class: "field" }, h("label", { for: id, text: label }), " ", control);
  const codes = h("input", { id: "cards-observers", autocomplete: "off", placeholder: t("cards_all") });
  const client = h("select", { id: "cards-client" },
    h("option", { value: "app", text: t("cards_app") }), h("option", { value: "collect", text: t("cards_collect") }));
  const revoke = h("input", { id: "cards-revoke", type: "checkbox" });
  const base = h("input", { id: "cards-base", value: location.origin, autocomplete: "off" });
  const status = h("p", { id: "cards-status", class: "muted", role: "status" });
  const go = h("button", { class: "btn primary", type: "button", id: "cards-make", text: t("cards_make") });
  go.onclick = async () => {
    const list = codes.value.split(/[\s,;]+/).filter(Boolean);
    const body = { observers: list.length ? list : null, collect: client.value === "collect", revoke_previous: revoke.checked, base_url: base.value.trim() || null };
    go.disabled = true;
    status.textContent = t("cards_making");
    try {
      const res = await api(`/missions/${mid()}/signin-cards`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(await reason(res));
      const href = URL.createObjectURL(await res.blob());
      const name = `signin-cards-${client.value}.html`;
      const a = h("a", { href, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
      const n = Number(res.headers.get("X-Cards") || 0);
      status.textContent = tn("cards_done", n, String(n), { name });
    } catch (e) {
      status.textContent = e instanceof AuthError ? "" : t("cards_failed", { detail: e.message });
    } finally {
      go.disabled = false;
    }
  };
  return {
    title: t("nav_cards"),
    nodes: [
      h("h1", { text: t("nav_cards") }),
      h("section", { class: "card exports" },
        h("p", { class: "muted", text: t("cards_note") }),
        field("cards-observers", t("cards_observers"), codes),
        field("cards-client", t("cards_client"), client),
        h("p", { class: "field" }, revoke, " ", h("label", { for: "cards-revoke", text: t("cards_revoke") })),
        field("cards-base", t("cards_base"), base),
        h("p", {}, go),
        status),
    ],
    async update() {},
  };
}

// --- start ---------------------------------------------------------------------------------

window.addEventListener("hashchange", () => {
  const linked = tokenFromLink();
  if (linked) return signIn(linked, h("p"));
  if (state.me) route();
});

(async function boot() {
  try {
    state.settings = await (await fetch("/console/settings.json", { cache: "no-store" })).json();
  } catch (e) {
    state.settings = {};
  }
  drawTools();
  const linked = tokenFromLink();
  if (linked) {
    const msg = h("p");
    await signIn(linked, msg);
    if (!state.me) showSignIn(msg.textContent);
    return;
  }
  if (!state.token) return showSignIn();
  for (;;) {
    try {
      const res = await fetch("/me", { headers: { Authorization: "Bearer " + state.token }, cache: "no-store" });
      if (res.status === 401 || res.status === 403) {
        sessionEnded();
        return showSignIn(t("session_ended")); // a token kept from an earlier visit
      }
      if (res.ok) return start(await res.json());
    } catch (e) {
      /* the server is away: say so and try again */
    }
    document.getElementById("main").replaceChildren(h("p", { class: "stale-note", role: "alert", text: t("server_away") }));
    setLive("reconnecting");
    await sleep(3000);
  }
})();
