// The run inspector: fetches /api/traces/{thread} (only the session that made the thread gets
// it) and /api/graph, and renders one turn at a time.
"use strict";
const thread = decodeURIComponent(location.pathname.split("/").pop());
const CHAT = ["understand", "clarify", "hard_filter", "relax", "soft_search", "rank", "final_filter", "reply"];
const GRAPH = ["load_user", "summarize", "critique", "retrieve", "recommend"];
let view = null;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
function clear(id) { const node = document.getElementById(id); node.replaceChildren(); return node; }
function row(table, cells, head) {
  const tr = el("tr");
  for (const c of cells) {
    const cell = el(head ? "th" : "td");
    if (c instanceof Node) cell.appendChild(c); else cell.textContent = String(c);
    tr.appendChild(cell);
  }
  table.appendChild(tr);
}
function chain(container, names, visits) {
  const line = el("div", "graph");
  names.forEach((name, i) => {
    if (i) line.appendChild(el("span", "arrow", "→"));
    const count = visits ? visits[name] || 0 : 0;
    const box = el("span", "node" + (count ? " visited" : ""), count > 1 ? name + " ×" + count : name);
    box.dataset.node = name;
    line.appendChild(box);
  });
  container.appendChild(line);
}

function render(index) {
  const turn = view.turns[index];
  document.querySelectorAll("#turns button").forEach((b, i) => b.classList.toggle("active", i === index));
  const visits = {};
  for (const name of turn.path) visits[name] = (visits[name] || 0) + 1;
  const graph = clear("graph");
  graph.appendChild(el("div", null, "Chat graph (understand → clarify | hard_filter ⇄ relax → soft_search → rank → final_filter → reply):"));
  chain(graph, CHAT, visits);
  graph.appendChild(el("div", null, "Recommendation graph run by rank (critique may loop back to summarize):"));
  chain(graph, GRAPH, visits);
  const path = clear("path");
  path.appendChild(el("strong", null, "Path: "));
  turn.path.forEach((name, i) => {
    if (i) path.appendChild(el("span", "arrow", "→"));
    path.appendChild(el("span", "node", name));
  });

  const intent = clear("intent");
  intent.appendChild(el("div", "intent", turn.intent_line || "(no intent this turn)"));
  if (turn.relaxed.length) intent.appendChild(el("div", "relaxed", "relaxed: " + turn.relaxed.join("; then ")));
  intent.appendChild(el("pre", null, JSON.stringify(turn.intent, null, 2)));

  // Own time per node: rank's children (the recommendation graph) are indented and not
  // counted again in rank's bar.
  const timings = clear("timings");
  row(timings, ["node", "own seconds", ""], true);
  const longest = Math.max(...turn.timings.map((t) => t.seconds), 1e-6);
  for (const t of turn.timings) {
    const bar = el("div", "bar");
    bar.style.width = Math.round(300 * t.seconds / longest) + "px";
    const name = (t.depth ? "\u00a0\u00a0\u21b3 " : "") + t.node + (t.total !== undefined && t.total !== t.seconds ? " (with children " + t.total.toFixed(4) + ")" : "");
    row(timings, [name, t.seconds.toFixed(4), bar]);
  }
  row(timings, ["turn total", turn.seconds.toFixed(4), ""]);

  const critic = clear("critic");
  if (!turn.critic_rounds.length) row(critic, ["no critic scores this turn (cached keywords or no critic)"]);
  else {
    if (turn.critic) {
      const w = Object.entries(turn.critic.weights).map(([k, v]) => k + "=" + v).join(", ");
      row(critic, ["weights: " + w + "; " + turn.critic.formula + "; threshold " + turn.critic.threshold], false);
    }
    row(critic, ["round", "item", "total", "components (raw)", "feedback"], true);
    for (const r of turn.critic_rounds)
      for (const [item, s] of Object.entries(r.scores))
        row(critic, [r.round, item, s.total.toFixed(3),
          Object.entries(s.components).map(([k, v]) => k + "=" + Number(v).toFixed(3)).join(", "), s.feedback || ""]);
  }

  const similar = clear("similar");
  if (!turn.similar_users.length) row(similar, ["no similar users this turn"]);
  else {
    row(similar, ["user", "similarity", "their next item", "keywords"], true);
    for (const u of turn.similar_users)
      row(similar, [u.user_id, Number(u.similarity).toFixed(3), u.next_item, u.keywords.join(", ")]);
  }

  // The cause (parts of the score, history items whose removal lowers it), then the words.
  const evidence = clear("evidence");
  if (!turn.evidence.length) row(evidence, ["no ranked recommendations this turn"]);
  else {
    row(evidence, ["item", "parts of its score", "without this history item (score drop)", "supporting, not the cause"], true);
    for (const e of turn.evidence)
      row(evidence, [e.item,
        Object.entries(e.contributions).map(([k, v]) => k + " " + Number(v).toFixed(3)).join(", "),
        e.cited.map((c) => c.item + " −" + Number(c.drop).toFixed(3)).join("; ") || "none cited",
        [...e.supporting_keywords, ...e.supporting_users].join("; ") || "no keyword overlap"]);
  }
  const motivations = clear("motivations");
  if (!turn.motivations.length) row(motivations, ["no motivations this turn"]);
  else {
    row(motivations, ["weight", "keywords", "supporting items"], true);
    for (const m of turn.motivations)
      row(motivations, [Number(m.weight).toFixed(2), m.keywords.join(", "), m.titles.join("; ")]);
  }

  const records = clear("records");
  turn.records.forEach((r, i) => {
    const box = el("details", "record");
    box.appendChild(el("summary", null, i + ". " + r.node + " · " + r.seconds.toFixed(4) + "s" +
      (r.label ? " · " + r.label : "") + " · " + r.hash.slice(0, 12)));
    box.appendChild(el("div", null, "inputs"));
    box.appendChild(el("pre", null, JSON.stringify(r.inputs, null, 2)));
    box.appendChild(el("div", null, "outputs"));
    box.appendChild(el("pre", null, JSON.stringify(r.outputs, null, 2)));
    records.appendChild(box);
  });
}

async function load() {
  const info = clear("thread-info");
  const response = await fetch("/api/traces/" + encodeURIComponent(thread));
  const data = await response.json();
  if (!response.ok) { info.appendChild(el("span", "bad", "Error " + response.status + ": " + data.error)); return; }
  view = data;
  info.appendChild(el("span", null, "thread " + data.thread_id + " · " + data.n_records + " records · "));
  info.appendChild(el("span", data.verified ? "ok" : "bad",
    data.verified ? "hash chain verified" : "hash chain broken at record " + data.broken_at));
  const turns = clear("turns");
  data.turns.forEach((t, i) => {
    const b = el("button", null, "turn " + t.turn + ": " + t.message.slice(0, 40));
    b.type = "button";
    b.addEventListener("click", () => render(i));
    turns.appendChild(b);
  });
  const wanted = Number((location.hash.match(/turn-(\d+)/) || [])[1]);
  const index = data.turns.findIndex((t) => t.turn === wanted);
  render(index >= 0 ? index : data.turns.length - 1);
  const graph = await fetch("/api/graph");
  if (graph.ok) {
    const g = await graph.json();
    document.getElementById("mermaid").textContent = g.chat + "\n\n" + g.recommendation;
  }
}
load();
