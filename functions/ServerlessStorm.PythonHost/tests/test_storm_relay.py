"""storm_relay with real processes: a stand-in wrapper script, in-process queues as the transport."""

import asyncio
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import storm_relay  # noqa: E402

# Stands in for the shim's storm_python_host.py: what it does is chosen by its first argument.
WRAPPER = textwrap.dedent("""
    import json, os, subprocess, sys, time
    mode = sys.argv[1]
    if mode == "echo":
        print(json.dumps({"cwd": os.getcwd(), "args": sys.argv[2:], "path": os.environ["PYTHONPATH"],
                          "token": os.environ.get("STORM_TOKEN"), "config": os.environ.get("STORM_CONFIG")}))
        for line in sys.stdin:
            line = line.rstrip("\\n")
            if line == "bye":
                sys.exit(3)
            print("got:" + line)
    elif mode == "grandchild":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print(json.dumps({"grandchild": child.pid}))
        time.sleep(300)
    elif mode == "sleep":
        print("sleeping")
        time.sleep(300)
    elif mode == "long":
        print("x" * int(sys.argv[2]))
        time.sleep(300)
    elif mode == "crash":
        raise RuntimeError("the wrapper broke")
""")


class LocalTransport:
    def __init__(self):
        self.input = asyncio.Queue()
        self.lines = []
        self.exit = None
        self.line_seen = asyncio.Event()

    async def receive(self):
        return await self.input.get()

    async def send_line(self, line):
        self.lines.append(line)
        self.line_seen.set()

    async def send_exit(self, exit_code, diagnostics):
        assert self.exit is None, "exit sent twice"
        self.exit = (exit_code, diagnostics)


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" not in status.read()
    except FileNotFoundError:
        return False


class RelayTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="storm-relay-")
        os.makedirs(os.path.join(self.root, "python"))
        os.makedirs(os.path.join(self.root, "packs", "demo", "actions"))
        with open(os.path.join(self.root, "python", "storm_python_host.py"), "w") as f:
            f.write(WRAPPER)

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def job(self, *arguments, seconds=60.0, environment=None, working_directory=None):
        return storm_relay.Job("exec-1", "demo", list(arguments), environment or {}, working_directory,
                               "/home/site/wwwroot/packs", time.time() + seconds)

    async def wait_for_line(self, transport, count, seconds=20):
        deadline = time.monotonic() + seconds
        while len(transport.lines) < count:
            self.assertLess(time.monotonic(), deadline, f"only {transport.lines} after {seconds}s")
            transport.line_seen.clear()
            try:
                await asyncio.wait_for(transport.line_seen.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    def test_lines_go_both_ways_in_order_and_the_exit_code_comes_last(self):
        async def run():
            transport = LocalTransport()
            job = self.job("echo", "/home/site/wwwroot/packs/demo/actions/run.py",
                           environment={"STORM_TOKEN": "t-1", "STORM_CONFIG": "/home/site/wwwroot/packs/demo/config.json",
                                        "PYTHONPATH": "/home/site/wwwroot/packs/demo/lib"},
                           working_directory="/home/site/wwwroot/packs/demo/actions")
            relay = asyncio.ensure_future(storm_relay.relay(job, transport, self.root))
            await self.wait_for_line(transport, 1)
            for line in ("one", '{"answer": 2}', "bye"):
                await transport.input.put(("line", line))
            self.assertEqual(3, await asyncio.wait_for(relay, 20))
            return transport

        transport = asyncio.run(run())
        first = json.loads(transport.lines[0])
        packs = os.path.join(self.root, "packs")
        # The sender's packs folder is this host's, wherever the launch names it.
        self.assertEqual(os.path.join(packs, "demo", "actions"), first["cwd"])
        self.assertEqual([os.path.join(packs, "demo", "actions", "run.py")], first["args"])
        self.assertEqual(os.path.join(packs, "demo", "config.json"), first["config"])
        self.assertEqual("t-1", first["token"])
        self.assertEqual([os.path.join(packs, "demo", ".python_packages"), os.path.join(self.root, "python"),
                          os.path.join(packs, "demo", "lib")], first["path"].split(os.pathsep))
        self.assertEqual(["got:one", 'got:{"answer": 2}'], transport.lines[1:])
        self.assertEqual(3, transport.exit[0])

    def test_without_a_working_folder_it_runs_in_the_temp_folder_as_locally(self):
        cmd = storm_relay.command(self.job("echo"), self.root)
        self.assertEqual(tempfile.gettempdir(), cmd.cwd)

    def test_a_kill_message_kills_the_wrapper_and_what_it_started(self):
        async def run():
            transport = LocalTransport()
            relay = asyncio.ensure_future(storm_relay.relay(self.job("grandchild"), transport, self.root))
            await self.wait_for_line(transport, 1)
            grandchild = json.loads(transport.lines[0])["grandchild"]
            self.assertTrue(alive(grandchild))
            await transport.input.put(("kill", ""))
            self.assertIsNone(await asyncio.wait_for(relay, 20))
            return transport, grandchild

        transport, grandchild = asyncio.run(run())
        deadline = time.monotonic() + 10
        while alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(grandchild), "the grandchild outlived the kill")
        self.assertIsNone(transport.exit[0])
        self.assertIn("killed on request", transport.exit[1])

    def test_the_deadline_kills_it_without_any_message(self):
        async def run():
            transport = LocalTransport()
            started = time.monotonic()
            result = await asyncio.wait_for(storm_relay.relay(self.job("sleep", seconds=1.5), transport, self.root), 30)
            return transport, result, time.monotonic() - started

        transport, result, took = asyncio.run(run())
        self.assertIsNone(result)
        self.assertEqual(["sleeping"], transport.lines)
        self.assertIn("deadline", transport.exit[1])
        self.assertLess(took, 15)

    def test_a_launch_past_its_deadline_is_not_started(self):
        transport = LocalTransport()
        self.assertIsNone(asyncio.run(storm_relay.relay(self.job("echo", seconds=-1), transport, self.root)))
        self.assertEqual([], transport.lines)
        self.assertIn("before the Python host started it", transport.exit[1])

    def test_a_crashing_wrapper_exits_nonzero_with_its_traceback_as_diagnostics(self):
        transport = LocalTransport()
        self.assertEqual(1, asyncio.run(storm_relay.relay(self.job("crash"), transport, self.root)))
        self.assertIn("RuntimeError: the wrapper broke", transport.exit[1])

    def test_a_line_that_cannot_be_sent_ends_the_run_with_the_reason_and_kills_what_it_started(self):
        class FailingTransport(LocalTransport):
            async def send_line(self, line):
                raise RuntimeError("MessageSizeExceededError: the message is too large")

        async def run():
            transport = FailingTransport()
            result = await asyncio.wait_for(storm_relay.relay(self.job("grandchild"), transport, self.root), 30)
            return transport, result

        started = time.monotonic()
        transport, result = asyncio.run(run())
        self.assertIsNone(result)
        self.assertIsNone(transport.exit[0])
        self.assertIn("a line of its output could not be forwarded (RuntimeError: MessageSizeExceededError", transport.exit[1])
        self.assertLess(time.monotonic() - started, 20, "the relay waited for the deadline instead of ending at the failure")

    def test_a_line_over_the_line_limit_ends_the_run_with_the_reason(self):
        limit = storm_relay.LINE_LIMIT
        storm_relay.LINE_LIMIT = 4096
        try:
            transport = LocalTransport()
            result = asyncio.run(asyncio.wait_for(storm_relay.relay(self.job("long", "10000"), transport, self.root), 30))
        finally:
            storm_relay.LINE_LIMIT = limit
        self.assertIsNone(result)
        self.assertEqual([], transport.lines)
        self.assertIn("could not be forwarded (ValueError", transport.exit[1])

    def test_job_parses_the_dotnet_json_with_seven_fractional_digits(self):
        job = storm_relay.Job.parse({"id": "e", "pack": "p", "arguments": ["a"], "environment": {"K": "V"}, "workingDirectory": None,
                                     "packsRoot": "/x/packs", "deadline": "2026-12-03T07:42:56.1234567+00:00"})
        self.assertAlmostEqual(datetime(2026, 12, 3, 7, 42, 56, 123456, tzinfo=timezone.utc).timestamp(), job.deadline, places=5)
        with self.assertRaisesRegex(ValueError, "missing deadline"):
            storm_relay.Job.parse({"id": "e", "pack": "p", "arguments": [], "environment": {}, "packsRoot": "/x"})


class LinePartsTests(unittest.TestCase):
    def test_a_long_line_goes_in_parts_under_the_limit_and_is_joined_whole_where_a_character_is_cut(self):
        line = "x" + "é" * 300_000  # two bytes each: the parts cut inside characters
        parts = storm_relay.split_line(line)
        self.assertEqual(4, len(parts))
        self.assertTrue(all(0 < len(p) <= storm_relay.PART_BYTES for p in parts))
        joiner = storm_relay.LineParts()
        self.assertEqual([None, None, None], [joiner.add(p, True) for p in parts[:-1]])
        self.assertEqual(line, joiner.add(parts[-1], False))
        self.assertEqual("next", joiner.add(b"next", False))

    def test_a_short_or_empty_line_is_one_part(self):
        self.assertEqual([b"{}"], storm_relay.split_line("{}"))
        self.assertEqual([b""], storm_relay.split_line(""))

    def test_a_line_cut_short_is_dropped(self):
        joiner = storm_relay.LineParts()
        joiner.add(b"half of a", True)
        joiner.drop()
        self.assertEqual("whole", joiner.add(b"whole", False))

    def test_the_part_size_is_the_dotnet_sides(self):
        channel = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "ServerlessStorm.Azure", "Python", "PythonChannel.cs")
        with open(channel) as f:
            self.assertIn("public const int PartBytes = 192 * 1024;", f.read())
        self.assertEqual(192 * 1024, storm_relay.PART_BYTES)


if __name__ == "__main__":
    unittest.main()
