"""The mixopt dashboard: a small web app that shows mixture searches while they run.

``mixopt dashboard --job-dir runs`` (or ``--server URL``) serves it on http://127.0.0.1:8765/.
The server (:mod:`dashboards.server`, FastAPI) answers JSON view models computed by
:mod:`mixopt.reporting`; the page (``static/``) draws them with Plotly.js and the same script
the HTML report uses, polling while a job runs.
"""
