// quantlake dashboard: the little the pages do in the browser. Live job progress from the
// server-sent events of /api/jobs/stream, and confirmation before anything is changed.
"use strict";

// Jobs: every element with data-job-id shows that job's progress; when a job the page shows
// finishes, the page reloads to show its outcome.
function followJobs() {
  const shown = document.querySelectorAll("[data-job-id]");
  if (!shown.length || !window.EventSource) return;
  const ids = new Set(Array.from(shown, (el) => el.dataset.jobId));
  const source = new EventSource("/api/jobs/stream");
  source.addEventListener("jobs", (event) => {
    const update = JSON.parse(event.data);
    for (const job of update.running) {
      for (const el of document.querySelectorAll(`[data-job-id="${CSS.escape(job.id)}"]`)) {
        const status = el.querySelector("[data-field=status]");
        if (status) { status.textContent = job.status; status.className = "badge " + job.status; }
        const p = job.progress;
        const bar = el.querySelector("[data-field=progress] > div");
        if (bar && p && p.total > 0) bar.style.width = Math.min(100, Math.round((100 * p.done) / p.total)) + "%";
        const stage = el.querySelector("[data-field=stage]");
        if (stage && p) stage.textContent = `${p.stage} ${p.done}/${p.total}`;
        const eta = el.querySelector("[data-field=eta]");
        if (eta) eta.textContent = job.eta_seconds == null ? "" : seconds(job.eta_seconds);
      }
    }
    // A job this page shows as unfinished is no longer running (it may have ended before the
    // first event): reload to show how it ended.
    const running = new Set(update.running.map((job) => job.id));
    if (Array.from(ids).some((id) => !running.has(id))) { source.close(); window.location.reload(); }
  });
}

// As the server writes durations (pages/mod.rs `seconds`).
function seconds(s) {
  if (s < 90) return s.toFixed(1) + " s";
  if (s < 5400) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}

// Forms with data-confirm ask first; the text says what will happen.
function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => { followJobs(); confirmForms(); });
