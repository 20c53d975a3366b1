"""`dunning local start|stop|status`: a moto server with template.yaml deployed, kept between commands.

`start` spawns a daemon (`python -m dunning_tools.local.server`, its own session, output in
`<state>/server.log`) and returns once the stack is up. The daemon runs moto's
`ThreadedMotoServer` on 127.0.0.1, deploys template.yaml into it over HTTP (`AWS_ENDPOINT_URL`),
restores the last snapshot if the state folder has one, writes its pid file and its details
(`server.json`: endpoint, stack name, template, parameters), and answers on a Unix socket
(`control.sock`): `snapshot` (a safe point: the CLI asks for one after each command that wrote)
and `stop` (snapshot, then shut down). SIGTERM and SIGINT stop it the same way.

moto keeps everything in memory and has no persistence of its own (its recorder replays raw
requests, which cannot reproduce KMS key material or SQS receipts, and its backends do not
pickle), so `dunning_tools.local.snapshot` saves what the product needs and restores it into a fresh
deploy of the same template: see there.

The CLI finds the running stack with `running_stack()`: it points this process's AWS clients at
the server and rebuilds the `LocalStack` handle from the template and the stack's description
(the functions then run in the CLI's process, as `dunning_tools.local.invoke` does everywhere).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import json
import logging
import os
import select
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dunning
from dunning_tools.local.stack import (
    DEFAULT_REGION,
    REPO_ROOT,
    LocalStack,
    LocalStackError,
    _find_template,
    _frozen,
    _stack_handle,
    _stack_resources,
    _translate,
    aws_session,
)

HOST = "127.0.0.1"
STATE_DIR_ENV = "DUNNING_LOCAL_DIR"
DEFAULT_STATE_DIR = ".dunning"
DEFAULT_STACK_NAME = "dunning-local"
# Deploying takes a few seconds; restoring a large snapshot longer.
START_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 120.0


class LocalServerError(RuntimeError):
    """The local stack cannot be started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class StateDir:
    """The folder that holds a local stack's server files and its snapshot."""

    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "server.pid"

    @property
    def info_file(self) -> Path:
        return self.root / "server.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot"

    @property
    def stream_positions(self) -> Path:
        return self.root / "stream_positions.json"


def state_dir(value: str | os.PathLike[str] | None = None) -> StateDir:
    """`value`, else $DUNNING_LOCAL_DIR, else `.dunning` in the working directory."""
    return StateDir(Path(value or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).resolve())


@dataclass(frozen=True)
class ServerInfo:
    """What `server.json` records about a running local stack."""

    pid: int
    endpoint: str
    port: int
    stack_name: str
    region: str
    template: str
    parameters: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    restored_from: str = ""  # the snapshot's saved_at, or "" for a fresh stack


