// Live status page: listen to /api/v1/stream (server-sent events) and re-fetch the page
// sections it names, swapping them in place. No library, no build step.
(function () {
  "use strict";
  const badge = document.getElementById("live");
  const setBadge = (text, cls) => { badge.textContent = text; badge.className = "badge " + cls; };
  let busy = {};
  async function refresh(name) {
    if (busy[name]) { busy[name] = "again"; return; }
    busy[name] = true;
    try {
      const site = new URLSearchParams(window.location.search).get("site");
      const query = site ? "?site=" + encodeURIComponent(site) : "";
      const r = await fetch("/partials/" + name + query, { credentials: "same-origin" });
      if (r.status === 401) { window.location = "/login"; return; }
      if (r.ok) {
        const el = document.querySelector('[data-section="' + name + '"]');
        const open = el && el.querySelector("details[open]");
        if (el) { el.innerHTML = await r.text(); }
        if (open && el.querySelector("details")) { el.querySelector("details").open = true; }
        document.body.dataset["updated_" + name] = String(Date.now());
      }
    } finally {
      const again = busy[name] === "again";
      busy[name] = false;
      if (again) { refresh(name); }
    }
  }
  let connectedOnce = false;
  function connect() {
    const es = new EventSource("/api/v1/stream");
    es.addEventListener("hello", () => {
      setBadge("● Live", "ok");
      if (connectedOnce) {  // missed changes while reconnecting: refresh everything
        document.querySelectorAll("[data-section]").forEach((el) => refresh(el.dataset.section));
      }
      connectedOnce = true;
    });
    es.addEventListener("change", (ev) => {
      JSON.parse(ev.data).sections.forEach(refresh);
    });
    es.onerror = () => { setBadge("○ Reconnecting…", "warn"); };
  }
  connect();
})();
