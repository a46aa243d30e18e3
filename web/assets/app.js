// The articles in a browser: who is signed in, the articles a page at a time (following the
// API's Link header), creating one, and renaming and deleting those the caller may change,
// with If-Match so that a concurrent change is a 412, not a lost update.
import * as auth from "./auth.js";

const PAGE_SIZE = 10;
const FIRST_PAGE = `/articles/?limit=${PAGE_SIZE}`;
const $ = (id) => document.getElementById(id);

let config = null;
let current = FIRST_PAGE; // the page shown
let previous = []; // the pages before it, as followed
let next = null; // its Link rel="next", if any
const etags = new Map(); // article id -> ETag, as last read

class APIError extends Error {}
// Thrown when the browser is on its way to the managed login: nothing more to show.
class Leaving extends Error {}

function say(element, text) {
  element.textContent = text ?? "";
  element.hidden = !text;
}
const notice = (text) => say($("notice"), text);
const problem = (text) => say($("error"), text);

/// What the API said went wrong: its `detail`, or its field messages.
function messageOf(status, body) {
  if (typeof body?.detail === "string") return body.detail;
  if (body && typeof body === "object" && Object.keys(body).length) {
    return Object.entries(body).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`).join(" ");
  }
  return `The API answered ${status}.`;
}

/// A call to the API with the signed-in user's token. A token that has run out sends the user
/// through the managed login again; a 401 signs the page out.
async function api(path, { method = "GET", body, etag } = {}) {
  const token = auth.apiToken();
  if (!token) {
    await auth.signIn(config);
    throw new Leaving();
  }
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-Match"] = etag;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.ok) return response;
  const message = messageOf(response.status, await response.json().catch(() => null));
  if (response.status === 401) {
    auth.forget();
    render();
    throw new APIError(`${message} Sign in again.`);
  }
  const error = new APIError(message);
  error.status = response.status;
  throw error;
}

/// Runs a user's action, showing what went wrong.
async function act(action) {
  problem(null);
  try {
    await action();
  } catch (error) {
    if (error instanceof Leaving) return;
    if (error.status === 412) {
      notice("The article changed meanwhile; reloaded.");
      await act(() => show(current));
      return;
    }
    problem(error instanceof APIError || error instanceof auth.SignInError ? error.message : `Something went wrong: ${error.message}`);
  }
}

function mayChange(article) {
  const claims = auth.signedIn();
  if (!claims) return false;
  const groups = claims["cognito:groups"] ?? [];
  return article.owner === claims["cognito:username"] || (config.admin_group != null && groups.includes(config.admin_group));
}

/// Shows the page at `url`, with the ETag of each article the caller may change. The list is
/// marked busy meanwhile (assistive technology waits for it, and so can a test).
async function show(url) {
  $("list").setAttribute("aria-busy", "true");
  try {
    const response = await api(url);
    const articles = await response.json();
    const link = /<([^>]+)>\s*;\s*rel="next"/.exec(response.headers.get("Link") ?? "");
    current = url;
    next = link ? link[1] : null;
    etags.clear();
    await Promise.all(articles.filter(mayChange).map(async (article) => {
      const single = await api(`/articles/${article.id}/`);
      etags.set(String(article.id), single.headers.get("ETag"));
      Object.assign(article, await single.json());
    }));
    $("list").replaceChildren(...articles.map(item));
    $("previous").disabled = previous.length === 0;
    $("next").disabled = next === null;
  } finally {
    $("list").removeAttribute("aria-busy");
  }
}

function element(tag, properties = {}, ...children) {
  const made = Object.assign(document.createElement(tag), properties);
  made.append(...children);
  return made;
}

function item(article) {
  const li = element("li", {}, element("strong", { className: "name" }, article.name),
    element("div", { className: "meta" }, `by ${article.owner} · #${article.id} · updated ${new Date(article.updated_at).toLocaleString()}`));
  li.dataset.id = article.id;
  if (mayChange(article)) {
    const input = element("input", { name: "name", value: article.name, required: true, autocomplete: "off" });
    input.setAttribute("aria-label", `New name for ${article.name}`);
    const remove = element("button", { type: "button", className: "secondary" }, "Delete");
    remove.dataset.action = "delete";
    li.append(element("form", { className: "rename row" }, input, element("button", { type: "submit" }, "Rename"), remove));
  }
  return li;
}

function render() {
  const claims = auth.signedIn();
  say($("who"), claims ? `${claims.email ?? ""} (${claims["cognito:username"] ?? claims.sub})` : null);
  $("sign-in").hidden = !!claims || !config?.domain;
  $("sign-out").hidden = !claims;
  $("signed-out").hidden = !!claims || !config?.domain;
  $("articles").hidden = !claims;
}

function wire() {
  $("sign-in").addEventListener("click", () => act(() => auth.signIn(config)));
  $("sign-out").addEventListener("click", () => auth.signOut(config));
  // The pages followed so far, kept before the page is shown (which enables the buttons), and
  // put back as they were if it cannot be.
  $("next").addEventListener("click", () => act(async () => {
    previous.push(current);
    await show(next).catch((error) => { previous.pop(); throw error; });
  }));
  $("previous").addEventListener("click", () => act(async () => {
    const back = previous.pop();
    await show(back).catch((error) => { previous.push(back); throw error; });
  }));
  $("create").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("new-name");
    act(async () => {
      const made = await (await api("/articles/", { method: "POST", body: { name: input.value } })).json();
      input.value = "";
      notice(`Created “${made.name}”.`);
      // On the last page it shows there; else on a page of its own, after the one shown.
      if (next === null) return show(current);
      previous.push(current);
      await show(`/articles/?after=${made.id - 1}&limit=${PAGE_SIZE}`).catch((error) => { previous.pop(); throw error; });
    });
  });
  // The buttons of every article, by event delegation: the article is the one they sit in.
  $("list").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = event.target.closest("li").dataset.id;
    const name = event.target.elements.name.value;
    act(async () => {
      await api(`/articles/${id}/`, { method: "PATCH", body: { name }, etag: etags.get(id) });
      notice(`Renamed to “${name}”.`);
      await show(current);
    });
  });
  $("list").addEventListener("click", (event) => {
    const button = event.target.closest("[data-action=delete]");
    if (!button) return;
    const id = button.closest("li").dataset.id;
    act(async () => {
      await api(`/articles/${id}/`, { method: "DELETE", etag: etags.get(id) });
      notice(`Deleted article #${id}.`);
      await show(current);
    });
  });
  document.addEventListener("securitypolicyviolation", (event) => {
    problem(`The site's Content-Security-Policy blocked ${event.blockedURI}: the nginx site needs the managed login domain (COGNITO_DOMAIN).`);
  });
}

async function start() {
  wire();
  try {
    const response = await fetch("/app-config.json");
    if (!response.ok) throw new Error(`it answered ${response.status}`);
    config = await response.json();
  } catch (error) {
    problem(`The API's settings (/app-config.json) could not be read: ${error.message}.`);
    return;
  }
  if (!config.domain) {
    render();
    notice("Sign-in is not configured: the worker has no COGNITO_DOMAIN.");
    return;
  }
  await act(() => auth.completeSignIn(config));
  render();
  if (auth.signedIn()) await act(() => show(current));
}

start();
