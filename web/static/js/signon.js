// The end of a sign-on through the identity provider: keep the token the server handed this page
// as the login page keeps a password's, then go where the role starts. A refusal shows its
// reason in the page's language.
import { goHome, keepToken } from "./api.js";
import { lang } from "./i18n.js";
import { start } from "./shell.js";

function paintReason() {
  for (const el of document.querySelectorAll("[data-lang]")) el.hidden = el.dataset.lang !== lang();
  document.getElementById("signon-refused").dataset.shown = lang();
}

await start({ needsLogin: false });
const box = document.getElementById("signon");
if (box) {
  keepToken(box.dataset.token, "oidc");
  delete box.dataset.token;
  await goHome();
} else {
  paintReason();
  window.addEventListener("fleet:lang", paintReason);
}
