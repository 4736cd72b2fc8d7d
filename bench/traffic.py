"""Benchmark of the availability prober (rehearsal.probe): does it hold 200 requests/s, and does it measure
latency right?

A local HTTP/1.1 server (ThreadingHTTPServer with Nagle off, python/cpython#108736) answers every request
after a known delay and times each answer itself (from the request line read to the body written). The
prober runs on its own wall-clock pacer at the target rate for a few seconds, its workers each reusing their
connections, as in a rehearsal on kind. Printed: the rate asked and achieved, ticks missed, the prober's
p50/p95/p99 against the server's own timing and the known delay, and whether the goals hold (rate >= 98 %
of the target, p50 within 1 ms of the server's p50).
Run: ``.venv/bin/python bench/traffic.py [RATE] [SECONDS] [DELAY_MS]``.
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rehearsal.probe import Prober, Target, summarize
from rehearsal.probe.availability import percentile

BODY = b'{"os":{"hostname":"bench-pod"}}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    delay = 0.005
    timings: list[float] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        started = time.perf_counter()
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
        self.wfile.flush()
        self.timings.append((time.perf_counter() - started) * 1000)


def main(argv: list[str]) -> int:
    rate = float(argv[0]) if argv else 200.0
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    Handler.delay = (float(argv[2]) if len(argv) > 2 else 5.0) / 1000
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/echo/{{n}}"
    prober = Prober(
        [Target("ingress", url, answered_by=lambda r: r.json()["os"]["hostname"])],
        rate,
        time.time,
        lambda pod: "1.0",
    )
    prober.start()
    time.sleep(seconds)
    prober.stop()
    server.shutdown()
    samples = prober.snapshot()
    data = summarize(prober, 0.999, 1.0, samples)
    elapsed = (samples[-1].t - samples[0].t) if len(samples) > 1 else seconds
    achieved = (len(samples) - 1) / elapsed if elapsed > 0 else 0.0
    client = data["targets"]["ingress"]["latency_ms"]
    server_p50 = percentile(Handler.timings, 50) or 0.0
    difference = (client["p50"] or 0.0) - server_p50
    rate_ok = achieved >= 0.98 * rate
    latency_ok = abs(difference) <= 1.0
    print(f"target rate        {rate:g} req/s for {seconds:g} s, server delay {Handler.delay * 1000:g} ms")
    print(f"achieved rate      {achieved:.1f} req/s ({len(samples)} requests, {prober.missed} ticks missed)")
    print(f"success ratio      {data['success_ratio']}")
    print(f"prober latency     p50 {client['p50']} ms, p95 {client['p95']} ms, p99 {client['p99']} ms")
    print(
        f"server's own time  p50 {server_p50:.2f} ms, p95 {percentile(Handler.timings, 95) or 0:.2f} ms "
        f"(known delay {Handler.delay * 1000:g} ms)"
    )
    print(f"difference of p50  {difference:+.2f} ms (goal: within 1 ms)")
    verdicts = f"rate {'met' if rate_ok else 'MISSED'}, latency {'met' if latency_ok else 'MISSED'}"
    print(f"goals              {verdicts}")
    return 0 if rate_ok and latency_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
