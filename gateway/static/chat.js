// Pulseboard's browser chat: one WebSocket to /ws, the protocol of docs/protocol.md, no dependencies.
// Untrusted text (chat, names, notifications) is only ever inserted with textContent, never as HTML.
"use strict";

(() => {
  const HISTORY = 50;
  const MAX_LOG = 500;
  const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013, 4001]);
  const NOTIFY_REFRESH_MS = 5000;
  const BANNER_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), settings: $("settings"), room: $("room"), name: $("name"), token: $("token"),
    banners: $("banners"), log: $("log"), composer: $("composer"), message: $("message"), send: $("send"),
    presence: $("presence"), count: $("count"), directTo: $("direct-to"),
  };

  const state = {
    ws: null, attempt: 0, retryTimer: null, notifyTimer: null, restarting: false,
    clientId: null, me: null, room: "chat:lobby", name: "", token: "",
    positions: new Map(), // channel -> {offset, epoch}: the last publication seen, for resume
    resumed: new Map(),   // channel -> position sent as `since` on this connection
    followed: new Set(),  // notify: channels subscribed on this connection
    listed: false,        // whether this connection has read the channel list once
    nextId: 1, sending: new Map(), // op id -> text, until its ack or error
    presence: new Map(),  // client_id -> name in the current room
    directTo: null,       // {clientId, name} when the next message is a direct one
  };

  // --- connection ---------------------------------------------------------------------------

  function setStatus(kind, text) {
    ui.status.className = `status ${kind}`;
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
  }

  function wsUrl() {
    const url = new URL("/ws", window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    if (state.name) url.searchParams.set("name", state.name); // a display name, not a secret
    return url.toString();
  }

  function send(op) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return null;
    const id = state.nextId++;
    ws.send(JSON.stringify({ ...op, id }));
    return id;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    setStatus(state.attempt ? "reconnecting" : "connecting",
      state.attempt ? `reconnecting (attempt ${state.attempt})…` : "connecting…");
    const ws = new WebSocket(wsUrl());
    state.ws = ws;
    ws.onopen = () => {
      // The token goes in the first message, never in the URL (logs and proxies keep URLs).
      if (state.token) ws.send(JSON.stringify({ op: "auth", id: state.nextId++, token: state.token }));
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      for (const message of Array.isArray(frame) ? frame : [frame]) handle(message);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      closed(event.code, event.reason);
    };
  }

  function closed(code, reason) {
    setComposer(false);
    clearInterval(state.notifyTimer);
    state.followed.clear();
    state.listed = false;
    state.resumed.clear();
    for (const text of state.sending.values()) systemLine(`Not sent (connection lost): ${text}`);
    state.sending.clear();
    if (state.restarting) {
      state.restarting = false;
      state.attempt = 0;
      connect();
      return;
    }
    if (code === 4401) {
      setStatus("disconnected", `disconnected: unauthorized${reason ? ` (${reason})` : ""}; enter a token`);
      return;
    }
    if (!RECONNECT_CODES.has(code)) {
      setStatus("disconnected", `disconnected: ${code}${reason ? ` ${reason}` : ""}`);
      return;
    }
    state.attempt += 1;
    // Jittered exponential backoff: many pages that lost one gateway do not all come back at once.
    const delay = Math.min(10, 0.5 * 2 ** (state.attempt - 1)) * (0.5 + Math.random() / 2);
    setStatus("reconnecting", `reconnecting in ${delay.toFixed(1)} s (attempt ${state.attempt})`);
    state.retryTimer = setTimeout(connect, delay * 1000);
  }

  function ready() {
    state.attempt = 0;
    setStatus("connected", `connected as ${state.me}`);
    setComposer(true);
    joinRoom();
    followNotifications();
    state.notifyTimer = setInterval(followNotifications, NOTIFY_REFRESH_MS);
  }

  function subscribe(channel, history) {
    const since = state.positions.get(channel);
    if (since) {
      state.resumed.set(channel, since);
      send({ op: "subscribe", channel, since });
    } else {
      send({ op: "subscribe", channel, history });
    }
  }

  function joinRoom() {
    state.presence.clear();
    renderPresence();
    subscribe(state.room, HISTORY);
    send({ op: "presence", channel: state.room });
  }

  function switchRoom(room) {
    if (room === state.room) return;
    send({ op: "unsubscribe", channel: state.room });
    state.positions.delete(state.room); // its log is cleared: come back with history, not a resume
    state.room = room;
    ui.log.replaceChildren();
    setDirect(null);
    if (state.ws && state.me) joinRoom();
  }

  async function followNotifications() {
    let listing;
    try {
      // The most recently active notify: channels, as many as the page follows (the server's default page).
      const response = await fetch("/api/channels?prefix=notify:&order=recent", { headers: authHeaders() });
      if (!response.ok) return;
      listing = await response.json();
    } catch { return; }
    for (const { name, epoch } of listing.channels) {
      if (!name.startsWith("notify:") || state.followed.has(name)) continue;
      state.followed.add(name);
      if (state.listed && !state.positions.has(name)) {
        // A channel that appeared since the page connected: all it published is news, from offset 0.
        state.resumed.set(name, { offset: 0, epoch });
        send({ op: "subscribe", channel: name, since: { offset: 0, epoch } });
      } else {
        subscribe(name, 0);
      }
    }
    state.listed = true;
  }

  function authHeaders() {
    return state.token ? { Authorization: `Bearer ${state.token}` } : {};
  }

  // --- messages -----------------------------------------------------------------------------

  function handle(message) {
    switch (message.type) {
      case "welcome":
        state.clientId = message.client_id;
        state.me = message.name;
        if (!state.token) {
          if (message.auth_required) setStatus("disconnected", "this gateway needs a token");
          else ready();
        }
        break;
      case "authenticated":
        state.me = message.name;
        ready();
        break;
      case "subscribed": onSubscribed(message); break;
      case "pub": onPub(message); break;
      case "join": case "leave": onMembership(message); break;
      case "presence":
        if (message.channel !== state.room) break;
        state.presence = new Map(message.clients.map((c) => [c.client_id, c.name]));
        renderPresence();
        break;
      case "direct":
        line("direct", `direct from ${message.name}`, message.data.text ?? JSON.stringify(message.data),
          Date.now() / 1000, () => setDirect({ clientId: message.from, name: message.name }));
        break;
      case "ack": onAck(message); break;
      case "error": onError(message); break;
      default: break;
    }
  }

  function isNew(channel, offset, epoch) {
    const last = state.positions.get(channel);
    if (last && last.epoch === epoch && offset <= last.offset) return false;
    state.positions.set(channel, { offset, epoch });
    return true;
  }

  function onSubscribed(message) {
    const since = state.resumed.get(message.channel);
    state.resumed.delete(message.channel);
    if (since && !message.recovered) reloadHistory(message);
  }

  async function reloadHistory(subscribed) {
    // Nothing was replayed: read what we missed over HTTP, up to the subscription's offset.
    const url = `/api/channels/${encodeURIComponent(subscribed.channel)}/history?limit=${HISTORY}`;
    try {
      const response = await fetch(url, { headers: authHeaders() });
      if (!response.ok) return;
      const page = await response.json();
      const missed = page.publications.filter((p) => p.epoch === subscribed.epoch && p.offset <= subscribed.offset);
      if (subscribed.channel === state.room && missed.length) systemLine(`Reloaded ${missed.length} earlier messages`);
      for (const pub of missed) onPub(pub);
    } catch { /* the live stream goes on; the log just has a gap */ }
  }

  function onPub(pub) {
    if (!isNew(pub.channel, pub.offset, pub.epoch)) return;
    if (pub.channel.startsWith("notify:")) {
      banner(pub.data.level, pub.data.title, pub.data.body || "");
    } else if (pub.channel === state.room) {
      const own = pub.data.sender === state.me;
      line(own ? "own" : "other", pub.data.sender, pub.data.text, pub.ts);
    }
  }

  function onMembership(message) {
    if (message.channel !== state.room) return;
    if (message.type === "join") state.presence.set(message.client_id, message.name);
    else state.presence.delete(message.client_id);
    renderPresence();
    const who = message.client_id === state.clientId ? "You" : message.name;
    systemLine(`${who} ${message.type === "join" ? "joined" : "left"} ${state.room}`);
  }

  function onAck(message) {
    const pending = state.sending.get(message.ref);
    if (pending === undefined) return;
    state.sending.delete(message.ref);
    if (pending.direct) line("direct", `direct to ${pending.direct.name}`, pending.text, Date.now() / 1000);
  }

  function onError(message) {
    const pending = state.sending.get(message.ref);
    state.sending.delete(message.ref);
    if (pending !== undefined) {
      systemLine(`Not sent (${message.code}): ${message.detail}`);
      if (!ui.message.value) ui.message.value = pending.text; // nothing typed is lost
    } else {
      systemLine(`Error ${message.code}: ${message.detail}`);
    }
  }

  // --- rendering (textContent only) ---------------------------------------------------------

  function append(item) {
    const log = ui.log;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
    log.appendChild(item);
    while (log.childElementCount > MAX_LOG) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight; // only when the reader was already at the bottom
  }

  function line(kind, who, text, ts, onClick) {
    const item = document.createElement("li");
    item.className = kind;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${who} · ${new Date(ts * 1000).toLocaleTimeString()}`;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(meta, body);
    if (onClick) item.addEventListener("click", onClick);
    append(item);
  }

  function systemLine(text) {
    const item = document.createElement("li");
    item.className = "system";
    item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    append(item);
  }

  function renderPresence() {
    const items = [...state.presence].sort((a, b) => a[1].localeCompare(b[1])).map(([clientId, name]) => {
      const item = document.createElement("li");
      item.textContent = clientId === state.clientId ? `${name} (you)` : name;
      item.dataset.clientId = clientId;
      if (clientId === state.clientId) item.className = "me";
      else item.addEventListener("click", () => setDirect({ clientId, name }));
      return item;
    });
    ui.presence.replaceChildren(...items);
    ui.count.textContent = String(items.length);
  }

  function banner(level, title, body) {
    const item = document.createElement("div");
    item.className = `banner ${["info", "warning", "error"].includes(level) ? level : "info"}`;
    const text = document.createElement("span");
    text.textContent = body ? `${title}: ${body}` : title;
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "×";
    close.setAttribute("aria-label", "dismiss");
    close.addEventListener("click", () => item.remove());
    item.append(text, close);
    ui.banners.prepend(item);
    setTimeout(() => item.remove(), BANNER_MS);
  }

  function setComposer(enabled) {
    ui.message.disabled = !enabled;
    ui.send.disabled = !enabled;
  }

  function setDirect(target) {
    state.directTo = target;
    ui.directTo.hidden = !target;
    ui.directTo.textContent = target ? `to ${target.name} ×` : "";
  }

  // --- user input ---------------------------------------------------------------------------

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.message.value;
    if (!text.trim()) return;
    const target = state.directTo;
    const id = target
      ? send({ op: "direct", to: target.clientId, data: { text } })
      : send({ op: "publish", channel: state.room, data: { text } });
    if (id === null) {
      systemLine("Not connected: your message is still in the box");
      return;
    }
    state.sending.set(id, { text, direct: target });
    ui.message.value = "";
  });

  ui.directTo.addEventListener("click", () => setDirect(null));

  ui.settings.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = `chat:${ui.room.value.trim() || "lobby"}`;
    const name = ui.name.value.trim();
    const token = ui.token.value.trim();
    if (name !== state.name || token !== state.token || !state.ws) {
      state.name = name;
      state.token = token;
      state.room = room;
      state.positions.clear();
      ui.log.replaceChildren();
      if (state.ws) {
        state.restarting = true;
        state.ws.close(1000, "settings changed");
      } else {
        state.attempt = 0;
        connect();
      }
      return;
    }
    switchRoom(room);
  });

  // A token can come in the URL fragment (#token=...): the browser never sends the fragment to a server.
  // It is taken out of the address bar at once, so it is not bookmarked or shared by accident.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  state.token = fragment.get("token") || "";
  state.name = fragment.get("name") || "";
  if (fragment.get("room")) state.room = `chat:${fragment.get("room")}`;
  if (window.location.hash) history.replaceState(null, "", window.location.pathname + window.location.search);
  ui.token.value = state.token;
  ui.name.value = state.name;
  ui.room.value = state.room.slice("chat:".length);
  connect();
})();
