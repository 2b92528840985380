// Index page: public, ready videos of every creator (GET /api/v1/videos), newest first, with poster,
// duration, owner, search by title and pages. User text only ever goes in through textContent.
(() => {
  const UI = StreamifyUI;
  const PER_PAGE = 24;
  const SEARCH_DELAY_MS = 350;
  const $ = (id) => document.getElementById(id);
  const grid = $("videos");
  const template = $("card-template");
  const query = UI.readQuery();
  const state = { q: query.q, page: query.page, perPage: query.perPage || PER_PAGE, loadSeq: 0 };

  async function load() {
    const seq = ++state.loadSeq;
    const limit = state.perPage;
    const offset = (state.page - 1) * limit;
    const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
    if (state.q) params.set("q", state.q);
    UI.writeQuery({ q: state.q, page: state.page, perPage: state.perPage }, PER_PAGE);
    let response;
    try {
      response = await fetch(`/api/v1/videos?${params}`, { headers: { Accept: "application/json" } });
    } catch (_err) {
      if (seq === state.loadSeq) fail("Could not reach the server. Check your connection and reload.");
      return;
    }
    if (seq !== state.loadSeq) return;
    if (!response.ok) {
      fail(await UI.problem(response));
      return;
    }
    const page = await response.json();
    if (!page.items.length && page.total > 0 && offset > 0) {
      state.page = Math.ceil(page.total / limit);
      load();
      return;
    }
    $("list-error").hidden = true;
    grid.replaceChildren(...page.items.map(card));
    $("empty").hidden = page.total > 0;
    $("empty-text").textContent = state.q
      ? `No public videos with “${state.q}” in their title.`
      : "No public videos yet.";
    $("empty-upload").hidden = Boolean(state.q);
    UI.pager($("pager"), { total: page.total, offset: page.offset, count: page.items.length, limit }, (n) => {
      state.page = n;
      load();
      window.scrollTo({ top: 0 });
    });
  }

  function fail(message) {
    $("list-error").textContent = message;
    $("list-error").hidden = false;
  }

  function card(v) {
    const el = template.content.firstElementChild.cloneNode(true);
    const q = (selector) => el.querySelector(selector);
    el.dataset.id = v.id;
    q(".card-link").href = UI.sitePath(v.watch_url, `/watch/${encodeURIComponent(v.id)}`);
    q(".card-title").textContent = v.title;
    q(".card-link").title = v.title;
    if (v.poster_url) {
      q(".poster").src = v.poster_url;
      q(".poster").hidden = false;
    } else {
      q(".thumb-empty").textContent = v.has_video ? "" : "Audio only";
    }
    const length = UI.clockDuration(v.duration);
    q(".duration").textContent = length;
    q(".duration").hidden = !length;
    q(".card-owner").textContent = v.owner_name;
    q(".card-date").textContent = UI.date(v.created_at);
    q(".card-date").dateTime = v.created_at;
    return el;
  }

  const input = $("q");
  let timer = null;
  input.value = state.q;
  function runSearch() {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q === state.q) return;
    state.q = q;
    state.page = 1;
    load();
  }
  $("search").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });

  load();
})();
