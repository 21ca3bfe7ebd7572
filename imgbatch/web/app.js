// The page's entry point: the hash router (#/ and #/requests/<id>) and the wiring between
// the upload form, the request view and the list of recent requests.

import { apiKey, downloadPath, setApiKey } from "./api.js";
import { byId, setText } from "./dom.js";
import { RecentList } from "./recent.js";
import { RequestView } from "./request.js";
import { setUpUpload } from "./upload.js";

const REQUEST_ROUTE = /^#\/requests\/([^/?#]+)$/;

const welcome = byId("welcome");
const notFound = byId("not-found");
const recent = new RecentList();
const view = new RequestView({
  onChange: () => recent.refresh(),
  onStatus: (status) => recent.update(status),
  onNotFound: (requestId) => {
    view.close();
    setText(byId("not-found-text"), `There is no request with the ID ${requestId}.`);
    notFound.hidden = false;
  },
});

// The upload's 202 body, kept so its view shows at once, before the first poll.
let accepted = null;

function route({ moveFocus }) {
  const match = REQUEST_ROUTE.exec(window.location.hash);
  notFound.hidden = true;
  if (!match) {
    view.close();
    recent.select(null);
    welcome.hidden = false;
    return;
  }
  const requestId = decodeURIComponent(match[1]);
  welcome.hidden = true;
  const initial = accepted?.request_id === requestId ? accepted : null;
  accepted = null;
  view.open(requestId, initial);
  recent.select(requestId);
  if (moveFocus) byId("request-title").focus({ preventScroll: false });
}

setUpUpload({
  onAccepted: (status) => {
    accepted = status;
    window.location.hash = `#/requests/${encodeURIComponent(status.request_id)}`;
    recent.load(0);
  },
});

const keyForm = byId("key-form");
const keyInput = byId("api-key");
keyInput.value = apiKey();
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(keyInput.value.trim());
  recent.refresh();
  view.close(); // reopen with the new key
  route({ moveFocus: false });
});

// Links marked data-keyed (the sample CSV) need the API key: a plain link cannot send it.
document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a[data-keyed]");
  if (!link || !apiKey()) return;
  event.preventDefault();
  downloadPath(link.getAttribute("href"), link.getAttribute("download")).catch((error) =>
    window.alert(`The download failed: ${error.message}`),
  );
});

window.addEventListener("hashchange", () => route({ moveFocus: true }));
route({ moveFocus: false });
recent.load(0);
