"""The console served by uvicorn on 127.0.0.1 only, in a thread of the process that starts it (the local stack's
own process for `helixflow local up`)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from helixflow_local.console.app import create_app
from helixflow_local.console.reader import Reader

HOST = "127.0.0.1"  # never another interface: the console shows the stack's data to whoever reaches it


class ConsoleServer:
    def __init__(self, reader: Reader, *, port: int = 0, local_logs: str | None = None) -> None:
        self.reader = reader
        self.port = port
        self.local_logs = local_logs
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> str:
        # Bound here (port 0: the OS picks a free one, held from this moment), then handed to uvicorn.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((HOST, self.port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(create_app(self.reader, local_logs=self.local_logs), log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            raise RuntimeError("the console did not start")
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> ConsoleServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
