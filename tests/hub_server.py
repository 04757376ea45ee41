"""A real HTTP server on 127.0.0.1 that serves a hub folder with faults.

Tests set `server.faults[relative_path]` to make the server misbehave for
one file:

- `"error"`: respond with HTTP 500.
- `"truncate"`: send the full Content-Length, then half the bytes, then
  close the connection.
- `"corrupt"`: send bytes of the right length with one byte flipped.
- `"longer"`: send the file followed by as many extra bytes.
- `("slow", seconds)`: send the file in 16 KiB pieces with a pause after
  each, so concurrent clients overlap.
"""

import collections
import http.server
import os
import threading
import time
import urllib.parse


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base name
        pass

    def do_GET(self):
        server = self.server
        relative = urllib.parse.unquote(
            urllib.parse.urlparse(self.path).path).lstrip("/")
        with server.lock:
            server.requests[relative] += 1
        path = os.path.join(server.root, *relative.split("/"))
        if not relative or not os.path.isfile(path):
            self.send_error(404, "not found")
            return
        with open(path, "rb") as handle:
            data = handle.read()
        fault = server.faults.get(relative)
        if fault == "error":
            self.send_error(500, "internal error")
            return
        if fault == "corrupt":
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + \
                data[middle + 1:]
        if fault == "longer":
            data = data + data
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "truncate":
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if isinstance(fault, tuple) and fault[0] == "slow":
            for start in range(0, len(data), 16384):
                self.wfile.write(data[start:start + 16384])
                self.wfile.flush()
                time.sleep(fault[1])
            return
        self.wfile.write(data)


class HubServer:
    """Serve folder `root` on a free port of 127.0.0.1 in a thread.

    Args:
        root: Folder to serve.

    Attributes:
        url: Base URL, such as `http://127.0.0.1:40123`.
        faults: Relative path to fault (see the module docstring).
        requests: Counter of requests per relative path.
    """

    def __init__(self, root):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     _Handler)
        self.httpd.daemon_threads = True
        self.httpd.root = root
        self.httpd.faults = {}
        self.httpd.requests = collections.Counter()
        self.httpd.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def faults(self):
        return self.httpd.faults

    @property
    def requests(self):
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
