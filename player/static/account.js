// Sign-in and sign-up forms: post to the accounts API (which sets the HttpOnly session cookie), show its
// refusal on the form, then open `next` (a same-site path the server already checked; checked again here).
(() => {
  const form = document.getElementById("auth-form");
  const errorBox = document.getElementById("form-error");
  const submit = document.getElementById("submit");
  const signup = form.dataset.mode === "signup";
  const next = StreamifyUI.sitePath(form.dataset.next, signup ? "/library" : "/");

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    form.classList.add("has-error");
  }

  // Already signed in: nothing to do here.
  window.streamifyAccount.then((user) => {
    if (user) location.replace(next);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    form.classList.remove("has-error");
    const fields = form.elements;
    const body = { email: fields.email.value.trim(), password: fields.password.value };
    if (signup) body.display_name = fields.display_name.value.trim();
    submit.disabled = true;
    try {
      const response = await fetch(`/api/v1/auth/${signup ? "signup" : "login"}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (response.ok) {
        location.assign(next);
        return;
      }
      fail(await StreamifyUI.problem(response));
      fields.password.select();
    } catch (_err) {
      fail("Could not reach the server. Check your connection and try again.");
    } finally {
      submit.disabled = false;
    }
  });
})();
