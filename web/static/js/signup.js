// Sign-up: POST /api/auth/register, then the ordinary login with the same email and
// password (registration answers no token on purpose: one way in, with its rate limits).
// The server states the password rules in its error, shown under the form as it is.

export async function signUp({ $, api, tokens, done }) {
  const button = $("#signup-submit");
  const error = $("#signup-error");
  const email = $("#signup-email").value.trim();
  const password = $("#signup-password").value;
  button.disabled = true;
  error.hidden = true;
  try {
    await api.post("/api/auth/register", { email, password }, { auth: false, retries: 0 });
    await tokens.login(email, password);
    $("#signup-password").value = "";
    await done();
  } catch (caught) {
    error.textContent = caught.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}
