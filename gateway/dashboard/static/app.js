// PulseBridge dashboard: a small single-page front end over the gateway's own API.
// Every value from the server is put in the page as text (never as HTML), and every call goes
// to this origin with the session cookie; requests that change something carry the CSRF header.
"use strict";

const RANGES = {
  "24h": { ms: 24 * 3600e3, bucket: "10m" },
  "7d": { ms: 7 * 24 * 3600e3, bucket: "1h" },
  "30d": { ms: 30 * 24 * 3600e3, bucket: "6h" },
};
const ADHERENCE_TARGET = 16; // days with data in 30: what remote-monitoring programmes bill on
const BP_CODE = "85354-9";

const state = { me: null, stream: null, charts: new Map(), range: "24h", patientId: null, generation: 0 };

// -- helpers ----------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function main() { return document.getElementById("main"); }

function show(...children) {
  main().replaceChildren(...children);
}

function view() {
  // A page that finishes loading after the person moved on must not draw over the new one.
  const generation = state.generation;
  const current = () => generation === state.generation;
  return { current, show: (...children) => { if (current()) show(...children); } };
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const method = options.method || "GET";
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-PulseBridge-CSRF"] = "1";
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const diagnostics = body && body.issue && body.issue[0] ? body.issue[0].diagnostics : response.statusText;
    if (response.status === 401 && !options.quiet401) signedOut("Your session has ended: sign in again.");
    throw new ApiError(response.status, diagnostics);
  }
  return body;
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  const age = (Date.now() - date.getTime()) / 1000;
  const text = date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  if (age < 0) return text;
  if (age < 90) return `${text} (just now)`;
  if (age < 5400) return `${text} (${Math.round(age / 60)} min ago)`;
  if (age < 129600) return `${text} (${Math.round(age / 3600)} h ago)`;
  return `${text} (${Math.round(age / 86400)} d ago)`;
}

function ago(iso) {
  if (!iso) return "—";
  const age = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (age < 90) return "just now";
  if (age < 5400) return `${Math.round(age / 60)} min ago`;
  if (age < 129600) return `${Math.round(age / 3600)} h ago`;
  return `${Math.round(age / 86400)} days ago`;
}

function unitText(unit) {
  return { "/min": "/min", "mm[Hg]": "mmHg", Cel: "°C", "%": "%", kg: "kg", "{steps}": "steps" }[unit] || unit || "";
}

function vitalText(vital) {
  if (vital.components) {
    const parts = ["systolic", "diastolic"].filter((name) => name in vital.components).map((name) => vital.components[name]);
    return `${parts.join("/")} ${unitText(vital.unit)}`;
  }
  return vital.value === null || vital.value === undefined ? "no value" : `${vital.value} ${unitText(vital.unit)}`;
}

function observationValue(resource) {
  if (resource.valueQuantity) return `${resource.valueQuantity.value} ${unitText(resource.valueQuantity.code)}`;
  if (resource.component) {
    const values = resource.component.filter((c) => c.valueQuantity).map((c) => c.valueQuantity.value);
    const unit = resource.component.find((c) => c.valueQuantity);
    return `${values.slice(0, 2).join("/")} ${unit ? unitText(unit.valueQuantity.code) : ""}`;
  }
  if (resource.dataAbsentReason) return `absent: ${resource.dataAbsentReason.coding?.[0]?.code || "unknown"}`;
  return "—";
}

function stopStream() {
  if (state.stream) { state.stream.close(); state.stream = null; }
}

// -- session ----------------------------------------------------------------------------------

function signedOut(message) {
  stopStream();
  state.me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  loginPage(message);
}

function loginPage(message) {
  const error = h("p", { class: "error", id: "login-error", role: "alert" }, message || "");
  const account = h("input", { id: "account", name: "account", autocomplete: "username", required: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", id: "login" },
    h("h1", {}, "Sign in"),
    h("label", { for: "account" }, "Account"), account,
    h("label", { for: "password" }, "Password"), password,
    h("button", { class: "primary", type: "submit" }, "Sign in"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      state.me = await api("/api/v1/session", { method: "POST", body: { account: account.value, password: password.value }, quiet401: true });
      password.value = "";
      signedIn();
    } catch (problem) {
      error.textContent = problem.message;
    }
  });
  show(form);
  account.focus();
}

