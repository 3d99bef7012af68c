// dhtlink dashboard: the fleet and each device's readings, from the read routes of the
// endpoint that serves this page. The read token lives in this tab's sessionStorage only:
// never in a URL, a cookie or localStorage, and Sign out forgets it.
"use strict";
(function () {
  const TOKEN_KEY = "dhtlink.readToken";
  const REFRESH_MS = 30000;
  const $ = (id) => document.getElementById(id);
  const state = { devices: [], sort: { key: "device_id", dir: 1 }, page: 0, timer: null, charts: {}, series: null };
  const view = { range: 86400, from: null, to: null };
  window.dhtlink = state; // for tests and the curious: the charts and the series they draw

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path, params) {
    const url = new URL(path, location.href);
    url.hash = "";
    url.search = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined)).toString();
    let response;
    try {
      response = await fetch(url, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", "The endpoint did not answer (" + e.message + "). Is it running?");
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.message ? body.message : "HTTP " + response.status;
      throw new ApiError(response.status, body && body.error, message);
    }
    return body;
  }

  function showError(id, error) {
    const el = $(id);
    if (!error) { el.hidden = true; el.textContent = ""; return; }
    el.hidden = false;
    el.textContent = error.message;
  }

  function refused(error) {
    if (error && error.status === 401) {
      signOut("The read token was refused (401 unauthorized). Sign in with the current one.");
      return true;
    }
    return false;
  }

  // ---- sign in / out ---------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    try {
      await api("devices", {});
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      const text = error.status === 401
        ? "That read token was refused (401 unauthorized). Use the token dhtlink serve printed, or your stack's ReadToken."
        : error.message;
      showError("sign-in-error", new Error(text));
      return;
    }
    showError("sign-in-error", null);
    route();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.devices = [];
    if (message) showError("sign-in-error", new Error(message));
    if (location.hash && location.hash !== "#/") location.hash = "#/"; else route();
  }

  // ---- formatting ----------------------------------------------------------------
  function ago(seconds) {
    if (seconds < 90) return Math.max(0, Math.round(seconds)) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h ago";
    return Math.round(seconds / 86400) + " days ago";
  }
  const iso = (ts) => new Date(ts * 1000).toISOString().replace(".000Z", "Z");
  const num = (v, digits) => (v === null || v === undefined ? "" : Number(v).toFixed(digits));
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- fleet -------------------------------------------------------------------
  function flatten(d) {
    const status = d.last_status || {};
    const last = d.last_reading || {};
    const health = d.health || {};
    return {
      device_id: d.device_id, last_seen: d.last_seen, t: last.t, h: last.h, reading_ts: last.ts,
      rssi: status.rssi, heap: status.heap_free, fw: status.fw, sensor_errors: status.sensor_errors,
      dropped: status.dropped, missing: health.missing, raw: d,
    };
  }

  async function loadDevices() {
    // GET /devices may be paged: follow next_cursor until the whole fleet is here.
    let devices = [];
    let cursor = null;
    for (let pages = 0; pages < 10000; pages++) {
      const body = await api("devices", cursor ? { cursor } : {});
      devices = devices.concat(body.devices || body.items || []);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    state.devices = devices.map(flatten);
    state.loadedAt = Date.now() / 1000;
  }

  function sorted(rows) {
    const { key, dir } = state.sort;
    return rows.slice().sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return a.device_id < b.device_id ? -1 : 1;
      if (x === undefined || x === null) return 1; // unknown values last, either way
      if (y === undefined || y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }

  function renderFleet() {
    const now = Date.now() / 1000;
    const staleAfter = Number($("stale-after").value);
    const filter = $("filter").value.trim().toLowerCase();
    const rows = sorted(state.devices.filter((d) => !filter || d.device_id.toLowerCase().includes(filter)));
    const size = Number($("page-size").value);
    const pages = Math.max(1, Math.ceil(rows.length / size));
    state.page = Math.min(state.page, pages - 1);
    const first = state.page * size;
    const body = document.createDocumentFragment();
    let stale = 0;
    for (const d of state.devices) if (!d.last_seen || now - d.last_seen > staleAfter) stale++;
    for (const d of rows.slice(first, first + size)) {
      const old = !d.last_seen || now - d.last_seen > staleAfter;
      const tr = el("tr", { "data-device": d.device_id, class: old ? "stale" : "" });
      const name = el("td");
      name.appendChild(el("a", { href: "#/device/" + encodeURIComponent(d.device_id) }, d.device_id));
      tr.appendChild(name);
      tr.appendChild(el("td", { class: "num" }, num(d.t, 1)));
      tr.appendChild(el("td", { class: "num" }, num(d.h, 1)));
      const seen = d.last_seen ? ago(now - d.last_seen) + (old ? " (stale)" : "") : "never";
      tr.appendChild(el("td", { class: "seen", title: d.last_seen ? iso(d.last_seen) : "" }, seen));
      tr.appendChild(el("td", { class: "num" }, num(d.rssi, 0)));
      tr.appendChild(el("td", { class: "num" }, d.heap === undefined ? "" : Math.round(d.heap / 1024) + " KiB"));
      tr.appendChild(el("td", {}, d.fw || ""));
      for (const key of ["sensor_errors", "dropped", "missing"]) {
        tr.appendChild(el("td", { class: "num" + (d[key] > 0 ? " bad" : "") }, num(d[key], 0)));
      }
      body.appendChild(tr);
    }
    const tbody = document.querySelector("#fleet-table tbody");
    tbody.replaceChildren(body);
    for (const th of document.querySelectorAll("#fleet-table th")) {
      th.setAttribute("aria-sort", th.dataset.key === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    const missing = state.devices.filter((d) => d.missing > 0).length;
    $("fleet-summary").textContent = `${state.devices.length} devices · ${stale} stale · ${missing} with missing readings`;
    $("page-info").textContent = rows.length
      ? `${first + 1}–${Math.min(first + size, rows.length)} of ${rows.length}` : "no devices";
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  async function showFleet() {
    try {
      await loadDevices();
      showError("fleet-error", null);
    } catch (error) {
      if (refused(error)) return;
      showError("fleet-error", error);
    }
    renderFleet();
    stamp();
  }

  // ---- device ------------------------------------------------------------------
  function currentRange() {
    if (view.from !== null) return [view.from, view.to];
    const to = Math.floor(Date.now() / 1000);
    return [to - view.range, to];
  }

  function localInput(ts) {
    const d = new Date(ts * 1000);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  function chartOptions(title, unit, color, band, width, from, to) {
    return {
      title, width, height: Math.max(180, Math.min(300, Math.round(width * 0.35))),
      cursor: { sync: { key: "dhtlink" }, drag: { x: true, y: false } },
      scales: { x: { time: true, range: () => [from, to] } }, // the whole range asked for, data or not
      series: [
        {},
        { label: title + " (mean)", stroke: color, width: 2, spanGaps: false, value: (u, v) => (v === null ? "–" : v.toFixed(2) + " " + unit) },
        { label: "min", stroke: band, width: 1, spanGaps: false, value: (u, v) => (v === null ? "–" : v.toFixed(1)) },
        { label: "max", stroke: band, width: 1, spanGaps: false, value: (u, v) => (v === null ? "–" : v.toFixed(1)) },
      ],
      bands: [{ series: [3, 2], fill: band }],
      axes: [{}, { label: unit, size: 56 }],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const from = Math.floor(u.posToVal(u.select.left, "x"));
          const to = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
          u.setSelect({ left: 0, width: 0 }, false);
          if (to - from >= 60) { view.from = from; view.to = to; loadSeries(); }
        }],
      },
    };
  }

  function drawCharts(s) {
    const width = Math.max(280, $("chart-t").clientWidth - 2);
    const data = {
      t: [s.ts, s.t, s.t_min, s.t_max],
      h: [s.ts, s.h, s.h_min, s.h_max],
    };
    for (const [key, title, unit, color, band] of [
      ["t", "Temperature", "°C", "#d9480f", "rgba(217,72,15,0.15)"],
      ["h", "Humidity", "%RH", "#1c7ed6", "rgba(28,126,214,0.15)"],
    ]) {
      if (state.charts[key]) state.charts[key].destroy();
      const target = $("chart-" + key);
      target.replaceChildren();
      const chart = new uPlot(chartOptions(title, unit, color, band, width, s.from, s.to), data[key], target);
      chart.over.addEventListener("dblclick", () => { view.from = view.to = null; loadSeries(); });
      state.charts[key] = chart;
    }
  }

  function describe(s) {
    const points = s.n.filter((n) => n !== null).length;
    const what = s.step === 0 ? "the readings themselves"
      : (s.step < 3600 ? s.step / 60 + "-minute" : s.step < 86400 ? s.step / 3600 + "-hour" : s.step / 86400 + "-day")
        + " means, shaded from minimum to maximum";
    return `${iso(s.from)} to ${iso(s.to)} (UTC) · ${points} points: ${what}`;
  }

  async function loadSeries() {
    const id = state.deviceId;
    const [from, to] = currentRange();
    $("from").value = localInput(from);
    $("to").value = localInput(to);
    for (const b of document.querySelectorAll("[data-range]")) {
      b.setAttribute("aria-pressed", String(view.from === null && Number(b.dataset.range) === view.range));
    }
    const points = Math.min(1000, Math.max(100, $("chart-t").clientWidth || 800));
    try {
      const s = await api("data/series", { device_id: id, from, to, points });
      if (id !== state.deviceId) return;
      state.series = s;
      $("series-info").textContent = describe(s);
      drawCharts(s);
      showError("device-error", null);
    } catch (error) {
      if (refused(error)) return;
      showError("device-error", error);
    }
    stamp();
  }

  async function showDevice(id) {
    state.deviceId = id;
    $("device-title").textContent = id;
    $("device-facts").textContent = "";
    view.from = view.to = null;
    await loadSeries();
    try {
      if (!state.devices.length) await loadDevices();
    } catch (error) {
      if (refused(error)) return;
    }
    const d = state.devices.find((x) => x.device_id === id);
    if (d) {
      const now = Date.now() / 1000;
      const facts = [
        d.last_seen ? "last seen " + ago(now - d.last_seen) : "never seen",
        d.fw ? "firmware " + d.fw : null,
        d.rssi !== undefined ? d.rssi + " dBm" : null,
        d.missing ? d.missing + " missing readings" : null,
      ];
      $("device-facts").textContent = facts.filter(Boolean).join(" · ");
    }
  }

  async function downloadCsv() {
    const id = state.deviceId;
    const [from, to] = currentRange();
    const button = $("csv");
    button.disabled = true;
    const lines = ["time_utc,unix_s,seq,temperature_c,humidity_pct"];
    try {
      let items = [];
      let cursor = null;
      do {
        button.textContent = `Downloading… ${items.length}`;
        const page = await api("data", { device_id: id, from, to, limit: 1000, cursor });
        items = items.concat(page.items);
        cursor = page.next_cursor;
      } while (cursor);
      items.sort((a, b) => a.ts - b.ts || a.seq - b.seq);
      for (const r of items) lines.push([iso(r.ts), r.ts, r.seq, r.t, r.h].join(","));
      const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
      const link = el("a", { href: URL.createObjectURL(blob), download: `${id}_${iso(from)}_${iso(to)}.csv`.replace(/:/g, "") });
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      showError("device-error", null);
    } catch (error) {
      if (!refused(error)) showError("device-error", error);
    } finally {
      button.disabled = false;
      button.textContent = "Download CSV";
    }
  }

  // ---- routing and refresh -----------------------------------------------------
  function stamp() { $("updated").textContent = "updated " + new Date().toLocaleTimeString(); }

  function show(section) {
    for (const id of ["sign-in", "fleet", "device"]) $(id).hidden = id !== section;
    const signedIn = section !== "sign-in";
    $("sign-out").hidden = !signedIn;
    $("refresh-label").hidden = !signedIn;
    if (!signedIn) $("updated").textContent = "";
  }

  function route() {
    if (!token()) { show("sign-in"); $("token").focus(); return; }
    const match = location.hash.match(/^#\/device\/(.+)$/);
    if (match) { show("device"); showDevice(decodeURIComponent(match[1])); }
    else { show("fleet"); showFleet(); }
  }

  function tick() {
    if (!token() || !$("refresh").checked || document.hidden) return;
    if (!$("fleet").hidden) showFleet();
    else if (!$("device").hidden && view.from === null) loadSeries(); // a fixed range does not move
  }

  function init() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(null));
    for (const th of document.querySelectorAll("#fleet-table th")) {
      th.addEventListener("click", () => {
        const key = th.dataset.key;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        state.page = 0;
        renderFleet();
      });
    }
    $("filter").addEventListener("input", () => { state.page = 0; renderFleet(); });
    $("stale-after").addEventListener("change", renderFleet);
    $("page-size").addEventListener("change", () => { state.page = 0; renderFleet(); });
    $("prev").addEventListener("click", () => { state.page--; renderFleet(); });
    $("next").addEventListener("click", () => { state.page++; renderFleet(); });
    for (const b of document.querySelectorAll("[data-range]")) {
      b.addEventListener("click", () => { view.range = Number(b.dataset.range); view.from = view.to = null; loadSeries(); });
    }
    $("custom-range").addEventListener("submit", (event) => {
      event.preventDefault();
      const from = Math.floor(new Date($("from").value).getTime() / 1000);
      const to = Math.floor(new Date($("to").value).getTime() / 1000);
      if (!(to > from)) { showError("device-error", new Error("The range must end after it starts.")); return; }
      view.from = from; view.to = to;
      loadSeries();
    });
    $("csv").addEventListener("click", downloadCsv);
    window.addEventListener("hashchange", route);
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { if (state.series && !$("device").hidden) drawCharts(state.series); }, 200);
    });
    document.addEventListener("visibilitychange", tick);
    state.timer = setInterval(tick, REFRESH_MS);
    route();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
