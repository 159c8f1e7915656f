"""Fixtures: the real daemon with the example's two caches, and the old app's files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from tiercache.testing import Daemon

REPOSITORY = Path(__file__).resolve().parents[3]
OLD_CACHE = Path(__file__).resolve().parent / "old_cache"

CACHES = """
[[caches]]
name = "strava"
refresh_every = "6h"

[[caches]]
name = "fundraising"
refresh_every = "15m"
"""


def binary() -> Path:
    """`$TIERCACHE_BIN`, else the debug build that `cargo test` leaves."""
    path = Path(os.environ.get("TIERCACHE_BIN") or REPOSITORY / "target" / "debug" / "tiercache")
    if not path.exists():
        pytest.fail(f"no tiercache binary at {path}: run `cargo build` or set TIERCACHE_BIN")
    return path


def old_files(directory: Path) -> dict[str, Path]:
    """The old app's cache files, as it wrote them (`datetime.now().isoformat()`, no
    offset), fetched a minute ago."""
    fetched = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()
    files = {}
    for name in ("strava", "fundraising"):
        document = json.loads((OLD_CACHE / f"{name}_cache.json").read_text(encoding="utf-8"))
        document["timestamp"] = fetched
        files[name] = directory / f"{name}_cache.json"
        files[name].write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return files


def import_old_files(daemon: Daemon, directory: Path) -> None:
    """`tiercache import NAME FILE` for each old file, the daemon stopped."""
    for name, path in old_files(directory).items():
        done = subprocess.run(
            [str(daemon.binary), "import", name, str(path), "--config", str(daemon.config_path)],
            cwd=daemon.dir,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"imported {name} version" in done.stdout + done.stderr


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon with the old app's files imported, running."""
    with Daemon(binary(), tables=CACHES, start=False) as d:
        import_old_files(d, tmp_path)
        d.start()
        yield d
