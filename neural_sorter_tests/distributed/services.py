"""Redis, PostgreSQL and an S3 endpoint (moto_server) as the tests' own processes on 127.0.0.1.

Debian's ``redis-server`` and ``postgresql`` are installed with apt-get when missing and we are root; every
process started here is remembered and stopped by its PID (``Services.stop``), never by name.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
DEBIAN_PACKAGES = {"redis-server": "redis-server", "postgresql": "initdb"}


class Unavailable(RuntimeError):
    """A service cannot be provided here (the reason is the test's skip message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def ensure_debian_packages() -> None:
    """Installs redis-server and postgresql from Debian when missing (root + apt-get only)."""
    missing = [
        pkg
        for pkg, probe in DEBIAN_PACKAGES.items()
        if not (shutil.which(probe) or (postgres_bin() and pkg == "postgresql"))
    ]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"{', '.join(missing)} missing and cannot be installed here (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True, timeout=300)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise Unavailable(f"apt-get install {' '.join(missing)} failed: {done.stderr.strip()[-300:]}")


class Services:
    """Starts the services in a temp folder; ``stop()`` ends every process started, by PID."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="neural-sorter-services-"))
        self.processes: list[subprocess.Popen] = []
        self.pg_dir: Path | None = None
        self.pg_user: str | None = None
        self.env: dict[str, str] = {}

    def spawn(self, args: list[str], log: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        out = open(self.dir / f"{log}.log", "ab")  # noqa: SIM115 (the process owns it)
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kwargs)
        self.processes.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- Redis ------------------------------------------------------------------------------------------
    def start_redis(self) -> str:
        port = free_port()
        self.spawn(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            "redis",
        )
        wait_port(port)
        self.env["REDIS_PORT"] = str(port)
        return f"redis://127.0.0.1:{port}"

    # --- PostgreSQL (initdb in a temp dir, as the postgres user when we are root) ------------------------
    def start_postgres(self) -> dict[str, str]:
        bindir = postgres_bin()
        if bindir is None:
            raise Unavailable("PostgreSQL binaries (initdb, pg_ctl) not found")
        port = free_port()
        self.pg_dir = self.dir / "pg"
        self.pg_dir.mkdir()
        as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no 'postgres' user for initdb") from None
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            os.chown(self.pg_dir, user.pw_uid, user.pw_gid)
            self.pg_user = "postgres"
            as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(self.pg_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        # Not pg_ctl: postgres itself in the foreground, so its PID is ours to stop.
        self.spawn(
            [
                *as_user,
                str(bindir / "postgres"),
                "-D",
                str(self.pg_dir),
                "-p",
                str(port),
                "-k",
                str(self.pg_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            "postgres",
        )
        wait_port(port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
            )
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        self.env |= {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "unused",
            "DAGSTER_PG_DB": "postgres",
        }
        return self.env

    # --- S3 (moto_server) -------------------------------------------------------------------------------
    def start_s3(self, bucket: str) -> str:
        moto = BIN / "moto_server"
        if not moto.exists():
            raise Unavailable("moto_server not installed (pip install 'moto[server]', part of the dev extra)")
        port = free_port()
        self.spawn([str(moto), "-H", "127.0.0.1", "-p", str(port)], "moto")
        wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        self.env |= {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DAGSTER_COMPUTE_LOG_BUCKET": bucket,
        }
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)
        return endpoint

    def stop(self) -> None:
        """Every process started here, newest first: SIGTERM to its PID, then SIGKILL after a grace period."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
