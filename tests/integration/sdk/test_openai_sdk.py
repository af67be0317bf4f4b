"""waterline-router driven by a real client: the official `openai` Python SDK.

Run with the venv's python (tests/integration/sdk/openai_venv.sh run ...), which has
exactly the pinned openai and its dependencies; ctest does that (tests/integration/sdk/
CMakeLists.txt). Arguments: unittest's (a test name such as OpenAISdkIT.test_chat); the
router binary comes from $WATERLINE_ROUTER_BIN.

The module starts, once per process:
  - a fake OpenAI-compatible worker (FakeWorker below: chat and text completions, JSON and
    SSE, embeddings as floats or base64, usage, a log of what reached it) on 127.0.0.1;
  - `waterline-router` with a routes file pointing at it (the default sliding-window PTU
    limiter), and a second one with `--limiter=token-bucket` for the retry test (there a
    Retry-After of seconds follows from a small reservation; the sliding window's is
    ~60 s, when the charge leaves the window).

The SDK builds its pydantic types from the answers without validating them (a missing
field reads as None); the tests assert on the fields, and strict model_validate where a
field could be missing, so that the router's answers (and what it relays) have the shape
the SDK expects.
"""

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
from openai import AzureOpenAI, OpenAI

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
API_VERSION = "2024-10-21"
# Every wait in this file is bounded; a hang fails the test instead of ctest's timeout.
TIMEOUT = 30.0
HOLD = 10.0


# ---------------------------------------------------------------------------------------
# The fake worker


