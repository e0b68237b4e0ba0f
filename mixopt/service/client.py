"""A small client of the service's API (what ``mixopt submit/status/... --server URL`` use).

    client = ServiceClient("http://127.0.0.1:8000")     # token from $MIXOPT_TOKEN
    job = client.submit(Path("spec.yaml").read_text(), base_dir="/data/specs")
    client.job(job["id"])["state"]

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
