"""A TCP relay between a browser and a Streamlit server that a test can cut, as a Wi-Fi drop cuts a
tab's connection: `cut()` resets every connection on the browser's side at once (Chromium closes a
tab's sockets when the network goes: the page sees its websocket close) and refuses new ones, while
the server's side of each connection stays open and silent (the server hears nothing until its own
pings go unanswered); `restore()` lets connections through again, to the same server or to another
port (a server restarted); `hang_up()` then closes the server's side of the old connections."""

import socket
import struct
import threading

from benchmarks.browser import free_port


class Wire:
    def __init__(self, server_port: int):
        self.server_port = server_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.up = True
        self._lock = threading.Lock()
        self._browser_side: list[socket.socket] = []
        self._server_side: list[socket.socket] = []  # of connections the browser has lost
        self._live: list[tuple[socket.socket, socket.socket]] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True, name="wire-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                browser, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if not self.up:
                    reset(browser)
                    continue
                try:
                    server = socket.create_connection(("127.0.0.1", self.server_port), timeout=5)
                except OSError:
                    reset(browser)
                    continue
                server.settimeout(None)
                self._live.append((browser, server))
            for source, target in ((browser, server), (server, browser)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True, name="wire-pump").start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while (data := source.recv(65536)) and self.up:  # once cut, nothing more gets through
                target.sendall(data)
        except OSError:
            return
        with self._lock:  # one side ended the connection: so does the other, as on a real network
            if not self.up:
                return
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def cut(self) -> None:
        """The network goes: the browser's connections reset, the server's left open and silent."""
        with self._lock:
            self.up = False
            for browser, server in self._live:
                reset(browser)
                self._server_side.append(server)
            self._live = []

    def restore(self, server_port: int | None = None) -> None:
        with self._lock:
            self.server_port = server_port or self.server_port
            self.up = True

    def hang_up(self) -> None:
        """The server's side of the lost connections closes (what its ping timeout would do, later)."""
        with self._lock:
            for server in self._server_side:
                try:
                    server.shutdown(socket.SHUT_RDWR)  # a goodbye the server reads (closing alone would wait for the relay's reader)
                except OSError:
                    pass
                server.close()
            self._server_side = []

    def close(self) -> None:
        self.cut()
        self.hang_up()
        self._listener.close()


def reset(sock: socket.socket) -> None:
    """Close with a reset (no orderly goodbye), as a connection the network dropped ends for the browser."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)  # wakes the relay's thread that reads it, and sends nothing
        sock.close()
    except OSError:
        pass
