// Shared by the dashboard's pages: state, DOM building, API calls, formatting.
export const state = { me: null, stream: null, charts: new Map(), range: "24h", patientId: null, generation: 0 };

// -- helpers ----------------------------------------------------------------------------------

export function h(tag, attrs, ...children) {
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

export function main() { return document.getElementById("main"); }

export function show(...children) {
  main().replaceChildren(...children);
}

export function view() {
  // A page that finishes loading after the person moved on must not draw over the new one.
  const generation = state.generation;
  const current = () => generation === state.generation;
  return { current, show: (...children) => { if (current()) show(...children); } };
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path, options = {}) {
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
    if (response.status === 401 && !options.quiet401) hooks.signedOut("Your session has ended: sign in again.");
    throw new ApiError(response.status, diagnostics);
  }
  return body;
}

export function when(iso) {
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

export function ago(iso) {
  if (!iso) return "—";
  const age = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (age < 90) return "just now";
  if (age < 5400) return `${Math.round(age / 60)} min ago`;
  if (age < 129600) return `${Math.round(age / 3600)} h ago`;
  return `${Math.round(age / 86400)} days ago`;
}

export function unitText(unit) {
  return { "/min": "/min", "mm[Hg]": "mmHg", Cel: "°C", "%": "%", kg: "kg", "{steps}": "steps" }[unit] || unit || "";
}

export function vitalText(vital) {
  if (vital.components) {
    const parts = ["systolic", "diastolic"].filter((name) => name in vital.components).map((name) => vital.components[name]);
    return `${parts.join("/")} ${unitText(vital.unit)}`;
  }
  return vital.value === null || vital.value === undefined ? "no value" : `${vital.value} ${unitText(vital.unit)}`;
}

export function observationValue(resource) {
  if (resource.valueQuantity) return `${resource.valueQuantity.value} ${unitText(resource.valueQuantity.code)}`;
  if (resource.component) {
    const values = resource.component.filter((c) => c.valueQuantity).map((c) => c.valueQuantity.value);
    const unit = resource.component.find((c) => c.valueQuantity);
    return `${values.slice(0, 2).join("/")} ${unit ? unitText(unit.valueQuantity.code) : ""}`;
  }
  if (resource.dataAbsentReason) return `absent: ${resource.dataAbsentReason.coding?.[0]?.code || "unknown"}`;
  return "—";
}

export function stopStream() {
  if (state.stream) { state.stream.close(); state.stream = null; }
}

export function isPatient() { return state.me && state.me.role === "patient"; }
export function alertText(text) {
  const note = h("p", { class: "muted", role: "status" }, text);
  main().prepend(note);
  setTimeout(() => note.remove(), 5000);
}

export const hooks = { signedOut: (_message) => {} };
