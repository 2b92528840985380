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
    const result = await UI.fetchListPage("/api/v1/videos", state, PER_PAGE);
    if (result.stale) return;
    if (!result.page) {
      fail(result.error || (await UI.problem(result.response)));
      return;
    }
    const page = result.page;
    $("list-error").hidden = true;
    grid.replaceChildren(...page.items.map(card));
    const empty = state.q ? `No public videos with “${state.q}” in their title.` : "No public videos yet.";
    UI.listFooter(state, { total: page.total, offset: page.offset, count: page.items.length }, empty, load);
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

  UI.listSearch(state, load, SEARCH_DELAY_MS);
  load();
})();
