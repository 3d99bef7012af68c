// dhtlink dashboard: the fleet, each device's readings and the alerts, from the read routes of
// the endpoint that serves this page. The read token lives in this tab's sessionStorage only:
// never in a URL, a cookie or localStorage (which holds the time zone and unit choice only).
// Times are formatted in the viewer's locale and shown with their zone's name; the view
// (page, sort, range, zoom, compared devices) lives in the URL so a link or reload keeps it.
"use strict";
(function () {
  const TOKEN_KEY = "dhtlink.readToken";
  const PREFS_KEY = "dhtlink.prefs";
  const REFRESH_MS = 30000;
  const MAX_COMPARE = 4;
  const DAY = 86400;
  const COLORS = ["#d9480f", "#1c7ed6", "#2f9e44", "#9c36b5"];
  const CAUSES = { drop_full: "spool full", drop_clock: "no clock", drop_poison: "refused by the receiver" };
  const ID = /^[A-Za-z0-9_-]{1,64}$/;
  const $ = (id) => document.getElementById(id);
  const state = { charts: {}, series: null, others: [], fleet: {}, busy: 0, pinned: null, hover: null };
  const view = { range: DAY, from: null, to: null, compare: [] };
  window.dhtlink = state; // for tests and the curious: the charts and the series they draw
  let prefs = { zone: "local", unit: "C" };
  try { prefs = Object.assign(prefs, JSON.parse(localStorage.getItem(PREFS_KEY) || "{}")); } catch (e) { /* defaults */ }
  const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function loading(delta) {
    state.busy += delta;
    $("loading").textContent = state.busy > 0 ? "Loading…" : "";
  }

  async function request(path, params) {
    const url = new URL(path, location.href);
    url.hash = "";
    url.search = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined)).toString();
    loading(1);
    try {
      let response;
      try {
        response = await fetch(url, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
      } catch (e) {
        throw new ApiError(0, "network", "The endpoint did not answer (" + e.message + "). Is it running?");
      }
      if (response.ok) return response;
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      throw new ApiError(response.status, body && body.error, body && body.message ? body.message : "HTTP " + response.status);
    } finally {
      loading(-1);
    }
  }
  const api = async (path, params) => (await request(path, params)).json();

  function showError(id, error) {
    const node = $(id);
    node.hidden = !error;
    node.textContent = error ? error.message : "";
  }

  function refused(error) {
    if (error && error.status === 401) {
      signOut("The read token was refused (401 unauthorized). Sign in with the current one.");
      return true;
    }
    return false;
  }

  // ---- formatting: the viewer's locale, the chosen zone named -------------------
  const zone = () => (prefs.zone === "utc" ? "UTC" : LOCAL_ZONE);
  // Intl formatters are slow to build and the chart axes ask for hundreds of labels a draw.
  const formats = new Map();
  function format(kind, opts) {
    const key = kind + zone() + JSON.stringify(opts);
    if (!formats.has(key)) formats.set(key, new Intl[kind](undefined, kind === "DateTimeFormat" ? Object.assign({ timeZone: zone() }, opts) : opts));
    return formats.get(key);
  }
  const dateTime = (ts, opts) => format("DateTimeFormat", opts).format(new Date(ts * 1000));
  const WHEN = { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  const when = (ts) => dateTime(ts, WHEN);
  const clock = (ts) => dateTime(ts, { hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
  function ago(seconds) {
    if (seconds < 90) return Math.max(0, Math.round(seconds)) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 2 * DAY) return Math.round(seconds / 360) / 10 + " h ago";
    return Math.round(seconds / DAY) + " days ago";
  }
  function span(seconds) {
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 2 * DAY) return Math.round(seconds / 360) / 10 + " h";
    return Math.round(seconds / 8640) / 10 + " days";
  }
  const num = (v, digits) => (v === null || v === undefined ? "" : format("NumberFormat", { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v));
  const unitT = () => (prefs.unit === "F" ? "°F" : "°C");
  const toUnit = (c) => (c === null || c === undefined ? c : prefs.unit === "F" ? c * 1.8 + 32 : c);
  const temp = (c) => (c === null || c === undefined ? "no value" : num(toUnit(c), 1) + " " + unitT());
  const hum = (h) => (h === null || h === undefined ? "no value" : num(h, 1) + " %");
  function dewPoint(t, h) {
    if (t === null || t === undefined || !h) return null;
    const g = Math.log(h / 100) + (17.62 * t) / (243.12 + t);
    return (243.12 * g) / (17.62 - g);
  }
  const now = () => Date.now() / 1000;
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const label = (d) => d.name || d.device_id;

  // ---- the URL: #/path?view-state ------------------------------------------------
  function hashParts() {
    const [path, query] = location.hash.slice(1).split("?");
    return [path || "/", new URLSearchParams(query || "")];
  }
  function keepInUrl(path, params) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString();
    history.replaceState(null, "", "#" + path + (query ? "?" + query : ""));
  }

  // ---- sign in / out -------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    try {
      await api("devices", { limit: 1 });
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError("sign-in-error", new Error(error.status === 401
        ? "That read token was refused (401 unauthorized). Use the token dhtlink serve printed, or your stack's ReadToken."
        : error.message));
      return;
    }
    showError("sign-in-error", null);
    route();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (message) showError("sign-in-error", new Error(message));
    if (location.hash && location.hash !== "#/") location.hash = "#/"; else route();
  }

  // ---- fleet: paged, sorted and filtered by the server --------------------------------
  function counterCell(d, key) {
    const recent = (d.recent || {})[key] || 0;
    const status = d.last_status || {};
    let title = `${recent} in the last 24 h; ${status[key] === undefined ? "no lifetime count reported" : status[key] + " since the board's counter started"}`;
    if (key === "dropped") title += causes(status, "; lifetime by cause: ");
    return el("td", { class: "num wide" + (recent > 0 ? " bad" : ""), title }, d.last_status ? String(recent) : "");
  }

  function causes(counts, prefix) {
    const parts = Object.keys(CAUSES).filter((k) => counts[k] > 0).map((k) => `${CAUSES[k]} ${counts[k]}`);
    return parts.length ? prefix + parts.join(", ") : "";
  }

  function fleetRow(d, at) {
    const tr = el("tr", { "data-device": d.device_id, class: d.stale ? "stale" : null });
    const name = el("td");
    name.appendChild(el("a", { href: "#/device/" + encodeURIComponent(d.device_id) }, label(d)));
    if (d.problem && !d.stale) name.append(" ", el("span", { class: "badge bad", title: "errors in the last 24 h" }, "Problem"));
    const sub = [d.name ? d.device_id : null, d.room].filter(Boolean).join(" · ");
    if (sub) name.appendChild(el("small", {}, sub));
    tr.appendChild(name);
    const seen = el("td", { class: "seen", title: d.last_seen ? when(d.last_seen) : "no POST from this device yet" });
    seen.textContent = d.last_seen ? ago(at - d.last_seen) + " " : "never ";
    if (d.stale) seen.appendChild(el("span", { class: "badge stale", title: `no POST for over ${span(d.stale_after_s)}` }, "Stale"));
    tr.appendChild(seen);
    const last = d.last_reading || {};
    const measured = last.ts ? "measured " + when(last.ts) : "no reading yet";
    tr.appendChild(el("td", { class: "num", title: measured }, last.ts ? temp(last.t) : ""));
    tr.appendChild(el("td", { class: "num", title: measured }, last.ts ? hum(last.h) : ""));
    const status = d.last_status || {};
    tr.appendChild(el("td", { class: "num wide" }, status.rssi === undefined ? "" : status.rssi + " dBm"));
    tr.appendChild(el("td", { class: "wide" }, status.fw || ""));
    tr.appendChild(counterCell(d, "sensor_errors"));
    tr.appendChild(counterCell(d, "dropped"));
    return tr;
  }

  function fleetState() {
    const [, params] = hashParts();
    const f = state.fleet;
    f.status = ["all", "stale", "problems"].includes(params.get("status")) ? params.get("status") : "all";
    f.sort = ["id", "last_seen", "-last_seen"].includes(params.get("sort")) ? params.get("sort") : "id";
    f.size = [25, 50, 100].includes(Number(params.get("size"))) ? Number(params.get("size")) : 50;
    f.cursor = params.get("cursor");
    f.page = Math.max(0, Number(params.get("page")) || 0);
    f.back = f.back || [];
  }

  function keepFleet(cursor, page) {
    const f = state.fleet;
    keepInUrl("/", { status: f.status === "all" ? null : f.status, sort: f.sort === "id" ? null : f.sort, size: f.size === 50 ? null : f.size, cursor, page: page || null });
  }

  async function showFleet() {
    fleetState();
    const f = state.fleet;
    $("status").value = f.status;
    $("page-size").value = String(f.size);
    $("t-head").textContent = "Temp " + unitT();
    for (const th of document.querySelectorAll("#fleet-table th[data-sort]")) {
      const order = th.dataset.sort === "id" ? { id: "ascending" }[f.sort] : { last_seen: "ascending", "-last_seen": "descending" }[f.sort];
      if (order) th.setAttribute("aria-sort", order); else th.removeAttribute("aria-sort");
    }
    let body;
    try {
      body = await api("devices", { limit: f.size, sort: f.sort, status: f.status, cursor: f.cursor });
      showError("fleet-error", null);
    } catch (error) {
      if (refused(error)) return;
      showError("fleet-error", error);
      return;
    }
    const at = now();
    const rows = document.createDocumentFragment();
    for (const d of body.devices) rows.appendChild(fleetRow(d, at));
    document.querySelector("#fleet-table tbody").replaceChildren(rows);
    f.next = body.next_cursor;
    const empty = !body.devices.length;
    $("fleet-empty").hidden = !empty;
    $("fleet-empty").textContent = f.page ? "No more devices on this page: go back to the previous one."
      : { all: "No devices registered yet. `dhtlink devices add ID` registers one; `dhtlink bench` starts two virtual boards.",
        stale: "No stale devices: every device has posted within its reporting interval.",
        problems: "No problems: no stale device, and no errors in the last 24 hours." }[f.status];
    const first = f.page * f.size + 1;
    $("page-info").textContent = empty ? "" : `devices ${first}–${first + body.devices.length - 1}` + (f.next ? "" : " (the last page)");
    $("prev").disabled = f.page === 0;
    $("next").disabled = !f.next;
    stamp();
  }

  function fleetPage(step) {
    const f = state.fleet;
    if (step > 0) { f.back[f.page] = f.cursor; keepFleet(f.next, f.page + 1); }
    else if (f.page > 1 && !f.back[f.page - 1]) keepFleet(null, 0); // opened mid-way from a link: back to the start
    else keepFleet(f.back[f.page - 1] || null, f.page - 1);
    showFleet();
  }

  function refleet(changes) {
    Object.assign(state.fleet, changes);
    state.fleet.back = [];
    keepFleet(null, 0);
    showFleet();
  }

  // ---- device --------------------------------------------------------------------------
  function currentRange() {
    if (view.from !== null) return [view.from, view.to];
    const to = Math.floor(now());
    return [to - view.range, to];
  }

  function inputValue(ts) {
    const d = new Date(ts * 1000);
    const shift = prefs.zone === "utc" ? 0 : d.getTimezoneOffset() * 60000;
    return new Date(d.getTime() - shift).toISOString().slice(0, 16);
  }
  const inputTs = (value) => Math.floor(new Date(value + (prefs.zone === "utc" ? "Z" : "")).getTime() / 1000);

  function keepDevice() {
    keepInUrl("/device/" + encodeURIComponent(state.deviceId), {
      range: view.from === null && view.range !== DAY ? view.range : null,
      from: view.from, to: view.to, compare: view.compare.join(",") || null,
    });
  }

  function tile(title, value, note, old) {
    const node = el("div", { class: "tile" + (old ? " old" : "") });
    node.append(el("span", { class: "muted" }, title), el("b", {}, value), el("span", { class: "muted" }, note));
    return node;
  }

  function showFacts(d) {
    const at = now();
    $("device-title").textContent = label(d);
    $("device-sub").textContent = [d.name ? d.device_id : null, d.room].filter(Boolean).join(" · ");
    const badge = d.last_seen === null ? ["stale", "Never seen"] : d.stale ? ["stale", "Stale: silent for " + span(at - d.last_seen)]
      : d.problem ? ["bad", "Errors in the last 24 h"] : ["ok", "Reporting"];
    $("device-badge").replaceChildren(el("span", { class: "badge " + badge[0] }, badge[1]));
    const last = d.last_reading;
    const tiles = [];
    if (last) {
      const age = at - last.ts;
      const note = (d.stale ? "stale · " : "") + ago(age) + " · " + when(last.ts);
      tiles.push(tile("Temperature", temp(last.t), note, d.stale), tile("Humidity", hum(last.h), note, d.stale),
        tile("Dew point", temp(dewPoint(last.t, last.h)), "from the two above", d.stale));
    }
    const status = d.last_status || {};
    tiles.push(tile("Last seen", d.last_seen ? ago(at - d.last_seen) : "never", d.last_seen ? when(d.last_seen) : "no POST yet", d.stale));
    if (status.rssi !== undefined) tiles.push(tile("Signal", status.rssi + " dBm", "firmware " + (status.fw || "unknown")));
    $("tiles").replaceChildren(...tiles);
    const recent = d.recent || {};
    const health = [];
    if (d.last_status) {
      health.push(`Last 24 h: ${recent.sensor_errors || 0} sensor errors (lifetime ${status.sensor_errors || 0})`);
      const why = causes(recent, ": ");
      health.push(`${recent.dropped || 0} readings dropped by the board${why} (lifetime ${status.dropped || 0}${causes(status, ": ")})`);
    }
    const dropped = status.dropped || 0;
    const missing = Math.max(0, ((d.health || {}).missing || 0) - dropped);
    if (missing) health.push(`${missing} readings not received: still on the board, or lost`);
    if (status.heap_free !== undefined) health.push(`heap free ${Math.round(status.heap_free / 1024)} KiB, boot ${status.boot}`);
    $("health").textContent = health.join(" · ");
  }

  async function showDevice(id, params) {
    state.deviceId = id;
    view.range = Number(params.get("range")) || DAY;
    view.from = Number(params.get("from")) || null;
    view.to = view.from ? Number(params.get("to")) || null : null;
    if (!view.to) view.from = view.to = null;
    view.compare = (params.get("compare") || "").split(",").filter((x) => ID.test(x) && x !== id).slice(0, MAX_COMPARE - 1);
    state.pinned = null;
    $("device-title").textContent = id;
    for (const node of ["device-sub", "device-badge", "tiles", "health", "series-info", "readout", "gaps"]) $(node).replaceChildren();
    clearCharts();
    let device;
    try {
      device = ID.test(id) ? (await api("devices", { device_id: id })).devices[0] : undefined;
      showError("device-error", null);
    } catch (error) {
      if (!refused(error)) showError("device-error", error);
      return;
    }
    if (id !== state.deviceId) return;
    state.device = device;
    $("chart-tools").hidden = !device;
    if (!device) {
      emptyChart(`No device “${id}” is registered. Check the address, or open a device from the fleet list.`);
      return;
    }
    showFacts(device);
    await loadSeries();
  }

  function clearCharts() {
    for (const key of Object.keys(state.charts)) { state.charts[key].destroy(); delete state.charts[key]; }
    $("chart-t").replaceChildren();
    $("chart-h").replaceChildren();
  }

  function emptyChart(text) {
    clearCharts();
    $("chart-t").hidden = $("chart-h").hidden = true;
    $("chart-empty").hidden = !text;
    $("chart-empty").textContent = text || "";
  }

  const points = (s) => s.n.filter((n) => n !== null).length;

  function describe(s) {
    const what = s.step === 0 ? "the readings themselves"
      : (s.step < 3600 ? s.step / 60 + "-minute" : s.step < DAY ? s.step / 3600 + "-hour" : s.step / DAY + "-day") + " means, shaded from minimum to maximum";
    return `${when(s.from)} to ${when(s.to)} · ${points(s)} points: ${what}`;
  }

  // Stretches with no data: between two points further apart than twice the usual spacing
  // (the server puts a null between them), and at either end of the range.
  function gaps(s) {
    const xs = s.ts.filter((x, i) => s.n[i] !== null);
    const usual = Math.max(s.step || 0, 120, xs.length > 2 ? (xs[xs.length - 1] - xs[0]) / (xs.length - 1) : 0);
    const out = [];
    const edges = [s.from, ...xs, s.to];
    for (let i = 1; i < edges.length; i++) if (edges[i] - edges[i - 1] > 2 * usual) out.push([edges[i - 1], edges[i]]);
    return out;
  }

  async function loadSeries() {
    const id = state.deviceId;
    const [from, to] = currentRange();
    keepDevice();
    $("from").value = inputValue(from);
    $("to").value = inputValue(to);
    for (const b of document.querySelectorAll("[data-range]")) b.setAttribute("aria-pressed", String(view.from === null && Number(b.dataset.range) === view.range));
    $("unzoom").hidden = view.from === null;
    renderChips();
    const width = $("chart-t").clientWidth || $("device").clientWidth || 800;
    const ask = (device) => api("data/series", { device_id: device, from, to, points: Math.min(1000, Math.max(100, Math.round(width))) });
    const ids = [id, ...view.compare];
    const mine = (state.loads = (state.loads || 0) + 1); // only the newest load may draw
    let all;
    try {
      all = await Promise.all(ids.map(ask));
      showError("device-error", null);
    } catch (error) {
      if (!refused(error)) showError("device-error", error);
      return;
    }
    if (mine !== state.loads || id !== state.deviceId) return;
    [state.series, ...state.others] = all;
    state.drawn = ids; // the devices these series are of, whatever view.compare becomes meanwhile
    const s = state.series;
    $("series-info").textContent = describe(s);
    if (!all.some(points)) {
      const d = state.device || {};
      const last = d.last_reading;
      emptyChart(!last ? "This device is registered but has never sent a reading. Provision it (dhtlink provision) and power it on."
        : `No readings between ${when(from)} and ${when(to)}. The newest reading is from ${when(last.ts)} (${ago(now() - last.ts)}): pick a longer range.`);
      $("gaps").textContent = $("series-info").textContent = $("readout").textContent = "";
    } else {
      emptyChart(null);
      $("chart-t").hidden = $("chart-h").hidden = false;
      drawCharts();
      const found = gaps(s);
      $("gaps").textContent = found.length
        ? "No data: " + found.slice(0, 4).map(([a, b]) => `${span(b - a)} from ${when(a)}`).join("; ") + (found.length > 4 ? ` and ${found.length - 4} more` : "")
        : "";
    }
    stamp();
  }

  function renderChips() {
    const chips = view.compare.map((other, i) => {
      const chip = el("button", { type: "button", class: "chip", style: "border-color:" + COLORS[i + 1], "aria-label": "stop comparing with " + other }, other + " ✕");
      chip.addEventListener("click", () => { view.compare = view.compare.filter((x) => x !== other); loadSeries(); });
      return chip;
    });
    $("compared").replaceChildren(...chips);
    $("compare").hidden = view.compare.length >= MAX_COMPARE - 1;
  }

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function xValues(u, splits, axis, space, incr) {
    return splits.map((ts, i) => {
      if (incr >= DAY) return dateTime(ts, { day: "numeric", month: "short" });
      const time = dateTime(ts, { hour: "2-digit", minute: "2-digit" });
      const day = dateTime(ts, { day: "numeric", month: "short" });
      return i === 0 || day !== dateTime(splits[i - 1], { day: "numeric", month: "short" }) ? time + "\n" + day : time;
    });
  }

  function shadeGaps(u) {
    const s = state.series;
    if (!s) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = cssVar("--gap");
    for (const [a, b] of gaps(s)) {
      const left = u.valToPos(a, "x", true);
      const right = u.valToPos(b, "x", true);
      ctx.fillRect(left, u.bbox.top, Math.max(4 * devicePixelRatio, right - left), u.bbox.height);
    }
    ctx.restore();
  }

  function chartData(key) {
    const s = state.series;
    const conv = key === "t" ? (list) => list.map(toUnit) : (list) => list;
    if (!state.others.length) return [s.ts, conv(s[key]), conv(s[key + "_min"]), conv(s[key + "_max"])];
    return uPlot.join([state.series, ...state.others].map((x) => [x.ts, conv(x[key])]));
  }

  function chartOptions(key, width) {
    const unit = key === "t" ? unitT() : "%RH";
    const fg = cssVar("--fg");
    const grid = { stroke: cssVar("--line"), width: 1 };
    const single = !state.others.length;
    const devices = state.drawn;
    const series = [{}].concat(single
      ? [{ label: "mean", stroke: COLORS[key === "t" ? 0 : 1], width: 2 }, { label: "min", stroke: "transparent" }, { label: "max", stroke: "transparent" }]
      : devices.map((d, i) => ({ label: d, stroke: COLORS[i], width: 2 })));
    return {
      title: (key === "t" ? "Temperature " : "Humidity ") + unit,
      width, height: Math.max(220, Math.min(300, Math.round(width * 0.35))),
      legend: { show: false },
      // The browser's own zone is uPlot's default; tzDate (slow: a formatter a call) only for UTC.
      tzDate: zone() === "UTC" ? (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC") : (ts) => new Date(ts * 1000),
      cursor: { sync: { key: "dhtlink" }, drag: { x: true, y: false } },
      scales: { x: { time: true, range: () => [state.series.from, state.series.to] } },
      series: series.map((x) => Object.assign({ spanGaps: false }, x)),
      bands: single ? [{ series: [3, 2], fill: key === "t" ? "rgba(217,72,15,0.18)" : "rgba(28,126,214,0.18)" }] : [],
      axes: [
        { stroke: fg, grid, ticks: grid, values: xValues, size: 52, space: 80, label: "Time (" + zone() + ")" },
        { stroke: fg, grid, ticks: grid, size: 60, values: (u, vs) => vs.map((v) => num(v, key === "t" ? 1 : 0)), label: unit },
      ],
      hooks: {
        drawAxes: [shadeGaps],
        setCursor: [(u) => {
          if (u.cursor.idx !== null && u.cursor.idx !== undefined) readout(u.data[0][u.cursor.idx]);
          else if (!state.hover) readout(null); // a chart drawn anew under a still pointer keeps its value
        }],
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          zoomTo(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"));
          u.setSelect({ left: 0, width: 0 }, false);
        }],
      },
    };
  }

  function zoomTo(a, b) {
    const from = Math.floor(Math.min(a, b));
    const to = Math.ceil(Math.max(a, b));
    if (to - from < 60) return;
    view.from = from;
    view.to = to;
    loadSeries();
  }

  // One finger dragged sideways zooms in; a tap shows (and keeps) the values under it.
  function touchable(u) {
    let start = null;
    const x = (touch) => touch.clientX - u.over.getBoundingClientRect().left;
    u.over.addEventListener("touchstart", (e) => {
      start = e.touches.length === 1 ? { x: x(e.touches[0]), y: e.touches[0].clientY - u.over.getBoundingClientRect().top, moved: false } : null;
    }, { passive: true });
    u.over.addEventListener("touchmove", (e) => {
      if (!start || e.touches.length !== 1) return;
      const dx = x(e.touches[0]) - start.x;
      if (Math.abs(dx) > 10) start.moved = true;
      if (start.moved) {
        if (e.cancelable) e.preventDefault();
        u.setSelect({ left: Math.min(start.x, start.x + dx), width: Math.abs(dx), top: 0, height: u.over.clientHeight }, false);
        start.end = start.x + dx;
      }
    }, { passive: false });
    u.over.addEventListener("touchend", () => {
      if (!start) return;
      if (start.moved) {
        u.setSelect({ left: 0, width: 0 }, false);
        if (Math.abs(start.end - start.x) > 20) zoomTo(u.posToVal(start.x, "x"), u.posToVal(start.end, "x"));
      } else {
        pin(u, start.x, start.y);
      }
      start = null;
    });
  }

  function pin(u, left, top) {
    u.setCursor({ left, top });
    const idx = u.cursor.idx;
    state.pinned = idx === null || idx === undefined ? null : u.data[0][idx];
    readout(state.pinned);
  }

  function nearest(data, ts) {
    let best = null;
    for (let i = 0; i < data[0].length; i++) {
      if (data[1][i] === null || data[1][i] === undefined) continue;
      if (best === null || Math.abs(data[0][i] - ts) < Math.abs(data[0][best] - ts)) best = i;
    }
    return best;
  }

  // The values at a moment (under the pointer, a tapped one, or the newest when idle), with units.
  function readout(ts) {
    const t = state.charts.t;
    const h = state.charts.h;
    if (!t || !h) return;
    let lead = "";
    if (ts === null) {
      ts = state.pinned;
      if (ts === null) {
        let last = t.data[0].length - 1;
        while (last >= 0 && (t.data[1][last] === null || t.data[1][last] === undefined)) last--;
        if (last < 0) { $("readout").textContent = ""; return; }
        ts = t.data[0][last];
        lead = "Newest: ";
      } else lead = "Selected: ";
    }
    const i = nearest(t.data, ts);
    const j = nearest(h.data, ts);
    if (i === null) return;
    const parts = [lead + when(t.data[0][i])];
    const deg = (v) => (v === null || v === undefined ? "no value" : num(v, 1) + " " + unitT());
    if (!state.others.length) {
      parts.push(`Temperature ${deg(t.data[1][i])} (min ${deg(t.data[2][i])}, max ${deg(t.data[3][i])})`);
      if (j !== null) parts.push(`Humidity ${hum(h.data[1][j])} (min ${hum(h.data[2][j])}, max ${hum(h.data[3][j])})`);
      if (j !== null && t.data[0][i] === h.data[0][j]) parts.push("Dew point " + temp(dewPoint(state.series.t[state.series.ts.indexOf(t.data[0][i])], h.data[1][j])));
    } else {
      state.drawn.forEach((d, k) => parts.push(`${d} ${deg(t.data[k + 1][i])}, ${j === null ? "no value" : hum(h.data[k + 1][j])}`));
    }
    $("readout").textContent = parts.join(" · ");
  }

  function drawCharts() {
    const width = Math.max(260, $("chart-t").clientWidth - 2);
    const hover = state.hover;
    clearCharts();
    for (const key of ["t", "h"]) {
      const chart = new uPlot(chartOptions(key, width), chartData(key), $("chart-" + key));
      chart.over.addEventListener("dblclick", () => { view.from = view.to = null; loadSeries(); });
      chart.over.addEventListener("mouseenter", () => { state.hover = { key }; });
      chart.over.addEventListener("mousemove", (e) => { state.hover = { key, left: e.offsetX, top: e.offsetY }; });
      chart.over.addEventListener("mouseleave", () => { state.hover = null; });
      chart.over.addEventListener("click", (e) => { if (chart.select.width < 4) pin(chart, e.offsetX, e.offsetY); });
      touchable(chart);
      state.charts[key] = chart;
    }
    // A redraw (auto-refresh, resize) keeps the value under a still pointer.
    if (hover && hover.left !== undefined) setTimeout(() => { if (state.charts[hover.key]) state.charts[hover.key].setCursor({ left: hover.left, top: hover.top }); });
    else readout(null);
    const coarse = matchMedia("(pointer: coarse)").matches;
    $("how").textContent = (coarse ? "Drag a finger sideways across a chart to zoom in; tap to read the values there."
      : "Drag across a chart to zoom in; click to keep the values shown; double-click to go back.")
      + " “Whole range” undoes a zoom. Times are " + (zone() === "UTC" ? "UTC" : "your local time (" + zone() + ")") + "; the CSV gives UTC.";
  }

  async function downloadCsv() {
    const [from, to] = currentRange();
    const button = $("csv");
    button.disabled = true;
    button.textContent = "Downloading…";
    try {
      const response = await request("data/csv", { device_id: state.deviceId, from, to });
      const name = (/filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "") || [])[1] || state.deviceId + ".csv";
      const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name });
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

  async function addCompare(event) {
    event.preventDefault();
    const other = $("compare-id").value.trim();
    let problem = null;
    if (!ID.test(other)) problem = "A device id is 1-64 characters of A-Z a-z 0-9 _ -.";
    else if (other === state.deviceId || view.compare.includes(other)) problem = `${other} is on the chart already.`;
    else {
      try {
        if (!(await api("devices", { device_id: other })).devices.length) problem = `No device “${other}” is registered.`;
      } catch (error) {
        if (refused(error)) return;
        problem = error.message;
      }
    }
    showError("device-error", problem ? new Error(problem) : null);
    if (problem) return;
    $("compare-id").value = "";
    view.compare.push(other);
    loadSeries();
  }

  // ---- alerts ------------------------------------------------------------------------
  function table(head, rows, empty) {
    if (!rows.length) return el("p", { class: "empty" }, empty);
    const t = el("table");
    const tr = el("tr");
    for (const h of head) tr.appendChild(el("th", {}, h));
    t.appendChild(el("thead")).appendChild(tr);
    const body = t.appendChild(el("tbody"));
    for (const cells of rows) {
      const row = body.appendChild(el("tr"));
      for (const cell of cells) {
        const td = row.appendChild(el("td"));
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "" : String(cell);
      }
    }
    const box = el("div", { class: "scroll" });
    box.appendChild(t);
    return box;
  }
  const deviceLink = (id) => el("a", { href: "#/device/" + encodeURIComponent(id) }, id);
  function delivery(d) {
    if (!d) return "not sent yet";
    const failures = ["webhook", "email"].filter((c) => d[c] && !d[c].ok).map((c) => `${c}: ${d[c].error || "HTTP " + d[c].status}`);
    return (d.ok ? "delivered " : "failed ") + when(d.at) + (failures.length ? " (" + failures.join(", ") + ")" : "");
  }

  function alertValue(a) {
    if (a.value === null || a.value === undefined) return "";
    if (a.kind === "stale") return "silent for " + span(a.value);
    return a.metric === "t" ? temp(a.value) : a.metric === "h" ? hum(a.value) : String(a.value);
  }

  async function showAlerts() {
    let body;
    try {
      body = await api("alerts", { limit: 50 });
      showError("alerts-error", null);
    } catch (error) {
      if (!refused(error)) showError("alerts-error", error);
      return;
    }
    $("alerts-open").replaceChildren(table(["Device", "Rule", "Since", "Value"],
      body.open.map((a) => [deviceLink(a.device_id), a.name || a.rule, a.opened_at ? when(a.opened_at) + " (" + ago(now() - a.opened_at) + ")" : "", alertValue(a)]),
      "No open alerts: every rule's condition is clear."));
    $("alerts-recent").replaceChildren(table(["When", "Device", "What", "Rule", "Delivery"],
      body.recent.map((e) => [when(e.at), deviceLink(e.device_id), e.type, e.name || e.rule, delivery(e.delivery)]),
      "No alerts in the last 30 days."));
    $("alerts-rules").replaceChildren(table(["Rule", "Condition", "Notifies", "Last delivery"],
      body.rules.map((r) => [r.name || r.rule_id, r.description, [r.webhook ? "webhook" : null, r.email ? "email" : null].filter(Boolean).join(", ") || "history only", delivery(r.last_delivery)]),
      "No alert rules yet: `dhtlink alerts add` creates one (docs/alerts.md)."));
    stamp();
  }

  // ---- routing and refresh ---------------------------------------------------------
  function stamp() { $("updated").textContent = "updated " + clock(now()); }

  function show(section) {
    for (const id of ["sign-in", "fleet", "device", "alerts"]) $(id).hidden = id !== section;
    const signedIn = section !== "sign-in";
    $("prefs").hidden = $("nav").hidden = !signedIn;
    if (!signedIn) $("updated").textContent = "";
  }

  function route() {
    if (!token()) { show("sign-in"); $("token").focus(); return; }
    const [path, params] = hashParts();
    const match = path.match(/^\/device\/(.+)$/);
    if (match) { show("device"); showDevice(decodeURIComponent(match[1]), params); }
    else if (path === "/alerts") { show("alerts"); showAlerts(); }
    else { show("fleet"); showFleet(); }
  }

  function refresh() {
    if (!$("fleet").hidden) showFleet();
    else if (!$("alerts").hidden) showAlerts();
    else if (!$("device").hidden && state.device) {
      if (view.from === null) loadSeries(); // a fixed range does not move
      api("devices", { device_id: state.deviceId }).then((b) => { if (b.devices[0]) { state.device = b.devices[0]; showFacts(state.device); } }, () => {});
    }
  }

  function tick() {
    if (token() && $("refresh").checked && !document.hidden) refresh();
  }

  function savePrefs() {
    prefs = { zone: $("zone").value, unit: $("unit").value };
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
    if (!$("device").hidden && state.device) { showFacts(state.device); loadSeries(); } else refresh();
  }

  function init() {
    $("zone").replaceChildren(el("option", { value: "local" }, "Local time (" + LOCAL_ZONE + ")"), el("option", { value: "utc" }, "UTC"));
    $("zone").value = prefs.zone;
    $("unit").value = prefs.unit;
    $("zone").addEventListener("change", savePrefs);
    $("unit").addEventListener("change", savePrefs);
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(null));
    for (const th of document.querySelectorAll("#fleet-table th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const f = state.fleet;
        refleet({ sort: th.dataset.sort === "id" ? "id" : f.sort === "-last_seen" ? "last_seen" : "-last_seen" });
      });
    }
    $("status").addEventListener("change", () => refleet({ status: $("status").value }));
    $("page-size").addEventListener("change", () => refleet({ size: Number($("page-size").value) }));
    $("prev").addEventListener("click", () => fleetPage(-1));
    $("next").addEventListener("click", () => fleetPage(1));
    $("go").addEventListener("submit", (event) => { event.preventDefault(); location.hash = "#/device/" + encodeURIComponent($("go-id").value.trim()); });
    for (const b of document.querySelectorAll("[data-range]")) {
      b.addEventListener("click", () => { view.range = Number(b.dataset.range); view.from = view.to = null; state.pinned = null; loadSeries(); });
    }
    $("unzoom").addEventListener("click", () => { view.from = view.to = null; loadSeries(); });
    $("custom-range").addEventListener("submit", (event) => {
      event.preventDefault();
      const from = inputTs($("from").value);
      const to = inputTs($("to").value);
      if (!(to > from)) { showError("device-error", new Error("The range must end after it starts.")); return; }
      view.from = from;
      view.to = to;
      loadSeries();
    });
    $("compare").addEventListener("submit", addCompare);
    $("csv").addEventListener("click", downloadCsv);
    window.addEventListener("hashchange", route);
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { if (state.charts.t && !$("device").hidden) drawCharts(); }, 200);
    });
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { if (state.charts.t) drawCharts(); });
    document.addEventListener("visibilitychange", tick);
    state.timer = setInterval(tick, REFRESH_MS);
    state.refresh = refresh; // what the timer runs, for tests
    route();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
