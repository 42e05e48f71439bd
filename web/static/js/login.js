import { login } from "./api.js";
import { t } from "./i18n.js";
import { start } from "./shell.js";

// Where each role starts; the first role that has a page wins.
const HOME = [
  ["dispatcher", "/desk"],
  ["supervisor", "/review"],
  ["admin", "/admin"],
  ["approver", "/phone"],
  ["driver", "/phone"],
  ["requester", "/phone"],
];

await start({ needsLogin: false });
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  try {
    await login(form.username.value.trim(), form.password.value);
    const me = await (await fetch("/api/v1/me", {
      headers: { Authorization: `Bearer ${localStorage.getItem("fleet.token")}` },
    })).json();
    const home = HOME.find(([role]) => me.roles.includes(role));
    location.assign(home ? home[1] : "/phone");
  } catch {
    error.textContent = t("login.failed");
    error.hidden = false;
  }
});
