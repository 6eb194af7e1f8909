using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Python;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>python-script actions run by real /usr/bin/python3 processes through the shipped host program.</summary>
public sealed class PythonActionTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private readonly TempPacks _packs = new();
    private readonly KeyValueService _keys = new(new InMemoryKeyValueStore(), Options.Create(new DatastoreOptions { EncryptionKey = Key }), TimeProvider.System);
    private readonly PythonScriptRunner _runner;

    public PythonActionTests()
    {
        _runner = new PythonScriptRunner(new HostPythonEnvironments(Options.Create(new PythonOptions { Interpreter = "/usr/bin/python3" })), _keys);
        _packs.WithPack("py");
    }

    public void Dispose() => _packs.Dispose();

    // py.<name>: the module's code, and the YAML lines of its parameters.
    private void WriteAction(string name, string code, string parameters = "")
    {
        _packs.Write($"py/actions/{name}.py", code);
        _packs.Write($"py/actions/{name}.yaml", $"name: {name}\nrunner_type: python-script\nentry_point: {name}.py\n"
            + (parameters.Length == 0 ? "" : "parameters:\n" + string.Join("\n", parameters.Split('\n').Select(line => "  " + line.Trim())) + "\n"));
    }

    private async Task<RunnerResult> RunAsync(string name, JsonObject? parameters = null, Action<string, string>? output = null, CancellationToken cancellationToken = default)
    {
        var loaded = new PackLoader(RunnerRegistry.Default).LoadFrom(_packs.Root);
        Assert.True(loaded.IsValid, string.Join("\n", loaded.Problems));
        var action = loaded.Catalog.Actions[$"py.{name}"];
        var pack = loaded.Catalog.Packs["py"];
        var context = new RunnerContext("exec-1", action, ParameterResolver.Resolve(action, parameters ?? []), pack.Directory) { Pack = pack, Config = pack.Config, Output = output };
        return await _runner.RunAsync(context, cancellationToken);
    }

    private static string Text(JsonObject result, string field) => result[field]!.GetValue<string>();

    [Fact]
    public async Task ReturnedValue_IsTheResult_WithStdoutStderrAndExitCode()
    {
        WriteAction("hello", """
            import os
            import sys
            from st2common.runners.base_action import Action

            class Hello(Action):
                def run(self, name, greeting=None):
                    print("hello " + name)
                    sys.stderr.write("to stderr\n")
                    return {"name": name, "greeting": greeting, "pack": os.environ["ST2_ACTION_PACK_NAME"],
                            "execution": os.environ["ST2_ACTION_EXECUTION_ID"], "home": "HOME" in os.environ,
                            "leaked": sorted(k for k in os.environ if k.startswith(("AZURE", "Storm", "DOTNET")))}
            """, "name: {type: string, required: true}\ngreeting: {type: string}");

        var result = await RunAsync("hello", new JsonObject { ["name"] = "Ada é ✓" });

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal("hello Ada é ✓\n", Text(result.Result, "stdout"));
        Assert.Equal("to stderr\n", Text(result.Result, "stderr"));
        Assert.Equal(0, result.Result["exit_code"]!.GetValue<int>());
        Assert.True(JsonNode.DeepEquals(new JsonObject
        {
            ["name"] = "Ada é ✓", ["greeting"] = null, ["pack"] = "py", ["execution"] = "exec-1", ["home"] = true, ["leaked"] = new JsonArray(),
        }, result.Result["result"]), result.Result.ToJsonString());
        Assert.Equal("result", _runner.OutputKey);
    }

    [Fact]
    public async Task FalseTuple_FailsTheExecution_KeepingItsResult()
    {
        WriteAction("check", """
            from st2common.runners.base_action import Action

            class Check(Action):
                def run(self):
                    return (False, {"reason": "disk full"})
            """);

        var result = await RunAsync("check");

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal("disk full", result.Result["result"]!["reason"]!.GetValue<string>());
        Assert.Equal(0, result.Result["exit_code"]!.GetValue<int>());
    }

    [Fact]
    public async Task Exception_FailsWithTheTracebackInStderr_AndExitCode1()
    {
        WriteAction("boom", """
            from st2common.runners.base_action import Action

            class Boom(Action):
                def run(self):
                    print("before")
                    raise RuntimeError("the API said no")
            """);

        var result = await RunAsync("boom");

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal(1, result.Result["exit_code"]!.GetValue<int>());
        Assert.Contains("Traceback (most recent call last)", Text(result.Result, "stderr"), StringComparison.Ordinal);
        Assert.Contains("RuntimeError: the API said no", Text(result.Result, "stderr"), StringComparison.Ordinal);
        Assert.Equal("before\n", Text(result.Result, "stdout"));
        Assert.Contains("RuntimeError: the API said no", result.Error, StringComparison.Ordinal);
        // StackStorm's runner: no result written, so the text "None".
        Assert.Equal("None", Text(result.Result, "result"));
    }

    [Theory]
    [InlineData("sys.exit(0)", 0, ExecutionStatus.Succeeded)]
    [InlineData("sys.exit()", 0, ExecutionStatus.Succeeded)]
    [InlineData("sys.exit(3)", 3, ExecutionStatus.Failed)]
    [InlineData("sys.exit('fatal: bad input')", 1, ExecutionStatus.Failed)]
    public async Task SysExit_SetsTheExitCodeAndStatus(string exit, int code, string status)
    {
        WriteAction("quit", $$"""
            import sys
            from st2common.runners.base_action import Action

            class Quit(Action):
                def run(self):
                    {{exit}}
            """);

        var result = await RunAsync("quit");

        Assert.Equal(status, result.Status);
        Assert.Equal(code, result.Result["exit_code"]!.GetValue<int>());
        Assert.Equal("None", Text(result.Result, "result"));
    }

    // An action that starts a grandchild (sleep, in the background of a shell) and writes its pid to a file, then waits.
    private string WriteSleeper()
    {
        var pidFile = Path.Combine(_packs.Root, "grandchild.pid");
        WriteAction("sleeper", $$"""
            import os
            import subprocess
            import time
            from st2common.runners.base_action import Action

            class Sleeper(Action):
                def run(self):
                    subprocess.Popen(["/bin/sh", "-c", "sleep 300 & echo $! > {{pidFile}}.tmp && mv {{pidFile}}.tmp {{pidFile}}; wait"])
                    while not os.path.exists("{{pidFile}}"):
                        time.sleep(0.01)
                    print("started", flush=True)
                    time.sleep(300)
            """, "timeout: {default: 1}");
        return pidFile;
    }

    private static async Task AssertGoneAsync(string pidFile)
    {
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        // Gone, or a zombie waiting for init to reap it: either way no longer running.
        await Eventually.TrueAsync(() => !File.Exists($"/proc/{pid}/stat") || File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2] == "Z",
            what: $"grandchild {pid} killed");
    }

    [Fact]
    public async Task Timeout_KillsTheWholeProcessTree_WithStatusTimeout()
    {
        var pidFile = WriteSleeper();

        var result = await RunAsync("sleeper");

        Assert.Equal(ExecutionStatus.Timeout, result.Status);
        Assert.Equal(-9, result.Result["exit_code"]!.GetValue<int>());
        Assert.Equal("started\n", Text(result.Result, "stdout"));
        Assert.True(File.Exists(pidFile), "the grandchild was started");
        await AssertGoneAsync(pidFile);
    }

    [Fact]
    public async Task Cancel_KillsTheWholeProcessTree()
    {
        var pidFile = WriteSleeper();
        _packs.Write("py/actions/sleeper.yaml", "name: sleeper\nrunner_type: python-script\nentry_point: sleeper.py\n");
        using var cancel = new CancellationTokenSource();

        var running = RunAsync("sleeper", output: (_, text) =>
        {
            if (text.Contains("started", StringComparison.Ordinal))
            {
                cancel.Cancel();
            }
        }, cancellationToken: cancel.Token);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        await AssertGoneAsync(pidFile);
    }

    [Fact]
    public async Task LiveOutput_ComesInOrderPerStream_AndIncludesSubprocesses()
    {
        WriteAction("chatty", """
            import subprocess
            import sys
            from st2common.runners.base_action import Action

            class Chatty(Action):
                def run(self):
                    for i in range(200):
                        print("out %d" % i)
                        sys.stderr.write("err %d\n" % i)
                    subprocess.run(["/bin/echo", "from a child"])
                    subprocess.run(["/bin/sh", "-c", "echo child err >&2"])
                    return "done"
            """);
        var live = new Dictionary<string, System.Text.StringBuilder> { ["stdout"] = new(), ["stderr"] = new() };

        var result = await RunAsync("chatty", output: (stream, text) => { lock (live) { live[stream].Append(text); } });

        var expectedOut = string.Concat(Enumerable.Range(0, 200).Select(i => $"out {i}\n")) + "from a child\n";
        var expectedErr = string.Concat(Enumerable.Range(0, 200).Select(i => $"err {i}\n")) + "child err\n";
        Assert.Equal(expectedOut, live["stdout"].ToString());
        Assert.Equal(expectedErr, live["stderr"].ToString());
        Assert.Equal(expectedOut, Text(result.Result, "stdout"));
        Assert.Equal(expectedErr, Text(result.Result, "stderr"));
        Assert.Equal("done", result.Result["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task ActionService_GetsSetsListsAndDeletes_LocalAndGlobalNames()
    {
        await _keys.SetAsync("system", "shared", "for everyone", secret: false, ttl: null, CancellationToken.None);
        WriteAction("kv", """
            from st2common.runners.base_action import Action

            class Store(Action):
                def run(self):
                    s = self.action_service
                    s.set_value("counter", 41)
                    s.set_value("global_key", "g", local=False)
                    got = s.get_value("counter")
                    shared = s.get_value("shared", local=False)
                    missing = s.get_value("nothing")
                    local_names = [p.name for p in s.list_values()]
                    all_names = sorted(p.name for p in s.list_values(local=False))
                    deleted = s.delete_value("counter")
                    deleted_again = s.delete_value("counter")
                    return {"got": got, "shared": shared, "missing": missing, "local": local_names, "all": all_names,
                            "deleted": deleted, "deleted_again": deleted_again}
            """);

        var result = await RunAsync("kv");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.True(JsonNode.DeepEquals(new JsonObject
        {
            ["got"] = "41", ["shared"] = "for everyone", ["missing"] = null, ["local"] = new JsonArray("py.Store:counter"),
            ["all"] = new JsonArray("global_key", "py.Store:counter", "shared"), ["deleted"] = true, ["deleted_again"] = false,
        }, result.Result["result"]), result.Result.ToJsonString() + Text(result.Result, "stderr"));
        Assert.Null(await _keys.GetAsync("system", "py.Store:counter", false, CancellationToken.None));
        Assert.Equal("g", (await _keys.GetAsync("system", "global_key", false, CancellationToken.None))!.Value);
    }

    [Fact]
    public async Task ActionService_RefusesOtherScopes_AndKeepsSecretsEncryptedUnlessDecrypt()
    {
        WriteAction("secrets", """
            from st2common.runners.base_action import Action

            class Secrets(Action):
                def run(self):
                    s = self.action_service
                    s.set_value("token", "t0ken-value", encrypt=True)
                    try:
                        s.get_value("token", scope="user")
                        refused = None
                    except ValueError as e:
                        refused = str(e)
                    return {"refused": refused, "sealed": s.get_value("token"), "open": s.get_value("token", decrypt=True)}
            """);

        var result = await RunAsync("secrets");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        var values = result.Result["result"]!;
        Assert.Equal("Scope user is unsupported.", values["refused"]!.GetValue<string>());
        Assert.Equal("t0ken-value", values["open"]!.GetValue<string>());
        Assert.NotEqual("t0ken-value", values["sealed"]!.GetValue<string>());
        Assert.True((await _keys.GetAsync("system", "py.Secrets:token", false, CancellationToken.None))!.Secret);
    }

    [Fact]
    public async Task Config_IsThePacksConfig_AndImportsComeFromLibAndActionsLib()
    {
        _packs.Write("py/config.yaml", "api_url: https://api.example.com\nretries: 3\n");
        _packs.Write("py/lib/common_helpers.py", "def shout(text):\n    return text.upper()\n");
        _packs.Write("py/actions/lib/__init__.py", "");
        _packs.Write("py/actions/lib/formatting.py", "def wrap(text):\n    return '[' + text + ']'\n");
        WriteAction("helpers", """
            from common_helpers import shout
            from lib.formatting import wrap
            from st2common.runners.base_action import Action

            class Helpers(Action):
                def run(self):
                    self.logger.info("using %s", self.config["api_url"])
                    return {"text": wrap(shout("hi")), "config": self.config}
            """);

        var result = await RunAsync("helpers");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal("[HI]", result.Result["result"]!["text"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["api_url"] = "https://api.example.com", ["retries"] = 3 }, result.Result["result"]!["config"]),
            result.Result.ToJsonString());
        Assert.Contains("INFO helpers [-] using https://api.example.com", Text(result.Result, "stderr"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModuleWithABaseClassAndItsSubclass_RunsTheOneThatImplementsRun()
    {
        WriteAction("based", """
            from st2common.runners.base_action import Action

            class Base(Action):
                def helper(self):
                    return "from base"

            class Probe(Base):
                def run(self):
                    return {"class": type(self).__name__, "helper": self.helper()}
            """);

        var result = await RunAsync("based");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["class"] = "Probe", ["helper"] = "from base" }, result.Result["result"]), result.Result.ToJsonString());
    }

    [Fact]
    public async Task ModuleWithTwoActionClassesThatImplementRun_RunsTheFirstByName()
    {
        WriteAction("pair", """
            from st2common.runners.base_action import Action

            class Zeta(Action):
                def run(self):
                    return "Zeta"

            class Alpha(Action):
                def run(self):
                    return "Alpha"
            """);

        var result = await RunAsync("pair");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal("Alpha", result.Result["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task NonFiniteFloats_AreWrittenAsNull_AndTheRunSucceeds()
    {
        WriteAction("nan", """
            from st2common.runners.base_action import Action

            class Nan(Action):
                def run(self):
                    return {"x": float("nan"), "y": [float("inf"), 1.5, -float("inf")]}
            """);

        var result = await RunAsync("nan");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["x"] = null, ["y"] = new JsonArray(null, 1.5, null) }, result.Result["result"]), result.Result.ToJsonString());
    }

    [Fact]
    public async Task DatetimesUuidsSetsAndBytes_AreWrittenAsOrjsonDoes_AndOnlyTheOddValueBecomesText()
    {
        WriteAction("kinds", """
            import dataclasses
            import datetime
            import uuid
            from st2common.runners.base_action import Action

            @dataclasses.dataclass
            class Point:
                x: int
                at: datetime.date

            class Opaque(object):
                def __str__(self):
                    return "opaque"

            class Kinds(Action):
                def run(self):
                    return {"when": datetime.datetime(2026, 12, 3, 9, 5, 1, 250000, tzinfo=datetime.timezone.utc),
                            "day": datetime.date(2026, 12, 3), "time": datetime.time(9, 5),
                            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "tags": {"only"},
                            "raw": b"bytes", "point": Point(1, datetime.date(2026, 1, 2)), "other": Opaque(), "n": 3}
            """);

        var result = await RunAsync("kinds");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.True(JsonNode.DeepEquals(new JsonObject
        {
            ["when"] = "2026-12-03T09:05:01.250000+00:00", ["day"] = "2026-12-03", ["time"] = "09:05:00",
            ["id"] = "12345678-1234-5678-1234-567812345678", ["tags"] = new JsonArray("only"), ["raw"] = "bytes",
            ["point"] = new JsonObject { ["x"] = 1, ["at"] = "2026-01-02" }, ["other"] = "opaque", ["n"] = 3,
        }, result.Result["result"]), result.Result.ToJsonString());
    }

    [Fact]
    public async Task NoneStatusTuple_SetsNoStatus_AndKeepsTheResult()
    {
        WriteAction("nostatus", """
            from st2common.runners.base_action import Action

            class NoStatus(Action):
                def run(self):
                    return (None, {"kept": True})
            """);

        var result = await RunAsync("nostatus");

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal(0, result.Result["exit_code"]!.GetValue<int>());
        Assert.True(result.Result["result"]!["kept"]!.GetValue<bool>());
    }

    [Fact]
    public async Task UnreadableFinalMessage_FailsTheRun_RatherThanSucceedingWithoutAResult()
    {
        WriteAction("garbled", "from st2common.runners.base_action import Action\n\nclass G(Action):\n    def run(self):\n        return 1\n");
        var runner = new PythonScriptRunner(new HostPythonEnvironments(Options.Create(new PythonOptions { Interpreter = "/usr/bin/python3" })), _keys,
            launcher: new CannedLauncher("""{"t": "result", "status": null, "result": {"x": NaN}}"""));
        var loaded = new PackLoader(RunnerRegistry.Default).LoadFrom(_packs.Root);
        var action = loaded.Catalog.Actions["py.garbled"];
        var pack = loaded.Catalog.Packs["py"];

        var result = await runner.RunAsync(new RunnerContext("exec-1", action, ParameterResolver.Resolve(action, []), pack.Directory) { Pack = pack, Config = pack.Config }, CancellationToken.None);

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Contains("could not be read", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheStackStormHelpersExchangePacksImport_WorkAsStackStormsDo()
    {
        // What github's formatters, csv's actions, vsphere's logger and msexchange's paths import. The expected
        // values are what StackStorm's own isotime gives for the same calls (run once beside it, with dateutil).
        WriteAction("helpers", """
            import datetime
            from st2common.util import isotime
            from st2common.exceptions.action import InvalidActionParameterException
            from st2common.runners.utils import get_logger_for_python_runner_action
            from st2common.content.utils import get_pack_base_path
            from st2common.runners.base_action import Action

            class Helpers(Action):
                def run(self):
                    utc = datetime.timezone.utc
                    plus2 = datetime.timezone(datetime.timedelta(hours=2))
                    get_logger_for_python_runner_action("helpers").info("logged")
                    try:
                        raise InvalidActionParameterException("bad")
                    except Exception as error:
                        raised = type(error).__name__
                    try:
                        isotime.parse("2026-12-03T10:00:00+02:00")
                        refused = False
                    except ValueError:
                        refused = True
                    return {
                        "usec": isotime.format(datetime.datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=utc)),
                        "z": isotime.format(datetime.datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=utc), offset=False),
                        "plus2": isotime.format(datetime.datetime(2026, 12, 3, 10, 0, 0, tzinfo=plus2), usec=False),
                        "epoch": isotime.format(1700000000),
                        "text": isotime.format("2026-12-03 10:00:00+00", offset=False),
                        "parsed": str(isotime.parse("2026-12-03T10:00:00.123456+0000")),
                        "converted": str(isotime.parse("2026-12-03T10:00:00+02:00", validate_value=False)),
                        "refused": refused,
                        "raised": raised,
                        "pack": get_pack_base_path("py"),
                        "wrapper": self.action_service._action_wrapper._pack,
                        "description": self.description,
                    }
            """);

        var result = await RunAsync("helpers");

        Assert.True(result.Status == ExecutionStatus.Succeeded, result.Result.ToJsonString());
        var r = result.Result["result"]!;
        Assert.Equal("2026-12-03T10:00:00.123456+00:00", r["usec"]!.GetValue<string>());
        Assert.Equal("2026-12-03T10:00:00.123456Z", r["z"]!.GetValue<string>());
        Assert.Equal("2026-12-03T10:00:00+02:00", r["plus2"]!.GetValue<string>());
        Assert.Equal("2023-11-14T22:13:20.000000+00:00", r["epoch"]!.GetValue<string>());
        Assert.Equal("2026-12-03T10:00:00.000000Z", r["text"]!.GetValue<string>());
        Assert.Equal("2026-12-03 10:00:00.123456+00:00", r["parsed"]!.GetValue<string>());
        Assert.Equal("2026-12-03 08:00:00+00:00", r["converted"]!.GetValue<string>());
        Assert.True(r["refused"]!.GetValue<bool>());
        Assert.Equal("InvalidActionParameterException", r["raised"]!.GetValue<string>());
        Assert.Equal(Path.Combine(_packs.Root, "py"), r["pack"]!.GetValue<string>());
        Assert.Equal("py", r["wrapper"]!.GetValue<string>());
        Assert.Null(r["description"]);
        Assert.Contains("actions.python.helpers: INFO     logged", Text(result.Result, "stderr"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task St2clientsKeys_ReachTheDatastore_AsGlobalSystemNames_AndTheRestOfItsApiSaysItIsNotHere()
    {
        // As msexchange's and mysql's actions use it: a client made from the action's environment, keys only.
        WriteAction("client", """
            from st2client.client import Client
            from st2client.models import KeyValuePair
            from st2client.models.keyvalue import KeyValuePair as SamePair
            from st2common.runners.base_action import Action

            class UsesClient(Action):
                def run(self):
                    client = Client(base_url="http://localhost")
                    client.keys.update(KeyValuePair(name="mysql.last_row", value="41"))
                    client.keys.update(SamePair(name="mysql.password", value="pw-canary-4417", secret=True))
                    got = client.keys.get_by_name("mysql.last_row").value
                    missing = client.keys.get_by_name("mysql.nothing")
                    listed = sorted(kv.name for kv in client.keys.get_all(prefix="mysql."))
                    client.keys.delete(KeyValuePair(name="mysql.last_row"))
                    try:
                        client.executions.get_by_id("x")
                        other = None
                    except NotImplementedError as error:
                        other = str(error)
                    return {"got": got, "missing": missing, "listed": listed, "gone": client.keys.get_by_name("mysql.last_row"), "other": other}
            """);

        var result = await RunAsync("client");

        Assert.True(result.Status == ExecutionStatus.Succeeded, result.Result.ToJsonString());
        var r = result.Result["result"]!;
        Assert.Equal("41", r["got"]!.GetValue<string>());
        Assert.Null(r["missing"]);
        Assert.Equal(["mysql.last_row", "mysql.password"], r["listed"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Null(r["gone"]);
        Assert.Contains("'executions' needs StackStorm's API", r["other"]!.GetValue<string>(), StringComparison.Ordinal);
        // A global system name (no pack.Class: prefix), the secret kept encrypted.
        var secret = await _keys.GetAsync("system", "mysql.password", decrypt: false, CancellationToken.None);
        Assert.NotNull(secret);
        Assert.True(secret!.Secret);
        Assert.NotEqual("pw-canary-4417", secret.Value);
    }

    [Fact]
    public async Task AnActionFileNamedLikeAStandardModule_DoesNotHideIt_AsInStackStorm()
    {
        // actions/json.py importing json gets the standard module: the action's folder is last on the path.
        WriteAction("json", "import json\nfrom st2common.runners.base_action import Action\n\nclass J(Action):\n    def run(self):\n        return json.dumps([1])\n");

        var result = await RunAsync("json");

        Assert.True(result.Status == ExecutionStatus.Succeeded, result.Result.ToJsonString());
        Assert.Equal("[1]", result.Result["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task AnOlderActionWhoseInitTakesNoActionService_GetsItAssigned_AsInStackStorm()
    {
        WriteAction("old", """
            from st2common.runners.base_action import Action

            class Old(Action):
                def __init__(self, config):
                    super(Old, self).__init__(config)
                    self.seen = config["threshold"]

                def run(self):
                    self.action_service.set_value("k", "v")
                    return [self.seen, self.action_service.get_value("k")]
            """);
        _packs.Write("py/config.yaml", "threshold: 3\n");

        var result = await RunAsync("old");

        Assert.True(result.Status == ExecutionStatus.Succeeded, result.Result.ToJsonString());
        Assert.Equal("[3,\"v\"]", result.Result["result"]!.ToJsonString());
    }

    [Fact]
    public async Task PythonPathInTheActionsEnv_IsIgnored_AsInStackStorm()
    {
        _packs.Write("elsewhere/evil.py", "X = 'evil'\n");
        WriteAction("path", "import os, sys\nfrom st2common.runners.base_action import Action\n\nclass P(Action):\n    def run(self):\n        return [os.environ.get('PYTHONPATH'), os.environ.get('OTHER'), any('elsewhere' in p for p in sys.path)]\n",
            "env: {type: object}");

        var result = await RunAsync("path", new JsonObject { ["env"] = new JsonObject { ["pythonpath"] = Path.Combine(_packs.Root, "elsewhere"), ["OTHER"] = "kept" } });

        Assert.True(result.Status == ExecutionStatus.Succeeded, result.Result.ToJsonString());
        Assert.Equal("[null,\"kept\",false]", result.Result["result"]!.ToJsonString());
    }

    [Fact]
    public async Task ARemotePythonHost_RunsThePacksCode_WithoutAnInterpreterChosenHere()
    {
        WriteAction("remote", "from st2common.runners.base_action import Action\n\nclass R(Action):\n    def run(self):\n        return 1\n");
        var launcher = new CannedLauncher("""{"t": "result", "status": null, "result": {"ran": "there"}}""") { Remote = true };
        // Here a virtualenv that was never built: only a launcher that runs locally needs one.
        var runner = new PythonScriptRunner(new NoInterpreter(), _keys, launcher: launcher);
        var loaded = new PackLoader(RunnerRegistry.Default).LoadFrom(_packs.Root);
        var action = loaded.Catalog.Actions["py.remote"];
        var pack = loaded.Catalog.Packs["py"];

        var result = await runner.RunAsync(new RunnerContext("exec-1", action, ParameterResolver.Resolve(action, []), pack.Directory) { Pack = pack, Config = pack.Config }, CancellationToken.None);
        var local = await new PythonScriptRunner(new NoInterpreter(), _keys, launcher: new CannedLauncher()).RunAsync(
            new RunnerContext("exec-2", action, ParameterResolver.Resolve(action, []), pack.Directory) { Pack = pack, Config = pack.Config }, CancellationToken.None);

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal("there", result.Result["result"]!["ran"]!.GetValue<string>());
        Assert.Null(launcher.Launched!.Interpreter);
        Assert.Equal(Path.GetFileName(pack.Directory), launcher.Launched.Pack);
        // The module and libraries relative to the packs folder the environment names: the host has its own copy.
        var job = JsonNode.Parse(launcher.Sent[0])!;
        Assert.Equal(Path.Combine("py", "actions", "remote.py"), job["file"]!.GetValue<string>());
        Assert.Equal([Path.Combine("py", "lib"), Path.Combine("py", "actions", "lib")], job["paths"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(Path.GetDirectoryName(Path.GetFullPath(pack.Directory)), launcher.Launched.Environment["STORM_PACKS_ROOT"]);
        Assert.Equal(ExecutionStatus.Failed, local.Status);
        Assert.Contains("storm pack install", local.Error, StringComparison.Ordinal);
    }

    private sealed class NoInterpreter : IPythonEnvironments
    {
        public string InterpreterFor(PackDefinition pack) => throw new PythonEnvironmentException($"pack '{pack.Name}' has no virtualenv: run storm pack install");
    }

    /// <summary>A wrapper that writes the given protocol lines and exits 0.</summary>
    private sealed class CannedLauncher(params string[] lines) : IPythonLauncher
    {
        public bool Remote { get; init; }

        public PythonLaunch? Launched { get; private set; }

        public bool ChoosesInterpreter => !Remote;

        public Task<IPythonProcess> StartAsync(PythonLaunch launch, CancellationToken cancellationToken)
        {
            Launched = launch;
            return Task.FromResult<IPythonProcess>(new Process(lines, Sent));
        }

        public List<string> Sent { get; } = [];

        private sealed class Process(string[] lines, List<string> sent) : IPythonProcess
        {
            public int? ExitCode { get; private set; }

            public string Diagnostics => "";

            public Task SendAsync(string line, CancellationToken cancellationToken)
            {
                sent.Add(line);
                return Task.CompletedTask;
            }

            public async IAsyncEnumerable<string> ReadLinesAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
            {
                foreach (var line in lines)
                {
                    await Task.Yield();
                    yield return line;
                }

                ExitCode = 0;
            }

            public Task KillAsync() => Task.CompletedTask;

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    [Theory]
    [InlineData("class NotAnAction(object):\n    pass\n", "has no action class")]
    [InlineData("class OnlyABase(Action):\n    pass\n", "has no action class")]
    public async Task ModuleWithNoClassThatImplementsRun_FailsNamingTheFile(string classes, string message)
    {
        WriteAction("odd", "from st2common.runners.base_action import Action\n\n" + classes);

        var result = await RunAsync("odd");

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Contains(message, result.Error, StringComparison.Ordinal);
        Assert.Contains(Path.Combine("py", "actions", "odd.py"), result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASecretPrintedByPython_IsMaskedInTheExecutionsOutput()
    {
        _packs.Write("py/actions/leak.py", """
            from st2common.runners.base_action import Action

            class Leak(Action):
                def run(self, password):
                    print("password is " + password)
                    print("stored is " + self.action_service.get_value("api_token", local=False, decrypt=True))
                    return {"echo": password}
            """);
        _packs.Write("py/actions/leak.yaml", "name: leak\nrunner_type: python-script\nentry_point: leak.py\nparameters:\n  password: {type: string, secret: true, required: true}\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root,
            services => services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key));
        await host.Services.GetRequiredService<KeyValueService>().SetAsync("system", "api_token", "kv-canary-9137", secret: true, ttl: null, CancellationToken.None);

        var requested = await host.Services.GetRequiredService<ExecutionService>().RunAsync("py.leak", new JsonObject { ["password"] = "pa55-canary-4711" }, null, TestCallers.Admin.User, CancellationToken.None);
        var finished = await host.WaitForExecutionAsync(requested.Id);

        Assert.Equal(ExecutionStatus.Succeeded, finished.Status);
        Assert.Equal("password is ********\nstored is ********\n", finished.Result!["stdout"]!.GetValue<string>());
        Assert.DoesNotContain("canary", finished.Result.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain("canary", string.Join("\n", host.Logs), StringComparison.Ordinal);
    }
}
