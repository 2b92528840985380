// Small helpers shared by the sign-in, library and index pages. Nothing here builds HTML from strings:
// user text (titles, names, error details) only ever reaches the page through textContent.
window.StreamifyUI = (() => {
  const FIELD_NAMES = {
    email: "Email", password: "Password", display_name: "Name", title: "Title", description: "Description",
    visibility: "Visibility", file: "File", language: "Language", label: "Label",
  };

  /** The API's refusal as one readable sentence: `detail` is a string, or FastAPI's list of field errors. */
  async function problem(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_err) {
      body = null;
    }
    const detail = body && body.detail;
    if (typeof detail === "string" && detail) return capitalize(detail);
    if (Array.isArray(detail) && detail.length) {
      return detail.map((e) => {
        const field = Array.isArray(e.loc) ? e.loc[e.loc.length - 1] : "";
        const name = FIELD_NAMES[field] || (field ? String(field) : "");
        const msg = String(e.msg || "is not valid").replace(/^Value error, /, "");
        return name ? `${name}: ${msg}` : capitalize(msg);
      }).join(" ");
    }
    return `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".";
  }

  function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /** 75.4 -> "1:15", 3725 -> "1:02:05"; "" when unknown. */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
    const total = Math.max(0, Math.round(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function date(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  /** A link target from the API, kept only if it stays on this site. */
  function sitePath(path, fallback) {
    return typeof path === "string" && path.startsWith("/") && !path.startsWith("//") && !path.includes("\\")
      ? path : fallback;
  }

  /** Page position kept in the address bar (?q=&page=), so reload and back keep the same view. */
  function readQuery() {
    const params = new URLSearchParams(location.search);
    const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
    const asked = Number.parseInt(params.get("per_page") || "", 10);
    const perPage = Number.isFinite(asked) ? Math.min(100, Math.max(1, asked)) : null; // the API caps at 100
    return { q: (params.get("q") || "").slice(0, 200), page, perPage };
  }

  function writeQuery({ q, page, perPage }, defaultPerPage) {
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (page > 1) params.set("page", String(page));
    if (perPage && perPage !== defaultPerPage) params.set("per_page", String(perPage));
    const search = params.toString();
    history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}`);
  }

  /** Fills a pager: "1–10 of 23", Previous/Next enabled only where there is something. */
  function pager(root, { total, offset, count, limit }, go) {
    const pages = Math.max(1, Math.ceil(total / limit));
    const page = Math.floor(offset / limit) + 1;
    root.hidden = total <= limit && offset === 0;
    root.querySelector(".page-info").textContent = total
      ? `${offset + 1}–${offset + count} of ${total} · page ${page} of ${pages}` : "";
    const prev = root.querySelector(".prev");
    const next = root.querySelector(".next");
    prev.disabled = page <= 1;
    next.disabled = offset + count >= total;
    prev.onclick = () => go(page - 1);
    next.onclick = () => go(page + 1);
  }

  return { problem, duration, date, sitePath, readQuery, writeQuery, pager };
})();
