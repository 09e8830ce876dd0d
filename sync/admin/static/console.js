// crmsync console: live fragments, buttons that post to the admin API with the CSRF token,
// and the progress of a started run. No build step, no dependency.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

function toast(text, bad) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = text;
  box.className = bad ? "show bad" : "show";
}

async function post(url, body) {
  const answer = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
  });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.error || `HTTP ${answer.status}`);
  return data;
}

function bodyOf(button) {
  const body = JSON.parse(button.dataset.body || "{}");
  if (button.dataset.form) {
    const form = document.getElementById(button.dataset.form);
    const system = form.elements.namedItem("system");
    if (system) body.system = system.value || null;
    const full = form.elements.namedItem("full");
    if (full) body.full = full.checked;
  }
  if (button.dataset.collect === "settle") {
    const settle = {};
    document.querySelectorAll("input[data-group]:checked").forEach((box) => {
      (settle[box.dataset.group] ||= []).push(box.value);
    });
    body.settle = settle;
  }
  return body;
}

async function follow(runId, where) {
  const box = document.getElementById(where);
  for (;;) {
    const answer = await fetch(`/runs/${encodeURIComponent(runId)}`, { credentials: "same-origin" });
    const run = answer.ok ? await answer.json() : { status: "queued", counts: {} };
    const done = run.counts?.systems_done ?? 0;
    const total = run.counts?.systems_total;
    const steps = total ? ` — ${done}/${total} systems` : "";
    box.innerHTML = "";
    const line = document.createElement("p");
    line.textContent = `${run.kind || "run"} ${runId}: ${run.status}${steps}`;
    line.dataset.status = run.status;
    line.className = "run-progress";
    box.appendChild(line);
    if (total) {
      const bar = document.createElement("progress");
      bar.max = total;
      bar.value = done;
      bar.setAttribute("aria-label", "systems done");
      box.appendChild(bar);
    }
    if (run.status !== "queued" && run.status !== "running") return run;
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.act");
  if (!button) return;
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const data = await post(button.dataset.action, bodyOf(button));
    if (button.dataset.follow && data.run_id) {
      toast(`started ${data.run_id}`);
      const run = await follow(data.run_id, button.dataset.follow);
      toast(`${data.run_id}: ${run.status}`, run.status !== "done");
    } else {
      toast("done");
      // the page reloads to show the new state; the outcome stays on screen across it (a slow
      // machine may reload before anyone, or any test, has read it)
      sessionStorage.setItem("crmsync-toast", "done");
      setTimeout(() => window.location.reload(), 400);
    }
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
  }
});

// the outcome of the action that reloaded this page
const shown = sessionStorage.getItem("crmsync-toast");
if (shown) {
  sessionStorage.removeItem("crmsync-toast");
  toast(shown);
}

// the action forms only gather a button's fields: Enter in one must not submit it
document.addEventListener("submit", (event) => {
  if (event.target.classList.contains("action")) event.preventDefault();
});

document.querySelectorAll("[data-refresh]").forEach((box) => {
  const every = Number(box.dataset.every || 2000);
  setInterval(async () => {
    try {
      const answer = await fetch(box.dataset.refresh, { credentials: "same-origin" });
      if (answer.redirected) {
        window.location.assign("/console/login"); // the session ended: sign in again
        return;
      }
      if (answer.ok) box.innerHTML = await answer.text();
    } catch (error) {
      // the admin process restarting: try again at the next tick
    }
  }, every);
});
