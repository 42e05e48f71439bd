import { ApiError, goHome, login } from "./api.js";
import { t } from "./i18n.js";
import { start } from "./shell.js";

await start({ needsLogin: false });
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  try {
    await login(form.username.value.trim(), form.password.value);
    await goHome();
  } catch (failure) {
    // 403: passwords are turned off (FLEET_LOCAL_LOGIN) for this user.
    const forbidden = failure instanceof ApiError && failure.status === 403;
    error.textContent = t(forbidden ? "login.passwords_off" : "login.failed");
    error.hidden = false;
  }
});
