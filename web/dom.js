/* Shared by the observers' app and the console: interface texts and DOM building. Both keep
   their language in `state.lang` and their texts in `TEXTS` (their own i18n.js). */
"use strict";

function t(key, vars) {
  let s = (TEXTS[state.lang] && TEXTS[state.lang][key]) || TEXTS.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(v);
  return s;
}

/* A text with a count, in the form the language's plural rules pick for `n` ("1 station",
   "2 stations"; Russian's one, few and many): the text is an object of forms, {n} the count
   as `shown` (formatted by the caller) or as it is. */
function tn(key, n, shown, vars) {
  const forms = (TEXTS[state.lang] && TEXTS[state.lang][key]) || TEXTS.en[key];
  if (!forms) return key;
  let s = forms[new Intl.PluralRules(state.lang).select(n)] || forms.other;
  s = s.split("{n}").join(shown === undefined ? String(n) : shown);
  for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(v);
  return s;
}

/* Build DOM nodes; text is always set as text, never as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "style") el.style.cssText = v; // CSSOM: the pages' policy allows no style attributes
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/* A short message at the bottom of the screen (#toast), gone after a few seconds. */
let toastTimer = null;
function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
}
