"""Start a splice fine-tune and print its metrics as they stream, with only Python's standard library.

    python3 examples/notebook_client.py [--url http://127.0.0.1:8787] [--kind kl_mse] [--tokens 16384]
                                        [--token $SPLICE_TOKEN] [--config '{"lr": 2e-4}']

In a notebook: `from notebook_client import start, events` and iterate `events(url, job_id)`.
A dropped stream is resumed with Last-Event-ID, so no event is missed or repeated.
"""
import argparse, json, os, sys, time, urllib.error, urllib.request


def _request(url, method="GET", body=None, token=None, headers=None):
    h = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(url, data=data, method=method, headers=h)


def start(url, config, token=None):
    """POST /finetunes; returns the job as the service describes it (id, state, links)."""
    try:
        with urllib.request.urlopen(_request(f"{url}/finetunes", "POST", config, token)) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        err = json.load(e).get("error", {})
        raise SystemExit(f"splice refused the fine-tune ({e.code} {err.get('code')}): {err.get('message')}"
                         + (f"\n  {json.dumps(err.get('details'))}" if err.get("details") else ""))


def events(url, job_id, token=None, retries=20):
    """Yields (id, event, data) from GET /finetunes/:id/events until the job ends."""
    last = 0
    for attempt in range(retries):
        req = _request(f"{url}/finetunes/{job_id}/events", token=token,
                       headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                ev = {}
                for raw in r:
                    line = raw.decode("utf-8").rstrip("\r\n")
                    if not line:
                        if "id" in ev:
                            last = int(ev["id"])
                            data = json.loads(ev.get("data", "null"))
                            yield last, ev.get("event", "message"), data
                            if ev.get("event") == "state" and data.get("state") in ("succeeded", "failed", "cancelled"):
                                return
                        ev = {}
                    elif line.startswith(":"):
                        continue  # keep-alive comment
                    else:
                        k, _, v = line.partition(":")
                        v = v[1:] if v.startswith(" ") else v
                        ev[k] = ev[k] + "\n" + v if k == "data" and k in ev else v
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            print(f"stream dropped ({e}); resuming after event {last}", file=sys.stderr)
            time.sleep(min(2 ** attempt * 0.25, 5))
    raise SystemExit(f"gave up on job {job_id} after {retries} reconnects")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("SPLICE_URL", "http://127.0.0.1:8787"))
    ap.add_argument("--kind", default="kl_mse", choices=["mse", "kl_mse", "e2e", "kl_only"])
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--token", default=os.environ.get("SPLICE_TOKEN"))
    ap.add_argument("--config", default="{}", help="extra fine-tune settings as JSON")
    a = ap.parse_args()
    job = start(a.url, {"kind": a.kind, "tokens": a.tokens, **json.loads(a.config)}, a.token)
    print(f"started {job['id']}", flush=True)
    final = None
    for eid, kind, data in events(a.url, job["id"], a.token):
        if kind == "metrics":
            print(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in data.items()), flush=True)
        elif kind in ("state", "error", "result", "log"):
            print(f"[{eid}] {kind}: {json.dumps(data)}", flush=True)
            if kind == "state":
                final = data.get("state")
    sys.exit(0 if final == "succeeded" else 1)


if __name__ == "__main__":
    main()
