"""Serves scripted Polygon / Alpaca responses on 127.0.0.1 for the test suite (standard library only).

Usage: vendor_server.py SCENARIO.json. The scenario is
  {"fixtures": DIR, "log": FILE, "routes": [{"path": P, "query": {k: v}, "responses": [R, ...]}]}
where each response R is {"status": 200, "body_file": NAME | "body": TEXT, "headers": {...}}. A route matches
a GET (or a POST: a webhook) whose path is P and whose query holds every k=v given; its responses are
served in order and the last one repeats. Unmatched requests get 404. Every request is appended to the log
as a JSON line (method, path, query, headers, and a POST's body). Prints the port once listening, then
serves until stdin closes.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

scenario = json.loads(Path(sys.argv[1]).read_text())
fixtures = Path(scenario.get("fixtures", "."))
log_path = Path(scenario["log"])
routes = scenario["routes"]
served = [0] * len(routes)
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        entry = {"method": self.command, "path": url.path, "query": query, "headers": {k.lower(): v for k, v in self.headers.items()}}
        if self.command == "POST":
            entry["body"] = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with lock:
            with log_path.open("a") as log:
                log.write(json.dumps(entry) + "\n")
            for i, route in enumerate(routes):
                if route["path"] == url.path and all(query.get(k) == v for k, v in route.get("query", {}).items()):
                    responses = route["responses"]
                    response = responses[min(served[i], len(responses) - 1)]
                    served[i] += 1
                    break
            else:
                response = {"status": 404, "body": json.dumps({"message": f"no scripted route for {url.path}"})}
        if "body_file" in response:
            body = (fixtures / response["body_file"]).read_bytes()
        else:
            body = response.get("body", "").encode()
        self.send_response(response.get("status", 200))
        headers = {"Content-Type": "application/json", **response.get("headers", {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
