"""Calls to OpenAI-compatible HTTP endpoints (vLLM, `mathfirst serve`, hosted APIs), retried with backoff."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

CONCURRENCY = 64  # requests a client keeps in flight, and rows `mathfirst serve` samples together by default


class EndpointError(Exception):
    """The endpoint kept failing; the message names the URL and the last error."""


def call_endpoint(
    url: str, body: dict | None = None, timeout_s: float = 60.0, retries: int = 2, api_key: str = ""
) -> dict:
    """GET `url` (no body) or POST `body` as JSON; connection errors, 429 and 5xx are retried, other HTTP
    errors are final."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    last = ""
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data, headers, method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read()[:200].decode(errors='replace')}"
            if e.code < 500 and e.code != 429:
                break  # a bad request does not get better by retrying
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if attempt < retries:
            time.sleep(0.5 * 2**attempt)
    tries = attempt + 1
    raise EndpointError(f"{url} failed after {tries} {'try' if tries == 1 else 'tries'}: {last}")