function isPatient() { return state.me && state.me.role === "patient"; }

function signedIn() {
  document.getElementById("who").textContent = `${state.me.display_name || state.me.account} (${state.me.role})`;
  document.getElementById("sign-out").hidden = false;
  const nav = document.getElementById("nav");
  nav.hidden = false;
  document.getElementById("nav-inbox").hidden = isPatient();
  document.getElementById("nav-patients").textContent = isPatient() ? "My page" : "Patients";
  document.getElementById("nav-patients").setAttribute("href", isPatient() ? `#/patient/${state.me.patient_id}` : "#/patients");
  route();
}

// -- routing ----------------------------------------------------------------------------------

function route() {
  if (!state.me) return;
  state.generation += 1;
  stopStream();
  state.charts.clear();
  const hash = location.hash.replace(/^#/, "") || "/";
  const patient = hash.match(/^\/patient\/([A-Za-z0-9.-]{1,64})$/);
  if (patient) return patientPage(patient[1]);
  if (hash === "/inbox" && !isPatient()) return inboxPage();
  if (isPatient()) { location.hash = `#/patient/${state.me.patient_id}`; return; }
  return patientList();
}

// -- patient list -----------------------------------------------------------------------------

async function openAlertCounts(patientId) {
  // The alerts API may be absent on an older gateway: the column then says so.
  const query = patientId ? `?status=open&patient=${encodeURIComponent(patientId)}` : "?status=open";
  try {
    const body = await api(`/api/v1/alerts${query}`);
    const alerts = Array.isArray(body) ? body : body.alerts || body.entries || [];
    const counts = new Map();
    for (const alert of alerts) counts.set(alert.patient_id, (counts.get(alert.patient_id) || 0) + 1);
    return { counts, alerts };
  } catch (problem) {
    if (problem.status === 404 || problem.status === 403) return null;
    throw problem;
  }
}

function batteryCell(devices) {
  const levels = devices.filter((d) => d.battery !== null);
  if (!levels.length) return h("span", { class: "muted" }, "—");
  return levels.map((d) => h("div", { class: d.battery < 20 ? "low" : "" }, `${d.display_name || d.device_id}: ${Math.round(d.battery)}%`));
}

async function patientList() {
  const { show } = view();
  show(h("h1", {}, "Patients"), h("p", { class: "muted" }, "Loading…"));
  const [patients, alerts] = await Promise.all([api("/api/v1/dashboard/patients"), openAlertCounts(null)]);
  const rows = patients.map((patient) => {
    const open = alerts ? alerts.counts.get(patient.id) || 0 : null;
    const adherence = patient.adherence;
    return h("tr", { "data-patient": patient.id },
      h("td", {}, h("a", { href: `#/patient/${patient.id}`, class: "patient-link" }, patient.name || patient.id), h("div", { class: "muted" }, patient.id)),
      h("td", { class: "latest" }, patient.latest.length
        ? patient.latest.map((vital) => h("span", { class: vital.out_of_range ? "chip out" : "chip", title: `${vital.text} — ${when(vital.time)}`, "data-kind": vital.kind }, `${vital.text}: ${vitalText(vital)}`))
        : h("span", { class: "muted" }, "no readings")),
      h("td", {}, patient.devices.length
        ? patient.devices.map((d) => h("div", { title: when(d.last_reading) }, `${d.display_name || d.device_id}: `, h("span", { class: d.last_reading ? "muted" : "low" }, d.last_reading ? ago(d.last_reading) : "nothing in 30 days")))
        : h("span", { class: "muted" }, "no devices")),
      h("td", {}, batteryCell(patient.devices)),
      h("td", {}, open === null ? h("span", { class: "muted", title: "the alerts API is not available" }, "n/a")
        : h("span", { class: open ? "badge alerting" : "badge", "data-open-alerts": open }, String(open))),
      h("td", {}, adherence ? h("span", { class: adherence.days >= ADHERENCE_TARGET ? "good" : "low" }, `${adherence.days}/${adherence.window_days} days`) : "—"));
  });
  show(
    h("h1", {}, "Patients"),
    h("table", { id: "patients" },
      h("thead", {}, h("tr", {}, ["Patient", "Latest vitals", "Last reading per device", "Battery", "Open alerts", "Adherence"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No patients in your care.")))),
  );
}

// -- patient page -----------------------------------------------------------------------------

async function patientPage(patientId) {
  const { show, current } = view();
  state.patientId = patientId;
  show(h("p", { class: "muted" }, "Loading…"));
  let patient;
  try {
    patient = await api(`/api/v1/dashboard/patients/${encodeURIComponent(patientId)}`);
  } catch (problem) {
    if (problem.status === 404) { show(h("h1", { id: "not-found" }, "Patient not found"), h("p", { class: "muted" }, "There is no such patient, or you may not see them.")); return; }
    throw problem;
  }
  if (!current()) return;
  const rangeButtons = Object.keys(RANGES).map((name) => h("button", {
    type: "button", "data-range": name, "aria-pressed": String(name === state.range),
    onclick: () => { state.range = name; for (const b of rangeButtons) b.setAttribute("aria-pressed", String(b.dataset.range === name)); loadCharts(patient); },
  }, name));
  const adherence = patient.adherence;
  show(
    h("h1", { id: "patient-name", "data-patient": patient.id }, patient.name || patient.id, " ", h("span", { class: "muted" }, patient.id)),
    h("p", {}, adherence ? `Adherence: ${adherence.days} of the last ${adherence.window_days} days with readings. ` : "", h("span", { class: "live", id: "live" }, "")),
    h("section", { class: "card" }, h("h2", {}, "Latest vitals"), h("div", { id: "latest" }, latestChips(patient.latest))),
    h("div", { class: "toolbar" }, h("strong", {}, "Trends"), rangeButtons, h("span", { class: "muted" }, "drag on a chart to zoom, double-click to reset")),
    h("div", { class: "charts", id: "charts" }),
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Alerts"), h("div", { id: "alerts" }, h("span", { class: "muted" }, "Loading…"))),
      h("section", { class: "card" }, h("h2", {}, "Devices"), devicesTable(patient.devices), pairingPanel(patient.id))),
    h("section", { class: "card" }, h("h2", {}, "Readings"), h("table", { id: "readings" },
      h("thead", {}, h("tr", {}, ["Time", "Reading", "Value", "Device"].map((t) => h("th", {}, t)))), h("tbody", {}))),
  );
  await Promise.all([loadCharts(patient), loadReadings(patient.id), loadAlerts(patient.id)]);
  if (current()) startStream(patient);
}

function latestChips(latest) {
  if (!latest.length) return h("span", { class: "muted" }, "no readings yet");
  return latest.map((vital) => h("span", { class: vital.out_of_range ? "chip out" : "chip", "data-kind": vital.kind, title: when(vital.time) }, `${vital.text}: ${vitalText(vital)}`));
}

function devicesTable(devices) {
  if (!devices.length) return h("p", { class: "muted" }, "No devices paired.");
  return h("table", { id: "devices" },
    h("thead", {}, h("tr", {}, ["Device", "Last reading", "Battery"].map((t) => h("th", {}, t)))),
    h("tbody", {}, devices.map((d) => h("tr", {},
      h("td", {}, d.display_name || d.device_id, h("div", { class: "muted" }, d.device_id)),
      h("td", {}, d.last_reading ? when(d.last_reading) : h("span", { class: "muted" }, "nothing in 30 days")),
      h("td", { class: d.battery !== null && d.battery < 20 ? "low" : "" }, d.battery === null ? "—" : `${Math.round(d.battery)}%`)))));
}

function pairingPanel(patientId) {
  const result = h("div", { class: "pairing", id: "pairing" });
  const button = h("button", { type: "button", class: "primary", id: "pair", onclick: async () => {
    result.replaceChildren(h("span", { class: "muted" }, "Creating a code…"));
    try {
      const code = await api(`/api/v1/patients/${encodeURIComponent(patientId)}/pairing-codes`, { method: "POST", body: {} });
      const qr = h("img", { alt: `QR code for pairing code ${code.code}`, id: "pairing-qr" });
      qr.src = `data:image/svg+xml;base64,${btoa(code.qr_svg)}`;
      result.replaceChildren(
        h("div", { class: "code", id: "pairing-code" }, code.code), qr,
        h("div", { class: "muted" }, `Enter it in the device or hub app, or scan it. Single use, valid until ${new Date(code.expires_at).toLocaleTimeString()}.`));
    } catch (problem) {
      result.replaceChildren(h("span", { class: "error" }, problem.message));
    }
  } }, "Pair a device");
  return h("div", {}, h("h2", {}, "Pair a device"), button, result);
}

function rangeQuery() {
  const range = RANGES[state.range];
  const to = new Date(Date.now() + 60e3);
  const from = new Date(to.getTime() - range.ms);
  return { from: from.toISOString(), to: to.toISOString(), bucket: range.bucket };
}

let chartLoads = 0;

async function loadCharts(patient) {
  const container = document.getElementById("charts");
  if (!container) return;
  const load = String(++chartLoads);
  container.dataset.load = load;
  const range = rangeQuery();
  const vitals = patient.latest;
  const series = await Promise.all(vitals.map((vital) => (vital.components
    ? bloodPressureSeries(patient.id, range) : vitalSeries(patient.id, vital.kind, range))));
  // Only the latest load draws, and only while its page is still shown (ranges clicked quickly, pages left).
  if (!container.isConnected || container.dataset.load !== load) return;
  container.replaceChildren();
  state.charts.clear();
  const window = [new Date(range.from).getTime() / 1000, new Date(range.to).getTime() / 1000];
  vitals.forEach((vital, index) => addChart(container, vital, series[index], window));
}

async function vitalSeries(patientId, kind, range) {
  const params = new URLSearchParams({ kind, from: range.from, to: range.to, bucket: range.bucket });
  const body = await api(`/api/v1/patients/${encodeURIComponent(patientId)}/vitals?${params}`);
  const times = [], means = [], mins = [], maxs = [];
  for (const bucket of body.buckets) {
    times.push(new Date(bucket.last_time).getTime() / 1000);
    means.push(bucket.mean); mins.push(bucket.min); maxs.push(bucket.max);
  }
  return { names: ["mean", "min", "max"], data: [times, means, mins, maxs] };
}

async function bloodPressureSeries(patientId, range) {
  // Panels have no bucketed series: the readings themselves (at most 1,000 in the range).
  const params = new URLSearchParams({ patient: patientId, code: BP_CODE, _count: "1000", _sort: "date" });
  params.append("date", `ge${range.from}`);
  params.append("date", `le${range.to}`);
  const bundle = await api(`/fhir/Observation?${params}`);
  const points = (bundle.entry || []).map((e) => e.resource).map((r) => {
    const value = (code) => r.component?.find((c) => c.code.coding.some((x) => x.code === code))?.valueQuantity?.value ?? null;
    return [new Date(r.effectiveDateTime).getTime() / 1000, value("8480-6"), value("8462-4")];
  }).sort((a, b) => a[0] - b[0]);
  return { names: ["systolic", "diastolic"], data: [points.map((p) => p[0]), points.map((p) => p[1]), points.map((p) => p[2])] };
}

const COLOURS = ["#1f6feb", "#9aa8b6", "#9aa8b6"];

function addChart(container, vital, series, window) {
  const box = h("div", { class: "chart", "data-kind": vital.kind });
  const title = h("h3", {}, `${vital.text} (${unitText(vital.unit)})`);
  box.append(title);
  container.append(box);
  const width = Math.max(320, box.clientWidth - 20);
  const view = { zoom: null };
  const options = {
    width, height: 200,
    // Every chart spans the chosen range (one reading alone does not stretch its axis over years);
    // a drag zooms into it, a double-click goes back to the whole range.
    cursor: { drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: true, range: () => view.zoom || window } },
    hooks: {
      setSelect: [(u) => {
        if (u.select.width > 2) {
          view.zoom = [u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x")];
          u.setScale("x", { min: view.zoom[0], max: view.zoom[1] });
        }
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      }],
      setScale: [(u, key) => { if (key === "x") box.dataset.span = String(Math.round(u.scales.x.max - u.scales.x.min)); }],
    },
    series: [{}, ...series.names.map((name, index) => ({
      label: name, stroke: vital.components ? ["#b42318", "#1f6feb"][index] : COLOURS[index],
      width: index === 0 || vital.components ? 2 : 1, dash: !vital.components && index > 0 ? [4, 4] : undefined,
      points: { show: true, size: 4 }, spanGaps: false,
    }))],
  };
  const chart = new uPlot(options, series.data, box);
  chart.over.addEventListener("dblclick", () => { view.zoom = null; chart.setScale("x", { min: window[0], max: window[1] }); });
  const entry = { chart, data: series.data, vital, box };
  state.charts.set(vital.kind, entry);
  markChart(entry);
}

function markChart(entry) {
  // What the page plots, for people reading the DOM (and the browser tests): points and the newest value.
  const times = entry.data[0];
  entry.box.dataset.points = String(times.length);
  const last = times.length ? entry.data[1][times.length - 1] : null;
  entry.box.dataset.lastValue = last === null ? "" : String(last);
}

function appendToChart(event) {
  const entry = state.charts.get(event.kind);
  if (!entry) return false;
  const t = new Date(event.time).getTime() / 1000;
  const values = entry.vital.components
    ? [event.components.systolic ?? null, event.components.diastolic ?? null]
    : [event.value, event.value, event.value];
  const data = entry.data;
  let index = data[0].findIndex((x) => x > t);
  if (index === -1) index = data[0].length;
  data[0].splice(index, 0, t);
  values.forEach((value, i) => data[i + 1].splice(index, 0, value));
  entry.chart.setData(data);
  markChart(entry);
  return true;
}

async function loadReadings(patientId) {
  const bundle = await api(`/fhir/Observation?patient=${encodeURIComponent(patientId)}&_count=25`);
  const body = document.querySelector("#readings tbody");
  if (!body) return;
  body.replaceChildren(...(bundle.entry || []).map((entry) => readingRow(entry.resource)));
}

function readingRow(resource) {
  const device = resource.device?.display || resource.device?.reference || "—";
  const time = resource.effectiveDateTime || resource.effectivePeriod?.end;
  const flagged = (resource.interpretation || []).some((i) => i.coding?.some((c) => c.code !== "N"));
  return h("tr", { "data-reading": resource.id },
    h("td", {}, when(time)), h("td", {}, resource.code?.text || resource.code?.coding?.[0]?.display || "—"),
    h("td", { class: flagged ? "out" : "" }, observationValue(resource)), h("td", { class: "muted" }, device));
}

async function loadAlerts(patientId) {
  const target = document.getElementById("alerts");
  if (!target) return;
  let alerts;
  try {
    const body = await api(`/api/v1/alerts?patient=${encodeURIComponent(patientId)}`);
    alerts = Array.isArray(body) ? body : body.alerts || body.entries || [];
  } catch (problem) {
    if (problem.status === 404) { target.replaceChildren(h("span", { class: "muted" }, "Alerts are not available on this gateway.")); return; }
    if (problem.status === 403) { target.replaceChildren(h("span", { class: "muted" }, "Alerts are not shown to your role.")); return; }
    throw problem;
  }
  if (!alerts.length) { target.replaceChildren(h("span", { class: "muted" }, "No alerts.")); return; }
  target.replaceChildren(h("table", { id: "alerts-table" },
    h("thead", {}, h("tr", {}, ["Alert", "Status", "Since", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, alerts.map((alert) => alertRow(alert, patientId)))));
}

function alertRow(alert, patientId) {
  const id = alert.id || alert.alert_id;
  const open = alert.status === "open";
  const acknowledge = open && !isPatient() ? h("button", { type: "button", class: "primary acknowledge", "data-alert": id, onclick: async (event) => {
    event.target.disabled = true;
    try {
      await api(`/api/v1/alerts/${encodeURIComponent(id)}/acknowledge`, { method: "POST", body: {} });
    } finally {
      await loadAlerts(patientId);
    }
  } }, "Acknowledge") : null;
  return h("tr", { "data-alert": id, "data-status": alert.status },
    h("td", { class: open ? "out" : "" }, alert.summary || `${alert.kind} ${alert.rule || ""}`),
    h("td", { class: "status" }, alert.status + (alert.severity ? ` (${alert.severity})` : "")),
    h("td", {}, when(alert.raised_at || alert.changed_at)), h("td", {}, acknowledge));
}

function startStream(patient) {
  stopStream();
  const source = new EventSource(`/api/v1/patients/${encodeURIComponent(patient.id)}/stream`);
  state.stream = source;
  const live = document.getElementById("live");
  source.addEventListener("open", () => { if (live) live.textContent = "● live"; });
  source.addEventListener("error", () => { if (live) live.textContent = "reconnecting…"; });
  source.addEventListener("observation", async (message) => {
    const event = JSON.parse(message.data);
    const plotted = appendToChart(event);
    const fresh = await api(`/api/v1/dashboard/patients/${encodeURIComponent(patient.id)}`);
    document.getElementById("latest")?.replaceChildren(...[latestChips(fresh.latest)].flat());
    if (!plotted) { // a kind this page had no chart for yet
      Object.assign(patient, fresh);
      await loadCharts(patient);
    }
    await loadReadings(patient.id);
  });
  source.addEventListener("alert", () => loadAlerts(patient.id));
  source.addEventListener("gap", () => patientPage(patient.id));
}

// -- inboxes ----------------------------------------------------------------------------------

const INBOXES = {
  unassigned: { title: "Unassigned readings", load: unassignedInbox },
  quarantine: { title: "Quarantine", load: quarantineInbox },
  "dead-letters": { title: "Dead letters", load: deadLetterInbox },
};

async function inboxPage() {
  const { show } = view();
  const body = h("div", { id: "inbox" });
  const tabs = Object.entries(INBOXES).map(([name, inbox]) => h("button", {
    type: "button", "data-inbox": name, onclick: () => open(name),
  }, inbox.title));
  async function open(name) {
    for (const tab of tabs) tab.setAttribute("aria-pressed", String(tab.dataset.inbox === name));
    body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      body.replaceChildren(await INBOXES[name].load(() => open(name)));
    } catch (problem) {
      body.replaceChildren(h("p", { class: "error" }, problem.message));
    }
  }
  show(h("h1", {}, "Inboxes"), h("div", { class: "tabs" }, tabs), body);
  await open("unassigned");
}

function payloadText(row) {
  return row.payload_encoding === "utf-8" ? row.payload : `(base64) ${row.payload}`;
}

async function unassignedInbox(reload) {
  const [rows, patients] = await Promise.all([api("/api/v1/inbox"), api("/api/v1/dashboard/patients")]);
  if (!rows.length) return h("p", { class: "muted", id: "inbox-empty" }, "No readings are waiting for a patient.");
  return h("table", { id: "unassigned" },
    h("thead", {}, h("tr", {}, ["Received", "Device", "Why", "Reading", "Claim for"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((row) => {
      const choice = h("select", { "aria-label": `patient for reading ${row.id}` }, patients.map((p) => h("option", { value: p.id }, p.name || p.id)));
      const problem = h("div", { class: "error" });
      const claim = h("button", { type: "button", class: "primary", onclick: async () => {
        problem.textContent = "";
        try {
          await api(`/api/v1/inbox/${row.id}/claim`, { method: "POST", body: { patient_id: choice.value } });
          reload();
        } catch (error) {
          problem.textContent = error.message; // a conflicting assignment, say: the person decides what next
        }
      } }, "Claim");
      return h("tr", { "data-row": row.id }, h("td", {}, when(row.last_seen)), h("td", {}, row.device_id || "—"),
        h("td", {}, row.detail), h("td", {}, h("pre", { class: "payload" }, payloadText(row))), h("td", {}, choice, " ", claim, problem));
    })));
}

async function quarantineInbox(reload) {
  let rows;
  try {
    rows = await api("/api/v1/quarantine?limit=200");
  } catch (problem) {
    if (problem.status === 403) return h("p", { class: "muted" }, "The quarantine is for administrators.");
    throw problem;
  }
  if (!rows.length) return h("p", { class: "muted" }, "Nothing in quarantine.");
  return h("table", { id: "quarantine" },
    h("thead", {}, h("tr", {}, ["Last seen", "Source", "Device", "Reason", "Payload", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((row) => h("tr", { "data-row": row.id },
      h("td", {}, when(row.last_seen), row.seen_count > 1 ? h("div", { class: "muted" }, `${row.seen_count}×`) : null),
      h("td", {}, `${row.source} ${row.channel}`), h("td", {}, row.device_id || "—"),
      h("td", {}, h("strong", {}, row.reason), h("div", { class: "muted" }, row.detail)),
      h("td", {}, h("pre", { class: "payload" }, payloadText(row))),
      h("td", {}, h("button", { type: "button", onclick: async () => {
        const outcome = await api(`/api/v1/quarantine/${row.id}/replay`, { method: "POST", body: {} });
        alertText(`Replayed: ${JSON.stringify(outcome)}`);
        reload();
      } }, "Replay"))))));
}

async function deadLetterInbox(reload) {
  let rows;
  try {
    rows = await api("/api/v1/outbox/dead-letters");
  } catch (problem) {
    if (problem.status === 404) return h("p", { class: "muted", id: "dead-letters-unavailable" }, "Dead letters are not available on this gateway yet.");
    if (problem.status === 403) return h("p", { class: "muted" }, "Dead letters are for administrators.");
    throw problem;
  }
  const list = Array.isArray(rows) ? rows : rows.dead_letters || rows.entries || [];
  if (!list.length) return h("p", { class: "muted" }, "No dead letters.");
  return h("table", { id: "dead-letters" },
    h("thead", {}, h("tr", {}, ["Destination", "Reading", "Last error", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map((row) => h("tr", {},
      h("td", {}, row.destination || "—"), h("td", {}, row.reading_key || row.patient_id || "—"),
      h("td", {}, row.last_error || row.error || "—"),
      h("td", {}, h("button", { type: "button", onclick: async () => {
        await api(`/api/v1/outbox/dead-letters/${encodeURIComponent(row.id)}/replay`, { method: "POST", body: {} });
        reload();
      } }, "Replay"))))));
}

function alertText(text) {
  const note = h("p", { class: "muted", role: "status" }, text);
  main().prepend(note);
  setTimeout(() => note.remove(), 5000);
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("/api/v1/session", { method: "DELETE" });
    signedOut("Signed out.");
  });
  window.addEventListener("hashchange", route);
  try {
    state.me = await api("/api/v1/session", { quiet401: true });
  } catch (problem) {
    if (problem.status === 401) { loginPage(""); return; }
    throw problem;
  }
  signedIn();
}

window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof ApiError && event.reason.status === 401) return;
  const note = h("p", { class: "error", role: "alert" }, `Something went wrong: ${event.reason?.message || event.reason}`);
  main().prepend(note);
});

document.addEventListener("DOMContentLoaded", start);
