// Live saga view: fetch the steps fragment every data-poll-ms and swap it in until the saga
// ends (data-terminal). The page works without this file: it then reloads itself (noscript).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("saga");
  if (!box) return;
  const url = box.getAttribute("data-poll");
  const every = Math.max(250, Number(box.getAttribute("data-poll-ms")) || 1000);
  const state = () => box.querySelector(".saga-state");
  const finish = () => {
    const next = state() && state().getAttribute("data-next");
    if (next) window.location.assign(next);
  };
  if (!state() || state().getAttribute("data-terminal") === "true") return finish();
  const poll = async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (answer.ok && !answer.redirected) box.innerHTML = await answer.text();
    } catch (error) {
      // offline for a moment: the next poll tries again
    }
    if (state() && state().getAttribute("data-terminal") === "true") return finish();
    window.setTimeout(poll, every);
  };
  window.setTimeout(poll, every);
});
