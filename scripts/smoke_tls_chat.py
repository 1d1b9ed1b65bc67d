#!/usr/bin/env python3
"""The chat example over TLS (issue 20): started with --tls-cert and
--tls-key (certificates made by tests/tls/make_certs.sh), then over real
TLS sockets:
  - GET / over https serves the page, which picks wss:// from
    location.protocol; plain http:// gets no answer;
  - two wss clients subscribe to one channel and a broadcast reaches both;
  - SIGHUP (C, Python and Node examples) reloads the certificate: a new
    client is shown the new one, the clients already there stay and chat;
  - SIGTERM stops the server with exit status 0, every client sees 1001.

Usage: python3 scripts/smoke_tls_chat.py [path/to/wsnotify-chat | chat.py | chat.js]
Exits 0 when every check passed; prints "N passed, N failed" last.
"""

import asyncio
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.request

from websockets.exceptions import ConnectionClosed

from chat_harness import ROOT, ChatServer
from smoke_chat import TIMEOUT, broadcast, check, connect, logged, recv_json, tally


def cert_sha256(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def peer_sha256(ws):
    sock = ws.transport.get_extra_info("ssl_object")
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


async def subscribe(ws, name):
    await ws.send(json.dumps({
        "type": "json", "channel": "room",
        "message": {"action": "subscribe", "channel": "room"},
        "message_id": f"sub-{name}"}))
    env = await recv_json(ws)
    return env.get("message") == {"status": "subscribed", "channel": "room"}


async def scenario(srv, certs, program):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    base = f"https://127.0.0.1:{srv.port}"
    url = f"wss://127.0.0.1:{srv.port}/ws"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    page = await asyncio.to_thread(lambda: opener.open(base + "/", timeout=TIMEOUT).read())
    check(b'location.protocol === "https:" ? "wss://"' in page,
          "GET / over https serves the page, which picks wss:// on https")

    def plain():
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{srv.port}/", timeout=TIMEOUT).read()
            return "answered"
        except Exception as e:  # the TLS server gives plain HTTP nothing
            return type(e).__name__
    check(await asyncio.to_thread(plain) != "answered", "plain http:// gets no answer")

    a = await connect(url, ssl=ctx)
    b = await connect(url, ssl=ctx)
    check(await subscribe(a, "a") and await subscribe(b, "b"), "two wss clients subscribe")
    got = await broadcast(a, {"a": a, "b": b}, "hello over wss")
    check(all(e.get("message") == {"action": "broadcast", "text": "hello over wss"}
              for _, e in got), f"a broadcast reaches both: {got}")
    check(peer_sha256(a) == cert_sha256(os.path.join(certs, "server.pem")),
          "the server shows the certificate it started with")

    if not program.endswith(".lua"):
        shutil.copy(os.path.join(certs, "server2.pem"), os.path.join(certs, "live.pem"))
        shutil.copy(os.path.join(certs, "server2.key"), os.path.join(certs, "live.key"))
        srv.proc.send_signal(signal.SIGHUP)
        check(await logged(srv, "TLS certificate reloaded"), "SIGHUP: the server reloads")
        c = await connect(url, ssl=ctx)
        check(peer_sha256(c) == cert_sha256(os.path.join(certs, "server2.pem")),
              "a client after the reload is shown the new certificate")
        check(await subscribe(c, "c"), "it subscribes")
        got = await broadcast(c, {"a": a, "b": b, "c": c}, "after the reload")
        check(all(e.get("message", {}).get("text") == "after the reload" for _, e in got),
              "the clients from before the reload stay and chat with it")
        b_and_c = (a, b, c)
    else:
        b_and_c = (a, b)

    rc = await asyncio.to_thread(srv.stop, signal.SIGTERM)
    check(rc == 0, f"SIGTERM: exit status 0 (got {rc})")
    for ws in b_and_c:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        check(ws.close_code == 1001, f"a client sees close {ws.close_code} {ws.close_reason!r}")


def main():
    program = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "build", "examples", "wsnotify-chat")
    certs = tempfile.mkdtemp(prefix="wsn-tls-chat-")
    try:
        subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make_certs.sh"), certs],
                       check=True)
        shutil.copy(os.path.join(certs, "server.pem"), os.path.join(certs, "live.pem"))
        shutil.copy(os.path.join(certs, "server.key"), os.path.join(certs, "live.key"))
        print(f"TLS chat smoke run: {program}")
        srv = ChatServer(program, extra_args=[
            "--tls-cert", os.path.join(certs, "live.pem"),
            "--tls-key", os.path.join(certs, "live.key")])
        try:
            asyncio.run(asyncio.wait_for(scenario(srv, certs, program), 60))
        except Exception as e:  # report, don't hide
            check(False, f"scenario raised {type(e).__name__}: {e}")
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
        if tally.failed:
            print("server output:\n" + "".join(srv.lines))
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    print(f"chat: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
