// The helixflow console's only script: live updates by polling this server (no other origin), state details on click.
"use strict";
(function () {
  const body = document.body;
  const pollMs = Number(body.dataset.pollMs || 1000);

  async function text(url) {
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.text();
  }

  function swap(fresh, selector) {
    const incoming = fresh.querySelector(selector);
    const current = document.querySelector(selector);
    if (incoming && current) current.replaceWith(incoming);
  }

  // ------------------------------------------------------------------ executions list
  if (body.dataset.page === "executions") {
    const refresh = async () => {
      const query = new URLSearchParams(window.location.search);
      query.set("fragment", "1");
      try {
        document.getElementById("execution-rows").innerHTML = await text("/?" + query.toString());
      } catch (error) { /* the stack went away; keep what is shown */ }
    };
    setInterval(refresh, pollMs * 2);
    return;
  }
  if (body.dataset.page !== "execution") return;

  // ------------------------------------------------------------------ one execution
  const name = body.dataset.execution;
  let eventsPage = 1;
  let seen = null;

  async function loadEvents(page) {
    eventsPage = page;
    document.getElementById("events").innerHTML =
      await text("/executions/" + encodeURIComponent(name) + "/events?page=" + page);
  }

  async function loadLogs() {
    // The run's Lambda log lines and its cluster jobs' log tails, both rendered (and escaped) by the server.
    for (const id of ["logs", "job-logs"]) {
      const box = document.getElementById(id);
      try { box.innerHTML = await text(box.dataset.src); } catch (error) { /* keep the link */ }
    }
  }

  function show(detail) {
    const aside = document.getElementById("state-detail");
    aside.replaceChildren();
    const title = document.createElement("h3");
    title.textContent = detail.state + " · " + detail.status;
    aside.appendChild(title);
    const fields = [["Error", detail.error], ["Cause", detail.cause], ["Entered", detail.entered],
                    ["Exited", detail.exited], ["Attempts", detail.attempts], ["Visits", detail.visits],
                    ["Input", detail.input], ["Output", detail.output]];
    for (const [label, value] of fields) {
      if (value === null || value === undefined || value === "") continue;
      const heading = document.createElement("h4");
      heading.textContent = label;
      const pre = document.createElement("pre");
      pre.className = "detail-" + label.toLowerCase();
      pre.textContent = String(value);
      aside.append(heading, pre);
    }
    if (detail.status === "not run") {
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = "This state did not run in this execution.";
      aside.appendChild(note);
    }
  }

  document.addEventListener("click", async (event) => {
    const node = event.target.closest("g.state");
    if (node) {
      document.querySelectorAll("g.state.selected").forEach((g) => g.classList.remove("selected"));
      node.classList.add("selected");
      const state = node.id.replace(/^state-/, "");
      const response = await fetch("/api/executions/" + encodeURIComponent(name) + "/states/" + encodeURIComponent(state));
      if (response.ok) show(await response.json());
      return;
    }
    const link = event.target.closest("a[data-events-page]");
    if (link) {
      event.preventDefault();
      await loadEvents(Number(link.dataset.eventsPage));
    }
  });

  async function poll() {
    let status;
    try {
      const response = await fetch("/api/executions/" + encodeURIComponent(name));
      if (!response.ok) return;
      status = await response.json();
    } catch (error) { return; }
    const key = status.status + "/" + status.events;
    if (seen !== null && key !== seen) {
      // Something happened: take the server's fresh rendering of the facts, the graph and the states table.
      const fresh = new DOMParser().parseFromString(await text(window.location.pathname), "text/html");
      const selected = document.querySelector("g.state.selected");
      swap(fresh, "#run-status"); swap(fresh, ".facts"); swap(fresh, ".graph-box svg"); swap(fresh, "#states"); swap(fresh, "#map-runs");
      if (selected) { const again = document.getElementById(selected.id); if (again) again.classList.add("selected"); }
      await loadEvents(eventsPage);
      await loadLogs();
    } else {
      document.getElementById("run-duration").textContent = status.duration;
    }
    seen = key;
    body.dataset.status = status.status;
    if (status.status === "RUNNING") setTimeout(poll, pollMs);
  }

  loadLogs();
  poll();
})();
