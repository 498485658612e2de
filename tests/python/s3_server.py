"""Runs moto's S3 server on 127.0.0.1 for the test suite.

Prints the port once the server is up and the test bucket exists, then serves until its stdin closes:
the test process holds the other end, so the server ends with it, even after a crash.

It also counts the requests it serves, so tests can check how many a read makes:
`GET /_requests?prefix=/BUCKET/KEY_PREFIX` answers `{"GET": n, "HEAD": n, "LIST": n, ...}` for the
paths under that prefix (each test's lake has its own prefix); a listing counts as a LIST of the
prefix it lists.
"""
import json
import socket
import sys
import threading
from collections import Counter
from urllib.parse import parse_qs

import boto3
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

BUCKET = sys.argv[1] if len(sys.argv) > 1 else "quantlake-test"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

class Counted:
    """The moto app behind a counter of (method, path)."""

    def __init__(self, app):
        self.app, self.seen, self.lock = app, Counter(), threading.Lock()

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/_requests":
            prefix = parse_qs(environ.get("QUERY_STRING", "")).get("prefix", [""])[0]
            with self.lock:
                counts = Counter()
                for (m, p), n in self.seen.items():
                    if p.startswith(prefix):
                        counts[m] += n
            body = json.dumps(counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if method == "GET" and "list-type" in query:
            method, path = "LIST", f"{path}/{query.get('prefix', [''])[0]}"
        with self.lock:
            self.seen[(method, path)] += 1
        return self.app(environ, start_response)


class CountingServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = Counted(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


server = CountingServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
).create_bucket(Bucket=BUCKET)
print(port, flush=True)
sys.stdin.read()
server.stop()
