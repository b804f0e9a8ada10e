// Progressive enhancement only: every page works without this file.
"use strict";

// A list that lacks an item just written (the read model has not caught up) asks the server
// for the list alone again, about once a second, and swaps it in; it stops when the server
// answers a list without data-poll-url (the item is there, or the polls are spent).
function pollPendingList(region) {
  const every = Number(region.dataset.pollSeconds || 1) * 1000;
  const max = Number(region.dataset.pollMax || 10);
  let tries = Number(region.dataset.pollFrom || 0);
  const tick = async () => {
    tries += 1;
    const url = new URL(region.dataset.pollUrl, window.location.href);
    url.searchParams.set("poll", String(tries));
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.ok) {
        const holder = document.createElement("template");
        holder.innerHTML = (await response.text()).trim();
        const fresh = holder.content.querySelector(".list-region");
        if (fresh) {
          region.replaceWith(fresh);
          region = fresh;
        }
      }
    } catch (error) {
      // offline for a moment: the next tick tries again
    }
    if (region.dataset.pollUrl && tries < max) window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  // A button with data-confirm asks before its form is sent (the server asks again where it matters).
  document.querySelectorAll("[data-confirm]").forEach((el) => {
    el.addEventListener("click", (event) => {
      if (!window.confirm(el.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  document.querySelectorAll(".list-region[data-poll-url]").forEach(pollPendingList);
});
