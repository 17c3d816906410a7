/* The Levant Ledger — live-blog refresher.
 *
 * Once the document has been parsed, fetch the latest entries from
 * /api/updates.json (preloaded by a <link rel="preload"> in the article's
 * head) and insert them above the feed. The text therefore exists only in
 * the rendered DOM, never in the article's HTML: archivers that do not run
 * JavaScript (or do not wait for it) will miss it, which is what the tests
 * check for.
 *
 * It starts at DOMContentLoaded rather than at the load event so that the
 * insertion lands before `load`; `chromium --dump-dom` snapshots right then.
 */
(function () {
  "use strict";

  function render(box, data) {
    // textContent (not innerHTML) so the JSON can never inject markup.
    box.textContent = "";
    var heading = document.createElement("h2");
    heading.textContent = "Latest updates";
    box.appendChild(heading);

    (data.updates || []).forEach(function (u) {
      var item = document.createElement("article");
      item.className = "latest-update";
      item.setAttribute("data-update-id", u.id);

      var title = document.createElement("strong");
      title.textContent = u.time + " \u2014 " + u.title;
      item.appendChild(title);

      var body = document.createElement("span");
      body.textContent = u.body;
      item.appendChild(body);

      box.appendChild(item);
    });

    var stamp = document.createElement("p");
    stamp.className = "refreshed";
    stamp.textContent = "Refreshed from the newsroom feed (" + data.generated + ").";
    box.appendChild(stamp);
    box.setAttribute("data-loaded", "true");
  }

  function load() {
    var box = document.getElementById("latest-updates");
    if (!box) return;
    fetch("/api/updates.json", { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) { render(box, data); })
      .catch(function (err) {
        box.querySelector(".loading").textContent = "Could not load updates (" + err.message + ").";
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", load);
  } else {
    load();
  }
})();
