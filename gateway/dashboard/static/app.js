// PulseBridge dashboard: a small single-page front end over the gateway's own API.
// Every value from the server is put in the page as text (never as HTML), and every call goes
// to this origin with the session cookie; requests that change something carry the CSRF header.
import { ApiError, api, ago, h, hooks, isPatient, main, show, state, stopStream, view, vitalText, when } from "./common.js";
import { inboxPage } from "./inbox.js";
import { patientPage } from "./patient.js";

const ADHERENCE_TARGET = 16; // days with data in 30: what remote-monitoring programmes bill on

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
  const query = patientId ? `?status=open&limit=1000&patient=${encodeURIComponent(patientId)}` : "?status=open&limit=1000";
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

hooks.signedOut = signedOut;
start();