class FakeWorker:
    """An OpenAI-compatible worker. Chat answers "echo: <last message>"; a stream sends
    the words of STREAM_WORDS as separate SSE events (chunked transfer encoding, like
    vLLM). usage.completion_tokens is the request's max_tokens when set (so a test can
    spend a PTU reservation exactly), else the number of words."""

    STREAM_WORDS = ["alpha", " beta", " gamma", " delta"]

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # (path, headers dict lower-case, body dict)
        # When set, a stream sends its first event, then waits (up to HOLD seconds) for
        # this event before the rest; hold_released says whether it came in time.
        self.hold_stream_after_first = None
        self.hold_released = None
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the router pools connections

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                body = json.loads(raw)
                with worker.lock:
                    worker.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    seq = len(worker.requests)
                if self.path == "/v1/chat/completions":
                    worker._chat(self, body, seq)
                elif self.path == "/v1/completions":
                    worker._completion(self, body, seq)
                elif self.path == "/v1/embeddings":
                    worker._embeddings(self, body)
                else:
                    self._json(404, {"error": {"message": "no such path " + self.path, "type": "invalid_request_error"}})

            def _json(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def start_sse(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def sse(self, obj):
                payload = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj)) + "\n\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                self.wfile.flush()

            def end_sse(self):
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def seen(self):
        with self.lock:
            return list(self.requests)

    @staticmethod
    def _usage(body, prompt_tokens, words):
        out = body.get("max_tokens") or body.get("max_completion_tokens") or words
        return {"prompt_tokens": prompt_tokens, "completion_tokens": out, "total_tokens": prompt_tokens + out}

    def _chat(self, h, body, seq):
        last = body["messages"][-1]["content"]
        created = int(time.time())
        cid = "chatcmpl-fake-%d" % seq
        if not body.get("stream"):
            text = "echo: " + last
            h._json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": self._usage(body, 7, len(text.split())),
            })
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"]}
        h.start_sse()
        h.sse(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                   "logprobs": None, "finish_reason": None}]))
        hold = self.hold_stream_after_first
        if hold is not None:
            self.hold_released = hold.wait(HOLD)
        for w in self.STREAM_WORDS:
            h.sse(dict(base, choices=[{"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}]))
        h.sse(dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
        if include_usage:
            h.sse(dict(base, choices=[], usage=self._usage(body, 7, len(self.STREAM_WORDS))))
        h.sse("[DONE]")
        h.end_sse()

    @staticmethod
    def embedding_of(text, dims=4):
        """The fake's vector for one input: values exact in float32, so a base64 round
        trip gives them back unchanged."""
        return [float(len(text)), -0.5, 0.25 * (len(text) % 4)] + [0.125] * (dims - 3)

    def _embeddings(self, h, body):
        inp = body["input"]
        inputs = [inp] if isinstance(inp, str) or (inp and isinstance(inp[0], int)) else inp
        texts = [x if isinstance(x, str) else " ".join(str(i) for i in x) for x in inputs]
        dims = body.get("dimensions") or 4
        data = []
        for i, t in enumerate(texts):
            v = self.embedding_of(t, dims)
            if body.get("encoding_format") == "base64":  # little-endian float32, as OpenAI sends it
                v = base64.b64encode(struct.pack("<%df" % len(v), *v)).decode()
            data.append({"object": "embedding", "index": i, "embedding": v})
        tokens = sum(max(1, len(t) // 4) for t in texts)
        h._json(200, {"object": "list", "data": data, "model": body["model"],
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _completion(self, h, body, seq):
        text = " completed: " + str(body["prompt"])
        cid = "cmpl-fake-%d" % seq
        created = int(time.time())
        if not body.get("stream"):
            h._json(200, {
                "id": cid, "object": "text_completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
                "usage": self._usage(body, 3, len(text.split())),
            })
            return
        h.start_sse()
        for w in text.split(" "):
            h.sse({"id": cid, "object": "text_completion", "created": created, "model": body["model"],
                   "choices": [{"index": 0, "text": w + " ", "logprobs": None, "finish_reason": None}]})
        h.sse({"id": cid, "object": "text_completion", "created": created, "model": body["model"],
               "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}]})
        h.sse("[DONE]")
        h.end_sse()


# ---------------------------------------------------------------------------------------
# The router


def routes_json(worker_endpoint):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def table(name, model, entry=None, reservations=None, cache=None):
        e = {"pool": "pool-a", "region": "eu-west", "dataZone": "EU", "endpoints": [worker_endpoint],
             "capacityTokensPerMinute": 1000000, "loadTokensPerMinute": 0, "maxUtilization": 0.9,
             "healthy": True, "weight": 1, "heartbeatTime": now}
        e.update(entry or {})
        spec = {"deployment": {"namespace": "team", "name": name}, "model": model, "deploymentType": "Global",
                "entries": [e]}
        if reservations:
            spec["reservations"] = reservations
        if cache:
            spec["cache"] = cache
        return {"apiVersion": "waterline.dev/v1alpha1", "kind": "RoutingTable",
                "metadata": {"name": "team." + name}, "spec": spec}

    return {"apiVersion": "waterline.dev/v1alpha1", "kind": "RoutingTableList", "items": [
        # Plain deployment: chat, completions, streaming, Azure.
        table("llama", MODEL),
        # The response cache (spec.cache), partitioned by the API key.
        table("cached", "cached-model", cache={"mode": "Exact", "ttlSeconds": 3600, "maxEntries": 100,
                                      "similarityThreshold": 0.95, "varyBy": [{"header": "authorization"}],
                                      "modelVersion": "v1"}),
        # Every pool over its maxUtilization and no spillover: 429 capacity_exceeded, Retry-After: 1.
        table("busy", "busy-model", entry={"loadTokensPerMinute": 950000, "utilization": 0.95}),
        # A PTU reservation of 600 weighted tokens a minute (10 a second).
        table("ptu", "ptu-model",
              reservations=[{"name": "contoso", "tokensPerMinute": 600, "burstPercent": 0,
                             "scope": {"type": "Global"}}]),
    ]}


class Router:
    def __init__(self, routes_file, *flags):
        binary = os.environ.get("WATERLINE_ROUTER_BIN")
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError("WATERLINE_ROUTER_BIN must name the waterline-router binary (got %r)" % binary)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [binary, "--listen=127.0.0.1:0", "--threads=1", "--log-level=warn", "--stale-after=0",
             "--routes-file=" + routes_file, *flags],
            stdout=subprocess.PIPE, stderr=self.stderr)
        # The router prints "listening on HOST:PORT" once it serves (routes already loaded).
        line = self._readline(TIMEOUT)
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("waterline-router did not start: %r; stderr: %s" % (line, self.log()))
        self.port = int(line.rsplit(":", 1)[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def _readline(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline().decode().strip()), daemon=True)
        t.start()
        t.join(timeout)
        return out[0] if out else ""

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def metric(self, name, **labels):
        """The value of one series of /metrics (0 when absent)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=TIMEOUT) as r:
            text = r.read().decode()
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            series, value = line.rsplit(" ", 1)
            sname, _, rest = series.partition("{")
            if sname != name:
                continue
            got = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
            if got == want:
                return float(value)
        return 0.0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


WORKER = None
ROUTER = None  # sliding-window limiter (the default)
BUCKET_ROUTER = None  # --limiter=token-bucket
TMPDIR = None


def setUpModule():
    global WORKER, ROUTER, BUCKET_ROUTER, TMPDIR
    TMPDIR = tempfile.TemporaryDirectory(prefix="wl-sdk-it-")
    WORKER = FakeWorker()
    routes = os.path.join(TMPDIR.name, "routes.json")
    with open(routes, "w") as f:
        json.dump(routes_json(WORKER.endpoint()), f)
    ROUTER = Router(routes)
    BUCKET_ROUTER = Router(routes, "--limiter=token-bucket")


def tearDownModule():
    for r in (ROUTER, BUCKET_ROUTER):
        if r:
            r.stop()
            log = r.log().strip()  # --log-level=warn: empty unless something went wrong
            if log:
                print("waterline-router (port %d) log:\n%s" % (r.port, log), file=sys.stderr)
    if WORKER:
        WORKER.stop()
    if TMPDIR:
        TMPDIR.cleanup()


class Attempts:
    """httpx event hooks: every HTTP attempt the SDK makes (retries included), with the
    monotonic time its request left and its response arrived."""

    def __init__(self):
        self.items = []  # dicts: sent, status, headers, received

    def on_request(self, request):
        self.items.append({"sent": time.monotonic(), "url": str(request.url)})

    def on_response(self, response):
        self.items[-1].update(received=time.monotonic(), status=response.status_code, headers=dict(response.headers))

    def client(self):
        return openai.DefaultHttpxClient(event_hooks={"request": [self.on_request], "response": [self.on_response]})


def user(text):
    return [{"role": "user", "content": text}]


class OpenAISdkIT(unittest.TestCase):
    def client(self, router=None, **kw):
        kw.setdefault("max_retries", 0)
        c = OpenAI(base_url=(router or ROUTER).url + "/v1", api_key="sk-test", timeout=TIMEOUT, **kw)
        self.addCleanup(c.close)
        return c

    def azure(self, **kw):
        c = AzureOpenAI(azure_endpoint=ROUTER.url, api_version=API_VERSION, api_key="azure-key",
                        timeout=TIMEOUT, max_retries=0, **kw)
        self.addCleanup(c.close)
        return c

    def last_request(self):
        return WORKER.seen()[-1]

    # ---- chat completions ----------------------------------------------------------

    def test_chat(self):
        before = len(WORKER.seen())
        r = self.client().chat.completions.create(model="llama", messages=user("hello router"), max_tokens=16)
        self.assertIsInstance(r, openai.types.chat.ChatCompletion)
        self.assertTrue(r.id.startswith("chatcmpl-fake-"), r.id)
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.model, MODEL)  # the router sent the deployment's model name
        self.assertEqual(r.system_fingerprint, "fp_fake")
        self.assertEqual(len(r.choices), 1)
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertEqual(r.choices[0].message.content, "echo: hello router")
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertIsNotNone(r.usage)
        self.assertEqual((r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens), (7, 16, 23))
        # One request reached the worker, on the OpenAI path, with the model rewritten and
        # the client's Authorization passed through.
        seen = WORKER.seen()[before:]
        self.assertEqual(len(seen), 1)
        path, headers, body = seen[0]
        self.assertEqual(path, "/v1/chat/completions")
        self.assertEqual(body["model"], MODEL)
        self.assertEqual(body["max_tokens"], 16)
        self.assertEqual(headers.get("authorization"), "Bearer sk-test")

    def test_chat_by_model_name_and_raw_headers(self):
        raw = self.client().chat.completions.with_raw_response.create(model=MODEL, messages=user("hi"))
        self.assertEqual(raw.http_response.status_code, 200)
        self.assertEqual(raw.headers.get("x-waterline-deployment"), "team/llama")
        self.assertEqual(raw.headers.get("x-waterline-pool"), "pool-a")
        self.assertTrue(raw.headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(raw.parse().choices[0].message.content, "echo: hi")
        # A stream keeps the worker's text/event-stream through the router.
        raw = self.client().chat.completions.with_raw_response.create(model="llama", messages=user("s"), stream=True)
        self.assertTrue(raw.headers.get("content-type", "").startswith("text/event-stream"), raw.headers)
        self.assertEqual(raw.headers.get("x-waterline-pool"), "pool-a")
        words = [c.choices[0].delta.content for c in raw.parse() if c.choices and c.choices[0].delta.content]
        self.assertEqual(words, FakeWorker.STREAM_WORDS)

    def test_chat_stream(self):
        WORKER.hold_stream_after_first = release = threading.Event()
        WORKER.hold_released = None
        try:
            stream = self.client().chat.completions.create(
                model="llama", messages=user("stream please"), stream=True,
                stream_options={"include_usage": True})
            chunks = []
            for chunk in stream:
                self.assertIsInstance(chunk, openai.types.chat.ChatCompletionChunk)
                if not chunks:
                    # The worker holds the rest of the stream until the SDK has this first
                    # event: a router that buffered the stream would never deliver it.
                    release.set()
                chunks.append(chunk)
        finally:
            WORKER.hold_stream_after_first = None
            release.set()
        self.assertTrue(WORKER.hold_released, "the first event did not reach the SDK before the rest was sent")
        self.assertEqual(len({c.id for c in chunks}), 1)
        self.assertEqual({c.model for c in chunks}, {MODEL})
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        self.assertEqual(content, FakeWorker.STREAM_WORDS)  # every word, in order
        finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(len(finals), 1)
        self.assertEqual(finals[0].choices[0].finish_reason, "stop")
        # stream_options.include_usage: the last chunk has no choices and the usage.
        self.assertEqual(chunks[-1].choices, [])
        self.assertIsNotNone(chunks[-1].usage)
        self.assertEqual(chunks[-1].usage.completion_tokens, len(FakeWorker.STREAM_WORDS))
        self.assertTrue(all(c.usage is None for c in chunks[:-1]))
        # The router forwarded stream_options unchanged.
        self.assertEqual(self.last_request()[2]["stream_options"], {"include_usage": True})

    def test_cached_answer_is_indistinguishable(self):
        """A cache hit (spec.cache) parses to the same SDK objects as the fresh answer,
        JSON and streamed, and never crosses API keys."""
        c = self.client()
        before = len(WORKER.seen())
        msgs = user("cache me if you can")
        first = c.chat.completions.with_raw_response.create(model="cached", messages=msgs, max_tokens=5)
        self.assertEqual(first.headers.get("x-waterline-cache"), "miss")
        fresh = first.parse()
        again = c.chat.completions.with_raw_response.create(model="cached", messages=msgs, max_tokens=5)
        self.assertEqual(again.headers.get("x-waterline-cache"), "hit")
        self.assertEqual(again.headers.get("x-waterline-cache-similarity"), "1.0000")
        cached = again.parse()
        self.assertIsInstance(cached, openai.types.chat.ChatCompletion)
        openai.types.chat.ChatCompletion.model_validate(cached.model_dump())  # strict: every required field
        self.assertNotEqual(cached.id, fresh.id)
        self.assertTrue(cached.id.startswith("chatcmpl-"), cached.id)
        self.assertEqual(cached.model_dump(exclude={"id", "created"}), fresh.model_dump(exclude={"id", "created"}))
        # Streamed from the same entry: the chunks the SDK builds carry the same text.
        chunks = list(c.chat.completions.create(model="cached", messages=msgs, max_tokens=5, stream=True,
                                                stream_options={"include_usage": True}))
        for ch in chunks:
            self.assertIsInstance(ch, openai.types.chat.ChatCompletionChunk)
        self.assertEqual(len({ch.id for ch in chunks}), 1)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        self.assertEqual(text, fresh.choices[0].message.content)
        finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        self.assertEqual(finals, [fresh.choices[0].finish_reason])
        self.assertEqual(chunks[-1].usage.completion_tokens, fresh.usage.completion_tokens)
        # Only the first request reached the worker.
        self.assertEqual(len(WORKER.seen()) - before, 1)
        # Another API key is another partition.
        other = OpenAI(base_url=ROUTER.url + "/v1", api_key="sk-other", timeout=TIMEOUT, max_retries=0)
        self.addCleanup(other.close)
        raw = other.chat.completions.with_raw_response.create(model="cached", messages=msgs, max_tokens=5)
        self.assertEqual(raw.headers.get("x-waterline-cache"), "miss")
        self.assertEqual(len(WORKER.seen()) - before, 2)

    def test_chat_stream_without_usage(self):
        with self.client().chat.completions.stream(model="llama", messages=user("helper")) as s:
            final = s.get_final_completion()  # the SDK's accumulation of the events
        self.assertEqual(final.choices[0].message.content, "".join(FakeWorker.STREAM_WORDS))
        self.assertEqual(final.choices[0].finish_reason, "stop")
        self.assertNotIn("stream_options", self.last_request()[2])  # the router adds none

    # ---- text completions ----------------------------------------------------------

    def test_completions(self):
        r = self.client().completions.create(model="llama", prompt="Say hi", max_tokens=5)
        self.assertIsInstance(r, openai.types.Completion)
        self.assertTrue(r.id.startswith("cmpl-fake-"))
        self.assertEqual(r.object, "text_completion")
        self.assertEqual(r.model, MODEL)
        self.assertEqual(r.choices[0].text, " completed: Say hi")
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual((r.usage.prompt_tokens, r.usage.completion_tokens), (3, 5))
        path, _, body = self.last_request()
        self.assertEqual(path, "/v1/completions")
        self.assertEqual(body["prompt"], "Say hi")

        text = "".join(c.choices[0].text for c in
                       self.client().completions.create(model="llama", prompt="Say hi", stream=True))
        self.assertEqual(text, " completed: Say hi ")

    # ---- embeddings ----------------------------------------------------------------

    def test_embeddings(self):
        texts = ["first input", "the second one"]
        want = [FakeWorker.embedding_of(t) for t in texts]
        # The SDK asks for base64 by default and decodes the little-endian float32 itself.
        before = len(WORKER.seen())
        r = self.client().embeddings.create(model="llama", input=texts)
        self.assertIsInstance(r, openai.types.CreateEmbeddingResponse)
        self.assertEqual(r.object, "list")
        self.assertEqual(r.model, MODEL)
        self.assertEqual([d.index for d in r.data], [0, 1])
        self.assertEqual([d.embedding for d in r.data], want)
        self.assertEqual((r.usage.prompt_tokens, r.usage.total_tokens), (2 + 3, 2 + 3))
        openai.types.CreateEmbeddingResponse.model_validate(r.to_dict())  # strict: every required field
        seen = WORKER.seen()[before:]
        self.assertEqual(len(seen), 1)
        path, headers, body = seen[0]
        self.assertEqual(path, "/v1/embeddings")
        self.assertEqual(body["model"], MODEL)
        self.assertEqual(body["input"], texts)
        self.assertEqual(body["encoding_format"], "base64")
        self.assertEqual(headers.get("authorization"), "Bearer sk-test")
        # Floats on request, and `dimensions` passed through.
        f = self.client().embeddings.create(model="team/llama", input="one", encoding_format="float", dimensions=6)
        self.assertEqual(f.data[0].embedding, FakeWorker.embedding_of("one", 6))
        self.assertEqual(self.last_request()[2]["dimensions"], 6)
        # Token ids.
        t = self.client().embeddings.create(model="llama", input=[[1, 2], [3]])
        self.assertEqual([d.embedding for d in t.data], [FakeWorker.embedding_of("1 2"), FakeWorker.embedding_of("3")])
        # Bad input: the router's 400, never forwarded.
        before = len(WORKER.seen())
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client().embeddings.create(model="llama", input=["ok", ""])
        self.assertEqual(cm.exception.param, "input[1]")
        self.assertEqual(len(WORKER.seen()), before)

        # AzureOpenAI: a deployment client, and `model` as the deployment.
        for client, model in ((self.azure(azure_deployment="llama"), "ignored-by-azure"), (self.azure(), "llama")):
            before = len(WORKER.seen())
            a = client.embeddings.create(model=model, input="azure text")
            self.assertEqual(a.data[0].embedding, FakeWorker.embedding_of("azure text"))
            self.assertEqual(a.model, MODEL)
            seen = WORKER.seen()[before:]
            self.assertEqual(len(seen), 1)
            path, headers, body = seen[0]
            self.assertEqual(path, "/v1/embeddings")  # not the Azure path, no api-version
            self.assertEqual(body["model"], MODEL)
            self.assertEqual(headers.get("api-key"), "azure-key")

    def test_models(self):
        models = list(self.client().models.list())
        self.assertEqual([m.id for m in models], ["team/busy", "team/cached", "team/llama", "team/ptu"])
        now = int(time.time())
        for m in models:
            self.assertIsInstance(m, openai.types.Model)
            self.assertEqual(m.object, "model")
            self.assertEqual(m.owned_by, "waterline")
            # `created` is required by the Model type: without it the SDK gave None.
            self.assertIsInstance(m.created, int)
            self.assertLess(abs(m.created - now), 600)
            openai.types.Model.model_validate(m.to_dict())  # strict: every required field

    # ---- Azure OpenAI --------------------------------------------------------------

    def test_azure_deployment_client(self):
        client = self.azure(azure_deployment="llama")
        before = len(WORKER.seen())
        r = client.chat.completions.create(model="ignored-by-azure", messages=user("azure hi"), max_tokens=4)
        self.assertEqual(r.choices[0].message.content, "echo: azure hi")
        self.assertEqual(r.model, MODEL)
        self.assertEqual(r.usage.completion_tokens, 4)
        seen = WORKER.seen()[before:]
        self.assertEqual(len(seen), 1)
        path, headers, body = seen[0]
        self.assertEqual(path, "/v1/chat/completions")  # not the Azure path, no api-version
        self.assertEqual(body["model"], MODEL)
        self.assertEqual(headers.get("api-key"), "azure-key")

        # Streaming on the Azure path.
        words = [c.choices[0].delta.content for c in
                 client.chat.completions.create(model="x", messages=user("s"), stream=True)
                 if c.choices and c.choices[0].delta.content]
        self.assertEqual(words, FakeWorker.STREAM_WORDS)

        # Text completions on /openai/deployments/llama/completions.
        c = client.completions.create(model="x", prompt="azure prompt", max_tokens=2)
        self.assertEqual(c.choices[0].text, " completed: azure prompt")
        self.assertEqual(self.last_request()[0], "/v1/completions")

    def test_azure_model_as_deployment(self):
        # Without azure_deployment the SDK puts `model` into the path:
        # /openai/deployments/llama/chat/completions?api-version=...
        attempts = Attempts()
        client = self.azure(http_client=attempts.client())
        r = client.chat.completions.create(model="llama", messages=user("by path"))
        self.assertEqual(r.choices[0].message.content, "echo: by path")
        self.assertEqual(len(attempts.items), 1)
        self.assertIn("/openai/deployments/llama/chat/completions?api-version=" + API_VERSION,
                      attempts.items[0]["url"])

    def test_azure_unknown_deployment(self):
        with self.assertRaises(openai.NotFoundError) as cm:
            self.azure(azure_deployment="nope").chat.completions.create(model="x", messages=user("hi"))
        e = cm.exception
        self.assertEqual(e.status_code, 404)
        self.assertEqual(e.code, "DeploymentNotFound")
        self.assertEqual(e.type, "invalid_request_error")
        self.assertIn("nope", e.message)

    # ---- errors --------------------------------------------------------------------

    def test_unknown_model_is_not_found(self):
        before = len(WORKER.seen())
        with self.assertRaises(openai.NotFoundError) as cm:
            self.client().chat.completions.create(model="no-such-model", messages=user("hi"))
        e = cm.exception
        self.assertEqual(e.status_code, 404)
        # The SDK read the OpenAI-shaped body: {"error": {"message", "type", "param", "code"}}.
        self.assertEqual(e.code, "model_not_found")
        self.assertEqual(e.type, "invalid_request_error")
        self.assertEqual(e.param, "model")
        self.assertIn("no-such-model", e.message)
        self.assertEqual(e.body["code"], "model_not_found")
        self.assertTrue(e.response.headers["content-type"].startswith("application/json"))
        self.assertEqual(len(WORKER.seen()), before)  # never forwarded

    def test_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client().chat.completions.create(model="llama", messages=user("hi"), max_tokens=-1)
        self.assertEqual(cm.exception.code, "invalid_value")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client().chat.completions.create(model="llama", messages=[])
        self.assertEqual(cm.exception.status_code, 400)
        self.assertIsNotNone(cm.exception.code)

    # ---- 429 -----------------------------------------------------------------------

    def test_429_capacity_retry_after_is_honoured(self):
        """Every pool of `busy` is over its maxUtilization: 429 capacity_exceeded with
        Retry-After: 1 (seconds, no retry-after-ms). max_retries=1: the SDK waits the
        second and tries once more, then raises RateLimitError; the router counted both."""
        code429 = dict(deployment="team/busy", pool="", code="429")
        n0 = ROUTER.metric("waterline_router_requests_total", **code429)
        attempts = Attempts()
        client = self.client(max_retries=1, http_client=attempts.client())
        with self.assertRaises(openai.RateLimitError) as cm:
            client.chat.completions.create(model="busy", messages=user("hi"))
        e = cm.exception
        self.assertEqual(e.code, "capacity_exceeded")
        self.assertEqual(e.type, "rate_limit_error")
        self.assertEqual(e.response.headers.get("retry-after"), "1")
        self.assertEqual([a["status"] for a in attempts.items], [429, 429])
        waited = attempts.items[1]["sent"] - attempts.items[0]["received"]
        self.assertGreaterEqual(waited, 1.0 - 0.001, "the SDK retried before Retry-After: 1")
        self.assertLess(waited, 10.0)
        self.assertEqual(ROUTER.metric("waterline_router_requests_total", **code429) - n0, 2)

    def test_429_ptu_without_retries_raises_rate_limit_error(self):
        """A request the reservation (600 tokens/min) cannot take after one that spent it:
        429 rate_limit_exceeded; with max_retries=0 the SDK raises at once and the headers
        are on the exception's response."""
        client = self.client()
        throttled0 = ROUTER.metric("waterline_router_ptu_throttled_total", reservation="team/contoso")
        # Charge: prompt 4 + ceil(2/4) = 5, output 590: 595 of 600 (usage settles the same).
        client.chat.completions.create(model="ptu", messages=user("hi"), max_tokens=590)
        before = len(WORKER.seen())
        attempts = Attempts()
        with self.assertRaises(openai.RateLimitError) as cm:
            self.client(http_client=attempts.client()).chat.completions.create(
                model="ptu", messages=user("hi"), max_tokens=100)
        e = cm.exception
        self.assertEqual(e.status_code, 429)
        self.assertEqual(e.code, "rate_limit_exceeded")
        self.assertEqual(e.type, "rate_limit_error")
        self.assertIn("team/contoso", e.message)
        retry_after = int(e.response.headers["retry-after"])
        self.assertTrue(1 <= retry_after <= 60, retry_after)  # the sliding window: until the charge leaves it
        self.assertTrue(1 <= int(e.response.headers["retry-after-ms"]) <= 60000)
        self.assertIn("x-ratelimit-remaining-tokens", e.response.headers)
        self.assertEqual(len(attempts.items), 1)  # no retry
        self.assertEqual(len(WORKER.seen()), before)  # never forwarded
        self.assertEqual(ROUTER.metric("waterline_router_ptu_throttled_total", reservation="team/contoso")
                         - throttled0, 1)

    def test_429_ptu_retry_after_then_admitted(self):
        """The token-bucket router (600 tokens/min = 10/s): a request that spends the
        bucket, then one that needs ~10 s of refill (a margin against a stalled machine between
        the two requests: the second must still find the bucket short). With max_retries=1 the SDK gets 429,
        waits retry-after-ms, and its one retry is admitted and answered."""
        r = BUCKET_ROUTER
        labels = dict(reservation="team/contoso")
        throttled0 = r.metric("waterline_router_ptu_throttled_total", **labels)
        admitted0 = r.metric("waterline_router_ptu_admitted_total", **labels)
        attempts = Attempts()
        retrying = self.client(r, max_retries=1, http_client=attempts.client())
        # 600 - 5 (prompt) = 595 output: the bucket is empty after it (usage settles 7 + 595).
        self.client(r).chat.completions.create(model="ptu", messages=user("hi"), max_tokens=595)
        before = len(WORKER.seen())
        # Charge 5 + 95 = 100 tokens: about 10 s of refill after the first (less the time
        # between the two requests).
        out = retrying.chat.completions.create(model="ptu", messages=user("hi"), max_tokens=95)
        self.assertEqual(out.choices[0].message.content, "echo: hi")
        self.assertEqual([a["status"] for a in attempts.items], [429, 200], attempts.items)
        first = attempts.items[0]
        wait = int(first["headers"]["retry-after-ms"]) / 1000.0
        self.assertTrue(0.5 <= wait <= 11.0, first["headers"])
        self.assertEqual(int(first["headers"]["retry-after"]), -(-int(first["headers"]["retry-after-ms"]) // 1000))
        waited = attempts.items[1]["sent"] - first["received"]
        self.assertGreaterEqual(waited, wait - 0.001, "the SDK retried before retry-after-ms")
        self.assertLess(waited, wait + 10.0)
        self.assertEqual(len(WORKER.seen()) - before, 1)  # only the admitted attempt reached the worker
        self.assertEqual(r.metric("waterline_router_ptu_throttled_total", **labels) - throttled0, 1)
        self.assertEqual(r.metric("waterline_router_ptu_admitted_total", **labels) - admitted0, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
