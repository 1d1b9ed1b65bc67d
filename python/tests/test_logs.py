"""The core's log lines reach the Python logger through the core's log
queue (option log_queue), on the thread that serves events, with lines
dropped on overflow counted (C: test_events log queue tests)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import List, Tuple

import pytest

from wsnotify import LogLevel, Server

from conftest import TIMEOUT, RawClient, ws_connect


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: "queue.Queue[Tuple[int, int, str]]" = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put((threading.get_ident(), record.levelno,
                          record.getMessage()))

    def taken(self) -> List[Tuple[int, int, str]]:
        out = []
        while not self.records.empty():
            out.append(self.records.get_nowait())
        return out


def make_logger(name: str) -> Tuple[logging.Logger, Recorder]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    rec = Recorder()
    logger.handlers[:] = [rec]
    return logger, rec


def test_lines_forwarded_on_serving_thread(make_harness):
    logger, rec = make_logger("wsnotify.test.forwarded")
    h = make_harness(log_level=LogLevel.DEBUG, logger=logger)
    ws, c = h.connect()
    want = f"client {c.id} connected from 127.0.0.1"
    for _ in range(1000):
        tid, level, text = rec.records.get(timeout=TIMEOUT)
        if text == want:
            break
    else:  # pragma: no cover
        raise AssertionError(f"no line {want!r}")
    assert level == logging.DEBUG
    assert tid == h.thread.ident  # serve_forever's thread, not the core's
    ws.close()


def test_overflow_counted_and_reported():
    """log_queue=2 and nobody serving: the queue keeps the first two lines
    and counts the rest; shutdown() (which drains what is left) forwards
    the two and one warning with the exact count."""
    logger, rec = make_logger("wsnotify.test.overflow")
    s = Server(port=0, log_level=LogLevel.DEBUG, log_queue=2, logger=logger)
    s.start()
    clients = [RawClient(s.host, s.port) for _ in range(3)]
    assert [c.status for c in clients] == [101] * 3
    assert s.shutdown(5) is True
    got = rec.taken()
    texts = [t for _, _, t in got]
    assert texts[0] == f"listening on 127.0.0.1:{s.port}"
    assert texts[1].startswith("receive buffers")
    dropped = s.logs_dropped
    # At least the three connects, the shutdown and the three disconnects.
    assert dropped >= 7
    assert texts[2:] == [f"wsnotify: {dropped} core log lines were dropped "
                         "(log_queue was full)"]
    assert got[2][1] == logging.WARNING
    for c in clients:
        c.close()


def test_log_queue_zero_discards():
    logger, rec = make_logger("wsnotify.test.zero")
    s = Server(port=0, log_level=LogLevel.DEBUG, log_queue=0, logger=logger)
    s.start()
    with ws_connect(s.url):
        pass
    assert s.shutdown(5) is True
    assert rec.taken() == []
    assert s.logs_dropped == 0


@pytest.mark.parametrize("opts", [dict(rx_buffer_pool=False),
                                  dict(malloc_trim=False),
                                  dict(rx_buffer_pool=False, malloc_trim=False)])
def test_process_wide_tricks_off_by_name(make_harness, opts):
    """The 0.2 switches are reachable by name and the server works with
    them off: a 200 KB message in, a reply out."""
    h = make_harness(**opts)
    for k, v in opts.items():
        assert h.server.options[k] is v
    ws, c = h.connect()
    big = "y" * 200_000
    ws.send('{"type":"text","message":"%s"}' % big)
    _, msg = h.next_message()
    assert msg.message == big
    h.server.publish_to_client(c, "", {"len": len(msg.message)})
    assert '"message":{"len":200000}' in ws.recv(timeout=TIMEOUT)
    ws.close()
