"""Several Python threads at once (C: test_threads, test_fanout)."""

from __future__ import annotations

import json
import selectors
import threading

from conftest import TIMEOUT

THREADS = 4
PER_THREAD = 250


def run_threads(target, n):
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 3)
    assert not any(t.is_alive() for t in ts)
    assert errors == []


def test_publish_from_several_threads(harness):
    ws, c = harness.connect(max_queue=None)
    s = harness.server
    s.subscribe(c, "c")

    def publisher(t):
        for i in range(PER_THREAD):
            s.publish("c", {"t": t, "i": i})

    run_threads(publisher, THREADS)
    got = [json.loads(ws.recv(timeout=TIMEOUT))["message"]
           for _ in range(THREADS * PER_THREAD)]
    for t in range(THREADS):  # each thread's messages in its order
        assert [m["i"] for m in got if m["t"] == t] == list(range(PER_THREAD))


def test_concurrent_pubsub_churn(harness):
    conns = [harness.connect(max_queue=None) for _ in range(4)]
    s = harness.server

    def churn(t):
        ws, c = conns[t]
        for i in range(200):
            s.subscribe(c, f"ch{i % 5}")
            s.publish(f"ch{i % 5}", i)
            s.unsubscribe(c, f"ch{i % 5}")
            c.set_metadata(f"k{t}", i)
            assert c.get_metadata(f"k{t}") == i

    run_threads(churn, len(conns))
    for t, (ws, c) in enumerate(conns):
        s.subscribe(c, "end")
    s.publish("end", "end")
    for ws, c in conns:  # every client still works, the server too
        for _ in range(10000):
            if json.loads(ws.recv(timeout=TIMEOUT))["message"] == "end":
                break
    assert s.get_connected_clients() == 4


def test_concurrent_metadata_one_client(harness):
    ws, c = harness.connect()

    def writer(t):
        for i in range(300):
            c.set_metadata("shared", [t, i] if i % 2 else f"{t}:{i}")
            v = c.get_metadata("shared")
            assert isinstance(v, (list, str))
            c.metadata[f"own{t}"] = i
            assert c.metadata[f"own{t}"] == i

    run_threads(writer, 4)
    assert sorted(k for k in c.metadata if k.startswith("own")) == [
        "own0", "own1", "own2", "own3"]


def test_fanout_many_clients(harness):
    """One publish reaches every subscriber exactly once (raw clients:
    one socket each, read with select, no thread per client)."""
    n = 1000
    s = harness.server
    clients = []
    for _ in range(n):
        rc, c = harness.raw_connected()
        s.subscribe(c, "all")
        clients.append(rc)
    s.publish("all", {"hello": "everyone"})
    want = '"message":{"hello":"everyone"}}'
    pending = {rc.sock.fileno(): rc for rc in clients}
    sel = selectors.DefaultSelector()
    for fd in pending:
        sel.register(fd, selectors.EVENT_READ)
    rounds = 0
    while pending and rounds < 10000:
        rounds += 1
        # a frame may already sit in a client's buffer (read with the
        # handshake): the selector would not see it
        ready = [fd for fd, rc in pending.items() if rc.buf]
        if not ready:
            ready = [key.fd for key, _ in sel.select(TIMEOUT)]
        assert ready, f"{len(pending)} clients got nothing"
        for fd in ready:
            rc = pending.pop(fd)
            sel.unregister(fd)
            op, data, _ = rc.recv_frame()
            assert op == 1 and data.decode().endswith(want)
    sel.close()
    assert not pending
    assert s.get_connected_clients() == n
