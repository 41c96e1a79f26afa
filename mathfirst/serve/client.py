"""Calls to OpenAI-compatible HTTP endpoints (vLLM, `mathfirst serve`, hosted APIs), retried with backoff."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


class EndpointError(Exception):
    """The endpoint kept failing; the message names the URL and the last error. `status` is the last HTTP status
    and `error` the OpenAI-style error object of its body, when there were any."""

    def __init__(self, message: str, status: int | None = None, error: dict | None = None):
        super().__init__(message)
        self.status, self.error = status, error or {}


def call_endpoint(
    url: str, body: dict | None = None, timeout_s: float = 60.0, retries: int = 2, api_key: str = ""
) -> dict:
    """GET `url` (no body) or POST `body` as JSON; connection errors, 429 and 5xx are retried, other HTTP
    errors are final."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    last, status, error = "", None, None
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data, headers, method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            last, status, error = f"HTTP {e.code}: {body[:200].decode(errors='replace')}", e.code, error_object(body)
            if e.code < 500 and e.code != 429:
                break  # a bad request does not get better by retrying
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if attempt < retries:
            time.sleep(0.5 * 2**attempt)
    tries = attempt + 1
    raise EndpointError(f"{url} failed after {tries} {'try' if tries == 1 else 'tries'}: {last}", status, error)


def error_object(body: bytes) -> dict | None:
    """The `error` object of an OpenAI-style error body, if it is one."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return error if isinstance(error, dict) else None
