// The console's script: no framework, no build step. Everything here enhances pages that
// work without it (forms post, links navigate); the overview's refresh and the charts need it.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// -- confirmation before destructive or wide actions (replay a filter, pause ...) ----------
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset ? form.dataset.confirm : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// -- "select all" for lists with checkboxes ---------------------------------------------------
function wireSelectAll() {
  document.querySelectorAll("input[data-select-all]").forEach((box) => {
    box.addEventListener("change", () => {
      const form = document.getElementById(box.dataset.selectAll);
      if (!form) return;
      form.querySelectorAll('input[type="checkbox"][name="ids"]').forEach((c) => {
        c.checked = box.checked;
      });
    });
  });
}

// -- the overview: figures fetched as JSON, the page is not reloaded --------------------------
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

function refreshOverview(stamp) {
  const labels = JSON.parse(document.getElementById("overview-labels").textContent);
  fetch(stamp.dataset.refresh, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((data) => {
      stamp.textContent = data.at;
      const q = document.getElementById("tile-quarantined");
      if (q) q.textContent = data.messages.quarantined;
      const overdue = document.getElementById("tile-overdue");
      if (overdue) {
        overdue.textContent = data.overdue;
        overdue.parentElement.classList.toggle("bad", data.overdue > 0);
      }
      const reviews = document.getElementById("tile-reviews");
      if (reviews && data.reviews !== null) reviews.textContent = data.reviews;
      const today = document.querySelector("#today tbody");
      if (today && data.messages.today.length) {
        today.replaceChildren(
          ...data.messages.today.map((row) => {
            const tr = document.createElement("tr");
            const th = document.createElement("th");
            th.scope = "row";
            const a = document.createElement("a");
            a.href = "/console/messages?source=" + encodeURIComponent(row.source);
            a.textContent = row.source;
            th.append(a);
            tr.append(th);
            labels.statuses.forEach((s) => tr.append(cell(row[s], "num")));
            return tr;
          })
        );
      }
      data.destinations.forEach((d) => {
        const tr = document.querySelector('#destinations tr[data-destination="' + CSS.escape(d.destination) + '"]');
        if (!tr) return;
        tr.querySelector('[data-field="pending"]').textContent = d.pending;
        tr.querySelector('[data-field="in_flight"]').textContent = d.in_flight;
        tr.querySelector('[data-field="dead"]').textContent = d.dead;
        tr.querySelector('[data-field="breaker"]').textContent = d.paused
          ? labels.paused
          : labels.breaker[d.breaker] || d.breaker;
      });
      stamp.dataset.refreshed = String(Number(stamp.dataset.refreshed || 0) + 1);
    })
    .catch(() => {
      stamp.classList.add("stale");
    });
}

function wireOverview() {
  const stamp = document.getElementById("overview-at");
  if (!stamp) return;
  const seconds = Number(stamp.dataset.every || 15);
  window.setInterval(() => refreshOverview(stamp), seconds * 1000);
  const now = document.getElementById("overview-refresh");
  if (now) now.addEventListener("click", () => refreshOverview(stamp));
}

// -- charts (Apache ECharts, served from /console/static/vendor/echarts) ---------------------
function wireCharts() {
  if (typeof echarts === "undefined") return;
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const option = JSON.parse(document.getElementById(el.dataset.chart).textContent);
    const chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(option);
    window.addEventListener("resize", () => chart.resize());
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireSelectAll();
  wireOverview();
  wireCharts();
});
