/* Draws one job's view model (mixopt.reporting.views.build_views) into a page element.
 *
 * Shared by the dashboard (which fetches the model from /api/jobs/<id> and redraws it while the
 * job runs) and the HTML report (which inlines the model). Every number shown comes from the
 * model; this file only formats and lays it out. Elements tests read carry data-testid.
 *
 *   MixoptViews.renderJob(element, model, {mode: "dashboard" | "report"})
 */
(function (global) {
  "use strict";

  var SECTIONS = [
    ["recommendation", "Recommendation"],
    ["trace", "Optimisation trace"],
    ["mixtures", "Mixtures"],
    ["stages", "Mixture over training", true], // optional: only staged jobs have it
    ["predictor", "Predictor quality"],
    ["effects", "Domain effects"],
    ["validation", "Validation at scale"],
    ["pareto", "Pareto"],
    ["scale", "Scale"],
    ["moe", "MoE expert load"],
    ["trials", "Trials"],
    ["spec", "Spec"],
  ];
  var PLOT_CONFIG = { responsive: true, displaylogo: false };
  var state = { moeTrial: {} };

  // ------------------------------------------------------------------------------ helpers

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") el.textContent = String(value);
        else if (key === "className") el.className = value;
        else el.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) return child.forEach(function (c) { append(el, c); });
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || (typeof value === "number" && !isFinite(value))) {
      return "–";
    }
    if (typeof value !== "number") return String(value);
    return value.toFixed(digits === undefined ? 4 : digits);
  }

  function signed(value, digits) {
    if (value === null || value === undefined) return "–";
    return (value >= 0 ? "+" : "") + fmt(value, digits);
  }

  function sci(value) {
    if (value === null || value === undefined || typeof value !== "number" || !isFinite(value)) return "–";
    return value.toPrecision(3);
  }

  function pct(value) {
    return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + "%";
  }

  // a scale-aware law's part in the prediction: the one chosen, or its weight in the average
  function lawRole(score) {
    if (!score.chosen) return "";
    var w = score.weight;
    return typeof w === "number" && w < 0.995 ? " (weight " + w.toFixed(2) + ")" : " (chosen)";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.round(seconds);
    if (seconds < 90) return seconds + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function num(testid, value, digits, extra) {
    var attrs = { className: "num", "data-testid": testid, text: fmt(value, digits) };
    if (typeof value === "number") attrs["data-value"] = String(value);
    return h("span", Object.assign(attrs, extra || {}));
  }

  function badge(stateName) {
    return h("span", { className: "badge state-" + stateName, "data-testid": "job-state", text: stateName });
  }

  function table(testid, headers, rows) {
    var thead = h("thead", null, h("tr", null, headers.map(function (x) { return h("th", { text: x }); })));
    return h("div", { className: "table-wrap" }, h("table", { "data-testid": testid }, thead, h("tbody", null, rows)));
  }

  function plot(id, fig) {
    var el = h("div", { id: id, className: "figure", "data-figure": id });
    if (fig) pending.push([el, fig]);
    return el;
  }

  function unavailable(view) {
    return h("p", { className: "unavailable", "data-testid": "reason", text: view.reason || "not available" });
  }

  var pending = [];

  function drawPending() {
    var items = pending;
    pending = [];
    if (typeof Plotly === "undefined") {
      items.forEach(function (item) {
        item[0].textContent = "(figures need Plotly.js, which did not load)";
      });
      return;
    }
    items.forEach(function (item) {
      var fig = item[1];
      Plotly.newPlot(item[0], fig.data, fig.layout, PLOT_CONFIG);
    });
  }

  // ------------------------------------------------------------------------------ header

  function header(model) {
    var job = model.job;
    var progress = h(
      "div",
      { className: "progress" },
      "trials ",
      num("trials-completed", job.trials_completed, 0),
      " / ",
      num("trials-total", job.trials_total, 0),
      job.trials_failed ? [" (", num("trials-failed", job.trials_failed, 0), " failed)"] : null,
      job.stage ? [" · stage ", h("span", { "data-testid": "job-stage", text: job.stage })] : null,
      job.eta_s !== null && !job.finished ? " · about " + duration(job.eta_s) + " left" : null,
      job.running && job.running.length ? " · running " + job.running.join(", ") : null
    );
    var best = h(
      "div",
      { className: "best" },
      "best search objective ",
      num("best-objective", job.best_objective),
      job.best_trial ? [" (", h("span", { "data-testid": "best-trial", text: job.best_trial }), ")"] : null,
      " · ",
      job.direction === "maximize" ? "higher is better" : "lower is better"
    );
    return h(
      "header",
      { className: "job-header" },
      h("div", { className: "title-row" }, h("h1", { "data-testid": "job-name", text: job.name }), badge(job.state)),
      h("div", { className: "job-dir", text: (job.dir || "") + (job.source !== "directory" ? " · " + job.source : "") }),
      progress,
      best,
      job.error ? h("div", { className: "error", "data-testid": "job-error", text: "error: " + job.error }) : null,
      (model.notes || []).map(function (note) { return h("div", { className: "note", text: note }); })
    );
  }

  function shown(model) {
    // an optional section appears only when the model has its view
    return SECTIONS.filter(function (s) { return !s[2] || model.views[s[0]]; });
  }

  function toc(model) {
    return h(
      "nav",
      { className: "toc" },
      shown(model).map(function (s) {
        var link = h("a", { href: "#view-" + s[0], "data-section-link": s[0], text: s[1] });
        link.addEventListener("click", function (event) {
          event.preventDefault(); // the dashboard routes on the URL's hash: scroll instead
          var target = document.getElementById("view-" + s[0]);
          if (target) target.scrollIntoView({ behavior: "smooth", block: "start" });
        });
        return link;
      })
    );
  }

  // ------------------------------------------------------------------------------- views

  var render = {};

  render.recommendation = function (view, model) {
    var caps = view.repetition_caps || {};
    var epochs = view.target_epochs || {};
    var natural = view.natural || {};
    var hasCaps = Object.keys(caps).length > 0;
    var rows = Object.keys(view.weights).map(function (domain) {
      return h(
        "tr",
        { "data-domain": domain },
        h("td", { text: domain }),
        h("td", { className: "num", "data-col": "weight", text: fmt(view.weights[domain]) }),
        h("td", { className: "num", "data-col": "natural", text: fmt(natural[domain]) }),
        hasCaps ? h("td", { className: "num", text: fmt(caps[domain]) }) : null,
        hasCaps ? h("td", { className: "num", text: fmt(epochs[domain], 2) }) : null
      );
    });
    var headers = ["domain", "recommended weight", "natural"];
    if (hasCaps) headers = headers.concat(["cap (repetition)", "epochs at target"]);
    var interval = view.interval95;
    return [
      h("p", { className: "verdict", "data-testid": "verdict", text: view.verdict || "not validated" }),
      h(
        "div",
        { className: "stats" },
        h(
          "div",
          { className: "stat" },
          h("div", { className: "label", text: "predicted objective" }),
          h("div", null, num("predicted-objective", view.predicted_objective), " ± ", num("predicted-std", view.predicted_std)),
          interval ? h("div", { className: "small" }, "95% interval [", num("interval-low", interval[0]), ", ", num("interval-high", interval[1]), "]") : null
        ),
        h(
          "div",
          { className: "stat" },
          h("div", { className: "label", text: "validated objective" }),
          h("div", null, num("validated-objective", view.validated_objective), " ± ", num("validated-std", view.validated_std)),
          h("div", { className: "small", text: (view.validated_seeds || 0) + " seed(s)" })
        ),
        h(
          "div",
          { className: "stat" },
          h("div", { className: "label", text: "evidence" }),
          h("div", null, num("evidence-trials", view.evidence_trials, 0), " trials"),
          view.outside_data ? h("div", { className: "warn", text: "far from every trial: an extrapolation" }) : null
        )
      ),
      h("p", { className: "small", "data-testid": "method", text: view.method || "" }),
      table("recommendation-table", headers, rows),
    ];
  };

  render.trace = function (view) {
    return [
      h(
        "p",
        null,
        "best so far ",
        num("trace-best", view.best_objective),
        view.best_trial ? " (" + view.best_trial + ")" : "",
        " · ",
        num("trace-points", view.points.length, 0),
        " finished trials",
        view.failed ? " · " + view.failed + " failed" : "",
        view.fidelities.length > 1 ? " · fidelities (marker shapes): " + view.fidelities.join(", ") : ""
      ),
      plot("fig-trace", view.figure),
    ];
  };

  render.mixtures = function (view) {
    var labels = Object.keys(view.mixtures);
    var rows = view.domains.map(function (domain) {
      return h(
        "tr",
        { "data-domain": domain },
        h("td", { text: domain }),
        labels.map(function (label) {
          return h("td", { className: "num", "data-mixture": label, text: fmt(view.mixtures[label][domain]) });
        })
      );
    });
    return [
      plot("fig-mixtures", view.figure_bars),
      table("mixtures-table", ["domain"].concat(labels.map(function (l) { return view.labels[l]; })), rows),
      view.figure_trials ? plot("fig-trial-mixtures", view.figure_trials) : null,
    ];
  };

  render.stages = function (view) {
    var stages = view.stages;
    var rows = view.domains.map(function (domain) {
      return h(
        "tr",
        { "data-domain": domain },
        h("td", { text: domain }),
        stages.map(function (s) {
          return h("td", { className: "num", "data-stage": String(s.index), text: fmt(s.weights[domain]) });
        }),
        h("td", { className: "num", "data-col": "overall", text: fmt(view.overall[domain]) })
      );
    });
    var ranges = stages.map(function (s) {
      var where = "from " + pct(s.start) + " to " + pct(s.end) + " of the run";
      if (s.tokens) where += " (tokens " + sci(s.tokens[0]) + " – " + sci(s.tokens[1]) + ")";
      return h("li", { "data-stage": String(s.index), text: s.label + ": " + pct(s.share) + " of the tokens, " + where });
    });
    return [
      h("p", { className: "small", text: "The recommendation trains on a different mixture in each stage, in this order; the searched stage's mixture is the recommended one above." }),
      h("ul", { "data-testid": "stage-ranges" }, ranges),
      plot("fig-stages", view.figure),
      table(
        "stages-table",
        ["domain"].concat(stages.map(function (s) { return s.x; })).concat(["whole run"]),
        rows
      ),
    ];
  };

  render.predictor = function (view) {
    return [
      h(
        "div",
        { className: "stats" },
        stat("predictor", h("span", { "data-testid": "predictor-name", text: view.predictor }), view.folds + "-fold CV on " + view.n + " trials"),
        stat("Spearman ρ", num("spearman", view.spearman, 3), "rank agreement, held out"),
        stat("Pearson r", num("pearson", view.pearson, 3), "MAE " + fmt(view.mae)),
        stat("±1σ coverage", h("span", { className: "num", "data-testid": "coverage68", "data-value": view.coverage68, text: pct(view.coverage68) }), "calibrated: about 68%"),
        stat("±1.96σ coverage", h("span", { className: "num", "data-testid": "coverage95", "data-value": view.coverage95, text: pct(view.coverage95) }), "calibrated: about 95%")
      ),
      view.note ? h("p", { className: "small", text: view.note }) : null,
      plot("fig-predictor", view.figure),
    ];
  };

  function stat(label, value, small) {
    return h("div", { className: "stat" }, h("div", { className: "label", text: label }), h("div", null, value), small ? h("div", { className: "small", text: small }) : null);
  }

  render.effects = function (view) {
    var rows = view.rows.map(function (row) {
      return h(
        "tr",
        { "data-domain": row.domain },
        h("td", { text: row.domain }),
        h("td", { className: "num", text: fmt(row.weight_min, 3) + " – " + fmt(row.weight_max, 3) }),
        h("td", { className: "num", "data-col": "sensitivity", text: fmt(row.sensitivity) }),
        h("td", { className: "num", "data-col": "slope", text: signed(row.slope) })
      );
    });
    var cells = [];
    view.domains.forEach(function (domain, i) {
      cells.push(
        h(
          "tr",
          { "data-domain": domain },
          h("td", { text: "weight/" + domain }),
          view.targets.map(function (target, j) {
            return h("td", { className: "num", "data-target": target, text: signed(view.interaction[i][j], 3) });
          })
        )
      );
    });
    return [
      h("p", { className: "small", text: "From a " + view.predictor + " fitted to the search trials; a domain's weight moves over the range the trials covered, the others keep their proportions." + (view.fixed.length ? " Fixed (not shown): " + view.fixed.join(", ") + "." : "") }),
      plot("fig-dependence", view.figure_dependence),
      h("div", { className: "two" }, plot("fig-sensitivity", view.figure_sensitivity), table("effects-table", ["domain", "weight range", "sensitivity", "slope per +" + view.step], rows)),
      plot("fig-interaction", view.figure_interaction),
      h("details", null, h("summary", { text: "interaction values (change of each loss per +" + view.step + " weight)" }), table("interaction-table", ["weight of"].concat(view.targets), cells)),
    ];
  };

  render.validation = function (view) {
    var rows = view.rows.map(function (row) {
      return h(
        "tr",
        { "data-label": row.label },
        h("td", { text: row.name }),
        h("td", { className: "num", "data-col": "mean", text: fmt(row.objective) }),
        h("td", { className: "num", "data-col": "std", text: fmt(row.objective_std) }),
        h("td", { className: "num", "data-col": "seeds", text: String(row.seeds) }),
        h("td", { className: "num", "data-col": "gain", text: row.gain === null ? "–" : signed(row.gain) }),
        h("td", { className: "num", "data-col": "se", text: row.standard_errors === null ? "–" : fmt(row.standard_errors, 1) })
      );
    });
    return [
      h("p", { className: "verdict" }, h("span", { "data-testid": "validation-verdict", text: view.verdict }), view.provisional ? h("span", { className: "tag", text: "provisional" }) : null),
      table("validation-table", ["mixture", "mean objective", "std over seeds", "seeds", "recommended's gain", "gain / SE"], rows),
      plot("fig-validation", view.figure),
    ];
  };

  render.pareto = function (view) {
    var chosen = view.chosen;
    var rails = view.guard_rails.map(function (row) {
      var held = row.held === null ? "not validated" : row.held ? "held" : "not held";
      return h(
        "tr",
        { "data-metric": row.metric, className: row.held === false ? "warn" : null },
        h("td", { text: row.metric }),
        h("td", { text: row.rule }),
        h("td", { className: "num", "data-col": "limit", text: fmt(row.limit) }),
        h("td", { className: "num", "data-col": "predicted", text: fmt(row.predicted) + (row.predicted_met ? "" : " (over)") }),
        h("td", { className: "num", "data-col": "validated-limit", text: fmt(row.validated_limit) }),
        h("td", { className: "num", "data-col": "validated", text: fmt(row.validated) }),
        h("td", { className: "num", "data-col": "excess", text: row.excess === null ? "–" : signed(row.excess) }),
        h("td", { "data-col": "held", "data-held": row.held === null ? "unknown" : String(row.held), text: held })
      );
    });
    var weights = view.domains.map(function (d) {
      return h("tr", { "data-domain": d }, h("td", { text: d }), h("td", { className: "num", text: fmt(chosen.weights[d], 3) }));
    });
    return [
      h(
        "p",
        null,
        "Chosen: ",
        h("span", { "data-testid": "pareto-reason", text: chosen.reason }),
        " · predicted objective ",
        num("pareto-objective", chosen.predicted.objective),
        chosen.on_front ? " · on the front" : " · not on the front"
      ),
      h(
        "p",
        { className: "small" },
        "Front: ",
        num("pareto-front-size", view.front_size, 0),
        " mixtures (",
        fmt(view.front_feasible, 0),
        " meet every guard rail) of ",
        fmt(view.simulated, 0),
        " simulated with a " + view.predictor + " per target; limits are the search proxy's, validated ones come from the baselines measured at the validation scale."
      ),
      view.figure ? plot("fig-pareto", view.figure) : null,
      h("h3", { text: "Guard rails" }),
      table("pareto-guard-rails", ["metric", "rule", "limit", "predicted (chosen)", "limit at validation", "validated", "excess", "held"], rails),
      view.guard_rails.map(function (row) { return row.sentence ? h("div", { className: "note", text: row.sentence }) : null; }),
      h("details", null, h("summary", { text: "the chosen mixture" }), table("pareto-chosen", ["domain", "weight"], weights)),
    ];
  };

  render.scale = function (view) {
    var rows = view.rows.map(function (row) {
      return h(
        "tr",
        { "data-label": row.label },
        h("td", { text: row.name }),
        h("td", { className: "num", "data-col": "objective", text: fmt(row.objective) }),
        h("td", { className: "num", "data-col": "std", text: fmt(row.objective_std) }),
        h("td", { className: "num", "data-col": "at-proxy", text: fmt(row.objective_at_proxy) }),
        view.domains.map(function (d) {
          return h("td", { className: "num", "data-domain": d, text: fmt(row.weights[d], 3) });
        })
      );
    });
    var scores = view.scores.map(function (score) {
      return h(
        "tr",
        { "data-law": score.law, className: score.chosen ? "chosen" : null },
        h("td", { text: score.law + lawRole(score) }),
        h("td", { className: "num", "data-col": "mape", text: score.error ? "–" : pct(score.mape) }),
        h("td", { className: "num", "data-col": "spearman", text: score.error ? "–" : fmt(score.spearman, 3) }),
        h("td", { className: "error-cell", text: score.error || "" })
      );
    });
    var unshrunk = view.unshrunk;
    var out = [
      h(
        "p",
        null,
        "Target: N = ",
        h("span", { className: "num", "data-testid": "scale-params", "data-value": view.params, text: sci(view.params) }),
        " parameters, D = ",
        h("span", { className: "num", "data-testid": "scale-tokens", "data-value": view.tokens, text: sci(view.tokens) }),
        " tokens · law ",
        h("span", { "data-testid": "scale-law", text: view.law || "–" })
      ),
      h("p", { className: "small", "data-testid": "scale-fitted-on", text: view.fitted_on || "" }),
      (view.notes || []).map(function (note) { return h("div", { className: "note", text: note }); }),
      table(
        "scale-table",
        ["mixture", "predicted at target", "± std", "predicted at search proxy"].concat(view.domains),
        rows
      ),
      h(
        "p",
        { className: "small" },
        "Shrunk toward natural by ",
        num("scale-shrink", view.shrink, 3),
        unshrunk && unshrunk.predicted !== null && unshrunk.predicted !== undefined
          ? [" (the unshrunk optimum is predicted ", num("scale-unshrunk", unshrunk.predicted), ")"]
          : null,
        "."
      ),
      view.flags.length
        ? h("ul", { "data-testid": "scale-flags" }, view.flags.map(function (flag) { return h("li", { className: "warn", text: flag }); }))
        : h("p", { className: "small", "data-testid": "scale-flags", text: "No flags: the recommendation is near the trials and inside the simplex." }),
      h("h3", { text: "Extrapolation scores of the laws" }),
      table("scale-scores", ["law", "MAPE", "Spearman ρ", "error"], scores),
      view.figure ? plot("fig-scale", view.figure) : null,
      view.figure_gap ? plot("fig-scale-gap", view.figure_gap) : null,
    ];
    var cal = view.calibration;
    if (cal) {
      var calRows = cal.rows.map(function (row) {
        return h(
          "tr",
          { "data-label": row.label },
          h("td", { text: row.name }),
          h("td", { className: "num", "data-col": "predicted", text: fmt(row.predicted) }),
          h("td", { className: "num", "data-col": "std", text: fmt(row.predicted_std) }),
          h("td", { className: "num", "data-col": "observed", text: fmt(row.observed) }),
          h("td", { className: "num", "data-col": "error", text: row.error === null ? "–" : signed(row.error) }),
          h("td", { className: "num", "data-col": "at-search", text: fmt(row.at_search_scale) })
        );
      });
      out.push(
        h("h3", null, "Calibration at the validation proxy (N = ", sci(cal.params), ", D = ", sci(cal.tokens), ")"),
        h(
          "div",
          { className: "stats" },
          stat("MAPE", h("span", { className: "num", "data-testid": "calibration-mape", "data-value": cal.mape, text: pct(cal.mape) }), "law's prediction vs measured"),
          stat("Spearman ρ, law", num("calibration-spearman-law", cal.spearman_law, 3), "law at the validation scale vs measured"),
          stat("Spearman ρ, search scale", num("calibration-spearman-search", cal.spearman_search_scale, 3), "search-scale prediction vs measured")
        ),
        table("calibration-table", ["mixture", "predicted", "± std", "measured", "predicted − measured", "predicted at search proxy"], calRows)
      );
    } else {
      out.push(h("p", { className: "small", "data-testid": "calibration-missing", text: "No calibration: no validated mixture was measured." }));
    }
    return out;
  };

  render.moe = function (view, model, section) {
    var ids = Object.keys(view.figures_trial);
    var chosen = state.moeTrial[model.id];
    if (ids.indexOf(chosen) < 0) chosen = view.default_trial;
    var select = h("select", { "data-testid": "moe-trial" }, ids.map(function (id) {
      return h("option", { value: id, selected: id === chosen, text: id });
    }));
    var trialFigure = plot("fig-moe-trial", view.figures_trial[chosen]);
    select.addEventListener("change", function () {
      state.moeTrial[model.id] = select.value;
      var fig = view.figures_trial[select.value];
      if (typeof Plotly !== "undefined") Plotly.react(trialFigure, fig.data, fig.layout, PLOT_CONFIG);
    });
    var rows = view.rows.map(function (row) {
      return h(
        "tr",
        { "data-trial-id": row.trial_id },
        h("td", { text: row.trial_id }),
        h("td", { text: row.stage }),
        h("td", { className: "num", text: row.experts + " × " + row.layers }),
        h("td", { className: "num", text: String(row.evaluations) }),
        h("td", { className: "num", "data-col": "max-load", text: fmt(row.final_max_load, 3) }),
        h("td", { className: "num", "data-col": "dropped", text: fmt(row.dropped_tokens, 0) })
      );
    });
    return [
      plot("fig-moe-load", view.figure_max_load),
      h("label", { className: "picker" }, "trial ", select),
      trialFigure,
      table("moe-table", ["trial", "stage", "experts × layers", "evaluations", "final max load", "dropped tokens"], rows),
    ];
  };

  render.trials = function (view) {
    var mlflow = view.mlflow;
    var rows = view.rows.map(function (row) {
      var link = row.mlflow_url
        ? h("a", { href: row.mlflow_url, target: "_blank", rel: "noopener", "data-testid": "mlflow-link", title: row.mlflow_run_id, text: "MLflow ↗" })
        : h("span", { className: "small", text: "–" });
      return h(
        "tr",
        { "data-trial-id": row.trial_id, "data-status": row.status, className: "status-" + row.status },
        h("td", { text: row.trial_id }),
        h("td", { text: row.stage || "" }),
        h("td", { className: "num", text: row.round === null || row.round === undefined || row.round < 0 ? "" : String(row.round) }),
        h("td", { text: row.label }),
        h("td", { "data-col": "status", text: row.status || "" }),
        h("td", { className: "num", "data-col": "objective", text: fmt(row.objective) }),
        view.domains.map(function (d) {
          return h("td", { className: "num", "data-domain": d, text: fmt(row.weights[d], 3) });
        }),
        h("td", { className: "num", text: fmt(row.wall_s, 1) }),
        h("td", null, link),
        h("td", { className: "error-cell", text: row.error || "" })
      );
    });
    var headers = ["trial", "stage", "round", "label", "status", "objective"]
      .concat(view.domains)
      .concat(["wall s", "MLflow", "error"]);
    return [
      h(
        "p",
        { className: "small", "data-testid": "mlflow-note" },
        mlflow.linked
          ? ["Links open the MLflow UI at ", h("code", { text: mlflow.base_url }), mlflow.command ? [" (start it with ", h("code", { text: mlflow.command }), ")"] : null, mlflow.parent_url ? [" · ", h("a", { href: mlflow.parent_url, target: "_blank", rel: "noopener", text: "job run ↗" })] : null]
          : mlflow.tracking_uri
            ? "Trials were tracked at " + mlflow.tracking_uri + "."
            : "No MLflow runs in this job's directory."
      ),
      table("trials-table", headers, rows),
    ];
  };

  render.spec = function (view) {
    return h("details", null, h("summary", { text: "spec.yaml (resolved)" }), h("pre", { "data-testid": "spec", text: view.yaml }));
  };

  // ------------------------------------------------------------------------------ entry

  function renderJob(container, model, options) {
    options = options || {};
    pending = [];
    var scroll = window.scrollY;
    var sections = shown(model).map(function (s) {
      var name = s[0];
      var view = model.views[name] || { available: false, reason: "not computed" };
      var section = h("section", { id: "view-" + name, "data-view": name, "data-available": view.available ? "true" : "false" }, h("h2", { text: s[1] }));
      append(section, view.available ? render[name](view, model, section) : unavailable(view));
      return section;
    });
    var root = h(
      "div",
      { className: "job", "data-job-id": model.id, "data-version": model.version, "data-state": model.job.state },
      header(model),
      toc(model),
      sections,
      h("footer", { className: "small", text: "computed " + model.generated + (options.mode === "report" ? " · mixopt report" : "") })
    );
    container.replaceChildren(root);
    drawPending();
    if (options.keepScroll) window.scrollTo(0, scroll);
    container.setAttribute("data-rendered", model.version);
    return root;
  }

  global.MixoptViews = { renderJob: renderJob, format: fmt, h: h, badge: badge, duration: duration };
})(window);
