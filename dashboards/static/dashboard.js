/* The dashboard page: a jobs list (#/) and one job's views (#/job/<id>), refreshed by polling.
 * Drawing a job is MixoptViews.renderJob (mixopt/reporting/assets/views.js), shared with the
 * HTML report. */
(function () {
  "use strict";

  var h = MixoptViews.h;
  var fmt = MixoptViews.format;
  var page = document.getElementById("page");
  var banner = document.getElementById("banner");
  var live = document.getElementById("live");
  var config = { poll_s: 3 };
  var timer = null;
  var route = 0; // bumped on navigation: answers to an older route are dropped

  function api(path) {
    return fetch(path, { cache: "no-store" }).then(function (response) {
      return response
        .json()
        .catch(function () { return {}; })
        .then(function (body) {
          if (!response.ok) {
            var error = new Error(body.detail || "HTTP " + response.status);
            error.status = response.status;
            throw error;
          }
          return body;
        });
    });
  }

  function schedule(token, seconds, fn) {
    if (token !== route) return;
    clearTimeout(timer);
    timer = setTimeout(function () { if (token === route) fn(); }, seconds * 1000);
  }

  function showBanner(messages) {
    banner.replaceChildren();
    (messages || []).forEach(function (text) {
      banner.appendChild(h("div", { className: "banner", "data-testid": "error", text: text }));
    });
  }

  function setLive(text, isError) {
    live.textContent = text;
    live.className = "live" + (isError ? " error" : "");
  }

  function now() {
    return new Date().toLocaleTimeString();
  }

  // ---------------------------------------------------------------------------- jobs list

  function renderList(data) {
    var rows = data.jobs.map(function (job) {
      var done = job.trials_completed === null || job.trials_completed === undefined ? "–" : job.trials_completed;
      var total = job.trials_total === null || job.trials_total === undefined ? "–" : job.trials_total;
      var row = h(
        "tr",
        { className: "clickable", "data-job-id": job.id, "data-state": job.state },
        h("td", null, h("a", { href: "#/job/" + encodeURIComponent(job.id), "data-testid": "job-link", text: job.name || job.id })),
        h("td", null, h("span", { className: "badge state-" + job.state, "data-col": "state", text: job.state || "unknown" })),
        h("td", { "data-col": "stage", text: job.stage || "" }),
        h("td", { className: "num", "data-col": "trials", text: done + " / " + total }),
        h("td", { className: "num", "data-col": "failed", text: job.trials_failed ? String(job.trials_failed) : "" }),
        h("td", { className: "num", "data-col": "best", text: fmt(job.best_objective) }),
        h("td", { "data-col": "updated", text: job.updated || "" }),
        h("td", { className: "small", text: job.error ? "error: " + job.error : job.source === "directory" ? job.dir : job.source })
      );
      row.addEventListener("click", function (event) {
        if (event.target.tagName !== "A") location.hash = "#/job/" + encodeURIComponent(job.id);
      });
      return row;
    });
    var headers = ["job", "state", "stage", "trials", "failed", "best objective", "updated", "where"];
    page.replaceChildren(
      h("h1", { text: "Jobs" }),
      h("p", { className: "small", text: "Sources: " + (config.sources || []).join("; ") }),
      rows.length
        ? h("div", { className: "table-wrap" }, h("table", { "data-testid": "jobs-table" },
            h("thead", null, h("tr", null, headers.map(function (x) { return h("th", { text: x }); }))),
            h("tbody", null, rows)))
        : h("p", { className: "unavailable", "data-testid": "no-jobs", text: "No jobs yet." })
    );
    page.setAttribute("data-page", "jobs");
  }

  function showList(token) {
    api("/api/jobs")
      .then(function (data) {
        if (token !== route) return;
        showBanner(data.errors);
        renderList(data);
        setLive("updated " + now(), false);
      })
      .catch(function (error) {
        if (token !== route) return;
        showBanner([error.message]);
        setLive("cannot reach the dashboard server", true);
      })
      .then(function () { schedule(token, Math.max(config.poll_s, 2), function () { showList(token); }); });
  }

  // -------------------------------------------------------------------------------- a job

  function showJob(id, token, lastVersion) {
    api("/api/jobs/" + encodeURIComponent(id))
      .then(function (model) {
        if (token !== route) return;
        showBanner([]);
        if (model.version !== lastVersion) {
          MixoptViews.renderJob(page, model, { mode: "dashboard", keepScroll: lastVersion !== null });
          page.setAttribute("data-page", "job");
          lastVersion = model.version;
        }
        var finished = model.job.finished;
        setLive((finished ? "" : "live · ") + "updated " + now(), false);
        document.title = model.job.name + " · mixopt";
        // a finished job is still looked at now and then: it may be resumed
        schedule(token, finished ? config.poll_s * 5 : config.poll_s, function () { showJob(id, token, lastVersion); });
      })
      .catch(function (error) {
        if (token !== route) return;
        showBanner([error.message]);
        if (error.status === 404) {
          page.replaceChildren(h("p", null, h("a", { href: "#/", text: "← all jobs" })));
          setLive("", false);
          return;
        }
        setLive("update failed · retrying", true);
        schedule(token, config.poll_s * 2, function () { showJob(id, token, lastVersion); });
      });
  }

  // ----------------------------------------------------------------------------- routing

  function navigate() {
    route += 1;
    clearTimeout(timer);
    var token = route;
    var match = /^#\/job\/(.+)$/.exec(location.hash);
    showBanner([]);
    if (match) {
      page.replaceChildren(h("p", { className: "small", text: "loading…" }));
      showJob(decodeURIComponent(match[1]), token, null);
    } else {
      document.title = "mixopt dashboard";
      showList(token);
    }
  }

  window.addEventListener("hashchange", navigate);
  api("/api/config")
    .then(function (c) { config = c; })
    .catch(function () {})
    .then(navigate);
})();
