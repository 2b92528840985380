// Helpers shared by every page's script: load /static/ui.js before the page script. Nothing here builds HTML
// from strings: user text (titles, names, error details) only ever reaches the page through textContent.
window.StreamifyUI = (() => {
  const FIELD_NAMES = {
    email: "Email", password: "Password", display_name: "Name", title: "Title", description: "Description",
    visibility: "Visibility", file: "File", language: "Language", label: "Label",
  };

  // ---- the API's refusals -------------------------------------------------------------------------
  /** A body's JSON, or null when it is not JSON (an empty answer, a proxy's HTML error page). */
  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (_err) {
      return null;
    }
  }

  /** "the server answered 502 Bad Gateway": what is left to say about an answer with no `detail`. */
  function answered(status, statusText = "") {
    return `the server answered ${status} ${statusText || ""}`.trim();
  }

  /** The refusal in a parsed API answer, as the API wrote it: `detail` is a string, or FastAPI's list of
   * field errors ("Title: …"); `fallback` when the body holds neither. */
  function detail(body, fallback) {
    const value = body && body.detail;
    if (typeof value === "string" && value) return value;
    if (Array.isArray(value) && value.length) {
      return value.map((e) => {
        const field = Array.isArray(e.loc) ? e.loc[e.loc.length - 1] : "";
        const name = FIELD_NAMES[field] || (field ? String(field) : "");
        const msg = String(e.msg || "is not valid").replace(/^Value error, /, "");
        return name ? `${name}: ${msg}` : capitalize(msg);
      }).join(" ");
    }
    return fallback;
  }

  /** A fetch Response's refusal as one readable sentence (reads the body). */
  async function problem(response) {
    const body = await response.json().catch(() => null);
    return capitalize(detail(body, `${answered(response.status, response.statusText)}.`));
  }

  function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // ---- times and dates ----------------------------------------------------------------------------
  /** A timer's reading: 75.4 -> "1:15", 3725 -> "1:02:05"; "" when unknown. */
  function clockDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
    const total = Math.max(0, Math.round(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  /** A length of time in words: 45 -> "45 s", 125 -> "2 min 5 s", 3725 -> "1 h 2 min"; `unknown` when it is
   * not a number. `padded` writes the smaller unit with two digits ("2 min 05 s", "1 h 02 min") so a figure
   * that updates in place keeps its width. */
  function humanDuration(seconds, { padded = false, unknown = "" } = {}) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return unknown;
    const total = Math.max(0, Math.round(seconds));
    const two = (n) => (padded ? String(n).padStart(2, "0") : String(n));
    if (total < 60) return `${total} s`;
    const m = Math.floor(total / 60);
    if (m < 60) return `${m} min ${two(total % 60)} s`;
    return `${Math.floor(m / 60)} h ${two(m % 60)} min`;
  }

  function date(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  // ---- links --------------------------------------------------------------------------------------
  const MAX_PATH_CHARS = 2000; // player/redirects.py MAX_NEXT_CHARS
  // Control characters, DEL and every character Python's str.isspace() calls white space: browsers drop tabs
  // and newlines from URLs ("/\t/evil.example" is "//evil.example"), so none of them may stand in a path.
  const UNSAFE_CHAR = /[\u0000-\u0020\u007f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

  /** A link target (a `next`, an API's watch_url) kept only if it is a path on this site: refuses exactly
   * what the server's player/redirects.py safe_next refuses (its urlsplit test can never fire on a value that
   * starts with one "/", so it has no counterpart here). */
  function sitePath(path, fallback) {
    if (typeof path !== "string" || !path || [...path].length > MAX_PATH_CHARS) return fallback;
    if (!path.startsWith("/") || path.startsWith("//") || path.includes("\\")) return fallback;
    return UNSAFE_CHAR.test(path) ? fallback : path;
  }

  // ---- list pages --------------------------------------------------------------------------------
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

  /**
   * One page of a searchable list for `state` ({q, page, perPage, loadSeq}): the view goes to the address bar,
   * the newest request wins, and a page past the end (videos deleted meanwhile) falls back to the last one.
   * Resolves to {page}, {response} (a refusal), {error} (no answer) or {stale} (a newer load started).
   */
  async function fetchListPage(path, state, defaultPerPage) {
    for (;;) {
      const seq = ++state.loadSeq;
      const limit = state.perPage;
      const offset = (state.page - 1) * limit;
      const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
      if (state.q) params.set("q", state.q);
      writeQuery(state, defaultPerPage);
      let response;
      try {
        response = await fetch(`${path}?${params}`, { headers: { Accept: "application/json" } });
      } catch (_err) {
        if (seq !== state.loadSeq) return { stale: true };
        return { error: "Could not reach the server. Check your connection and reload." };
      }
      if (seq !== state.loadSeq) return { stale: true };
      if (!response.ok) return { response };
      const page = await response.json();
      if (page.items.length || page.total === 0 || offset === 0) return { page };
      state.page = Math.ceil(page.total / limit);
    }
  }

  /** The #search form of _lists.html: searches on submit or after a pause in typing; #clear-search if present. */
  function listSearch(state, reload, delayMs = 350) {
    const form = document.getElementById("search");
    const input = document.getElementById("q");
    const clear = document.getElementById("clear-search");
    let timer = null;
    input.value = state.q;
    if (clear) clear.hidden = !state.q;
    function run() {
      clearTimeout(timer);
      const q = input.value.trim();
      if (clear) clear.hidden = !q;
      if (q === state.q) return;
      state.q = q;
      state.page = 1;
      reload();
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(run, delayMs);
    });
    clear?.addEventListener("click", () => { input.value = ""; run(); input.focus(); });
  }

  /** The empty notice and pager of _lists.html; the upload link shows only on an empty list without a search. */
  function listFooter(state, { total, offset, count }, emptyText, reload) {
    document.getElementById("empty").hidden = total > 0;
    document.getElementById("empty-text").textContent = emptyText;
    document.getElementById("empty-upload").hidden = Boolean(state.q);
    pager(document.getElementById("pager"), { total, offset, count, limit: state.perPage }, (n) => {
      state.page = n;
      reload();
      window.scrollTo({ top: 0 });
    });
  }

  // ---- renditions -----------------------------------------------------------------------------------
  /** Bits per second as people read them: "4.1 Mb/s", "310 kb/s". */
  function bitRate(bps) {
    return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
  }

  /** "1080p · 4.1 Mb/s · VMAF 94": its average bit rate, and its measured VMAF once there is one. */
  function renditionLine(r) {
    const parts = [r.name, bitRate(r.average_bandwidth)];
    if (r.vmaf != null) parts.push(`VMAF ${Math.round(r.vmaf)}`);
    return parts.join(" · ");
  }

  return {
    parseJson, answered, detail, problem, clockDuration, humanDuration, date, sitePath, readQuery, writeQuery, pager,
    fetchListPage, listSearch, listFooter, bitRate, renditionLine,
  };
})();
