#!/usr/bin/env python3
"""A minimal Prometheus HTTP API for rbac_audit_test.sh: /api/v1/query answers

  a query naming DCGM's XID gauge   -> one fatal XID (79) on GPU <gpu> of node <node>
  a query containing <metric>       -> one sample of <value> (an autoscaler input)
  anything else                     -> an empty vector

Usage: fake_prometheus.py <port-file> <node> <gpu> <metric> <value>
Listens on a free loopback port and writes it to <port-file>.
"""
import http.server
import json
import os
import sys
import time
import urllib.parse

port_file, node, gpu, metric, value = sys.argv[1:6]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/api/v1/query":
            self.send_error(404)
            return
        query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
        now = time.time()
        result = []
        if "XID" in query.upper():
            result = [{"metric": {"Hostname": node, "gpu": gpu}, "value": [now, "79"]}]
        elif metric in query:
            result = [{"metric": {}, "value": [now, value]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
