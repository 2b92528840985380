// Library page, webhooks section: the creator's endpoints (GET /api/v1/webhooks), each with its recent deliveries
// (status, HTTP code, attempts, next try) and a Resend button; the disabled notice of an endpoint that kept
// failing, with "Enable again"; a form to add one, whose signing secret is shown once. User text and anything
// the API returns reach the page through textContent only.
(() => {
  const UI = StreamifyUI;
  const POLL_MS = 5000;
  const DELIVERIES = 10;
  const STATE_TEXT = { pending: "Retrying", delivered: "Delivered", failed: "Failed" };
  const ERROR_TEXT = {
    http_status: "error answer", timeout: "timed out", connection: "no connection", blocked: "blocked address",
    too_many_redirects: "too many redirects", worker_lost: "interrupted",
  };

  const $ = (id) => document.getElementById(id);
  const section = $("webhooks");
  const list = $("webhook-list");
  const form = $("webhook-form");
  const template = $("webhook-template");
  const deliveryTemplate = $("delivery-template");
  let pollTimer = null;

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    return { response, body: response.ok ? await response.json() : null };
  }

  function showError(box, message) {
    box.textContent = message;
    box.hidden = !message;
  }

  async function load() {
    let result;
    try {
      result = await getJson("/api/v1/webhooks");
    } catch (_err) {
      showError($("webhooks-error"), "Could not reach the server.");
      return schedule();
    }
    if (result.response.status === 401) return; // signed out: the library says so
    section.hidden = false;
    if (!result.body) {
      showError($("webhooks-error"), await UI.problem(result.response));
      return schedule();
    }
    showError($("webhooks-error"), "");
    const items = await Promise.all(result.body.map(buildEndpoint));
    list.replaceChildren(...items);
    $("webhooks-empty").hidden = items.length > 0;
    schedule();
  }

  function schedule() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => (document.hidden ? schedule() : load()), POLL_MS);
  }

  async function buildEndpoint(endpoint) {
    const el = template.content.firstElementChild.cloneNode(true);
    const q = (selector) => el.querySelector(selector);
    el.dataset.id = endpoint.id;
    el.dataset.enabled = String(endpoint.enabled);
    q(".webhook-url").textContent = endpoint.url;
    q(".webhook-state").textContent = endpoint.enabled ? "Enabled" : "Disabled";
    q(".webhook-state").classList.add(endpoint.enabled ? "status-ready" : "status-failed");
    q(".webhook-scope").hidden = !endpoint.install_wide;
    const described = endpoint.description ? `${endpoint.description} · ` : "";
    q(".webhook-events").textContent = described + endpoint.event_types.join(", ");
    q(".webhook-notice").textContent = endpoint.notice || "";
    q(".webhook-notice").hidden = !endpoint.notice;
    q(".webhook-enable").hidden = endpoint.enabled;
    q(".webhook-enable").addEventListener("click", () => change(el, endpoint, { method: "PATCH", enabled: true }));
    q(".webhook-delete").addEventListener("click", () => {
      if (window.confirm(`Delete the endpoint ${endpoint.url}? Nothing more is sent to it.`)) {
        change(el, endpoint, { method: "DELETE" });
      }
    });
    await fillDeliveries(el, endpoint);
    return el;
  }

  async function fillDeliveries(el, endpoint) {
    let result;
    try {
      result = await getJson(`/api/v1/webhooks/${encodeURIComponent(endpoint.id)}/deliveries?limit=${DELIVERIES}`);
    } catch (_err) {
      return;
    }
    if (!result.body) return;
    const rows = result.body.items.map((d) => deliveryRow(el, endpoint, d));
    el.querySelector(".deliveries tbody").replaceChildren(...rows);
    el.querySelector(".deliveries").hidden = rows.length === 0;
    el.querySelector(".no-deliveries").hidden = rows.length > 0;
  }

  function deliveryRow(el, endpoint, d) {
    const row = deliveryTemplate.content.firstElementChild.cloneNode(true);
    const q = (selector) => row.querySelector(selector);
    row.dataset.id = d.id;
    row.dataset.state = d.state;
    q(".d-event").textContent = `${d.event_type} · ${UI.date(d.created_at)}`;
    const why = d.last_error ? ` (${ERROR_TEXT[d.last_error] || d.last_error})` : "";
    q(".d-state").textContent = (STATE_TEXT[d.state] || d.state) + why;
    q(".d-state").title = d.last_error_detail || "";
    q(".d-code").textContent = d.response_status == null ? "—" : String(d.response_status);
    q(".d-attempts").textContent = String(d.attempts);
    q(".d-next").textContent = d.next_attempt_at ? UI.date(d.next_attempt_at) : "—";
    const resend = q(".d-resend");
    resend.disabled = !endpoint.enabled;
    resend.addEventListener("click", async () => {
      resend.disabled = true;
      try {
        const response = await fetch(`/api/v1/webhooks/deliveries/${encodeURIComponent(d.id)}/resend`, { method: "POST" });
        if (!response.ok) showError(el.querySelector(".webhook-row-error"), `Not resent: ${await UI.problem(response)}`);
        else load();
      } catch (_err) {
        showError(el.querySelector(".webhook-row-error"), "Not resent: could not reach the server.");
      }
    });
    return row;
  }

  async function change(el, endpoint, { method, ...body }) {
    const url = `/api/v1/webhooks/${encodeURIComponent(endpoint.id)}`;
    const options = { method };
    if (method === "PATCH") {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    try {
      const response = await fetch(url, options);
      if (!response.ok && response.status !== 404) {
        showError(el.querySelector(".webhook-row-error"), await UI.problem(response));
        return;
      }
    } catch (_err) {
      showError(el.querySelector(".webhook-row-error"), "Could not reach the server.");
      return;
    }
    load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      url: String(data.get("url") || "").trim(),
      event_types: data.getAll("event_types").map(String),
      description: String(data.get("description") || "").trim(),
      install_wide: data.get("install_wide") === "true",
    };
    const button = form.querySelector(".add-webhook");
    button.disabled = true;
    showError(form.querySelector(".form-error"), "");
    try {
      const response = await fetch("/api/v1/webhooks", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (!response.ok) {
        showError(form.querySelector(".form-error"), await UI.problem(response));
        return;
      }
      const created = await response.json();
      const box = $("webhook-secret");
      box.querySelector(".secret-url").textContent = created.url;
      box.querySelector(".secret").textContent = created.secret;
      box.hidden = false;
      form.reset();
      load();
    } catch (_err) {
      showError(form.querySelector(".form-error"), "Could not reach the server: the endpoint was not added.");
    } finally {
      button.disabled = false;
    }
  });

  async function showOperatorChoice() {
    try {
      const me = await getJson("/api/v1/auth/me");
      $("install-wide-field").hidden = !(me.body && me.body.is_operator);
    } catch (_err) {
      // the choice stays hidden
    }
  }

  showOperatorChoice();
  load();
})();
