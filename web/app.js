/* Pollcheck for observers: sign in, pick a station, fill the checklist, send when possible.

   Everything typed is written to IndexedDB at once; sending is a separate, repeatable step
   (POST /sync/checklists with the whole queue), so a lost network, a closed tab or a flat
   battery never loses a checklist, and resending never stores one twice: each checklist's
   id is made here, once. */
"use strict";

const CHUNK_ITEMS = 20; // checklists per batch request
const CHUNK_BYTES = 256 * 1024; // photo bytes per upload request (the server takes up to 1 MB)
const RETRY_MAX_MS = 60000;
const CLOCK_WARN_MS = 5 * 60 * 1000;
const PHOTO_MAX_SIDE = 2000; // pixels: a protocol stays legible, a 2G upload stays short
const PHASES = ["opening", "voting", "closing", "incident"];
const HEAR_BACK_MS = 5 * 60 * 1000; // ask for the mission's review decisions this often

const state = {
  token: localStorage.getItem("pc.token"),
  lang: localStorage.getItem("pc.lang") || (navigator.language || "en").slice(0, 2),
  day: null,
  dayEtag: null,
  dayError: false,
  view: "home",
  station: null,
  form: null,
  outbox: [],
  syncing: false,
  retryAt: 0,
  retryDelay: 5000,
  clockOffsetMs: 0,
  lastContact: null,
  lastSync: 0,
  held: {}, // station code -> {phase: true}: what the server holds of this observer's
};
if (!TEXTS[state.lang]) state.lang = "en";

// --- small helpers ----------------------------------------------------------------------

