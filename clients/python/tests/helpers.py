"""Small socket servers for failure modes: a server that never answers, a scripted fake
bursard, and a proxy to a real bursard that can cut the connection right after an answer."""
from __future__ import annotations

import socket
import threading
from typing import Callable, List, Optional

from bursar import protocol as p


class _Server:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.conns: List[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, c: socket.socket) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True
        try:  # wakes the accept thread; close alone would leave the socket listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class Silent(_Server):
    """Accepts connections, reads everything, never answers."""

    def handle(self, c: socket.socket) -> None:
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass


class Fake(_Server):
    """Decodes requests and answers each with ``answer(frame) -> bytes | None``. ``requests``
    holds every request, ``connections`` the requests of each connection, in order."""

    def __init__(self, answer: Callable[[p.Frame], Optional[bytes]]) -> None:
        self.answer = answer
        self.requests: List[p.Frame] = []
        self.connections: List[List[p.Frame]] = []
        super().__init__()

    def handle(self, c: socket.socket) -> None:
        dec = p.Decoder(p.TO_SERVER)
        mine: List[p.Frame] = []
        self.connections.append(mine)
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                dec.feed(data)
                while (f := dec.next()) is not None:
                    self.requests.append(f)
                    mine.append(f)
                    out = self.answer(f)
                    if out:
                        c.sendall(out)
        except OSError:
            pass


class Proxy(_Server):
    """Forwards to a real bursard. ``cut_after_answer_type`` = 0x82: the next SETTLE_RESULT
    from bursard is swallowed and both connections are closed (the SETTLE was applied, the
    client never learns it). One request in flight at a time is assumed."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after_answer_type: Optional[int] = None
        self.cuts = 0
        super().__init__()

    def handle(self, c: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream_port))

        def pump_up() -> None:
            try:
                while (d := c.recv(65536)):
                    up.sendall(d)
            except OSError:
                pass
            finally:
                _shut(up)

        threading.Thread(target=pump_up, daemon=True).start()
        try:
            while (d := up.recv(65536)):
                if self.cut_after_answer_type is not None and d[3] == self.cut_after_answer_type:
                    self.cut_after_answer_type = None
                    self.cuts += 1
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            _shut(c)
            _shut(up)


def _shut(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
