// Header navigation on every page: who is signed in (GET /api/v1/auth/me), the Dashboard link for
// operators, Sign in / Sign up or the account's email and Sign out. Runs as soon as the header is parsed;
// pages that need the account too await window.streamifyAccount instead of asking again.
(() => {
  const $ = (id) => document.getElementById(id);
  const here = location.pathname + location.search;

  for (const link of document.querySelectorAll(".site-nav a")) {
    const path = link.getAttribute("href");
    const current = path === "/" ? location.pathname === "/" : location.pathname.startsWith(path);
    if (current) link.setAttribute("aria-current", "page");
  }

  async function whoAmI() {
    try {
      const response = await fetch("/api/v1/auth/me", { headers: { Accept: "application/json" } });
      return response.ok ? await response.json() : null;
    } catch (_err) {
      return null; // offline: show the signed-out links, the page itself reports the failure
    }
  }

  function show(user) {
    const onAuthPage = location.pathname === "/login" || location.pathname === "/signup";
    $("nav-ops").hidden = !(user && user.is_operator);
    $("account-email").hidden = !user;
    $("sign-out").hidden = !user;
    $("sign-in").hidden = Boolean(user);
    $("sign-up").hidden = Boolean(user);
    if (user) {
      $("account-email").textContent = user.email;
      $("account-email").title = user.display_name ? `${user.display_name} <${user.email}>` : user.email;
    } else if (!onAuthPage) {
      const next = `?next=${encodeURIComponent(here)}`;
      $("sign-in").href = `/login${next}`;
      $("sign-up").href = `/signup${next}`;
    }
  }

  $("sign-out").addEventListener("click", async () => {
    $("sign-out").disabled = true;
    try {
      await fetch("/api/v1/auth/logout", { method: "POST" });
    } finally {
      location.assign("/");
    }
  });

  window.streamifyAccount = whoAmI();
  window.streamifyAccount.then(show);
})();
