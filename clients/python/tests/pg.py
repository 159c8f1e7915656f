"""A throwaway PostgreSQL cluster for the tests that need one, made as the Rust testkit
makes them (testkit/src/pg.rs): the machine's own `initdb` and `postgres` (the highest
version under /usr/lib/postgresql/*/bin, or `$TIERCACHE_TEST_PG_BIN`), in a temporary
directory, listening on a unix socket there only, run as the `postgres` user when the
tests run as root. It never touches the machine's own server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from types import TracebackType

START_TIMEOUT = 60.0


def _bin_dir() -> Path:
    given = os.environ.get("TIERCACHE_TEST_PG_BIN")
    if given:
        return Path(given)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return Path(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """A running throwaway cluster; `close()` (or leaving the `with`) stops and removes it."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="tiercache-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._user: int | None = None
        self._group: int | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._user, self._group = entry.pw_uid, entry.pw_gid
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                [
                    *(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"),
                    *("--no-sync", "-E", "UTF8", "--locale=C"),
                ]
            )
        except RuntimeError:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        with self.log.open("ab") as log:
            self._server = subprocess.Popen(
                [
                    *(str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root)),
                    *("-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off"),
                    *("-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=40"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                group=self._group,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready():
            if self._server.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"postgres did not start; its log:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        """The postmaster.pid's status line says `ready` (as the testkit checks)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) > 7 and lines[0].strip() == str(self._server.pid) and lines[7].strip() == "ready"

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, user=self._user, group=self._group, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def psql(self, database: str, sql: str) -> str:
        """Runs `sql` as `postgres` (fed on standard input); what psql printed (tuples only)."""
        argv = [str(self.bin / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres"]
        return self._run([*argv, "-d", database, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t"], sql).strip()

    def url(self, database: str, user: str = "postgres") -> str:
        """`postgres://USER@/DB?host=SOCKET_DIR&port=PORT`."""
        host = urllib.parse.quote(str(self.root), safe="")
        return f"postgres://{user}@/{database}?host={host}&port={self.port}"

    def close(self) -> None:
        if self._server.poll() is None:
            self._server.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
