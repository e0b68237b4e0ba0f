"""A small client of the service's API (what ``mixopt submit/status/... --server URL`` use).

    client = ServiceClient("http://127.0.0.1:8000")     # token from $MIXOPT_TOKEN
    job = client.submit(Path("spec.yaml").read_text(), base_dir="/data/specs")
    client.job(job["id"])["state"]
    study = client.create_study("team", ["web", "code", "math"], strategy="regmix")
    for s in client.ask(study["id"], 4):
        client.tell(study["id"], s["mixture_id"], train_and_evaluate(s["weights"]))

Every failure is a :class:`ServiceError` (a MixoptError) carrying the server's message.
"""

from __future__ import annotations

import os
from typing import Any

from mixopt.errors import MixoptError
from mixopt.service.settings import TOKEN_ENV, TOKEN_FILE_ENV, read_tokens_file


class ServiceError(MixoptError):
    """The server refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def client_token() -> str:
    """The caller's token: ``$MIXOPT_TOKEN``, else a one-token ``$MIXOPT_TOKEN_FILE``."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = os.environ.get(TOKEN_FILE_ENV)
    if path:
        tokens = read_tokens_file(path)
        if len(tokens) == 1:
            return next(iter(tokens.values()))
    raise ServiceError(f"no token: set {TOKEN_ENV} to your token for the server")


class ServiceClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or client_token()}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServiceError(f"cannot reach {self.url}: {error}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(
                f"{self.url}: {response.status_code}: {detail}", status=response.status_code
            )
        return response

    # ---------------------------------------------------------------------------------- jobs

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/health").json()
        return result

    def submit(
        self,
        spec_text: str,
        *,
        base_dir: str | None = None,
        json_body: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if base_dir:
            params["base_dir"] = base_dir
        if dry_run:
            params["dry_run"] = "true"
        content_type = "application/json" if json_body else "application/yaml"
        response = self._request(
            "POST",
            "/jobs",
            content=spec_text.encode(),
            params=params,
            headers={"Content-Type": content_type},
        )
        result: dict[str, Any] = response.json()
        return result

    def jobs(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state
        result: dict[str, Any] = self._request("GET", "/jobs", params=params).json()
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/jobs/{job_id}").json()
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/jobs/{job_id}/cancel").json()
        return result

    def resume(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/jobs/{job_id}/resume").json()
        return result

    def recommendation(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/jobs/{job_id}/recommendation").json()
        return result

    def export(self, job_id: str, fmt: str) -> str:
        response = self._request("GET", f"/jobs/{job_id}/export", params={"format": fmt})
        text: str = response.text
        return text

    def logs(
        self, job_id: str, *, source: str = "process", tail: int = 200, offset: int | None = None
    ) -> tuple[str, int]:
        params: dict[str, Any] = {"source": source, "tail": tail}
        if offset is not None:
            params["offset"] = offset
        response = self._request("GET", f"/jobs/{job_id}/logs", params=params)
        return response.text, int(response.headers.get("X-Log-Offset", "0"))

    # ------------------------------------------------------------------------------- studies

    def create_study(self, name: str, domains: list[str], **config: Any) -> dict[str, Any]:
        """A new study (``config``: what :class:`~mixopt.study.Study` takes: objective,
        direction, strategy, bounds, fixed, natural, initial, seed, target, law)."""
        body = {"name": name, "domains": domains, **config}
        result: dict[str, Any] = self._request("POST", "/studies", json=body).json()
        return result

    def studies(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/studies").json()
        return result

    def study(self, study_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/studies/{study_id}").json()
        return result

    def delete_study(self, study_id: str) -> None:
        self._request("DELETE", f"/studies/{study_id}")

    def ask(self, study_id: str, n: int = 1) -> list[dict[str, Any]]:
        """``n`` mixtures to train: ``[{"mixture_id", "weights", "source"}]``."""
        result: list[dict[str, Any]] = self._request(
            "POST", f"/studies/{study_id}/ask", json={"n": n}
        ).json()
        return result

    def tell(
        self,
        study_id: str,
        mixture_id: str,
        value: float | dict[str, float],
        *,
        params: float | None = None,
        tokens: float | None = None,
    ) -> dict[str, Any]:
        """A result: the objective's ``value``, or a dict of the objective's metrics (at model
        size ``params`` and ``tokens``, when the study tracks scales)."""
        body: dict[str, Any] = {"mixture_id": mixture_id, "params": params, "tokens": tokens}
        body["metrics" if isinstance(value, dict) else "value"] = value
        result: dict[str, Any] = self._request(
            "POST", f"/studies/{study_id}/tell", json=body
        ).json()
        return result

    def fail(self, study_id: str, mixture_id: str, reason: str = "failed") -> dict[str, Any]:
        body = {"mixture_id": mixture_id, "reason": reason}
        result: dict[str, Any] = self._request(
            "POST", f"/studies/{study_id}/fail", json=body
        ).json()
        return result

    def enqueue(self, study_id: str, weights: dict[str, float]) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", f"/studies/{study_id}/enqueue", json={"weights": weights}
        ).json()
        return result

    def best(
        self,
        study_id: str,
        *,
        observed: bool = False,
        params: float | None = None,
        tokens: float | None = None,
    ) -> dict[str, Any]:
        """The recommended mixture (at ``params``/``tokens``); ``observed``: the best result
        told."""
        query: dict[str, Any] = {"observed": "true"} if observed else {}
        query |= {k: v for k, v in (("params", params), ("tokens", tokens)) if v is not None}
        result: dict[str, Any] = self._request(
            "GET", f"/studies/{study_id}/best", params=query
        ).json()
        return result