// t() and h(): web/dom.js

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/* Device time with its UTC offset, as the server keeps it. */
function isoLocal(d) {
  const p = (n) => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const a = Math.abs(off);
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}` +
    `${off >= 0 ? "+" : "-"}${p(Math.floor(a / 60))}:${p(a % 60)}`
  );
}

function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
}

// toast(): web/dom.js

/* Scroll an element to just below what stays stuck at the top (the bar and the form's
   head), never under it: centring a tall question hid its first lines there. */
function reveal(el) {
  if (!el) return;
  let cover = 0;
  for (const x of document.querySelectorAll(".bar, .formhead"))
    cover = Math.max(cover, (parseFloat(getComputedStyle(x).top) || 0) + x.offsetHeight);
  const top = window.scrollY + el.getBoundingClientRect().top - cover - 10;
  const still = matchMedia("(prefers-reduced-motion: reduce)").matches;
  window.scrollTo({ top: Math.max(0, top), behavior: still ? "auto" : "smooth" });
}

class AuthError extends Error {}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, opts.headers || {});
  const res = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
  state.lastContact = new Date();
  const date = res.headers.get("Date");
  if (date) state.clockOffsetMs = new Date(date).getTime() - Date.now();
  if (res.status === 401) {
    sessionEnded();
    throw new AuthError("signed out");
  }
  return res;
}

// --- the template ---------------------------------------------------------------------

function templates() {
  return (state.day && state.day.templates) || [];
}

/* The form's own template (kept in the draft, so a newer version published meanwhile
   cannot scramble answers half given); outside a form, the mission's first. */
function template() {
  return state.form && state.form.tpl ? state.form.tpl : templates()[0];
}

function sectionsFor(tpl, phase) {
  return tpl.sections.filter((s) => !s.phases || s.phases.includes(phase));
}

function phasesAvailable(tpl) {
  return PHASES.filter((p) => sectionsFor(tpl, p).length > 0);
}

function questionsOf(tpl, phase) {
  return sectionsFor(tpl, phase).flatMap((s) => s.questions);
}

function isShown(q, answers) {
  if (!q.show_if) return true;
  const given = answers[q.show_if.question];
  if (given === undefined || given === null || given === "") return false;
  const accepted = (q.show_if.in || [q.show_if.equals]).map(String);
  const values = Array.isArray(given) ? given.map(String) : [String(given)];
  return values.some((v) => accepted.includes(v));
}

/* Drop answers to questions their conditions now hide (the server refuses them). */
function prune(tpl, phase, answers) {
  const out = {};
  for (const q of questionsOf(tpl, phase)) {
    if (!(q.code in answers)) continue;
    if (!isShown(q, out)) continue;
    const v = answers[q.code];
    if (v === "" || v === null || (Array.isArray(v) && v.length === 0)) continue;
    out[q.code] = v;
  }
  return out;
}

function choices(q) {
  let opts;
  if (q.type === "yes_no") opts = [{ code: "yes", label: t("yes") }, { code: "no", label: t("no") }];
  else if (q.type === "scale4")
    opts = ["very_good", "good", "bad", "very_bad"].map((c) => ({ code: c, label: t(c) }));
  else opts = (q.options || []).slice();
  if (q.allow_na && !opts.some((o) => o.code === "na")) opts.push({ code: "na", label: t("na") });
  return opts;
}

function isCritical(q, v) {
  if (v === undefined || v === null) return false;
  if (q.type === "integer") return q.critical_min != null && typeof v === "number" && v >= q.critical_min;
  const crit = q.critical || [];
  return Array.isArray(v) ? v.some((x) => crit.includes(x)) : crit.includes(v);
}

function problem(q, form) {
  const v = form.answers[q.code];
  const raw = form.raw[q.code];
  if (q.type === "integer" && raw !== undefined && raw !== "" && v === undefined) return t("err_number");
  if (q.type === "time" && raw && v === undefined) return t("err_time");
  const empty = v === undefined || v === "" || (Array.isArray(v) && v.length === 0);
  if (empty) return q.required ? t("err_required") : null;
  if (q.type === "integer" && typeof v === "number") {
    if (q.min != null && v < q.min) return t("err_min", { min: q.min });
    if (q.max != null && v > q.max) return t("err_max", { max: q.max });
  }
  if (q.type === "text" && v.length > (q.max_length || 2000))
    return t("err_too_long", { max: q.max_length || 2000 });
  return null;
}

function questionLabel(code, tplCode) {
  const tpl = templates().find((x) => x.code === tplCode) || template();
  const q = tpl && tpl.sections.flatMap((s) => s.questions).find((x) => x.code === code);
  return q ? q.label : code;
}

// --- navigation -----------------------------------------------------------------------

function go(view, push = true) {
  state.view = view;
  if (push) history.pushState({ view }, "");
  render();
  window.scrollTo(0, 0);
}

window.addEventListener("popstate", () => {
  // The phone's back button steps back inside the app instead of leaving it.
  if (state.view === "form" && state.form && state.form.section > 0) {
    state.form.section -= 1;
    history.pushState({ view: "form" }, "");
    render();
  } else if (state.view === "review") {
    state.view = "form";
    render();
  } else if (state.view !== "home" && state.view !== "signin") {
    state.view = "home";
    render();
  }
});

// --- sign in --------------------------------------------------------------------------

function tokenFromLink() {
  const m = /[#&]token=([^&]+)/.exec(location.hash);
  if (!m) return;
  // Keep the token out of the address bar, the history and screenshots.
  history.replaceState(null, "", location.pathname);
  return decodeURIComponent(m[1]);
}

async function signIn(token, messageEl, button) {
  token = (token || "").trim();
  if (!token) return;
  if (button) {
    button.disabled = true;
    button.textContent = t("signing_in");
  }
  let res;
  try {
    res = await fetch("/me", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  } catch (e) {
    if (/^pc_[\w-]{20,}(\.[\w-]{12})?$/.test(token)) {
      // A QR code scanned in a basement: keep the code and check it once online.
      localStorage.setItem("pc.token", token);
      state.token = token;
      state.dayError = !state.day;
      state.view = "home";
      render();
      toast(t("sign_in_later"));
      return;
    }
    messageEl.textContent = t("sign_in_offline");
  }
  if (res) {
    const me = res.ok ? await res.json() : null;
    if (!me) messageEl.textContent = t("sign_in_bad");
    else if (me.role !== "observer") messageEl.textContent = t("sign_in_not_observer");
    else {
      localStorage.setItem("pc.token", token);
      state.token = token;
      state.view = "home";
      render();
      await refreshDay();
      flush();
      return;
    }
  }
  if (button) {
    button.disabled = false;
    button.textContent = t("sign_in");
  }
}

function sessionEnded() {
  localStorage.removeItem("pc.token");
  state.token = null;
  state.view = "signin";
  render();
  toast(t("session_ended"));
}

function viewSignIn() {
  const msg = h("p", { class: "error", role: "alert" });
  const input = h("input", {
    id: "token",
    type: "text",
    autocomplete: "off",
    autocapitalize: "off",
    spellcheck: "false",
    placeholder: "pc_…",
    "aria-describedby": "token-help",
  });
  const button = h("button", { class: "primary big", type: "submit", text: t("sign_in") });
  return h(
    "section",
    { class: "card signin" },
    h("h1", { text: t("sign_in_title") }),
    h("p", { id: "token-help", text: t("sign_in_help") }),
    h(
      "form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          signIn(input.value, msg, button);
        },
      },
      h("label", { for: "token", text: t("token_label") }),
      input,
      button,
    ),
    msg,
  );
}

// --- the day's work -------------------------------------------------------------------

async function refreshDay() {
  if (!state.token) return;
  try {
    const headers = state.dayEtag ? { "If-None-Match": state.dayEtag } : {};
    const res = await api("/sync/day?lang=" + encodeURIComponent(state.lang), { headers });
    if (res.status === 200) {
      state.day = await res.json();
      state.dayEtag = res.headers.get("ETag");
      await Store.set("day", { data: state.day, etag: state.dayEtag });
      await loadOutbox();
      const preferred = state.day.observer.language;
      if (!localStorage.getItem("pc.lang") && preferred && TEXTS[preferred] && preferred !== state.lang) {
        // First start: speak the language the mission recorded for this observer.
        setLanguage(preferred);
        return;
      }
    }
    if (res.status === 403) {
      // Signed in (perhaps while offline) with a code that is not an observer's.
      localStorage.removeItem("pc.token");
      state.token = null;
      state.view = "signin";
      render();
      toast(t("sign_in_not_observer"));
      return;
    }
    state.dayError = !(res.status === 200 || res.status === 304);
  } catch (e) {
    if (e instanceof AuthError) return;
    state.dayError = !state.day;
  }
  renderBackground();
}

async function setLanguage(lang) {
  state.lang = lang;
  localStorage.setItem("pc.lang", lang);
  document.documentElement.lang = lang;
  state.dayEtag = null; // other language, other labels
  render();
  await refreshDay();
}

// --- home -----------------------------------------------------------------------------

function viewHome() {
  const out = [];
  if (!state.day) {
    out.push(
      h(
        "section",
        { class: "card" },
        state.dayError
          ? [h("p", { text: t("day_failed") }), h("button", { class: "primary", onclick: refreshDay, text: t("retry") })]
          : h("p", { class: "muted", text: "…" }),
      ),
    );
    return out;
  }
  out.push(h("h1", { class: "hello", text: t("hello", { name: state.day.observer.name }) }));
  out.push(h("p", { class: "muted", text: `${state.day.mission.name} · ${state.day.mission.election_date}` }));
  if (state.draft) {
    const d = state.draft;
    out.push(
      h(
        "button",
        { class: "card resume", onclick: () => resumeDraft() },
        h("strong", { text: t("resume_draft") }),
        h("span", { text: `${d.station.code} · ${t("phase_" + d.phase)}` }),
      ),
    );
  }
  out.push(h("h2", { text: t("your_stations") }));
  if (!state.day.stations.length) out.push(h("p", { class: "card", text: t("no_stations") }));
  else {
    out.push(h("p", { class: "muted", text: t("choose_station_help") }));
    out.push(
      h(
        "ul",
        { class: "stations" },
        state.day.stations.map((s) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                class: "station",
                "data-station": s.code,
                onclick: () => {
                  state.station = s;
                  go("phase");
                },
              },
              h("span", { class: "code", text: s.code }),
              h("span", { class: "name", text: s.name }),
              h("span", { class: "where", text: [s.location, s.address].filter(Boolean).join(" · ") }),
              sentPhases(s.code).length
                ? h(
                    "span",
                    { class: "sent" },
                    t("sent_phases"),
                    sentPhases(s.code).map((p) =>
                      rejectedPhases(s.code).has(p)
                        ? h("span", { class: "chip rejected", "data-sent": p, title: t("phase_rejected"), text: t("phase_" + p) })
                        : h("span", { class: "chip", "data-sent": p, text: t("phase_" + p) }),
                    ),
                  )
                : null,
            ),
          ),
        ),
      ),
    );
  }
  out.push(viewOutbox());
  if (installPrompt)
    out.push(
      h("button", {
        class: "secondary big install",
        onclick: async () => {
          installPrompt.prompt();
          await installPrompt.userChoice.catch(() => null);
          installPrompt = null;
          render(true);
        },
        text: "📲 " + t("install"),
      }),
    );
  return out;
}

/* Phases of a station the mission has received from this observer: from the phone's own
   queue, and from what the server listed (a checklist sent from another phone too). */
function sentPhases(code) {
  const held = Object.assign({}, state.held[code]);
  for (const i of state.outbox) if (i.status === "sent" && i.station.code === code) held[i.payload.phase] = true;
  return PHASES.filter((p) => held[p]);
}

/* Phases of a station whose every checklist on this phone, in its latest version, was
   rejected by the mission: it does not count, so the station's card must not tick it. */
function rejectedPhases(code) {
  const seen = {};
  for (const i of state.outbox) {
    if (i.status !== "sent" || i.station.code !== code || latestOf(i) !== i.id) continue;
    const p = i.payload.phase;
    seen[p] = (seen[p] === undefined || seen[p]) && !!i.review && i.review.state === "rejected";
  }
  return new Set(PHASES.filter((p) => seen[p]));
}

/* Chrome offers installation when the app qualifies; we show the offer as a plain button. */
let installPrompt = null;
window.addEventListener("beforeinstallprompt", (e) => {
  e.preventDefault();
  installPrompt = e;
  renderBackground();
});

function viewPhase() {
  const s = state.station;
  const many = templates().length > 1;
  const choices = templates().flatMap((tpl) => phasesAvailable(tpl).map((p) => ({ tpl, p })));
  return [
    h("button", { class: "link", onclick: () => history.back(), text: "← " + t("back") }),
    h("h1", { text: `${s.code} · ${s.name}` }),
    h("h2", { text: t("what_observing") }),
    h(
      "ul",
      { class: "phases" },
      choices.map(({ tpl, p }) =>
        h(
          "li",
          {},
          h(
            "button",
            { class: "phase", "data-phase": p, "data-template": tpl.code, onclick: () => startForm(s, p, null, tpl) },
            h("strong", { text: t("phase_" + p) }),
            h("span", { text: many ? tpl.title : t("phase_" + p + "_help") }),
          ),
        ),
      ),
    ),
  ];
}

// --- the checklist form ---------------------------------------------------------------

function startForm(station, phase, from, chosen) {
  const code = from && from.template;
  const tpl =
    chosen ||
    templates().find((x) => x.code === code) ||
    templates().find((x) => phasesAvailable(x).includes(phase));
  state.form = {
    id: newId(),
    tpl,
    station,
    phase,
    template: tpl.code,
    template_version: tpl.version,
    observed_at: isoLocal(new Date()),
    answers: from ? Object.assign({}, from.answers) : {},
    raw: {},
    errors: {},
    section: 0,
    files: from && from.files ? from.files.filter((f) => f.blob) : [],
    replaces: from && from.replaces ? from.replaces : undefined,
  };
  if (from) {
    for (const [k, v] of Object.entries(state.form.answers)) state.form.raw[k] = String(v);
    state.form.observed_at = from.observed_at || state.form.observed_at;
  }
  saveDraft();
  go("form");
}

function resumeDraft() {
  state.form = state.draft;
  state.form.errors = {};
  go("form");
}

let draftTimer = null;
function saveDraft() {
  clearTimeout(draftTimer);
  draftTimer = setTimeout(() => {
    if (state.form) {
      state.draft = state.form;
      Store.set("draft", state.form);
    }
  }, 200);
}

function setAnswer(q, value, raw) {
  const f = state.form;
  if (value === undefined) delete f.answers[q.code];
  else f.answers[q.code] = value;
  if (raw !== undefined) f.raw[q.code] = raw;
  delete f.errors[q.code];
  saveDraft();
}

function viewQuestion(q) {
  const f = state.form;
  const v = f.answers[q.code];
  const id = "q-" + q.code;
  const err = f.errors[q.code];
  const refresh = () => render(true);
  // Typed answers redraw the form only when that changes what it shows: a redraw would
  // take the focus (and the keyboard) away from the field the observer just tapped.
  const typed = (value, raw) => {
    const before = f.answers[q.code];
    setAnswer(q, value, raw);
    settled(q.code);
    if (isCritical(q, before) !== isCritical(q, value) || controls(q.code)) return true;
    return false;
  };
  let input;
  if (["yes_no", "single", "scale4"].includes(q.type)) {
    input = h(
      "div",
      { class: "choices" + (q.type === "yes_no" ? " row" : ""), role: "radiogroup", "aria-labelledby": id + "-label" },
      choices(q).map((o) =>
        h(
          "button",
          {
            type: "button",
            role: "radio",
            "aria-checked": v === o.code ? "true" : "false",
            class: "choice" + (v === o.code ? " on" : "") + ((q.critical || []).includes(o.code) ? " crit" : ""),
            "data-value": o.code,
            onclick: () => {
              setAnswer(q, v === o.code ? undefined : o.code);
              refresh();
            },
          },
          o.label,
        ),
      ),
    );
  } else if (q.type === "multi") {
    const chosen = Array.isArray(v) ? v : [];
    input = h(
      "div",
      { class: "choices", role: "group", "aria-labelledby": id + "-label" },
      choices(q).map((o) =>
        h(
          "button",
          {
            type: "button",
            role: "checkbox",
            "aria-checked": chosen.includes(o.code) ? "true" : "false",
            class: "choice check" + (chosen.includes(o.code) ? " on" : "") + ((q.critical || []).includes(o.code) ? " crit" : ""),
            "data-value": o.code,
            onclick: () => {
              let next = chosen.includes(o.code) ? chosen.filter((c) => c !== o.code) : [...chosen, o.code];
              if (o.code === "na" && next.includes("na")) next = ["na"];
              else next = next.filter((c) => c !== "na" || o.code === "na");
              setAnswer(q, next.length ? next : undefined);
              refresh();
            },
          },
          o.label,
        ),
      ),
    );
  } else if (q.type === "integer") {
    const field = h("input", {
      id,
      type: "text",
      inputmode: "numeric",
      pattern: "[0-9]*",
      autocomplete: "off",
      value: f.raw[q.code] !== undefined ? f.raw[q.code] : v !== undefined && v !== "na" ? String(v) : "",
      oninput: (e) => {
        const raw = e.target.value.trim();
        const n = /^-?\d+$/.test(raw) ? parseInt(raw, 10) : undefined;
        if (typed(raw === "" ? undefined : n, raw)) pendingRedraw = true;
      },
      onchange: () => {
        if (pendingRedraw) {
          pendingRedraw = false;
          refresh();
        }
      },
    });
    input = h("div", { class: "number" }, field, q.allow_na ? naToggle(q) : null);
  } else if (q.type === "time") {
    input = h("input", {
      id,
      type: "time",
      value: v && v !== "na" ? v : "",
      oninput: (e) => {
        if (typed(e.target.value || undefined, e.target.value)) pendingRedraw = true;
      },
      onchange: () => {
        if (pendingRedraw) {
          pendingRedraw = false;
          refresh();
        }
      },
    });
  } else {
    input = h("textarea", {
      id,
      rows: 3,
      maxlength: q.max_length || 2000,
      oninput: (e) => typed(e.target.value || undefined, e.target.value),
      text: v || "",
    });
  }
  return h(
    "fieldset",
    {
      class: "question" + (err ? " invalid" : "") + (f.noneFilled && f.noneFilled.includes(q.code) ? " prefilled" : ""),
      id: id + "-box",
      "data-code": q.code,
    },
    h(
      "legend",
      { id: id + "-label" },
      h("span", { class: "qcode", text: q.code }),
      " ",
      q.label,
      q.required ? null : h("span", { class: "optional", text: " (" + t("optional") + ")" }),
    ),
    q.hint ? h("p", { class: "hint", text: q.hint }) : null,
    input,
    isCritical(q, v) ? h("p", { class: "critical", text: t("critical_note") }) : null,
    err ? h("p", { class: "error", role: "alert", text: err }) : null,
  );
}

let pendingRedraw = false;

/* Some later question's show_if depends on this one. */
function controls(code) {
  const tpl = template();
  return tpl.sections.some((s) => s.questions.some((x) => x.show_if && x.show_if.question === code));
}

/* The observer is correcting an answer marked wrong: take the red mark off at once. */
function settled(code) {
  const box = document.getElementById("q-" + code + "-box");
  if (!box || !box.classList.contains("invalid")) return;
  box.classList.remove("invalid");
  const msg = box.querySelector("p.error");
  if (msg) msg.remove();
}

function naToggle(q) {
  const on = state.form.answers[q.code] === "na";
  return h(
    "button",
    {
      type: "button",
      class: "choice small" + (on ? " on" : ""),
      "aria-pressed": on ? "true" : "false",
      onclick: () => {
        setAnswer(q, on ? undefined : "na", on ? "" : "na");
        render(true);
      },
    },
    t("na"),
  );
}

function viewForm() {
  const f = state.form;
  const tpl = template();
  const sections = sectionsFor(tpl, f.phase);
  const section = sections[f.section];
  const shown = section.questions.filter((q) => isShown(q, f.answers));
  const last = f.section === sections.length - 1;
  return [
    h(
      "div",
      { class: "formhead" },
      h("button", { class: "link", onclick: () => leaveForm(), text: "✕ " + t("cancel") }),
      h("p", { class: "muted", text: `${f.station.code} · ${t("phase_" + f.phase)}${f.replaces ? " · " + t("correction_of") : ""}` }),
      h("p", { class: "step", text: t("step", { n: f.section + 1, total: sections.length }) }),
      h("div", { class: "progress", "aria-hidden": "true" }, bar(((f.section + 1) / (sections.length + 1)) * 100)),
    ),
    h("h1", { text: section.title }),
    Object.keys(f.errors).length ? h("p", { class: "error banner", role: "alert", text: t("fix_errors") }) : null,
    f.protocolWarn && f.protocolWarn.length
      ? h(
          "div",
          { class: "warn", id: "protocol-warn", role: "alert" },
          h("strong", { text: t("chk_title") }),
          h("ul", {}, f.protocolWarn.map((x) => h("li", { text: x }))),
          h("p", { text: t("chk_help") }),
        )
      : null,
    noneShortcut(section),
    h("form", { class: "questions", onsubmit: (e) => e.preventDefault() }, shown.map(viewQuestion)),
    h(
      "nav",
      { class: "formnav" },
      h("button", { class: "secondary", onclick: () => (f.section > 0 ? history.back() : leaveForm()), text: t("back") }),
      h("button", { class: "primary", id: "next", onclick: () => nextSection(), text: last ? t("review") : t("next") }),
    ),
  ];
}

/* A list of like questions ("observed / reported / none" for each irregularity): the
   single-choice questions of a section sharing one option list with a harmless "none". */
function noneGroup(section) {
  const sig = (q) => (q.options || []).map((o) => o.code).join("|");
  const fit = section.questions.filter(
    (q) => q.type === "single" && (q.options || []).some((o) => o.code === "none") && !(q.critical || []).includes("none"),
  );
  const count = {};
  for (const q of fit) count[sig(q)] = (count[sig(q)] || 0) + 1;
  const best = Object.keys(count).sort((a, b) => count[b] - count[a])[0];
  return best && count[best] >= 3 ? fit.filter((q) => sig(q) === best) : [];
}

/* "None of these observed" answers the rest of the list at once; the answers it set stay
   marked until the observer confirms them, and Next waits for that. */
function noneShortcut(section) {
  const f = state.form;
  const group = noneGroup(section);
  if (pendingNone(section).length)
    return h(
      "div",
      { class: "warn", id: "none-confirm", role: "alert" },
      h("p", { text: t("none_check", { n: pendingNone(section).length }) }),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "primary", id: "none-ok", onclick: () => { f.noneFilled = null; saveDraft(); render(true); }, text: t("none_confirm") }),
        h("button", {
          class: "secondary",
          onclick: () => {
            for (const code of f.noneFilled) if (f.answers[code] === "none") delete f.answers[code];
            f.noneFilled = null;
            saveDraft();
            render(true);
          },
          text: t("none_undo"),
        }),
      ),
    );
  const open = group.filter((q) => f.answers[q.code] === undefined);
  if (!open.length) return null;
  return h("button", {
    class: "secondary big",
    id: "none-seen",
    onclick: () => {
      for (const q of open) setAnswer(q, "none");
      f.noneFilled = open.map((q) => q.code);
      render(true);
      reveal(document.getElementById("none-confirm"));
    },
    text: t(open.length < group.length ? "none_seen_rest" : "none_seen"),
  });
}

function pendingNone(section) {
  const codes = state.form.noneFilled || [];
  return section.questions.filter((q) => codes.includes(q.code));
}

/* The counting checks of the observation method, on the figures copied from the protocol.
   A warning, not a refusal: a protocol that does not add up must still be copied as it is. */
function protocolProblems(tpl, answers) {
  const p = tpl.protocol;
  if (!p) return [];
  const n = (code) => (typeof answers[code] === "number" ? answers[code] : null);
  const sum = (xs) => (xs.every((x) => x !== null) ? xs.reduce((a, b) => a + b, 0) : null);
  const [registered, received, issued, unused, spoiled] = [p.registered, p.received, p.issued, p.unused, p.spoiled].map(n);
  const [box, invalid, blank, valid] = [p.in_box, p.invalid, p.blank, p.valid].map(n);
  const out = [];
  const votes = sum(p.options.map(n));
  if (votes !== null && valid !== null && votes !== valid) out.push(t("chk_votes", { sum: votes, valid }));
  const inBox = sum([valid, invalid, blank]);
  if (inBox !== null && box !== null && inBox !== box) out.push(t("chk_box", { sum: inBox, box }));
  const accounted = sum([issued, unused, spoiled]);
  if (accounted !== null && received !== null && accounted !== received)
    out.push(t("chk_received", { sum: accounted, received }));
  if (box !== null && issued !== null && box > issued) out.push(t("chk_stuffing", { box, issued }));
  if (issued !== null && registered !== null && issued > registered)
    out.push(t("chk_registered", { issued, registered }));
  return out;
}

/* Set through the style object, which the page's Content-Security-Policy allows. */
function bar(percent) {
  const el = h("div");
  el.style.width = percent + "%";
  return el;
}

function checkSection(questions) {
  const f = state.form;
  f.errors = {};
  for (const q of questions) {
    if (!isShown(q, f.answers)) continue;
    const p = problem(q, f);
    if (p) f.errors[q.code] = p;
  }
  return Object.keys(f.errors).length === 0;
}

function nextSection() {
  const f = state.form;
  const sections = sectionsFor(template(), f.phase);
  if (pendingNone(sections[f.section]).length) {
    toast(t("none_pending"));
    reveal(document.getElementById("none-confirm"));
    return;
  }
  if (!checkSection(sections[f.section].questions)) {
    render(true);
    reveal(document.querySelector(".question.invalid"));
    return;
  }
  const tpl = template();
  const codes = tpl.protocol ? Object.values(tpl.protocol).flat() : [];
  if (sections[f.section].questions.some((q) => codes.includes(q.code))) {
    const problems = protocolProblems(tpl, f.answers);
    const figures = JSON.stringify(codes.map((c) => f.answers[c]));
    if (problems.length && f.protocolSeen !== figures) {
      f.protocolSeen = figures; // shown once for these figures; Next again goes on
      f.protocolWarn = problems;
      render(true);
      reveal(document.getElementById("protocol-warn"));
      return;
    }
  }
  f.protocolWarn = null;
  saveDraft();
  if (f.section < sections.length - 1) {
    f.section += 1;
    go("form");
  } else go("review");
}

function leaveForm() {
  if (confirm(t("discard_draft"))) {
    state.view = "home";
    history.replaceState({ view: "home" }, "");
    render();
  }
}

/* How an answer reads: the choice's own label, the number, the time or the text. */
function answerText(q, v) {
  if (v === undefined) return "—";
  const label = (c) => (choices(q).find((o) => o.code === c) || { label: c }).label;
  if (Array.isArray(v)) return v.map(label).join(", ");
  return ["yes_no", "single", "scale4"].includes(q.type) || v === "na" ? label(v) : String(v);
}

function viewAnswers(tpl, f, answers) {
  return h(
    "section",
    { class: "answers" },
    sectionsFor(tpl, f.phase).map((sec, n) =>
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "line" },
          h("h2", { text: sec.title }),
          h("button", { class: "link", onclick: () => { f.section = n; go("form"); }, text: t("change") }),
        ),
        h(
          "dl",
          {},
          sec.questions
            .filter((q) => isShown(q, answers))
            .map((q) =>
              h(
                "div",
                { class: isCritical(q, answers[q.code]) ? "critical" : null, "data-code": q.code },
                h("dt", { text: q.label }),
                h("dd", { text: answerText(q, answers[q.code]) }),
              ),
            ),
        ),
      ),
    ),
  );
}

/* The observation time: when the form was opened, unless the observer says otherwise
   (a form filled in after leaving the station). Same day; never in the future. */
function viewObservedAt(f) {
  const at = new Date(f.observed_at);
  const p = (n) => String(n).padStart(2, "0");
  return h(
    "div",
    { class: "when" },
    h("label", { for: "observed-time", text: t("observed_at") }),
    h("input", {
      id: "observed-time",
      type: "time",
      value: `${p(at.getHours())}:${p(at.getMinutes())}`,
      onchange: (e) => {
        const [hh, mm] = (e.target.value || "").split(":").map(Number);
        if (Number.isNaN(hh) || Number.isNaN(mm)) return;
        const d = new Date(f.observed_at);
        d.setHours(hh, mm, 0, 0);
        f.timeError = d.getTime() > Date.now() + state.clockOffsetMs + 60000 ? t("err_future") : null;
        if (!f.timeError) f.observed_at = isoLocal(d);
        saveDraft();
        render(true);
      },
    }),
    h("p", { class: "muted", text: t("observed_at_help") }),
    f.timeError ? h("p", { class: "error", role: "alert", text: f.timeError }) : null,
  );
}

function viewReview() {
  const f = state.form;
  const tpl = template();
  const answers = prune(tpl, f.phase, f.answers);
  const crit = questionsOf(tpl, f.phase).filter((q) => isCritical(q, answers[q.code]));
  const protocol = protocolProblems(tpl, answers);
  const fileInput = h("input", {
    type: "file",
    accept: "image/*,application/pdf",
    capture: "environment",
    class: "visually-hidden",
    id: "photo",
    onchange: (e) => addPhotos(e.target.files),
  });
  return [
    h("button", { class: "link", onclick: () => history.back(), text: "← " + t("back") }),
    h("h1", { text: t("review_title") }),
    h(
      "section",
      { class: "card" },
      h("p", { class: "big", text: `${f.station.code} · ${f.station.name}` }),
      h("p", { text: t("phase_" + f.phase) }),
      viewObservedAt(f),
      h("p", { text: t("answered", { n: Object.keys(answers).length }) }),
      protocol.length
        ? h(
            "div",
            { class: "warn", id: "review-protocol", role: "alert" },
            h("strong", { text: t("chk_title") }),
            h("ul", {}, protocol.map((x) => h("li", { text: x }))),
            h("p", { text: t("chk_sent_as_is") }),
          )
        : null,
      crit.length
        ? [
            h("p", { class: "critical", text: t("criticals", { n: crit.length }) }),
            h("ul", { class: "crits" }, crit.map((q) => h("li", { text: `${q.code} · ${q.label}` }))),
          ]
        : protocol.length
          ? null // never "no problem" in green over figures that do not add up
          : h("p", { class: "ok", text: t("no_criticals") }),
    ),
    viewAnswers(tpl, f, answers),
    h(
      "section",
      { class: "card" },
      h("h2", { text: t("photos") }),
      h("p", { class: "muted", text: t("photos_help") }),
      h(
        "ul",
        { class: "files" },
        f.files.map((file, i) =>
          h(
            "li",
            {},
            h("span", { text: `${file.name} · ${Math.ceil(file.size / 1024)} KB` }),
            h("button", {
              class: "link",
              onclick: () => {
                f.files.splice(i, 1);
                saveDraft();
                render(true);
              },
              text: t("remove"),
            }),
          ),
        ),
      ),
      fileInput,
      h("label", { for: "photo", class: "button secondary", text: "📷 " + t("add_photo") }),
    ),
    h(
      "nav",
      { class: "formnav" },
      h("button", { class: "secondary", onclick: () => { state.form.section = 0; go("form"); }, text: t("edit_answers") }),
      h("button", { class: "primary", id: "send", onclick: () => saveChecklist(), text: t("save_send") }),
    ),
  ];
}

/* Big camera photos are scaled down before they are queued: a 2G upload of 300 KB
   succeeds where one of 6 MB times out all day. */
async function shrink(file) {
  if (!file.type.startsWith("image/") || !window.createImageBitmap) return file;
  try {
    const img = await createImageBitmap(file);
    const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(img.width, img.height));
    if (scale === 1 && file.type === "image/jpeg") return file;
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(img.width * scale);
    canvas.height = Math.round(img.height * scale);
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.85));
    return blob && blob.size < file.size ? blob : file;
  } catch (e) {
    return file;
  }
}

async function addPhotos(list) {
  const f = state.form;
  for (const original of Array.from(list || [])) {
    const blob = await shrink(original);
    const type = blob.type || original.type;
    const ext = type === "application/pdf" ? "pdf" : type === "image/png" ? "png" : "jpg";
    f.files.push({
      name: `photo-${f.files.length + 1}.${ext}`,
      blob,
      size: blob.size,
      content_type: type === "image/jpg" ? "image/jpeg" : type,
      sha256: await Sha256.ofBlob(blob),
      done: false,
    });
  }
  saveDraft();
  render(true);
}

async function saveChecklist() {
  const f = state.form;
  const tpl = template();
  const payload = {
    id: f.id,
    station: f.station.code,
    template: f.template,
    template_version: f.template_version,
    phase: f.phase,
    observed_at: f.observed_at,
    answers: prune(tpl, f.phase, f.answers),
  };
  if (f.replaces) payload.replaces = f.replaces;
  if (f.files.length)
    payload.attachments = f.files.map((x) => ({ name: x.name, sha256: x.sha256, size: x.size, content_type: x.content_type }));
  const item = {
    id: f.id,
    payload,
    observer: state.day.observer.id,
    station: f.station,
    savedAt: Date.now(),
    status: "queued",
    files: f.files.map((x) => Object.assign({}, x, { done: false })),
    missing: [],
  };
  await Store.put(item);
  await Store.del("draft");
  clearTimeout(draftTimer);
  state.draft = null;
  state.form = null;
  state.retryDelay = 5000;
  state.retryAt = 0;
  await loadOutbox();
  history.replaceState({ view: "home" }, "");
  state.view = "home";
  render();
  window.scrollTo(0, 0);
  toast(navigator.onLine ? t("saved_sending") : t("saved_offline"));
  flush();
}

// --- the outbox -----------------------------------------------------------------------

/* A phone passed to another observer keeps the first one's queue, but sends it only under
   their own sign-in. */
function mine(item) {
  return !item.observer || (state.day && item.observer === state.day.observer.id);
}

async function loadOutbox() {
  state.outbox = (await Store.outbox()).filter(mine).sort((a, b) => b.savedAt - a.savedAt);
}

function describe(err, tplCode) {
  const path = err.path || [];
  const code = path[0] === "answers" ? path[1] : null;
  const text = TEXTS[state.lang]["code_" + err.code] || TEXTS.en["code_" + err.code] || err.message;
  return code ? `${code} · ${questionLabel(code, tplCode)}: ${text}` : text;
}

function viewOutbox() {
  const items = state.outbox;
  return h(
    "section",
    { class: "outbox", id: "outbox" },
    h("h2", { text: t("outbox") }),
    items.length === 0
      ? h("p", { class: "muted", text: t("outbox_empty") })
      : h(
          "ul",
          {},
          items.map((i) => {
            const left = (i.files || []).filter((x) => !x.done).length;
            const r = i.result || {};
            const review = i.status === "sent" && i.review && i.review.state !== "received" ? i.review : null;
            const latest = i.status === "sent" && i.id === latestOf(i);
            return h(
              "li",
              { class: "item " + i.status + (review ? " review-" + review.state : ""), "data-id": i.id },
              h(
                "div",
                { class: "line" },
                h("strong", { text: `${i.station.code} · ${t("phase_" + i.payload.phase)}` }),
                h("span", { class: "when", text: clock(i.payload.observed_at) }),
              ),
              review
                ? h("span", { class: "badge review-" + review.state, text: t("rv_" + review.state) })
                : h("span", { class: "badge " + i.status, text: t("st_" + i.status) }),
              i.payload.replaces ? h("span", { class: "muted", text: " · " + t("correction_of") }) : null,
              i.status === "sent" && left ? h("p", { class: "muted", text: t("files_left", { n: left }) }) : null,
              i.status === "rejected"
                ? h(
                    "div",
                    { class: "why" },
                    h("p", { text: t("why") }),
                    h("ul", {}, (r.errors && r.errors.length ? r.errors.map((e) => describe(e, i.payload.template)) : [TEXTS[state.lang]["code_" + r.code] || r.detail]).map((x) => h("li", { text: x }))),
                    h(
                      "div",
                      { class: "actions" },
                      r.code === "not_latest_version"
                        ? null
                        : h("button", { class: "primary", onclick: () => fixItem(i), text: t("fix") }),
                      h("button", { class: "secondary", onclick: () => deleteItem(i), text: t("delete") }),
                    ),
                  )
                : null,
              review
                ? h(
                    "div",
                    { class: "why" },
                    h("p", { text: t("rv_comment") }),
                    h("blockquote", { text: review.comment }),
                    latest && needsAttention(i)
                      ? h("p", { class: "muted", text: t("rv_" + review.state + "_help") })
                      : null,
                  )
                : null,
              latest
                ? h("button", {
                    class: needsAttention(i) ? "primary" : "link",
                    onclick: () => correctItem(i),
                    text: t("correct"),
                  })
                : null,
            );
          }),
        ),
  );
}

/* Not accepted when sent, or sent and then found wanting by an analyst (and not corrected
   since): the observer has something to do. */
function needsAttention(item) {
  if (item.status === "rejected") return true;
  const state_ = item.status === "sent" && item.review && item.review.state;
  return (state_ === "has_issues" || state_ === "rejected") && item.id === latestOf(item);
}

function latestOf(item) {
  // The newest sent version in this item's chain (corrections name what they replace).
  const replaced = new Set(state.outbox.filter((x) => x.status !== "rejected").map((x) => x.payload.replaces));
  return replaced.has(item.id) ? null : item.id;
}

async function fixItem(item) {
  await Store.remove(item.id); // never stored by the server: the fixed one replaces it here
  await loadOutbox();
  state.station = item.station;
  startForm(item.station, item.payload.phase, {
    template: item.payload.template,
    answers: item.payload.answers,
    observed_at: item.payload.observed_at,
    replaces: item.payload.replaces,
    files: item.files,
  });
}

function correctItem(item) {
  state.station = item.station;
  startForm(item.station, item.payload.phase, {
    template: item.payload.template,
    answers: item.payload.answers,
    observed_at: item.payload.observed_at,
    replaces: item.id,
  });
}

async function deleteItem(item) {
  if (!confirm(t("delete_confirm"))) return;
  await Store.remove(item.id);
  await loadOutbox();
  render();
}

// --- sending --------------------------------------------------------------------------

function apply(item, r) {
  if (r.status === "created" || r.status === "duplicate") {
    item.status = "sent";
    item.result = { version: r.version, received_at: r.received_at, clock_flagged: r.clock_flagged };
    const missing = r.missing_attachments || [];
    for (const f of item.files || []) if (!missing.includes(f.name)) markUploaded(f);
  } else {
    item.status = "rejected";
    item.result = { code: r.code, detail: r.detail, errors: r.errors || [] };
  }
}

function markUploaded(file) {
  file.done = true;
  file.blob = null; // the server holds it: free the phone's storage
}

async function flush() {
  if (state.syncing || !state.token) return;
  state.syncing = true;
  renderStatus();
  try {
    const pending = (await Store.outbox())
      .filter((i) => i.status === "queued" || i.status === "sending")
      .filter(mine)
      .sort((a, b) => a.savedAt - b.savedAt);
    const chunks = [];
    for (let k = 0; k < pending.length; k += CHUNK_ITEMS) chunks.push(pending.slice(k, k + CHUNK_ITEMS));
    while (chunks.length) {
      const chunk = chunks.shift();
      for (const i of chunk) {
        i.status = "sending";
        await Store.put(i);
      }
      await loadOutbox();
      renderBackground();
      // sent_at is the phone's clock now, on every attempt: the server measures the skew.
      const sentAt = isoLocal(new Date());
      const json = JSON.stringify({ items: chunk.map((i) => Object.assign({}, i.payload, { sent_at: sentAt })) });
      const res = await api("/sync/checklists", Object.assign({ method: "POST" }, await compressed(json)));
      if (res.status === 413 || res.status === 422) {
        // The server refused the request as a whole, not item by item (too big, or a value
        // it will not even read): send one at a time, so only the culprit is held back.
        if (chunk.length > 1) {
          chunks.unshift(...chunk.map((i) => [i]));
          continue;
        }
        const body = await res.json().catch(() => ({}));
        apply(chunk[0], { status: "invalid", code: body.code, detail: body.detail, errors: body.errors });
        await Store.put(chunk[0]);
        continue;
      }
      if (!res.ok) {
        // Busy or down (429, 503): wait at least as long as the server asks.
        const wait = parseInt(res.headers.get("Retry-After") || "0", 10) * 1000;
        if (wait) state.retryDelay = Math.min(Math.max(state.retryDelay, wait), RETRY_MAX_MS * 5);
        throw new Error("server answered " + res.status);
      }
      const out = await res.json();
      for (const r of out.results) {
        apply(chunk[r.index], r);
        await Store.put(chunk[r.index]);
      }
    }
    await uploadFiles();
    await reconcile();
    state.lastSync = Date.now();
    state.retryDelay = 5000;
    state.retryAt = 0;
  } catch (e) {
    if (!(e instanceof AuthError)) {
      state.retryAt = Date.now() + state.retryDelay;
      state.retryDelay = Math.min(state.retryDelay * 2, RETRY_MAX_MS);
    }
  } finally {
    for (const i of await Store.outbox())
      if (i.status === "sending") {
        i.status = "queued";
        await Store.put(i);
      }
    state.syncing = false;
    await loadOutbox();
    renderBackground();
  }
}

/* A batch is repetitive JSON: gzipped it is about nine times smaller on the phone's link. */
async function compressed(json) {
  const headers = { "Content-Type": "application/json" };
  if (!window.CompressionStream) return { headers, body: json };
  const stream = new Blob([json]).stream().pipeThrough(new CompressionStream("gzip"));
  const body = await new Response(stream).arrayBuffer();
  return { headers: Object.assign(headers, { "Content-Encoding": "gzip" }), body };
}

async function uploadFiles() {
  for (const item of await Store.outbox()) {
    if (item.status !== "sent" || !mine(item)) continue;
    for (const file of item.files || []) {
      if (file.done || !file.blob) continue;
      const base = `/checklists/${item.id}/attachments/${encodeURIComponent(file.name)}`;
      const st = await api(`/checklists/${item.id}/attachments`);
      let offset = 0;
      if (st.ok) {
        const known = (await st.json()).data.find((x) => x.name === file.name);
        if (known && known.complete) offset = file.size;
        else if (known) offset = known.received;
      }
      let restarted = false;
      while (offset < file.size) {
        const end = Math.min(offset + CHUNK_BYTES, file.size);
        const res = await api(base, {
          method: "PUT",
          headers: { "Content-Type": file.content_type, "Content-Range": `bytes ${offset}-${end - 1}/${file.size}` },
          body: file.blob.slice(offset, end),
        });
        if (res.ok) {
          const s = await res.json();
          offset = s.complete ? file.size : s.received;
        } else if (res.status === 409 && res.headers.get("Upload-Offset")) {
          offset = parseInt(res.headers.get("Upload-Offset"), 10);
        } else if (res.status === 422 && !restarted) {
          restarted = true; // the server discarded bad bytes: send the file once more
          offset = 0;
        } else throw new Error("upload refused " + res.status);
      }
      markUploaded(file);
      await Store.put(item);
      await loadOutbox();
      renderBackground();
    }
  }
}

/* Ask what the server holds since the last time: a checklist whose answer was lost on the
   way back is then known as received and leaves the queue without being sent again. */
async function reconcile() {
  let cursor = await Store.get("cursor");
  for (let page = 0; page < 50; page++) {
    const res = await api("/sync/checklists" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
    if (!res.ok) return;
    const out = await res.json();
    for (const c of out.data) {
      (state.held[c.station] = state.held[c.station] || {})[c.phase] = true;
      const item = await Store.item(c.id);
      if (item && item.status !== "sent") {
        item.status = "sent";
        item.result = { version: c.version, received_at: c.received_at };
        await Store.put(item);
      }
    }
    await Store.set("held", state.held);
    // An analyst's decisions, oldest first: the last one on each checklist stands.
    for (const r of out.reviews || []) {
      const item = await Store.item(r.checklist_id);
      if (!item) continue;
      item.status = "sent";
      item.review = { state: r.state, comment: r.comment, at: r.decided_at };
      await Store.put(item);
    }
    if (out.next_cursor) {
      cursor = out.next_cursor;
      await Store.set("cursor", cursor);
    }
    if (!out.more) return;
  }
}

// --- rendering ------------------------------------------------------------------------

function renderStatus() {
  const el = document.getElementById("net");
  if (!el) return;
  el.replaceChildren();
  if (!state.token) {
    el.className = "";
    return;
  }
  const waiting = state.outbox.filter((i) => i.status === "queued" || i.status === "sending").length;
  const uploading = state.outbox.some((i) => i.status === "sent" && (i.files || []).some((f) => !f.done));
  const online = navigator.onLine;
  el.className = online ? "online" : "offline";
  const attention = state.outbox.filter(needsAttention).length;
  const queue = waiting
    ? " · " + t("queued_n", { n: waiting })
    : state.outbox.length && !uploading && !attention
      ? " · " + t("all_sent")
      : "";
  el.append(
    h(
      "span",
      { class: "line" },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { id: "net-text", text: online ? t("online") : t("offline") }),
      h("span", { id: "queue", class: "queue", text: queue }),
    ),
  );
  if (attention)
    el.append(
      h("button", {
        class: "small attention",
        id: "attention",
        onclick: () => {
          if (state.view !== "home") go("home");
          reveal(document.querySelector(".outbox .item.rejected, .outbox .item.review-has_issues, .outbox .item.review-rejected"));
        },
        text: t(attention === 1 ? "attention_1" : "attention_n", { n: attention }),
      }),
    );
  if ((waiting || uploading) && online && !state.syncing)
    el.append(h("button", { class: "small", id: "send-now", onclick: () => flush(), text: t("send_now") }));
  if (Math.abs(state.clockOffsetMs) > CLOCK_WARN_MS)
    el.append(h("p", { class: "clock", text: t("clock_off", { min: Math.round(Math.abs(state.clockOffsetMs) / 60000) }) }));
}

function renderHeader() {
  const bar = document.getElementById("bar");
  bar.replaceChildren(
    h("span", { class: "brand", text: t("app_name") }),
    h(
      "span",
      { class: "tools" },
      Object.entries(LANGUAGES).map(([code, name]) =>
        h("button", {
          class: "lang" + (code === state.lang ? " on" : ""),
          lang: code,
          "aria-pressed": code === state.lang ? "true" : "false",
          title: name,
          onclick: () => setLanguage(code),
          text: code.toUpperCase(),
        }),
      ),
      state.token
        ? h("button", {
            class: "lang",
            onclick: () => {
              if (confirm(t("sign_out_confirm"))) {
                localStorage.removeItem("pc.token");
                state.token = null;
                go("signin", false);
              }
            },
            text: t("sign_out"),
          })
        : null,
    ),
  );
}

/* What the network did: the status line always, the page only where it shows the queue, so
   a sync never redraws a form under the observer's fingers. */
function renderBackground() {
  if (["home", "signin"].includes(state.view) || !state.token) render(true);
  else {
    renderHeader();
    renderStatus();
  }
}

function render(keepScroll) {
  const main = document.getElementById("main");
  const y = window.scrollY;
  const focused = document.activeElement && document.activeElement.id;
  document.documentElement.lang = state.lang;
  renderHeader();
  renderStatus();
  let view = state.token ? state.view : "signin";
  if (view === "phase" && !templates().length) view = "home";
  if ((view === "form" || view === "review") && !state.form) view = "home";
  const content = { signin: viewSignIn, home: viewHome, phase: viewPhase, form: viewForm, review: viewReview }[view]();
  main.replaceChildren(...[content].flat().filter(Boolean));
  main.dataset.view = view;
  if (keepScroll) window.scrollTo(0, y);
  const again = focused && document.getElementById(focused);
  if (again && again !== document.activeElement) again.focus({ preventScroll: true });
}

// --- start ----------------------------------------------------------------------------

async function start() {
  const linked = tokenFromLink();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
  window.addEventListener("online", () => {
    state.retryAt = 0;
    renderBackground();
    flush();
    refreshDay();
  });
  window.addEventListener("offline", () => renderBackground());
  // Back to the app after a while: hear what the mission decided meanwhile.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.token && navigator.onLine) flush();
  });
  window.addEventListener("hashchange", () => {
    // A QR code scanned while the app is already open.
    const token = tokenFromLink();
    if (token) signIn(token, h("p"));
  });
  const cached = await Store.get("day");
  if (cached) {
    state.day = cached.data;
    state.dayEtag = cached.etag;
    if (state.day.language !== state.lang) state.dayEtag = null;
  }
  state.draft = (await Store.get("draft")) || null;
  state.held = (await Store.get("held")) || {};
  await loadOutbox();
  history.replaceState({ view: "home" }, "");
  render();
  // A gentle heartbeat: retry the queue when its back-off is over, even if no
  // `online` event came (captive portals, flaky 2G).
  setInterval(() => {
    const waiting = state.outbox.some((i) => i.status === "queued" || (i.status === "sent" && (i.files || []).some((f) => !f.done)));
    const due = state.outbox.length && Date.now() - state.lastSync > HEAR_BACK_MS && document.visibilityState === "visible";
    if ((waiting || due) && navigator.onLine && Date.now() >= state.retryAt) flush();
  }, 5000);
  if (linked) {
    const msg = h("p");
    await signIn(linked, msg);
    if (!state.token || state.token !== linked) {
      state.view = "signin";
      render();
      document.querySelector(".signin").append(msg);
    }
    return;
  }
  if (state.token) {
    await refreshDay();
    flush();
  }
}

start();
