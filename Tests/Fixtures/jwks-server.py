#!/usr/bin/env python3
"""A JWKS server for the worker's key-fetching tests, on 127.0.0.1 (standard library only).

    jwks-server.py DIR [--tls]    prints "port N" once listening; with --tls, HTTPS with DIR/cert.pem
                                  and DIR/key.pem

GET /file/NAME   DIR/NAME as application/json (404 if missing; no answer within 30 s while
                 DIR/NAME.hang exists)
GET /hang        never answers within 30 s
GET /redirect    302 to /file/jwks.json
GET /big         a 300 KiB JSON document
GET /invalid     200 with a body that is not JSON
GET /stats       {"<path>": <requests so far>, ...} (not counted)
"""
import http.server
import json
import os
import ssl
import sys
import threading
import time

DIR = sys.argv[1]
hits = {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                return self.send(200, json.dumps(hits).encode())
        with lock:
            hits[self.path] = hits.get(self.path, 0) + 1
        if self.path.startswith("/file/"):
            path = os.path.join(DIR, os.path.basename(self.path))
            if os.path.exists(path + ".hang"):
                time.sleep(30)
            if not os.path.exists(path):
                return self.send(404, b'{"message":"not found"}')
            with open(path, "rb") as f:
                return self.send(200, f.read())
        if self.path == "/hang":
            time.sleep(30)
            return self.send(200, b"{}")
        if self.path == "/redirect":
            return self.send(302, b"", [("Location", "/file/jwks.json")])
        if self.path == "/big":
            return self.send(200, json.dumps({"keys": [], "pad": "x" * (300 * 1024)}).encode())
        if self.path == "/invalid":
            return self.send(200, b"<html>not json</html>")
        self.send(404, b"{}")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
if sys.argv[2:] == ["--tls"]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(DIR, "cert.pem"), os.path.join(DIR, "key.pem"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("port", server.server_address[1], flush=True)
server.serve_forever()
