// Sign-in through the user pool's managed login: OAuth 2.0 authorization code with PKCE (S256).
// The code verifier, state and nonce live in sessionStorage only for the round trip to the
// managed login and are removed as soon as the browser is back. Tokens stay in this module's
// memory: never in localStorage, sessionStorage, cookies or IndexedDB, and no refresh token
// is kept.

const ROUND_TRIP = "articles-sign-in";

let session = null; // { idToken, accessToken, claims, expires }

export class SignInError extends Error {}

/// The page's own URL: the app client's callback and sign-out URL.
export function pageURL() {
  return location.origin + location.pathname;
}

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/// A JWT's payload, read without checking its signature (the API checks tokens; the page only
/// shows who is signed in and when the token runs out).
export function claimsOf(token) {
  const part = token.split(".")[1] ?? "";
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
}

/// Sends the browser to `{domain}/oauth2/authorize`; silent while the managed login's own
/// session lasts.
export async function signIn(config) {
  const verifier = randomText();
  const state = randomText();
  const nonce = randomText();
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(ROUND_TRIP, JSON.stringify({ verifier, state, nonce }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: pageURL(),
    scope: config.scopes,
    state,
    nonce,
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
  });
  location.assign(`${config.domain}/oauth2/authorize?${query}`);
}

/// On the way back from the managed login: nothing to do (false), signed in (true), or a
/// SignInError. The address bar loses the code and state either way.
export async function completeSignIn(config) {
  const query = new URLSearchParams(location.search);
  if (!query.has("code") && !query.has("error")) return false;
  const stored = sessionStorage.getItem(ROUND_TRIP);
  sessionStorage.removeItem(ROUND_TRIP);
  history.replaceState(null, "", pageURL());
  if (query.has("error")) {
    throw new SignInError(`Sign-in failed: ${query.get("error_description") || query.get("error")}.`);
  }
  const round = stored ? JSON.parse(stored) : null;
  if (!round || query.get("state") !== round.state) {
    throw new SignInError("Sign-in failed: the answer does not belong to a sign-in started here (state). Sign in again.");
  }
  const response = await fetch(`${config.domain}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: config.client_id,
      code: query.get("code"),
      redirect_uri: pageURL(),
      code_verifier: round.verifier,
    }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || !answer.id_token) {
    throw new SignInError(`Sign-in failed: the token endpoint answered ${answer.error || response.status}.`);
  }
  const claims = claimsOf(answer.id_token);
  if (claims.nonce !== round.nonce || claims.aud !== config.client_id) {
    throw new SignInError("Sign-in failed: the ID token was not issued for this sign-in (nonce).");
  }
  const apiToken = config.token_use.split(",")[0] === "access" ? answer.access_token : answer.id_token;
  session = { idToken: answer.id_token, apiToken, claims, expires: claimsOf(apiToken).exp };
  return true;
}

/// The signed-in user's ID token claims, or null.
export function signedIn() {
  return session?.claims ?? null;
}

/// The token the API takes, or null once it has expired (or is about to).
export function apiToken() {
  if (!session || session.expires * 1000 < Date.now() + 30_000) return null;
  return session.apiToken;
}

export function forget() {
  session = null;
}

/// Forgets the tokens, then ends the managed login's session, which sends the browser back.
export function signOut(config) {
  forget();
  const query = new URLSearchParams({ client_id: config.client_id, logout_uri: pageURL() });
  location.assign(`${config.domain}/logout?${query}`);
}
