"""call_endpoint against a real local HTTP server: retries on 5xx, stops on 4xx, sends the key."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mathfirst.serve.client import EndpointError, call_endpoint


class Handler(BaseHTTPRequestHandler):
    hits: list[tuple[str, str | None]] = []

    def do_POST(self):
        Handler.hits.append((self.path, self.headers.get("Authorization")))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        flaky = self.path == "/flaky" and len([h for h in Handler.hits if h[0] == "/flaky"]) < 2
        status = 400 if self.path in ("/bad", "/refuse") else 503 if flaky or self.path == "/down" else 200
        self.send_response(status)
        self.end_headers()
        refusal = {"error": {"message": "too long", "code": "context_length_exceeded"}}
        self.wfile.write(json.dumps(refusal if self.path == "/refuse" else {"echo": body}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def url():
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_retries_a_flaky_server_and_sends_the_key(url):
    Handler.hits.clear()
    assert call_endpoint(f"{url}/flaky", {"x": 1}, retries=2, api_key="sk-1") == {"echo": {"x": 1}}
    assert Handler.hits == [("/flaky", "Bearer sk-1")] * 2


def test_a_bad_request_is_not_retried_and_a_dead_server_names_itself(url):
    Handler.hits.clear()
    with pytest.raises(EndpointError, match=r"/bad failed after 1 try: HTTP 400"):
        call_endpoint(f"{url}/bad", {}, retries=2)
    assert len(Handler.hits) == 1
    with pytest.raises(EndpointError, match="/down failed after 2 tries: HTTP 503"):
        call_endpoint(f"{url}/down", {}, retries=1)


def test_a_refusal_carries_its_status_and_error_object(url):
    """What the HTTP backend reads to fit a request to the server's context."""
    with pytest.raises(EndpointError) as refused:
        call_endpoint(f"{url}/refuse", {})
    assert refused.value.status == 400 and refused.value.error["code"] == "context_length_exceeded"
    with pytest.raises(EndpointError) as bad:
        call_endpoint(f"{url}/bad", {}, retries=0)
    assert bad.value.status == 400 and bad.value.error == {}
