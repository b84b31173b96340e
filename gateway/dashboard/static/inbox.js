// The inboxes: unassigned readings (claim), quarantine (replay), dead letters (replay).
import { alertText, api, h, view, when } from "./common.js";

// -- inboxes ----------------------------------------------------------------------------------

const INBOXES = {
  unassigned: { title: "Unassigned readings", load: unassignedInbox },
  quarantine: { title: "Quarantine", load: quarantineInbox },
  "dead-letters": { title: "Dead letters", load: deadLetterInbox },
};

export async function inboxPage() {
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
    if (problem.status === 403) return h("p", { class: "muted" }, "Dead letters are for administrators.");
    throw problem;
  }
  if (!rows.length) return h("p", { class: "muted" }, "No dead letters.");
  return h("table", { id: "dead-letters" },
    h("thead", {}, h("tr", {}, ["Destination", "Reading", "Time", "Attempts", "EHR answer", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((row) => h("tr", {},
      h("td", {}, row.destination), h("td", {}, row.observation), h("td", {}, row.time),
      h("td", {}, String(row.attempts)), h("td", {}, row.error || "—"),
      h("td", {}, h("button", { type: "button", onclick: async () => {
        await api(`/api/v1/outbox/dead-letters/${encodeURIComponent(row.id)}/replay`, { method: "POST", body: {} });
        reload();
      } }, "Replay"))))));
}