def read_info(state: StateDir) -> ServerInfo | None:
    """The running server's details; None when none runs (a stale pid file is removed)."""
    try:
        pid = int(state.pid_file.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(pid):
        for stale in (state.pid_file, state.info_file, state.control_socket):
            stale.unlink(missing_ok=True)
        return None
    try:
        info = ServerInfo(**json.loads(state.info_file.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise LocalServerError(f"pid {pid} runs but {state.info_file} is unreadable ({exc}); is it starting?") from exc
    return info


def saved_identity(state: StateDir) -> dict[str, Any] | None:
    """The stack identity of the last snapshot (name, template, parameters, saved_at), if any."""
    from dunning_tools.local.snapshot import read_identity

    return read_identity(state.snapshot)


# ---------------------------------------------------------------- client side: start, stop, attach
def start(
    state: StateDir,
    *,
    port: int = 0,
    template: str | os.PathLike[str] = "template.yaml",
    parameters: Mapping[str, str] | None = None,
    stack_name: str = "",
    timeout: float = START_TIMEOUT_SECONDS,
) -> ServerInfo:
    """Spawn the daemon and wait until its stack is deployed (and restored); its details."""
    running = read_info(state)
    if running is not None:
        raise LocalServerError(
            f"the local stack is already running (pid {running.pid}, {running.endpoint}, stack {running.stack_name});"
            " `dunning local stop` first"
        )
    if port and _port_taken(port):
        raise LocalServerError(f"port {port} on {HOST} is taken; choose another with --port (0 picks a free one)")
    template_file = _find_template(template)  # a clear error now rather than in the daemon's log
    identity = saved_identity(state) or {}
    if not stack_name:
        stack_name = str(identity.get("stack_name") or DEFAULT_STACK_NAME)
    if parameters is None:
        parameters = dict(identity.get("parameters") or {})
    state.root.mkdir(parents=True, exist_ok=True)

    command = [
        sys.executable,
        "-m",
        "dunning_tools.local.server",
        "--state-dir",
        str(state.root),
        "--port",
        str(port),
        "--template",
        str(template_file),
        "--stack-name",
        stack_name,
        "--parameters",
        json.dumps(dict(parameters)),
    ]
    read_end, write_end = os.pipe()
    environment = dict(os.environ)
    # The daemon imports `dunning_tools` and `dunning` as this process did, whether installed or on PYTHONPATH.
    package_roots = (str(Path(__file__).resolve().parents[2]), str(Path(dunning.__file__).resolve().parents[1]))
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (*package_roots, str(REPO_ROOT), environment.get("PYTHONPATH", "")) if p
    )
    with state.log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [*command, "--ready-fd", str(write_end)],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # outlives this command and its terminal
        )
    os.close(write_end)
    try:
        message = _read_ready(read_end, process, timeout)
    finally:
        os.close(read_end)
    if message is None:
        raise LocalServerError(f"the local stack did not start:\n{_log_tail(state)}")
    return ServerInfo(**message)


def stop(state: StateDir, timeout: float = STOP_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Snapshot and stop the running daemon; its final snapshot's summary (`error` when it failed)."""
    info = read_info(state)
    if info is None:
        raise LocalServerError(f"no local stack is running (state folder {state.root})")
    try:
        answer = dict(request(state, "stop", timeout=timeout).get("snapshot", {}))
    except LocalServerError as exc:
        # The control socket does not answer: SIGTERM still snapshots and stops it (see its log).
        os.kill(info.pid, signal.SIGTERM)
        answer = {"error": f"{exc}; sent SIGTERM instead"}
    deadline = time.monotonic() + timeout
    while _alive(info.pid):
        if time.monotonic() > deadline:
            raise LocalServerError(f"pid {info.pid} did not stop within {timeout:.0f} s; see {state.log_file}")
        time.sleep(0.05)
    return answer


def request(state: StateDir, command: str, timeout: float = STOP_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Send one control command to the daemon and return its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        try:
            connection.connect(str(state.control_socket))
            connection.sendall(command.encode("ascii") + b"\n")
            answer = connection.makefile("rb").readline()
        except OSError as exc:
            raise LocalServerError(f"the local stack's control socket does not answer: {exc}") from exc
    if not answer:
        raise LocalServerError("the local stack closed its control socket without an answer")
    reply: dict[str, Any] = json.loads(answer)
    if "error" in reply:
        raise LocalServerError(f"the local stack could not {command}: {reply['error']}")
    return reply


@dataclass
class RunningStack:
    """The running local stack, seen from a CLI process whose AWS clients now point at it."""

    info: ServerInfo
    stack: LocalStack
    state: StateDir

    def save_positions(self) -> None:
        """Where `drain_stream` stopped, for the next command."""
        _write_json(self.state.stream_positions, dict(self.stack.stream_positions))

    def safe_point(self) -> dict[str, Any]:
        """After a command that wrote: keep the stream positions and ask the daemon for a snapshot.

        A failed snapshot is reported on stderr, not raised: what the command did stands, and the
        next safe point or `stop` saves it."""
        self.save_positions()
        try:
            return request(self.state, "snapshot")
        except LocalServerError as exc:
            print(f"warning: {exc}; see {self.state.log_file}", file=sys.stderr)
            return {"error": str(exc)}


def use_running_server(state: StateDir) -> ServerInfo | None:
    """Point this process's AWS calls at the running local server; its details (None when none runs)."""
    info = read_info(state)
    if info is None:
        return None
    os.environ["AWS_ENDPOINT_URL"] = info.endpoint
    os.environ["AWS_DEFAULT_REGION"] = info.region
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return info


def running_stack(state: StateDir) -> RunningStack | None:
    """The running local stack (None when none runs); this process's AWS calls go to its server."""
    info = use_running_server(state)
    if info is None:
        return None
    stack = attach_stack(info.template, info.parameters, info.stack_name, info.region)
    stack.stream_positions.update(_read_json(state.stream_positions))
    return RunningStack(info, stack, state)


def attach_stack(
    template_path: str | os.PathLike[str], parameters: Mapping[str, str], stack_name: str, region: str
) -> LocalStack:
    """A handle on a stack `deploy_stack` created earlier, in the moto that AWS_ENDPOINT_URL names.

    Built as `deploy_stack` builds its own (same translation, the stack's outputs and resources),
    without creating anything.
    """
    template_file = _find_template(template_path)
    translation = _translate(template_file.read_text(encoding="utf-8"), _frozen(dict(parameters)), region)
    cloudformation = aws_session(region).client("cloudformation")
    try:
        description = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        raise LocalStackError(f"the local server has no stack {stack_name}: {exc}") from exc
    return _stack_handle(
        stack_name, region, template_file, translation, description, _stack_resources(cloudformation, stack_name)
    )


# ---------------------------------------------------------------- the daemon
def serve(
    state: StateDir, port: int, template: str, parameters: Mapping[str, str], stack_name: str, ready_fd: int
) -> int:
    """The daemon's life: server up, stack deployed and restored, then serve until stopped."""
    from moto.server import ThreadedMotoServer

    from dunning_tools.local import moto_fastpath, snapshot
    from dunning_tools.local.stack import deploy_stack

    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    # moto's fake credentials: botocore refuses to sign without some.
    os.environ.update(
        {"AWS_DEFAULT_REGION": region, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    if port and _port_taken(port):  # ThreadedMotoServer would wait for ever on a port it cannot bind
        return _fail(ready_fd, f"port {port} on {HOST} is taken")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in server.log
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(moto_fastpath.installed())  # moto answers DynamoDB faster; same answers
        server.start()
        cleanup.callback(server.stop)
        bound = server.get_host_and_port()[1]
        endpoint = f"http://{HOST}:{bound}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        print(f"{_now()} moto on {endpoint}; deploying {template} as {stack_name}", flush=True)
        try:
            stack = deploy_stack(template, parameters, stack_name)
            restored = snapshot.restore(stack, state.snapshot, state.stream_positions)
        except Exception as exc:
            traceback.print_exc()
            return _fail(ready_fd, f"{type(exc).__name__}: {exc}")
        if restored is None:
            state.stream_positions.unlink(missing_ok=True)  # positions of an earlier stream mean nothing here
        print(f"{_now()} stack ready; restored: {restored or 'nothing (fresh stack)'}", flush=True)

        daemon = _Daemon(state, stack, template, dict(parameters))
        info = ServerInfo(
            pid=os.getpid(),
            endpoint=endpoint,
            port=bound,
            stack_name=stack_name,
            region=region,
            template=template,
            parameters=dict(parameters),
            started_at=_now(),
            restored_from=str((restored or {}).get("saved_at", "")),
        )
        _write_json(state.info_file, asdict(info))
        state.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
        cleanup.callback(_remove, state.pid_file, state.info_file, state.control_socket)
        control = daemon.control_server()
        threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
        cleanup.callback(control.server_close)
        cleanup.callback(control.shutdown)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop_requested.set())
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal that started it may close

        with os.fdopen(ready_fd, "w", encoding="utf-8") as ready:
            ready.write(json.dumps(asdict(info)) + "\n")
        daemon.stop_requested.wait()
        print(f"{_now()} stopping: taking a snapshot", flush=True)
        try:
            daemon.final = daemon.snapshot()
        except Exception as exc:  # still stop; the last safe point's snapshot stays
            traceback.print_exc()
            daemon.final = {"error": f"snapshot failed: {type(exc).__name__}: {exc}"}
        print(f"{_now()} stopped; snapshot: {daemon.final}", flush=True)
        daemon.stopped.set()
        if daemon.stop_asked:
            daemon.answered.wait(timeout=5)  # the `stop` request gets its answer before the socket closes
    return 0


class _Daemon:
    def __init__(self, state: StateDir, stack: LocalStack, template: str, parameters: dict[str, str]) -> None:
        self.state = state
        self.stack = stack
        self.template = template
        self.parameters = parameters
        self.lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.stopped = threading.Event()
        self.answered = threading.Event()
        self.stop_asked = False  # by a `stop` request (not a signal): it waits for an answer
        self.final: dict[str, Any] = {}

    def snapshot(self) -> dict[str, Any]:
        from dunning_tools.local import snapshot

        with self.lock:
            return snapshot.save(
                self.stack, self.state.snapshot, self.state.stream_positions, self.template, self.parameters
            )

    def control_server(self) -> socketserver.UnixStreamServer:
        daemon = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                command = self.rfile.readline().decode("ascii", "replace").strip()
                try:
                    if command == "snapshot":
                        reply: dict[str, Any] = daemon.snapshot()
                    elif command == "stop":
                        daemon.stop_asked = True
                        daemon.stop_requested.set()
                        if not daemon.stopped.wait(timeout=STOP_TIMEOUT_SECONDS):
                            reply = {"error": "the stack did not stop in time"}
                        else:
                            reply = {"stopped": True, "snapshot": daemon.final}
                    else:
                        reply = {"error": f"unknown command {command!r} (snapshot, stop)"}
                except Exception as exc:
                    traceback.print_exc()
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                self.wfile.write(json.dumps(reply).encode("utf-8") + b"\n")
                if command == "stop":
                    daemon.answered.set()

        self.state.control_socket.unlink(missing_ok=True)
        server = socketserver.ThreadingUnixStreamServer(str(self.state.control_socket), Handler)
        server.daemon_threads = True
        server.block_on_close = False  # closing never waits for a handler (a `stop` waits for the close)
        return server


def _fail(ready_fd: int, message: str) -> int:
    print(f"{_now()} failed: {message}", flush=True)
    with os.fdopen(ready_fd, "w", encoding="utf-8") as ready:
        ready.write(json.dumps({"error": message}) + "\n")
    return 1


def _read_ready(fd: int, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any] | None:
    """The daemon's one line on the pipe: its details, or an error; None when it died silently."""
    deadline = time.monotonic() + timeout
    received = b""
    while b"\n" not in received:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(left, 0))
        if not readable:
            process.kill()  # ours, started above
            process.wait()
            raise LocalServerError(f"the local stack did not come up within {timeout:.0f} s; killed it")
        chunk = os.read(fd, 65536)
        if not chunk:
            process.wait()
            return None
        received += chunk
    message: dict[str, Any] = json.loads(received.decode("utf-8"))
    if "error" in message:
        process.wait()
        raise LocalServerError(f"the local stack did not start: {message['error']}")
    return message


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no owner
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _log_tail(state: StateDir, lines: int = 20) -> str:
    try:
        text = state.log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    """Write through a temporary file and a rename: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dunning_tools.local.server", description="the local stack's daemon"
    )
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--template", required=True)
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    parser.add_argument("--parameters", default="{}", help="template parameters as a JSON object")
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    parameters = {str(k): str(v) for k, v in json.loads(args.parameters).items()}
    return serve(state_dir(args.state_dir), args.port, args.template, parameters, args.stack_name, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
