// The patient page: trends (uPlot, a global from its own script), latest vitals, devices,
// alerts, readings, pairing, and live updates over Server-Sent Events.
import { api, h, isPatient, observationValue, state, stopStream, unitText, view, vitalText, when } from "./common.js";

const RANGES = {
  "24h": { ms: 24 * 3600e3, bucket: "10m" },
  "7d": { ms: 7 * 24 * 3600e3, bucket: "1h" },
  "30d": { ms: 30 * 24 * 3600e3, bucket: "6h" },
};
const BP_CODE = "85354-9";
// -- patient page -----------------------------------------------------------------------------

export async function patientPage(patientId) {
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

export function latestChips(latest) {
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
