// A real OpenID Connect provider for the sign-on tests: oidc-provider (OpenID-certified), on
// http://127.0.0.1:PORT, with its development login and consent pages.
//
// Configured from the environment by tests/oidc/conftest.py:
//   OIDC_TEST_PORT     the port to listen on (the issuer is http://127.0.0.1:PORT)
//   OIDC_TEST_CLIENTS  JSON list of clients (client_id, client_secret, redirect_uris,
//                      post_logout_redirect_uris)
//   OIDC_TEST_USERS    JSON object: login name -> claims ({"preferred_username": ..., "unit": ...});
//                      a login name not listed signs in with preferred_username = the name.
// Any password is accepted: the provider's development login page checks none.
import Provider from "oidc-provider";

const port = Number(process.env.OIDC_TEST_PORT);
const clients = JSON.parse(process.env.OIDC_TEST_CLIENTS || "[]");
const users = JSON.parse(process.env.OIDC_TEST_USERS || "{}");
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: clients.map((client) => ({
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    ...client,
  })),
  // The authorization code flow with PKCE (S256) only.
  pkce: { methods: ["S256"], required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // The profile claims in the ID token itself, as many government providers put them.
  conformIdTokenClaims: false,
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name", "unit"],
  },
  cookies: { keys: ["fleet-test-provider-cookie-key"] },
  async findAccount(ctx, id) {
    const claims = users[id] || { preferred_username: id };
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...claims };
      },
    };
  },
});

// Its own pages import a web font from Google; the page tests allow nothing outside the machine.
provider.use(async (ctx, next) => {
  await next();
  if (typeof ctx.body === "string") ctx.body = ctx.body.replace(/@import url\(https:[^)]*\);/g, "");
});

provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
