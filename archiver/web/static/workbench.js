// The workbench's only script: "check all" on the search page. Archived content never reaches a script: every
// value is escaped into the page by the server, and the CSP allows scripts from this origin only.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("check-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll('#selection input[name="id"]').forEach(function (box) { box.checked = all.checked; });
  });
});
