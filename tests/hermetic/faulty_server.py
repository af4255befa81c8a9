#!/usr/bin/env python3
"""HTTP server for the fault tests: serves a directory and misbehaves on purpose.

Usage: faulty_server.py --directory DIR --rules RULES.json --log LOG

It binds 127.0.0.1 on a free port and prints that port number on its first
stdout line. Only GET is served, over HTTP/1.1.

RULES.json maps a path suffix to a fault, for example

    {"fx-lib_1.2_amd64.deb": {"mode": "503-then-ok", "count": 2}}

The longest suffix that ends the request path (query string removed) applies.
The file is read again on every request, so the test rewrites it between
cases. When its text changes or the file is replaced (a new inode, as a
rename gives), every request counter starts again at zero.
"count" is how many requests (counted per suffix) get the fault before the
file is served normally; without it every request gets the fault. Modes:

    503-then-ok     status 503
    429-then-ok     status 429 with Retry-After: "retry_after" seconds (default 1)
    close-mid-body  headers with the full Content-Length, half the body, then a
                    TCP reset (SO_LINGER 0)
    short-body      headers with the full Content-Length, half the body, then
                    an orderly close
    stall-then-ok   headers and half the body, then "seconds" (default 3600) of
                    silence, then a close
    404             status 404 on every request; "count" is ignored
    corrupt         the full length, with every byte of the second half inverted
    delay           "seconds" (default 1) of silence before a normal response

Every request appends one line to LOG: path, status, fault ("none" when
the file was served normally) and body bytes sent, separated by tabs. The
line is written when the status line goes out, before any stall, so the test
can see that a stalled request has started.
"""

import argparse
import http.server
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

MODES = {
    "503-then-ok",
    "429-then-ok",
    "close-mid-body",
    "short-body",
    "stall-then-ok",
    "404",
    "corrupt",
    "delay",
}


class FaultState:
    """The rules file's last text and the per-suffix request counters."""

    def __init__(self, rules_path, log_path):
        self.rules_path = rules_path
        self.log_path = log_path
        self.lock = threading.Lock()
        self.rules_identity = None
        self.rules = {}
        self.counters = {}

    def load_rules(self):
        """Read the rules file; reset the counters when it changed or was replaced."""
        try:
            with open(self.rules_path, encoding="utf-8") as f:
                inode = os.fstat(f.fileno()).st_ino
                text = f.read()
        except FileNotFoundError:
            inode, text = None, "{}"
        if (inode, text) != self.rules_identity:
            rules = json.loads(text) if text.strip() else {}
            if not isinstance(rules, dict):
                raise ValueError(f"{self.rules_path}: expected a JSON object")
            for suffix, rule in rules.items():
                if rule.get("mode") not in MODES:
                    raise ValueError(f"{self.rules_path}: {suffix}: unknown mode {rule.get('mode')!r}")
            self.rules_identity = (inode, text)
            self.rules = rules
            self.counters = {}

    def pick(self, path):
        """Return (suffix, rule, request number for that suffix) or (None, None, 0)."""
        with self.lock:
            self.load_rules()
            matches = [s for s in self.rules if path.endswith(s)]
            if not matches:
                return None, None, 0
            suffix = max(matches, key=len)
            self.counters[suffix] = self.counters.get(suffix, 0) + 1
            return suffix, self.rules[suffix], self.counters[suffix]

    def log(self, path, status, fault, sent):
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{path}\t{status}\t{fault}\t{sent}\n")


class FaultyHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set in main()

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            suffix, rule, number = self.state.pick(path)
        except (OSError, ValueError) as e:
            self.send_plain(500, f"fault rules unreadable: {e}\n")
            self.state.log(path, 500, "bad-rules", 0)
            return

        fs_path = self.translate_path(self.path)
        body = None
        if os.path.isfile(fs_path):
            with open(fs_path, "rb") as f:
                body = f.read()

        mode = rule["mode"] if rule else None
        count = rule.get("count") if rule else None
        if mode == "404" or body is None:
            self.send_plain(404, "not found\n")
            self.state.log(path, 404, mode or "none", 0)
            return
        faulty = mode is not None and (count is None or number <= count)
        if not faulty:
            self.send_body(body)
            self.state.log(path, 200, "none", len(body))
            return

        if mode == "503-then-ok":
            self.send_plain(503, "service unavailable (fault injected)\n")
            self.state.log(path, 503, mode, 0)
        elif mode == "429-then-ok":
            retry_after = str(rule.get("retry_after", 1))
            self.send_plain(429, "too many requests (fault injected)\n", {"Retry-After": retry_after})
            self.state.log(path, 429, mode, 0)
        elif mode == "corrupt":
            half = len(body) // 2
            altered = body[:half] + bytes(b ^ 0xFF for b in body[half:])
            self.send_body(altered)
            self.state.log(path, 200, mode, len(altered))
        elif mode == "delay":
            time.sleep(float(rule.get("seconds", 1)))
            self.send_body(body)
            self.state.log(path, 200, mode, len(body))
        else:
            self.send_partial(path, body, mode, rule)

    def send_plain(self, status, text, headers=None):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_body(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_partial(self, path, body, mode, rule):
        """Announce the whole body, send half of it, then break the response."""
        half = len(body) // 2
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.state.log(path, 200, mode, half)
        try:
            self.wfile.write(body[:half])
            self.wfile.flush()
            if mode == "stall-then-ok":
                time.sleep(float(rule.get("seconds", 3600)))
        except OSError:
            pass  # the client gave up first, which is what a stall test expects
        if mode == "close-mid-body":
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def shutdown_request(self, request):
        # send_partial may have closed the socket already. The base class would
        # catch the OSError of shutting it down again, but a closed socket's
        # fileno() is -1, so it is skipped here.
        if request.fileno() == -1:
            return
        super().shutdown_request(request)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    FaultyHandler.state = FaultState(args.rules, args.log)
    directory = os.path.abspath(args.directory)

    def handler(*handler_args, **kwargs):
        return FaultyHandler(*handler_args, directory=directory, **kwargs)

    server = Server(("127.0.0.1", 0), handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
