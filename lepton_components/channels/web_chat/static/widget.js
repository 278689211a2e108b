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

  // ---- session -------------------------------------------------------------------

  let memoryToken = null;

  function savedToken() {
    try {
      return window.localStorage.getItem(storageKey);
    } catch (error) {
      return memoryToken; // storage disabled: the session lasts as long as the page
    }
  }

  function saveToken(token) {
    memoryToken = token;
    try {
      window.localStorage.setItem(storageKey, token);
    } catch (error) {
      /* kept in memory only */
    }
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

  function renderNotice(text) {
    log.appendChild(element("div", "notice", text));
    scrollToEnd();
  }

  function renderTranscript(messages) {
    log.replaceChildren();
    messages.forEach((message, index) => renderMessage(message, index === messages.length - 1));
  }

  // ---- talking to the server -------------------------------------------------------

  async function request(method, path, body, authorised) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (authorised) headers.Authorization = "Bearer " + (await session());
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
    return { status: reply.status, data };
  }

  // Retries dropped connections and 502/503/504 with backoff until the server answers;
  // a message keeps its id across retries, so the server processes it once.
  async function requestUntilAnswered(method, path, body, authorised) {
    let delay = 500;
    for (;;) {
      try {
        const reply = await request(method, path, body, authorised);
        if (!RETRYABLE.has(reply.status)) {
          setProblem("request", false);
          return reply;
        }
      } catch (error) {
        /* network error: retried below */
      }
      setProblem("request", true);
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }

  let pendingSession = null;
  function session() {
    const token = savedToken();
    if (token) return Promise.resolve(token);
    if (!pendingSession) {
      pendingSession = requestUntilAnswered("POST", "sessions", undefined, false).then((reply) => {
        pendingSession = null;
        if (!reply.data.session) throw new Error(reply.data.message || reply.data.error || "no session");
        saveToken(reply.data.session);
        return reply.data.session;
      });
    }
    return pendingSession;
  }

  async function loadHistory() {
    const reply = await requestUntilAnswered("GET", "history", undefined, true);
    if (reply.status === 200) renderTranscript(reply.data.messages || []);
    else renderNotice(reply.data.message || reply.data.error || "The conversation could not be loaded.");
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
        if (reply.status === 200) {
          const messages = reply.data.messages || [];
          messages.forEach((message, index) => renderMessage(message, index === messages.length - 1));
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

  // Messages the bot sends outside a reply (reminders, an agent's answer), as
  // server-sent events read with fetch so the token travels in a header, not the URL.
  async function listen() {
    let delay = 1000;
    let connectedBefore = false;
    for (;;) {
      try {
        const reply = await fetch(base + "events", {
          headers: { Authorization: "Bearer " + (await session()) },
          cache: "no-store",
        });
        if (!reply.ok || !reply.body) throw new Error("event stream refused: " + reply.status);
        setProblem("stream", false);
        // Whatever arrived while the stream was down is in the conversation's history.
        if (connectedBefore) {
          queue = queue.then(loadHistory);
          await queue;
        }
        connectedBefore = true;
        delay = 1000;
        const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (error) {
        /* reconnect below */
      }
      setProblem("stream", true);
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS * 3);
    }
  }

  function handleEvent(block) {
    const lines = block.split("\n");
    if (!lines.includes("event: message")) return;
    const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
    try {
      clearQuickReplies();
      renderMessage(JSON.parse(data), true);
    } catch (error) {
      /* malformed event: ignored */
    }
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
