// The chat page: posts messages to /api/chat (the session cookie travels by itself) and keeps
// the conversation's thread id for this tab. Sessions are kept by the server across restarts;
// when one is gone (expired, or another database), the page takes a new one and says that the
// old conversation is no longer attached.
"use strict";
const log = document.getElementById("log");
const form = document.getElementById("chat-form");
const input = document.getElementById("message");
const send = document.getElementById("send");
const inspect = document.getElementById("inspect");
let thread = sessionStorage.getItem("thread");

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

const DETACHED =
  "Your earlier conversation is no longer attached to this browser session (the session " +
  "expired or the server no longer knows it), so a new conversation starts here.";

function detach() {
  thread = null;
  sessionStorage.removeItem("thread");
  log.appendChild(el("div", "msg notice", DETACHED));
  showInspectLink();
}

async function newSession() {
  await fetch("/api/session", { method: "POST" });
}

function post(message) {
  return fetch("/api/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message, thread_id: thread }),
  });
}

function showInspectLink() {
  inspect.hidden = !thread;
  if (thread) inspect.href = "/inspect/" + encodeURIComponent(thread);
}

// A question is shown alone (no inspector link: nothing was recommended). Recommendations are
// shown once, as cards (title + the one-line reason), under the intent line.
function answer(data) {
  const box = el("div", "msg assistant");
  if (data.question || !data.recommendations || !data.recommendations.length) {
    box.appendChild(el("div", "reply", data.reply));
    log.appendChild(box);
    return;
  }
  box.appendChild(el("div", "intent", data.intent_line));
  if (data.relaxed && data.relaxed.length)
    box.appendChild(el("div", "relaxed", "Too few matches, so I dropped: " + data.relaxed.join("; then ") + "."));
  const list = el("ol", "recs");
  for (const rec of data.recommendations) {
    const item = el("li", "rec");
    item.dataset.itemId = rec.item_id;
    item.appendChild(el("div", "title", rec.title));
    item.appendChild(el("div", "evidence", rec.evidence));
    list.appendChild(item);
  }
  box.appendChild(list);
  const link = el("a", "trace-link", "Why these? Open the run inspector");
  link.href = "/inspect/" + encodeURIComponent(data.thread_id) + "#turn-" + data.turn;
  box.appendChild(link);
  log.appendChild(box);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  log.appendChild(el("div", "msg user", message));
  input.value = "";
  send.disabled = true;
  try {
    let response = await post(message);
    if (response.status === 401 || (response.status === 404 && thread)) {
      if (response.status === 401) await newSession();
      detach();
      response = await post(message);
    }
    const data = await response.json();
    if (!response.ok) {
      log.appendChild(el("div", "msg error", "Error " + response.status + ": " + data.error));
    } else {
      thread = data.thread_id;
      sessionStorage.setItem("thread", thread);
      answer(data);
      showInspectLink();
    }
  } catch (error) {
    log.appendChild(el("div", "msg error", "The server did not answer: " + error));
  } finally {
    send.disabled = false;
    log.lastElementChild.scrollIntoView();
  }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
});

document.getElementById("new").addEventListener("click", () => {
  thread = null;
  sessionStorage.removeItem("thread");
  while (log.children.length > 1) log.removeChild(log.lastChild);
  showInspectLink();
});

async function restore() {
  if (!thread) return;
  const response = await fetch("/api/threads/" + encodeURIComponent(thread) + "/messages");
  if (response.status === 401) await newSession();
  if (!response.ok) { detach(); return; }
  for (const m of (await response.json()).messages) log.appendChild(el("div", "msg " + m.role, m.text));
  showInspectLink();
}
restore();
