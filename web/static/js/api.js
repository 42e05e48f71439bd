// The API with the token the login page keeps. A 401 sends the user back to sign in.
const TOKEN = "fleet.token";
// How the token was had: "oidc" (through the identity provider) makes logout end the provider's
// session too.
const SIGNON = "fleet.signon";
let signingOut = false;

// Where each role starts; the first role that has a page wins.
const HOME = [
  ["dispatcher", "/desk"],
  ["supervisor", "/review"],
  ["admin", "/admin"],
  ["approver", "/phone"],
  ["driver", "/phone"],
  ["requester", "/phone"],
];

export function token() {
  return localStorage.getItem(TOKEN) || "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail;
    const text = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail;
    super(text || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, form } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const answer = await fetch(path, { method, headers, body: payload });
  if (answer.status === 401) {
    localStorage.removeItem(TOKEN);
    // While signing out, the page's other requests fail once the token is revoked: the way out
    // (perhaps through the identity provider) is logout's to choose.
    if (!signingOut) location.assign("/login");
    throw new ApiError(401, null);
  }
  const type = answer.headers.get("content-type") || "";
  // A 204 (logout) is labelled JSON by the server but has no body.
  const text = type.includes("json") ? await answer.text() : "";
  const data = text ? JSON.parse(text) : null;
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}

export async function login(username, password) {
  const form = new URLSearchParams({ username, password });
  const answer = await fetch("/api/v1/auth/token", { method: "POST", body: form });
  if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => null));
  const data = await answer.json();
  keepToken(data.access_token, "password");
  return data;
}

export function keepToken(value, how) {
  localStorage.setItem(TOKEN, value);
  localStorage.setItem(SIGNON, how);
}

// The signed-in user's own page.
export async function goHome() {
  const me = await api("/api/v1/me");
  const home = HOME.find(([role]) => me.roles.includes(role));
  location.assign(home ? home[1] : "/phone");
}

export async function logout() {
  signingOut = true;
  try {
    await api("/api/v1/auth/logout", { method: "POST" });
  } finally {
    const how = localStorage.getItem(SIGNON);
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(SIGNON);
    location.assign(how === "oidc" ? "/auth/oidc/logout" : "/login");
  }
}
