// spacy-senti web page: POST v1/analyze and draw the answer. Plain DOM, no dependencies.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const textBox = $("text");
  const explainBox = $("explain");
  const submit = $("submit");
  const statusLine = $("status");
  const errorBox = $("error");
  const results = $("results");
  const SUPPORT = "31, 95, 191"; // rgb, as --support in style.css
  const OPPOSE = "207, 102, 0"; // rgb, as --oppose
  const MAX_BARS = 8; // a multilabel head with more labels shows its most probable ones
  let model = null; // GET v1/model, once loaded

  // --- small helpers ----------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return node;
  }
  const pct = (p) => `${(100 * p).toFixed(1)}%`;
  // +0.123 / −0.0042: three decimals, or two significant digits for small values
  const signed = (x) => (x > 0 ? "+" : x < 0 ? "\u2212" : "") +
    (Math.abs(x) >= 0.01 || x === 0 ? Math.abs(x).toFixed(3) : Math.abs(x).toPrecision(2));

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.textContent = "";
    errorBox.hidden = true;
  }

  // The service's error body is {"error": {"code", "message", "field", "limit"}}.
  async function errorText(response) {
    const raw = await response.text();
    let body = null;
    try {
      body = JSON.parse(raw);
    } catch (err) {
      body = null;
    }
    const error = body && body.error;
    if (!error) return `Error ${response.status}: ${raw.slice(0, 300) || response.statusText}`;
    let text = `Error ${response.status} (${error.code}): ${error.message}`;
    if (error.field) text += ` [field: ${error.field}]`;
    if (error.limit !== null && error.limit !== undefined) text += ` [limit: ${error.limit}]`;
    return text;
  }

  // --- the model --------------------------------------------------------------------------
  async function loadModel() {
    let response;
    try {
      response = await fetch("v1/model", { headers: { Accept: "application/json" } });
    } catch (err) {
      $("model").textContent = "Model unknown";
      showError(`Could not reach the service: ${err.message}`);
      return;
    }
    if (!response.ok) {
      $("model").textContent = "Model unknown";
      showError(await errorText(response));
      return;
    }
    model = await response.json();
    const heads = model.heads.map((h) => `${h.name} (${h.kind})`)
      .concat(model.aspect_terms ? ["aspect terms"] : []).join(", ");
    $("model").textContent = `Model ${model.name} ${model.version}, ${model.backend} backend; ` +
      `heads: ${heads}`;
    if (!model.explain_available) {
      explainBox.checked = false;
      explainBox.disabled = true;
      explainBox.parentElement.append(" (not available for this model)");
    }
  }

  // --- bars -------------------------------------------------------------------------------
  // One <dl> row per label: name, a bar (with the label's threshold, if any) and the value.
  function bars(rows, name) {
    const list = el("dl", { class: "bars", "data-head": name });
    for (const row of rows) {
      const on = row.on ? " on" : "";
      const fill = el("div", { class: "fill" });
      fill.style.width = pct(Math.min(Math.max(row.p, 0), 1));
      const track = el("div", { class: "track", "data-label": row.label,
                                 "data-prob": row.p.toFixed(4) }, fill);
      track.setAttribute("aria-hidden", "true");
      if (row.threshold !== undefined) {
        const tick = el("div", { class: "threshold", title: `threshold ${row.threshold}` });
        tick.style.left = pct(row.threshold);
        track.append(tick);
      }
      const note = row.on ? ` (${row.note})` : "";
      list.append(
        el("dt", { class: on.trim(), text: row.label + note }),
        el("dd", { class: `bar${on}` }, track),
        el("dd", { class: "value", text: pct(row.p) }),
      );
    }
    return list;
  }

  function chips(items, label, none) {
    if (!items.length) return el("p", { class: "muted", text: none });
    const list = el("ul", { class: "chips" });
    list.setAttribute("aria-label", label);
    for (const item of items) {
      list.append(el("li", { class: `chip ${item.cls || ""}`, text: item.text,
                             "data-label": item.text }));
    }
    return list;
  }

  function headInfo(name, result) {
    const known = model && model.heads.find((h) => h.name === name);
    if (known) return known;
    const kind = "label" in result ? "exclusive" : "labels" in result ? "multilabel"
      : "aspects" in result ? "grouped" : "unknown";
    return { name, kind, threshold: 0.5, thresholds: {} };
  }

  function renderHead(name, result) {
    const info = headInfo(name, result);
    const box = el("section", { class: `head ${info.kind}`, "data-head": name });
    const scores = result.scores || {};
    if (info.kind === "exclusive") {
      box.append(el("h2", {}, `${name}: `, el("span", { class: "predicted", text: result.label })));
      box.append(bars(Object.entries(scores).map(([label, p]) => ({
        label, p, on: label === result.label, note: "predicted" })), name));
    } else if (info.kind === "multilabel") {
      const chosen = result.labels || [];
      box.append(el("h2", { text: `${name}: labels over their thresholds` }));
      box.append(chips(chosen.map((text) => ({ text, cls: "label" })), `${name} over threshold`,
                       "No label over its threshold."));
      const rows = Object.entries(scores).map(([label, p]) => ({
        label, p, on: chosen.includes(label), note: "over threshold",
        threshold: label in (info.thresholds || {}) ? info.thresholds[label] : info.threshold,
      }));
      if (rows.length <= MAX_BARS) {
        box.append(bars(rows, name));
      } else { // many labels (GoEmotions: 28): the most probable here, all of them below
        const byProb = (a, b) => b.p - a.p;
        const others = rows.filter((r) => !r.on).sort(byProb);
        const top = rows.filter((r) => r.on)
          .concat(others.slice(0, Math.max(0, MAX_BARS - chosen.length))).sort(byProb);
        box.append(bars(top, name));
        box.append(el("details", {}, el("summary", { text: `Every ${name} probability` }),
                      bars(rows, `${name}-all`)));
      }
    } else if (info.kind === "grouped") {
      const present = Object.entries(result.aspects || {});
      box.append(el("h2", { text: `${name}: aspects found` }));
      box.append(chips(present.map(([group, polarity]) => ({
        text: `${group}: ${polarity}`, cls: polarity })), `${name} found`, "No aspect found."));
      // one bar per group: its most likely polarity; every polarity in the details below
      const best = [];
      const all = [];
      for (const [group, dist] of Object.entries(scores)) {
        const top = Object.keys(dist).reduce((a, b) => (dist[a] >= dist[b] ? a : b));
        best.push({ label: `${group}: ${top}`, p: dist[top], on: group in (result.aspects || {}),
                    note: "found" });
        for (const [polarity, p] of Object.entries(dist)) {
          all.push({ label: `${group}/${polarity}`, p, on: polarity === top, note: "best" });
        }
      }
      box.append(bars(best, name));
      box.append(el("details", {}, el("summary", { text: `Every ${name} probability` }),
                    bars(all, `${name}-all`)));
    } else {
      box.append(el("h2", { text: name }));
      const flat = Object.entries(scores).filter(([, p]) => typeof p === "number");
      box.append(bars(flat.map(([label, p]) => ({ label, p, on: false })), name));
    }
    return box;
  }

  // --- words: tokens tinted by attribution, aspect term spans highlighted -----------------
  // Term spans: the result's aspect_terms (senti_aspects), and any head result carrying
  // {"terms": [{"start", "end", ...}]}.
  function termSpans(result) {
    const spans = [];
    const add = (term, what) => {
      if (Number.isInteger(term.start) && Number.isInteger(term.end) && term.end > term.start) {
        spans.push({ start: term.start, end: term.end, what, polarity: term.polarity || "" });
      }
    };
    for (const term of result.aspect_terms || []) {
      add(term, `${term.polarity}, p = ${Number(term.score).toFixed(3)}`);
    }
    for (const [name, value] of Object.entries(result.heads || {})) {
      for (const term of value.terms || value.spans || []) {
        add(term, [term.aspect || term.group || term.label || name, term.polarity]
          .filter(Boolean).join(": "));
      }
    }
    return spans.sort((a, b) => a.start - b.start);
  }

  // The aspect_terms of a senti_aspects model: one chip per term, coloured by polarity.
  function renderTerms(terms) {
    const box = el("section", { class: "head terms", "data-head": "aspect_terms" });
    box.append(el("h2", { text: "Aspect terms" }));
    box.append(chips(terms.map((t) => ({ text: `${t.text}: ${t.polarity}`, cls: t.polarity })),
                     "aspect terms", "No aspect term found."));
    return box;
  }

  function tint(node, value, scale) {
    if (!scale || !value) return;
    const alpha = 0.08 + 0.5 * Math.min(Math.abs(value) / scale, 1);
    node.style.backgroundColor = `rgba(${value > 0 ? SUPPORT : OPPOSE}, ${alpha.toFixed(3)})`;
  }

  function renderWords(text, explain, terms) {
    const box = $("tokens");
    box.replaceChildren();
    const tokens = (explain && explain.tokens) || [];
    const scale = Math.max(0, ...tokens.map((t) => Math.abs(t.attribution || 0)));
    const termOf = (start, end) => terms.find((s) => s.start < end && start < s.end);
    let pos = 0;
    if (tokens.length) {
      for (const token of tokens) {
        if (token.start < pos) continue;
        if (token.start > pos) box.append(text.slice(pos, token.start));
        const end = token.end > token.start ? token.end : token.start + token.text.length;
        const span = el("span", { class: "tok", text: text.slice(token.start, end) || token.text });
        const title = [];
        if (typeof token.attribution === "number") {
          span.dataset.attribution = token.attribution.toFixed(4);
          title.push(`attribution ${signed(token.attribution)}`);
          tint(span, token.attribution, scale);
        }
        if (typeof token.valence === "number") {
          span.classList.add("valence");
          span.dataset.valence = token.valence.toFixed(3);
          title.push(`lexicon valence ${signed(token.valence)}`);
        }
        const term = termOf(token.start, end);
        if (term) {
          span.classList.add("term");
          if (term.polarity) span.dataset.polarity = term.polarity;
          title.push(`aspect term (${term.what})`);
        }
        span.title = title.join(", ");
        box.append(span);
        pos = end;
      }
    } else {
      for (const term of terms) {
        if (term.start < pos) continue;
        box.append(text.slice(pos, term.start));
        box.append(el("mark", { class: "term", title: term.what, "data-polarity": term.polarity,
                                text: text.slice(term.start, term.end) }));
        pos = term.end;
      }
    }
    box.append(text.slice(pos));
    return tokens;
  }

  function renderLegend(explain, tokens) {
    const legend = $("legend");
    legend.replaceChildren();
    const top = $("top");
    top.textContent = "";
    const body = $("token-table").tBodies[0];
    body.replaceChildren();
    $("token-table-box").hidden = !tokens.length;
    if (!explain) {
      legend.textContent = "Outlined: aspect terms (green: positive, red: negative).";
      return;
    }
    if (explain.target) {
      const prob = typeof explain.target_prob === "number" ? `, p = ${explain.target_prob.toFixed(3)}`
        : "";
      legend.append(`Tinted by ${explain.method || "model"} attribution towards `,
                    el("strong", { text: explain.target }), `${prob}: `,
                    el("span", { class: "swatch support" }), " raises it, ",
                    el("span", { class: "swatch oppose" }), " lowers it. ");
    }
    if (typeof explain.lexicon_score === "number") {
      legend.append("Dotted underline: words in the sentiment lexicon (lexicon score " +
                    `${signed(explain.lexicon_score)}).`);
    }
    const ranked = tokens.filter((t) => typeof t.attribution === "number" && t.attribution)
      .sort((a, b) => Math.abs(b.attribution) - Math.abs(a.attribution)).slice(0, 5);
    if (ranked.length) {
      top.textContent = "Most influential: " +
        ranked.map((t) => `${t.text} (${signed(t.attribution)})`).join(", ");
    }
    for (const t of tokens) {
      body.append(el("tr", {}, el("td", { text: t.text }),
        el("td", { text: typeof t.attribution === "number" ? signed(t.attribution) : "" }),
        el("td", { text: typeof t.valence === "number" ? signed(t.valence) : "" })));
    }
  }

  function render(text, result) {
    const heads = $("heads");
    heads.replaceChildren();
    for (const [name, value] of Object.entries(result.heads || {})) {
      heads.append(renderHead(name, value));
    }
    if (Array.isArray(result.aspect_terms)) heads.append(renderTerms(result.aspect_terms));
    const terms = termSpans(result);
    const explain = result.explain || null;
    const words = $("explanation");
    words.hidden = !explain && !terms.length;
    if (!words.hidden) renderLegend(explain, renderWords(text, explain, terms));
    results.hidden = false;
  }

  function summary(result) {
    const parts = [];
    for (const [name, value] of Object.entries(result.heads || {})) {
      if ("label" in value) parts.push(`${name} ${value.label}`);
      else if ("labels" in value) parts.push(`${name} ${value.labels.join(", ") || "none"}`);
      else if ("aspects" in value) {
        const found = Object.entries(value.aspects).map(([g, p]) => `${g} ${p}`);
        parts.push(`${name} ${found.join(", ") || "none"}`);
      }
    }
    if (Array.isArray(result.aspect_terms)) {
      const found = result.aspect_terms.map((t) => `${t.text} ${t.polarity}`);
      parts.push(`aspect terms ${found.join(", ") || "none"}`);
    }
    return parts.join("; ");
  }

  // --- submit -----------------------------------------------------------------------------
  async function analyse() {
    if (submit.disabled) return;
    clearError();
    const text = textBox.value;
    const body = { text, explain: explainBox.checked && !explainBox.disabled };
    submit.disabled = true;
    results.setAttribute("aria-busy", "true");
    statusLine.textContent = "Analysing\u2026";
    const started = performance.now();
    try {
      const response = await fetch("v1/analyze", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        statusLine.textContent = "";
        showError(await errorText(response));
        return;
      }
      const answer = await response.json();
      const result = answer.results[0];
      render(text, result);
      const ms = Math.round(performance.now() - started);
      statusLine.textContent = `Done in ${ms} ms: ${summary(result)}.`;
    } catch (err) {
      statusLine.textContent = "";
      showError(`Could not reach the service: ${err.message}`);
    } finally {
      submit.disabled = false;
      results.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    analyse();
  });
  // Enter (or Ctrl/Cmd+Enter) submits; Shift+Enter keeps the textarea's new line.
  textBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  loadModel();
})();
