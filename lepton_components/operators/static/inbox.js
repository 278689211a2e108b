// The agent inbox: the queue on the left, the open conversation on the right.
//
// It polls the console's JSON API every second (the queue, and the open conversation),
// so a new conversation or a customer's message shows within two seconds. Everything a
// customer wrote is put in the page as text (textContent), never as HTML. Requests that
// change something carry the page's CSRF token as X-CSRF-Token. Conversation ids hold
// ':' and are percent-encoded in URLs. The open conversation is kept in the URL's hash
// (#c=<id>), so a reload opens it again.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var prefix = document.querySelector('meta[name="console-prefix"]').content;
  var csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  var root = document.getElementById("inbox");
  var isAdmin = root.dataset.admin === "true";
  var username = root.dataset.username;
  var el = function (id) { return document.getElementById(id); };

  var selected = null;       // conversation id shown on the right
  var current = null;        // its handoff record, from the last poll
  var lastQueue = "";        // the last queue answer, to redraw only on change
  var lastTranscript = "";
  var busy = false;          // an action (claim, reply, release) is in flight

  function api(path) { return prefix + "/api/handoffs" + path; }
  function conversationPath(id) { return "/" + encodeURIComponent(id); }

  function request(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrfToken;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(url, options).then(function (reply) {
      return reply.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (ignored) { data = null; }
        if (reply.status === 401) {
          window.location.assign(prefix + "/login?next=" + encodeURIComponent(window.location.pathname));
        }
        return { status: reply.status, data: data || {} };
      });
    });
  }

  function showError(message) {
    var box = el("inbox-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function showNotice(message) {
    var box = el("inbox-notice");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function minutesSince(then, now) {
    var minutes = Math.max(0, Math.floor((now - then) / 60));
    return minutes < 1 ? "just now" : minutes + " min";
  }

  function reasonText(reason) {
    return reason === "customer_asked" ? "asked for a person" : "bot could not help";
  }

  // The queue ------------------------------------------------------------------------

  function queueItem(handoff, now) {
    var item = document.createElement("li");
    item.dataset.testid = "queue-item";
    item.dataset.conversationId = handoff.conversation_id;
    item.dataset.status = handoff.status;
    item.id = "queue-item-" + handoff.conversation_id;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "queue-item" + (handoff.conversation_id === selected ? " selected" : "");
    button.setAttribute("aria-pressed", handoff.conversation_id === selected ? "true" : "false");
    var title = document.createElement("span");
    title.className = "queue-title";
    title.textContent = handoff.channel + " · " + handoff.conversation_id;
    var meta = document.createElement("span");
    meta.className = "queue-meta muted";
    var since = handoff.status === "held" ? handoff.claimed_at : handoff.opened_at;
    meta.textContent = (handoff.status === "held" ? "held by " + handoff.agent + ", " : "waiting ") +
      minutesSince(since, now) + " · " + reasonText(handoff.reason) + " · " + handoff.queue;
    button.appendChild(title);
    button.appendChild(meta);
    if (handoff.unread > 0) {
      var unread = document.createElement("span");
      unread.className = "tag warn queue-unread";
      unread.dataset.testid = "queue-unread";
      unread.textContent = handoff.unread + " new";
      button.appendChild(unread);
    }
    button.addEventListener("click", function () { select(handoff.conversation_id); });
    item.appendChild(button);
    return item;
  }

  function fillList(name, handoffs, now) {
    var list = el(name + "-list");
    if (!list) { return; }
    list.replaceChildren.apply(list, handoffs.map(function (handoff) { return queueItem(handoff, now); }));
    el(name + "-count").textContent = String(handoffs.length);
    el(name + "-empty").hidden = handoffs.length > 0;
  }

  function drawQueue(data) {
    var key = JSON.stringify([data.waiting, data.held_by_me, data.held_by_others, selected, Math.floor(data.now / 60)]);
    if (key === lastQueue) { return; }
    lastQueue = key;
    fillList("waiting", data.waiting || [], data.now);
    fillList("mine", data.held_by_me || [], data.now);
    if (isAdmin) { fillList("others", data.held_by_others || [], data.now); }
    var waiting = (data.waiting || []).length;
    document.title = (waiting ? "(" + waiting + ") " : "") + "Inbox · Lepton operators";
  }

  function pollQueue() {
    return request("GET", api("")).then(function (reply) {
      if (reply.status === 200) {
        showError("");
        drawQueue(reply.data);
      } else if (reply.status !== 401) {
        showError(reply.data.message || "The inbox could not be loaded (HTTP " + reply.status + ").");
      }
    });
  }

  // The open conversation ------------------------------------------------------------

  function bubble(message) {
    var item = document.createElement("div");
    var kind = message.sender === "customer" ? "user" : message.sender;
    item.className = "bubble " + kind + (message.operator && message.sender !== "agent" ? " notice-bubble" : "");
    item.dataset.testid = "message";
    item.dataset.sender = message.sender;
    var meta = document.createElement("span");
    meta.className = "meta";
    var who = message.sender === "customer" ? "Customer" :
      message.sender === "agent" ? (message.operator && message.operator.username) || "Agent" : "Bot";
    var at = message.at ? new Date(message.at * 1000).toLocaleTimeString() : "";
    meta.textContent = who + (at ? " · " + at : "");
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text || (message.image ? "[image] " + message.image : "");
    item.appendChild(meta);
    item.appendChild(text);
    if (message.buttons && message.buttons.length) {
      var buttons = document.createElement("span");
      buttons.className = "meta";
      buttons.textContent = "Buttons: " + message.buttons.join(" | ");
      item.appendChild(buttons);
    }
    return item;
  }

  function drawConversation(data) {
    current = data.handoff;
    el("no-conversation").hidden = true;
    el("conversation-view").hidden = false;
    el("conversation-title").textContent = current.channel + " · " + current.conversation_id;
    var status = el("conversation-status");
    status.textContent = current.status === "held" ? "held by " + current.agent : "waiting";
    status.className = "tag" + (current.status === "held" ? " ok" : " warn");
    el("conversation-meta").textContent = reasonText(current.reason) + " · queue " + current.queue;
    var mine = current.status === "held" && current.agent === username;
    var mayAnswer = mine || (isAdmin && current.status === "held");
    el("claim-button").hidden = current.status !== "waiting";
    el("release-button").hidden = !(mayAnswer || (isAdmin && current.status === "waiting"));
    el("reply-form").hidden = !mayAnswer;
    var key = JSON.stringify(data.messages);
    if (key !== lastTranscript) {
      lastTranscript = key;
      var transcript = el("transcript");
      var atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
      transcript.replaceChildren.apply(transcript, data.messages.map(bubble));
      if (atBottom) { transcript.scrollTop = transcript.scrollHeight; }
    }
  }

  function closeConversation(message) {
    selected = null;
    current = null;
    lastTranscript = "";
    lastQueue = "";
    el("conversation-view").hidden = true;
    el("no-conversation").hidden = false;
    el("no-conversation").textContent = message || "Pick a conversation on the left.";
    if (window.location.hash) { history.replaceState(null, "", window.location.pathname); }
  }

  function pollConversation() {
    if (!selected) { return Promise.resolve(); }
    var id = selected;
    return request("GET", api(conversationPath(id))).then(function (reply) {
      if (id !== selected) { return; }
      if (reply.status === 200) {
        drawConversation(reply.data);
      } else if (reply.status === 404) {
        closeConversation("That conversation is back with the bot (handed back or timed out).");
      } else if (reply.status !== 401) {
        showError(reply.data.message || "The conversation could not be loaded (HTTP " + reply.status + ").");
      }
    });
  }

  function select(id) {
    selected = id;
    current = null;
    lastTranscript = "";
    lastQueue = "";
    showNotice("");
    el("transcript").replaceChildren();
    history.replaceState(null, "", "#c=" + encodeURIComponent(id));
    pollConversation().then(pollQueue);
  }

  // Actions --------------------------------------------------------------------------

  function act(path, body, done) {
    if (!selected || busy) { return; }
    busy = true;
    var id = selected;
    setButtonsDisabled(true);
    request("POST", api(conversationPath(id) + path), body).then(function (reply) {
      if (reply.status === 200) {
        showError("");
        var delivery = reply.data.delivery;
        showNotice(delivery && !delivery.pushed ? delivery.note : "");
        if (done) { done(reply); }
      } else if (reply.status !== 401) {
        showError(reply.data.message || "That did not work (HTTP " + reply.status + ").");
        if (reply.status === 502 && done) { done(reply); }
      }
      return Promise.all([pollConversation(), pollQueue()]);
    }).catch(function () {
      showError("The server could not be reached; check your connection and try again.");
    }).then(function () {
      busy = false;
      setButtonsDisabled(false);
    });
  }

  function setButtonsDisabled(disabled) {
    ["claim-button", "release-button", "reply-send"].forEach(function (id) { el(id).disabled = disabled; });
  }

  el("claim-button").addEventListener("click", function () {
    act("/claim", {}, function () { el("reply-text").focus(); });
  });

  el("release-button").addEventListener("click", function () {
    act("/release", {}, function (reply) {
      if (reply.status === 200 || reply.status === 502) {
        closeConversation("You handed the conversation back to the bot.");
      }
    });
  });

  var replyText = el("reply-text");
  var maxLength = parseInt(replyText.getAttribute("maxlength"), 10);

  function updateCount() { el("reply-count").textContent = replyText.value.length + " / " + maxLength; }

  function sendReply() {
    var text = replyText.value.trim();
    if (!text) { return; }
    act("/messages", { text: text }, function () { replyText.value = ""; updateCount(); replyText.focus(); });
  }

  el("reply-form").addEventListener("submit", function (event) { event.preventDefault(); sendReply(); });
  replyText.addEventListener("input", updateCount);
  replyText.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendReply();
    }
  });

  // Polling --------------------------------------------------------------------------

  function loop() {
    Promise.all([pollQueue(), pollConversation()]).catch(function () {
      showError("The server could not be reached; retrying every second.");
    }).then(function () { window.setTimeout(loop, POLL_MS); });
  }

  var fromHash = /^#c=(.+)$/.exec(window.location.hash);
  if (fromHash) {
    try { selected = decodeURIComponent(fromHash[1]); } catch (ignored) { selected = null; }
  }
  loop();
}());
