"""The relay's core: runs one Python wrapper process for a launch and forwards its lines.

The transport (Service Bus in function_app.py, in-process queues in the tests) is given to ``relay``; this module
only handles the process: its command and environment, stdin and stdout as JSON lines, the kill of its whole
process group on a kill message or at the launch's deadline, and the exit report.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Protocol

# What the wrapper itself writes on stderr is kept up to this size (a crash's traceback), like the local launcher.
DIAGNOSTICS_LIMIT = 64 * 1024

# A protocol line carries a whole result; asyncio's default line limit (64 KiB) would cut a large one.
LINE_LIMIT = 32 * 1024 * 1024

# How long the output is still read after the wrapper ended and its group was killed.
DRAIN_SECONDS = 5.0

# The most a Service Bus message carries of a line (Standard takes 256 KB with headers): a longer line goes as parts,
# in order in its session, each but the last marked "more" (PythonChannel.PartBytes on the .NET side).
PART_BYTES = 192 * 1024


def split_line(line: str) -> list:
    """The line's UTF-8 bytes in parts of at most PART_BYTES (one part, maybe empty, for a short line)."""
    data = line.encode("utf-8")
    return [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]


class LineParts:
    """Joins a line's parts; the bytes are joined before decoding, so a character cut between parts comes back whole."""

    def __init__(self):
        self._pending = bytearray()

    def add(self, body: bytes, more: bool) -> Optional[str]:
        """The whole line once its last part is here; None while parts are still to come."""
        self._pending.extend(body)
        if more:
            return None
        line = self._pending.decode("utf-8", "replace")
        self._pending = bytearray()
        return line

    def drop(self) -> None:
        """Forgets a line cut short (a kill came before its last part)."""
        self._pending = bytearray()


@dataclass(frozen=True)
class Job:
    """A launch as the .NET side sends it (PythonChannel.Job: camelCase JSON)."""

    id: str
    pack: str
    arguments: list
    environment: dict
    working_directory: Optional[str]
    packs_root: str
    deadline: float  # seconds since the epoch

    @staticmethod
    def parse(data: dict) -> "Job":
        missing = [k for k in ("id", "pack", "arguments", "environment", "packsRoot", "deadline") if k not in data]
        if missing:
            raise ValueError(f"python job is missing {', '.join(missing)}")
        return Job(str(data["id"]), str(data["pack"]), [str(a) for a in data["arguments"]],
                   {str(k): str(v) for k, v in (data["environment"] or {}).items()},
                   data.get("workingDirectory"), str(data["packsRoot"]), parse_time(str(data["deadline"])))


def parse_time(text: str) -> float:
    # .NET writes seven fractional digits; fromisoformat takes at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text).timestamp()


class Transport(Protocol):
    async def receive(self) -> Optional[tuple]:
        """The next input: ("line", text) or ("kill", ""); None when no more input will come."""

    async def send_line(self, line: str) -> None:
        """One of the wrapper's stdout lines, in order."""

    async def send_exit(self, exit_code: Optional[int], diagnostics: str) -> None:
        """The end: the exit code (None when killed) and what the wrapper wrote on stderr."""


@dataclass(frozen=True)
class Command:
    argv: list
    env: dict
    cwd: str


def command(job: Job, app_root: str, python: str = sys.executable) -> Command:
    """The wrapper's command here: this app's packs in place of the sender's, the pack's dependencies on the path."""
    packs = os.path.join(app_root, "packs")
    shim = os.path.join(app_root, "python")
    sender_root = job.packs_root.rstrip("/")

    def local(value: str) -> str:
        parts = value.split(os.pathsep)
        return os.pathsep.join(packs + p[len(sender_root):] if sender_root and (p == sender_root or p.startswith(sender_root + "/")) else p
                               for p in parts)

    env = {k: local(v) for k, v in job.environment.items()}
    # One Function app cannot hold a virtualenv per pack: the deploy installs each pack's requirements into its own
    # folder, put first on the path for that pack's code only.
    path = [os.path.join(packs, job.pack, ".python_packages"), shim] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(path)
    # No working folder given: the temp folder, as the local launcher does, so relative paths mean the same in both.
    cwd = local(job.working_directory) if job.working_directory else tempfile.gettempdir()
    if not os.path.isdir(cwd):
        cwd = tempfile.gettempdir()
    argv = [python, "-u", os.path.join(shim, "storm_python_host.py"), *(local(a) for a in job.arguments)]
    return Command(argv, env, cwd)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def relay(job: Job, transport: Transport, app_root: str, python: str = sys.executable) -> Optional[int]:
    """Runs the launch to its end; returns the exit code sent (None when it was killed or never started)."""
    left = job.deadline - time.time()
    if left <= 0:
        await transport.send_exit(None, f"launch {job.id} reached its deadline before the Python host started it")
        return None

    cmd = command(job, app_root, python)
    try:
        # Its own session: a kill reaches everything the wrapper and the pack's code started.
        process = await asyncio.create_subprocess_exec(
            *cmd.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=cmd.env, cwd=cmd.cwd, start_new_session=True, limit=LINE_LIMIT)
    except OSError as error:
        await transport.send_exit(None, f"the Python host could not start {cmd.argv[2]}: {error}")
        return None

    killed = []
    stderr = bytearray()

    async def forward_output() -> None:
        try:
            while True:
                line = await process.stdout.readline()
                if not line:
                    return
                await transport.send_line(line.decode("utf-8", "replace").rstrip("\r\n"))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever broke, the .NET side must hear the exit, not wait for it
            # A line lost would leave the result unknown: the run ends here, and the exit says why.
            killed.append(f"killed: a line of its output could not be forwarded ({type(error).__name__}: {error})")
            kill_group(process.pid)

    async def collect_errors() -> None:
        while True:
            chunk = await process.stderr.read(65536)
            if not chunk:
                return
            stderr.extend(chunk[: max(0, DIAGNOSTICS_LIMIT - len(stderr))])

    async def forward_input() -> None:
        while True:
            message = await transport.receive()
            if message is None:
                break
            kind, text = message
            if kind == "kill":
                killed.append("killed on request")
                kill_group(process.pid)
                return
            try:
                process.stdin.write(text.encode("utf-8") + b"\n")
                await process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                return
        process.stdin.close()

    output = asyncio.ensure_future(forward_output())
    errors = asyncio.ensure_future(collect_errors())
    inputs = asyncio.ensure_future(forward_input())
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), timeout=left)
    except asyncio.TimeoutError:
        killed.append("killed at the launch's deadline")
        kill_group(process.pid)
        await process.wait()
    finally:
        inputs.cancel()
        # What the wrapper left running would hold its output open, and must not outlive the launch anyway.
        kill_group(process.pid)

    try:
        await asyncio.wait_for(asyncio.gather(output, errors), timeout=DRAIN_SECONDS)
    except asyncio.TimeoutError:
        output.cancel()
        errors.cancel()

    exit_code = None if killed else process.returncode
    diagnostics = stderr.decode("utf-8", "replace")
    if killed:
        diagnostics = (diagnostics + ("\n" if diagnostics else "") + f"[python host] {killed[0]}").strip()
    await transport.send_exit(exit_code, diagnostics)
    return exit_code
