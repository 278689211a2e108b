/*
 * Lepton web chat widget. Embed it in any page with one line:
 *
 *   <script src="https://bot.example.com/webhooks/web_chat/widget.js" defer></script>
 *
 * Options as data attributes on that tag: data-title="Lepton Store" (header text),
 * data-open="true" (open at load). The widget lives in a shadow root, so the page's
 * styles and the widget's do not leak into each other.
 *
 * Safety: every text, the bot's and the customer's, is put into the page as DOM text
 * nodes built here (never innerHTML), and links and images accept only http(s) and
 * mailto addresses, so no message can inject markup or script.
 *
 * Feedback: under each answer to a message sent from this page, thumbs up/down buttons
 * (data-testid chat-feedback-up / chat-feedback-down) rate it once (POST feedback).
 *
 * Sessions: the server issues a signed token (POST sessions) that expires; the widget
 * renews it (POST sessions/refresh) while the page is open, before it expires, and the
 * conversation stays the same. A token the server refuses (expired, ended) is replaced
 * by a new session, which is a new conversation, and the chat says so.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script) return;
  const base = new URL(".", script.src).href;
  const title = script.dataset.title || "Support";
  const openAtLoad = script.dataset.open === "true";
  const storageKey = "lepton-web-chat-session:" + base;
  const RETRYABLE = new Set([502, 503, 504]);
  const MAX_BACKOFF_MS = 10000;

  // ---- session storage -------------------------------------------------------------

  // {token, expiresAt, refreshAt}: times in ms of this browser's clock, from the
  // server's relative `expires_in` / `refresh_in`, so clock skew does not matter.
  let memorySession = null;

  function savedSession() {
    let raw = null;
    try {
      raw = window.localStorage.getItem(storageKey);
    } catch (error) {
      return memorySession; // storage disabled: the session lasts as long as the page
    }
    try {
      const saved = JSON.parse(raw);
      if (saved && typeof saved.token === "string" && typeof saved.expiresAt === "number") return saved;
    } catch (error) {
      /* a token of an earlier widget version, which the server no longer accepts */
    }
    return null;
  }

  function saveSession(saved) {
    memorySession = saved;
    try {
      if (saved) window.localStorage.setItem(storageKey, JSON.stringify(saved));
      else window.localStorage.removeItem(storageKey);
    } catch (error) {
      /* kept in memory only */
    }
  }

  function sessionFrom(data) {
    const now = Date.now();
    return {
      token: data.session,
      expiresAt: now + data.expires_in * 1000,
      refreshAt: typeof data.refresh_in === "number" ? now + data.refresh_in * 1000 : null,
    };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function newMessageId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- markdown, rendered as DOM nodes ---------------------------------------------

  // Bold, italics, code, [label](url) links and bare http(s) addresses.
  const INLINE =
    /(\*\*[^*]+\*\*|__[^_]+__|\*[^*\s][^*]*\*|_[^_\s][^_]*_|`[^`]+`|\[[^\]]+\]\([^)\s]+\)|https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"])/;

  function safeUrl(value, allowMail) {
    try {
      const url = new URL(value, base);
      const schemes = allowMail ? ["http:", "https:", "mailto:"] : ["http:", "https:"];
      return schemes.includes(url.protocol) ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  // A link opening in a new tab, or only its label when the address is not http(s)/mailto.
  function appendLink(parent, address, label) {
    const href = safeUrl(address, true);
    if (!href) {
      parent.appendChild(document.createTextNode(label));
      return;
    }
    const link = document.createElement("a");
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
    if (label === address) link.textContent = label;
    else appendInline(link, label);
    parent.appendChild(link);
  }

  function appendInline(parent, text) {
    const parts = text.split(INLINE);
    for (let i = 0; i < parts.length; i += 1) {
      const part = parts[i];
      if (!part) continue;
      if (i % 2 === 0) {
        parent.appendChild(document.createTextNode(part));
      } else if (part.startsWith("**") || part.startsWith("__")) {
        const strong = document.createElement("strong");
        appendInline(strong, part.slice(2, -2));
        parent.appendChild(strong);
      } else if (part.startsWith("`")) {
        const code = document.createElement("code");
        code.textContent = part.slice(1, -1);
        parent.appendChild(code);
      } else if (/^https?:\/\//.test(part)) {
        appendLink(parent, part, part);
      } else if (part.startsWith("[")) {
        const split = part.indexOf("](");
        const label = part.slice(1, split);
        appendLink(parent, part.slice(split + 2, -1), label);
      } else {
        const em = document.createElement("em");
        appendInline(em, part.slice(1, -1));
        parent.appendChild(em);
      }
    }
  }

  function renderMarkdown(text) {
    const fragment = document.createDocumentFragment();
    for (const block of String(text).split(/\n{2,}/)) {
      const lines = block.split("\n");
      const bullets = lines.every((line) => /^\s*[-*] /.test(line));
      const numbers = lines.every((line) => /^\s*\d+[.)] /.test(line));
      if (bullets || numbers) {
        const list = document.createElement(bullets ? "ul" : "ol");
        for (const line of lines) {
          const item = document.createElement("li");
          appendInline(item, line.replace(/^\s*([-*]|\d+[.)]) /, ""));
          list.appendChild(item);
        }
        fragment.appendChild(list);
        continue;
      }
      const paragraph = document.createElement("p");
      lines.forEach((line, index) => {
        if (index > 0) paragraph.appendChild(document.createElement("br"));
        appendInline(paragraph, line);
      });
      fragment.appendChild(paragraph);
    }
    return fragment;
  }

  // ---- the widget's DOM ------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const host = element("div");
  host.id = "lepton-web-chat";
  const root = host.attachShadow({ mode: "open" });
  const style = element("link");
  style.rel = "stylesheet";
  style.href = base + "widget.css";
  root.appendChild(style);

  const launcher = element("button", "launcher", "Chat");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open the chat");
  const panel = element("section", "panel");
  panel.setAttribute("aria-label", title);
  panel.hidden = true;

  const header = element("header", "header");
  const heading = element("h2", "title", title);
  const status = element("span", "status", "Connecting…");
  status.setAttribute("role", "status");
  const close = element("button", "close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Close the chat");
  header.append(heading, status, close);

  const log = element("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  const typing = element("div", "typing");
  typing.setAttribute("aria-label", "The assistant is typing");
  typing.append(element("span", "dot"), element("span", "dot"), element("span", "dot"));
  typing.hidden = true;

  const form = element("form", "composer");
  const input = element("input", "input");
  input.type = "text";
  input.placeholder = "Type a message…";
  input.setAttribute("aria-label", "Your message");
  input.autocomplete = "off";
  const sendButton = element("button", "send", "Send");
  sendButton.type = "submit";
  form.append(input, sendButton);

  panel.append(header, log, typing, form);
  root.append(launcher, panel);

  function setOpen(open) {
    panel.hidden = !open;
    launcher.hidden = open;
    if (open) input.focus();
  }
  launcher.addEventListener("click", () => setOpen(true));
  close.addEventListener("click", () => setOpen(false));

  const problems = new Set();
  function setProblem(name, active) {
    if (active) problems.add(name);
    else problems.delete(name);
    const offline = problems.size > 0;
    status.textContent = offline ? "Reconnecting…" : "Online";
    panel.classList.toggle("offline", offline);
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function clearQuickReplies() {
    for (const group of log.querySelectorAll(".quick-replies")) group.remove();
  }

  function renderMessage(message, withButtons) {
    const bubble = element("div", "message " + (message.sender === "user" ? "user" : "bot"));
    if (message.sender === "user") {
      bubble.textContent = message.text || "";
    } else if (message.text) {
      bubble.appendChild(renderMarkdown(message.text));
    }
    if (message.image) {
      const src = safeUrl(message.image, false);
      if (src) {
        const image = element("img", "image");
        image.src = src;
        image.alt = "Image from the assistant";
        image.loading = "lazy";
        bubble.appendChild(image);
      }
    }
    const hasButtons = Array.isArray(message.buttons) && message.buttons.length > 0;
    // Nothing to show (an image with a refused address): no empty bubble.
    if (!bubble.childNodes.length && !hasButtons) return bubble;
    log.appendChild(bubble);
    if (withButtons && hasButtons) {
      const group = element("div", "quick-replies");
      for (const button of message.buttons) {
        const choice = element("button", "quick-reply", button.title || button.payload);
        choice.type = "button";
        choice.addEventListener("click", () => send(button.title || button.payload, button.payload));
        group.appendChild(choice);
      }
      log.appendChild(group);
    }
    scrollToEnd();
    return bubble;
  }

  // A thumb drawn as SVG (Material Design's "thumb_up", Apache-2.0), so it shows without
  // an emoji font; the "down" one is the same path turned over by the stylesheet.
  const THUMB =
    "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 " +
    "7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

  function thumbIcon() {
    const svgNs = "http://www.w3.org/2000/svg";
    const icon = document.createElementNS(svgNs, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    const path = document.createElementNS(svgNs, "path");
    path.setAttribute("d", THUMB);
    icon.appendChild(path);
    return icon;
  }

  // Thumbs up/down under an answer, rating it by the id of the message it replied to
  // (POST feedback). One vote per answer: both buttons are disabled once it is sent.
  function renderFeedback(bubble, messageId) {
    const group = element("div", "feedback");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Was this answer helpful?");
    group.dataset.testid = "chat-feedback";
    const thanks = element("span", "feedback-status");
    thanks.setAttribute("role", "status");
    const buttons = [
      ["up", "This answer helped"],
      ["down", "This answer did not help"],
    ].map(([rating, label]) => {
      const button = element("button", "feedback-button " + rating);
      button.appendChild(thumbIcon());
      button.type = "button";
      button.setAttribute("aria-label", label);
      button.setAttribute("aria-pressed", "false");
      button.dataset.testid = "chat-feedback-" + rating;
      button.addEventListener("click", () => vote(rating, button));
      return button;
    });
    async function vote(rating, chosen) {
      buttons.forEach((button) => {
        button.disabled = true;
      });
      chosen.setAttribute("aria-pressed", "true");
      chosen.classList.add("chosen");
      let reply = null;
      try {
        reply = await requestUntilAnswered("POST", "feedback", { message: messageId, rating }, true);
      } catch (error) {
        /* no session could be had: reported below */
      }
      thanks.textContent = reply && reply.status === 200 ? "Thanks for your feedback" : "Your rating could not be saved";
      group.classList.toggle("failed", !(reply && reply.status === 200));
    }
    group.append(...buttons, thanks);
    bubble.after(group);
  }

  function renderNotice(text) {
    log.appendChild(element("div", "notice", text));
    scrollToEnd();
  }

  function renderTranscript(messages) {
    log.replaceChildren();
    messages.forEach((message, index) => renderMessage(message, index === messages.length - 1));
  }

  // ---- talking to the server -------------------------------------------------------

  // Seconds the server asks us to wait (429, 503), within reason.
  function retryAfterMs(reply, fallback) {
    const seconds = Number(reply.headers.get("Retry-After") || (reply.data && reply.data.retry_after_seconds));
    return seconds > 0 ? Math.min(seconds * 1000, 60000) : fallback;
  }

  async function request(method, path, body, authorised) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = authorised ? await session() : null;
    if (token) headers.Authorization = "Bearer " + token;
    const reply = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    let data = {};
    try {
      data = await reply.json();
    } catch (error) {
      /* an empty or non-JSON body (a proxy's error page) */
    }
    return { status: reply.status, data, token, headers: reply.headers };
  }

  // Retries dropped connections, 429 and 502/503/504 with backoff until the server
  // answers; a message keeps its id across retries, so the server processes it once.
  // A refused session is replaced by a new one, once.
  async function requestUntilAnswered(method, path, body, authorised) {
    let delay = 500;
    let renewedSession = false;
    for (;;) {
      let wait = delay;
      try {
        const reply = await request(method, path, body, authorised);
        if (reply.status === 401 && authorised && !renewedSession) {
          renewedSession = true;
          forgetSession(reply.token);
          continue;
        }
        if (reply.status !== 429 && !RETRYABLE.has(reply.status)) {
          setProblem("request", false);
          return reply;
        }
        wait = retryAfterMs(reply, delay);
      } catch (error) {
        /* network error: retried below */
      }
      setProblem("request", true);
      await sleep(wait);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }

  // ---- sessions ------------------------------------------------------------------

  let pendingSession = null;
  let refreshTimer = null;
  let announceNewConversation = false;

  // The current token: renewed first when it is due, a new session when there is none.
  function session() {
    if (pendingSession) return pendingSession;
    const saved = savedSession();
    const now = Date.now();
    if (saved && now < saved.expiresAt) {
      if (saved.refreshAt === null || now < saved.refreshAt) {
        scheduleRefresh(saved);
        return Promise.resolve(saved.token);
      }
      pendingSession = renew(saved);
    } else {
      pendingSession = newSession(saved !== null);
    }
    const settle = () => {
      pendingSession = null;
    };
    pendingSession.then(settle, settle);
    return pendingSession;
  }

  async function newSession(replacesOne) {
    saveSession(null);
    const reply = await requestUntilAnswered("POST", "sessions", undefined, false);
    if (reply.status !== 201 || !reply.data.session) {
      throw new Error(reply.data.message || reply.data.error || "no session");
    }
    const fresh = sessionFrom(reply.data);
    saveSession(fresh);
    scheduleRefresh(fresh);
    if (replacesOne) announceNewConversation = true;
    return fresh.token;
  }

  async function renew(saved) {
    let reply = null;
    try {
      reply = await fetch(base + "sessions/refresh", {
        method: "POST",
        headers: { Authorization: "Bearer " + saved.token },
        cache: "no-store",
      });
    } catch (error) {
      /* offline: the token still works until it expires; try again soon */
    }
    if (reply && reply.status === 200) {
      const fresh = sessionFrom(await reply.json());
      saveSession(fresh);
      scheduleRefresh(fresh);
      return fresh.token;
    }
    if (reply && reply.status === 401) return newSession(true);
    scheduleRefresh({ refreshAt: Date.now() + 30000 });
    return saved.token;
  }

  // Renews in the background while the page is open, so an idle page keeps its session.
  function scheduleRefresh(saved) {
    if (refreshTimer) clearTimeout(refreshTimer);
    refreshTimer = null;
    if (saved.refreshAt === null) return;
    refreshTimer = setTimeout(() => session().catch(() => {}), Math.max(0, saved.refreshAt - Date.now()));
  }

  // The server refused `token` (expired or ended): the next request starts a new session.
  function forgetSession(token) {
    const saved = savedSession();
    if (saved && saved.token === token) saveSession({ ...saved, expiresAt: 0 });
  }

  function noticeIfNewConversation() {
    if (!announceNewConversation) return;
    announceNewConversation = false;
    renderNotice("Your earlier chat session has ended. This is a new conversation.");
  }

  async function loadHistory() {
    const reply = await requestUntilAnswered("GET", "history", undefined, true);
    if (reply.status === 200) renderTranscript(reply.data.messages || []);
    else renderNotice(reply.data.message || reply.data.error || "The conversation could not be loaded.");
    noticeIfNewConversation();
  }

  let queue = Promise.resolve();
  function send(text, payload) {
    text = String(text).trim();
    if (!text) return queue;
    clearQuickReplies();
    const bubble = renderMessage({ sender: "user", text }, false);
    bubble.classList.add("pending");
    const body = { text, id: newMessageId() };
    if (payload) body.payload = payload;
    queue = queue.then(async () => {
      typing.hidden = false;
      scrollToEnd();
      try {
        const reply = await requestUntilAnswered("POST", "messages", body, true);
        bubble.classList.remove("pending");
        noticeIfNewConversation();
        if (reply.status === 200) {
          const messages = reply.data.messages || [];
          const bubbles = messages.map((message, index) => renderMessage(message, index === messages.length - 1));
          const shown = bubbles.filter((answer) => answer.isConnected);
          if (shown.length) renderFeedback(shown[shown.length - 1], body.id);
        } else {
          bubble.classList.add("failed");
          renderNotice(reply.data.message || reply.data.error || "The message could not be sent.");
        }
      } finally {
        typing.hidden = true;
      }
    });
    return queue;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    input.value = "";
    send(text);
  });

  // Resolves when the customer looks at this page again (or writes in it).
  let attentionWaiters = [];
  function attention() {
    return new Promise((resolve) => attentionWaiters.push(resolve));
  }
  function noticeAttention() {
    const waiters = attentionWaiters;
    attentionWaiters = [];
    waiters.forEach((resolve) => resolve());
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") noticeAttention();
  });
  window.addEventListener("focus", noticeAttention);
  form.addEventListener("submit", noticeAttention);

  // Reads one server-sent-event stream to its end; returns the reason the server gave
  // for closing it, if any.
  async function readStream(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const closed = handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (closed) return closed;
      }
    }
  }

  // Messages the bot sends outside a reply (reminders, an agent's answer), as
  // server-sent events read with fetch so the token travels in a header, not the URL.
  async function listen() {
    let delay = 1000;
    let connectedBefore = false;
    for (;;) {
      let wait = delay;
      let closedBecause = null;
      try {
        const token = await session();
        const reply = await fetch(base + "events", {
          headers: { Authorization: "Bearer " + token },
          cache: "no-store",
        });
        if (reply.status === 401) {
          forgetSession(token);
          wait = 0;
          throw new Error("session refused");
        }
        if (reply.status === 429) {
          wait = retryAfterMs({ headers: reply.headers, data: null }, delay);
          throw new Error("too many streams");
        }
        if (!reply.ok || !reply.body) throw new Error("event stream refused: " + reply.status);
        setProblem("stream", false);
        // Whatever arrived while the stream was down is in the conversation's history.
        if (connectedBefore) {
          queue = queue.then(loadHistory);
          await queue;
        }
        connectedBefore = true;
        delay = 1000;
        closedBecause = await readStream(reply.body);
        if (closedBecause === "revoked") forgetSession(token);
      } catch (error) {
        /* reconnect below */
      }
      if (closedBecause === "replaced") {
        // A newer page of this session holds the stream now; this one takes it back
        // when the customer returns to it. Messages still work meanwhile.
        await attention();
        continue;
      }
      if (closedBecause === "revoked" || closedBecause === "expired") continue;
      setProblem("stream", true);
      await sleep(wait);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS * 3);
    }
  }

  // Shows a pushed message; returns the reason of a `closed` event, else null.
  function handleEvent(block) {
    const lines = block.split("\n");
    const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
    try {
      if (lines.includes("event: closed")) return JSON.parse(data).reason || "closed";
      if (!lines.includes("event: message")) return null;
      clearQuickReplies();
      renderMessage(JSON.parse(data), true);
    } catch (error) {
      /* malformed event: ignored */
    }
    return null;
  }

  function start() {
    document.body.appendChild(host);
    setOpen(openAtLoad);
    // Messages typed before the history arrives wait for it, so the order holds.
    queue = loadHistory();
    listen();
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
