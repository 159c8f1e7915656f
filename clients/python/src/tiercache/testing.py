"""A real tiercache daemon for an app's tests: no mocked HTTP.

    from tiercache.testing import Daemon

    with Daemon(tables='[[caches]]\\nname = "strava"\\n') as daemon:
        client = Client(daemon.url, data_dir=daemon.data_dir)
        ...

Each `Daemon` runs the binary (`binary`, else `$TIERCACHE_BIN`, else `tiercache` on the
`PATH`) in a temporary directory of its own (its working directory, with `data_dir =
"data"`), listening on a free TCP port of 127.0.0.1 and on a unix socket there, and
waits until `/readyz` answers 200. `stop()` is a graceful stop (SIGTERM), `kill()` a
`kill -9`, `start()` starts it again on the same directory and addresses.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["Daemon", "DaemonError"]

#: How long a start may take before it is a failure (a debug build on a busy machine).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0
#: The variables of the test process the daemon sees (`env=` adds more).
_PASSED_ON = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "RUST_BACKTRACE"})
#: Exit code of the daemon when its TCP address is already in use.
_ADDRESS_IN_USE = 69


class DaemonError(RuntimeError):
    """The daemon did not start, or did not stop, as asked; the message has its log."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    """A tiercache daemon on a temporary directory (see the module documentation).

    `top`: top-level keys of the configuration; `api`: lines of its `[api]` table (after
    `listen`); `tables`: the rest (`[[caches]]`, `[postgres]`...). `tokens` (scope to
    token) writes `api.tokens_file`; `files` writes more files into the directory (a JSON
    Schema...). The daemon sees only `PATH`, `HOME`, the locale and `TMPDIR` of the
    test's environment, and `env`. `start=False` leaves it stopped.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        top: str = "",
        api: str = "",
        tables: str = "",
        tokens: Mapping[str, str] | None = None,
        files: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> None:
        found = binary or os.environ.get("TIERCACHE_BIN") or shutil.which("tiercache")
        if not found:
            raise DaemonError("no tiercache binary: pass binary=, set $TIERCACHE_BIN or put tiercache on the PATH")
        self.binary = Path(found).resolve()
        self._tmp = tempfile.TemporaryDirectory(prefix="tiercache-test-")
        self.dir = Path(self._tmp.name)
        self.tokens = dict(tokens or {})
        self._top, self._api, self._tables = top, api, tables
        self._env = dict(env or {})
        self.port = _free_port()
        self.socket_path = self.dir / "api.sock"
        for name, text in (files or {}).items():
            (self.dir / name).write_text(text, encoding="utf-8")
        if self.tokens:
            lines = "".join(f"{scope}:{token}\n" for scope, token in self.tokens.items())
            path = self.dir / "tokens"
            path.write_text(lines, encoding="utf-8")
            path.chmod(0o600)
        self._write_config()
        self._process: subprocess.Popen[bytes] | None = None
        self.runs = 0
        if start:
            self.start()

    @staticmethod
    def token() -> str:
        """A fresh random token."""
        return secrets.token_hex(16)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def unix_url(self) -> str:
        """`unix:PATH` of the socket (absolute)."""
        return f"unix:{self.socket_path}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def config_path(self) -> Path:
        return self.dir / "tiercache.toml"

    @property
    def log_path(self) -> Path:
        return self.dir / "daemon.log"

    def cache_file(self, name: str) -> Path:
        """`data_dir/caches/NAME.json`."""
        return self.data_dir / "caches" / f"{name}.json"

    def _write_config(self) -> None:
        listen = json.dumps([f"127.0.0.1:{self.port}", f"unix:{self.socket_path}"])
        tokens = 'tokens_file = "tokens"\n' if self.tokens else ""
        self.config_path.write_text(
            f'data_dir = "data"\n{self._top}\n[log]\nformat = "json"\n\n'
            f"[api]\nlisten = {listen}\n{tokens}{self._api}\n\n{self._tables}\n",
            encoding="utf-8",
        )

    def set_config(self, *, top: str | None = None, api: str | None = None, tables: str | None = None) -> None:
        """Rewrites the configuration (for the next start, or a `reload()`)."""
        self._top = self._top if top is None else top
        self._api = self._api if api is None else api
        self._tables = self._tables if tables is None else tables
        self._write_config()

    def log(self) -> str:
        """Everything the daemon printed, every run."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        if self._process is None:
            raise DaemonError("the daemon is not running")
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Daemon:
        """Starts the daemon and waits until it is ready. A port taken in between is
        replaced by another."""
        for _attempt in range(5):
            code = self._start_once()
            if code is None:
                return self
            if code != _ADDRESS_IN_USE:
                break
            self.port = _free_port()
            self._write_config()
        raise DaemonError(f"the daemon did not start; its log:\n{self.log()[-6000:]}")

    def _start_once(self) -> int | None:
        if self.running():
            raise DaemonError("the daemon is already running")
        # A clean environment: the daemon reads many variables (SUPABASE_*, PROJECT_ID,
        # TIERCACHE__*...), and a test must not depend on the shell it runs from.
        env = {k: v for k, v in os.environ.items() if k in _PASSED_ON}
        env.update(self._env)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "run", "--config", str(self.config_path)],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.runs += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._process = None
                return code
            if self._ready():
                return None
            time.sleep(0.05)
        self.kill()
        raise DaemonError(f"the daemon was not ready after {START_TIMEOUT} s; its log:\n{self.log()[-6000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> int:
        """SIGTERM, then waits for the exit; returns its code."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int:
        """`kill -9`, then waits; returns the (negative) code."""
        return self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> int:
        process = self._process
        if process is None:
            raise DaemonError("the daemon is not running")
        process.send_signal(sig)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise DaemonError(
                f"the daemon did not stop within {STOP_TIMEOUT} s; its log:\n{self.log()[-6000:]}"
            ) from None
        finally:
            self._process = None
        return code

    def reload(self) -> None:
        """SIGHUP, then waits for the log to say the reload was applied or rejected."""
        before = self.log().count("configuration reloaded") + self.log().count("reload rejected")
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while self.log().count("configuration reloaded") + self.log().count("reload rejected") == before:
            if time.monotonic() > deadline:
                raise DaemonError("no reload seen in the log")
            time.sleep(0.05)

    def metrics(self) -> str:
        """`/metrics` as text."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            text: str = answer.read().decode("utf-8")
            return text

    def metric(self, sample: str) -> float | None:
        """The value of one sample, written as in the text (`name{label="v"}`)."""
        for line in self.metrics().splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def close(self) -> None:
        """Stops the daemon if it runs (SIGTERM, then SIGKILL) and removes the directory."""
        if self.running():
            with contextlib.suppress(DaemonError):
                self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
