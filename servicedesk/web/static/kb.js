/* Knowledge-base suggestions on the new-incident form.
 *
 * While the title is typed (300 ms after the last key), ask the server for published
 * articles that may answer it and show them under the title. The server renders the
 * list (escaped, like every page); this script only fetches it and puts it in place.
 * Loaded from our own origin, so the CSP's script-src 'self' allows it; without it the
 * form works as before, just without suggestions.
 */
(function () {
  "use strict";
  var box = document.getElementById("kb-suggestions");
  if (!box || !window.fetch) { return; }
  var form = box.closest("form");
  var title = form && form.querySelector("input[name=title]");
  var session = form && form.querySelector("input[name=kb_session]");
  if (!title) { return; }
  var url = box.getAttribute("data-url");
  var minimum = parseInt(box.getAttribute("data-min") || "3", 10);
  var timer = null;
  var asked = "";
  var latest = 0;

  function show(html) {
    box.innerHTML = html;
    box.hidden = html.trim() === "";
  }

  function ask() {
    var query = title.value.trim();
    if (query === asked) { return; }
    asked = query;
    if (query.length < minimum) { latest += 1; show(""); return; }
    var mine = (latest += 1);
    var params = new URLSearchParams({ q: query, session: session ? session.value : "" });
    fetch(url + "?" + params.toString(), {
      credentials: "same-origin",
      headers: { "Accept": "text/html" }
    }).then(function (response) {
      // Signed out meanwhile: the answer is the sign-in page, not suggestions.
      return response.ok && !response.redirected ? response.text() : "";
    }).then(function (html) {
      if (mine === latest) { show(html); }  // an older answer never replaces a newer one
    }).catch(function () { /* suggestions are a help, not a requirement */ });
  }

  title.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(ask, 300);
  });
  if (title.value.trim()) { ask(); }
})();
