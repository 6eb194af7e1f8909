using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ServerlessStorm.Azure.Python;
using ServerlessStorm.Engine.Python;
using ServerlessStorm.Testing;
using YamlDotNet.RepresentationModel;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>
/// The Python host as `azd up` deploys it (the second Function app, its queues, identity, roles and settings), and its
/// relay run for real with /usr/bin/python3: the core's own tests with real processes, and a launch the .NET side
/// sends read by the relay.
/// </summary>
public sealed partial class PythonHostDeploymentTests
{
    private static string AppFolder => Path.Combine(RepositoryPaths.Root, "functions", "ServerlessStorm.PythonHost");

    private const string Python = "/usr/bin/python3";

    [Fact]
    public async Task ThePythonApp_IsFlexConsumptionPython311_WithItsOwnIdentityAndPackage_DeployedAsAzureYamlSays()
    {
        var template = await Bicep.TemplateAsync();
        var plan = ArmTemplate.OfApp(template, "Microsoft.Web/serverfarms", "python");
        var site = ArmTemplate.OfApp(template, "Microsoft.Web/sites", "python");
        var dotnet = ArmTemplate.OfApp(template, "Microsoft.Web/sites", "functions");
        var service = AzureYaml()["services"]!["python"]!;

        Assert.Equal(("FC1", "FlexConsumption"), (plan.Json["sku"]!["name"]!.GetValue<string>(), plan.Json["sku"]!["tier"]!.GetValue<string>()));
        Assert.Equal("functionapp,linux", site.Json["kind"]!.GetValue<string>());
        Assert.Equal(("python", "3.11"), (site.Parameter("runtimeName")!.GetValue<string>(), site.Parameter("runtimeVersion")!.GetValue<string>()));
        Assert.Equal("[parameters('runtimeName')]", site.Properties["functionAppConfig"]!["runtime"]!["name"]!.GetValue<string>());
        // Its own identity and deployment container, not the engine's.
        Assert.Contains("'pythonIdentity'", site.Parameter("identityId")!.GetValue<string>(), StringComparison.Ordinal);
        Assert.NotEqual(dotnet.Parameter("identityId")!.GetValue<string>(), site.Parameter("identityId")!.GetValue<string>());
        Assert.NotEqual(dotnet.Parameter("deploymentContainerName")!.GetValue<string>(), site.Parameter("deploymentContainerName")!.GetValue<string>());
        Assert.Equal("UserAssignedIdentity", site.Properties["functionAppConfig"]!["deployment"]!["storage"]!["authentication"]!["type"]!.GetValue<string>());
        // In the virtual network like the engine, in a subnet of its own.
        Assert.Contains("outputs.pythonAppSubnetId.value", site.ModuleParameters["subnetId"]!.ToJsonString(), StringComparison.Ordinal);

        Assert.Equal("python", site.Parameter("serviceName")!.GetValue<string>());
        Assert.Equal(("py", "function"), (service["language"]!.GetValue<string>(), service["host"]!.GetValue<string>()));
        Assert.Equal(AppFolder, Path.GetFullPath(Path.Combine(RepositoryPaths.Root, service["project"]!.GetValue<string>())));
        foreach (var file in new[] { "function_app.py", "storm_relay.py", "host.json" })
        {
            Assert.True(File.Exists(Path.Combine(AppFolder, file)), $"the Python app has no {file}");
        }

        var requirements = File.ReadAllLines(Path.Combine(AppFolder, "requirements.txt")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Subset(requirements.ToHashSet(), new HashSet<string> { "azure-functions", "azure-servicebus", "azure-identity" });
        // azd finds the app by its tag; the name is in the environment for the operator.
        Assert.Contains("'pythonApp'", template["outputs"]!["AZURE_PYTHON_FUNCTION_APP_NAME"]!["value"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ThePythonQueues_RequireSessions_AreTheChannelsAndTheRelays_AndALaunchIsDeliveredOnce()
    {
        var template = await Bicep.TemplateAsync();
        var queues = ArmTemplate.Resources(template).Single(r => r.Type == "Microsoft.ServiceBus/namespaces/queues" && r.Properties["requiresSession"] is not null);
        var declared = queues.ModuleVariables["pythonQueues"]!.AsArray().ToDictionary(q => q!["name"]!.GetValue<string>(), q => q!["maxDeliveryCount"]!.GetValue<int>());
        var relay = RelayConstants();

        Assert.True(queues.Properties["requiresSession"]!.GetValue<bool>());
        Assert.Equal(PythonChannel.Queues.Order(StringComparer.Ordinal), declared.Keys.Order(StringComparer.Ordinal));
        Assert.Equal((PythonChannel.Jobs, PythonChannel.Input, PythonChannel.Replies), (relay["JOBS"], relay["INPUT"], relay["REPLIES"]));
        // A launch whose Python instance died is not run again: an action may not be safe to repeat.
        Assert.Equal(1, declared[PythonChannel.Jobs]);
    }

    [Fact]
    public async Task ThePythonIdentity_ReceivesLaunchesAndInput_AndSendsReplies_OnThoseQueuesOnly()
    {
        var template = await Bicep.TemplateAsync();
        var granted = ArmTemplate.Resources(template)
            .Where(r => r.Type == "Microsoft.Authorization/roleAssignments" && r.Properties["principalId"]!.GetValue<string>().Contains("parameters('pythonIdentityName')", StringComparison.Ordinal))
            .Select(r => (Scope: r.Json["scope"]!.GetValue<string>(), Role: RoleName().Match(r.Properties["roleDefinitionId"]!.GetValue<string>()).Groups[1].Value))
            .ToList();

        string Queue(string name) => $"[resourceId('Microsoft.ServiceBus/namespaces/queues', parameters('serviceBusNamespaceName'), '{name}')]";
        Assert.Equal(
            new[]
            {
                (Queue(PythonChannel.Jobs), "serviceBusDataReceiver"),
                (Queue(PythonChannel.Input), "serviceBusDataReceiver"),
                (Queue(PythonChannel.Replies), "serviceBusDataSender"),
                // Its own account only: nothing of the .NET app's storage (datastore, audit, configs, host keys).
                ("[resourceId('Microsoft.Storage/storageAccounts', parameters('pythonStorageAccountName'))]", "storageBlobDataOwner"),
                ("[resourceId('Microsoft.Insights/components', parameters('applicationInsightsName'))]", "monitoringMetricsPublisher"),
            }.Order(),
            granted.Order());
    }

    [Fact]
    public async Task ThePythonApp_KeepsItsPackageAndHostBlobs_InItsOwnStorageAccount_ReachedPrivatelyInTheNetwork()
    {
        var template = await Bicep.TemplateAsync();
        var modules = ArmTemplate.Resources(template).Where(r => r.Type == "Microsoft.Resources/deployments").ToList();
        // A module's deployment is named "[format('<module>-{0}', ...)]".
        string Param(string module, string name) => modules.Single(m => m.Json["name"]!.GetValue<string>().StartsWith($"[format('{module}-", StringComparison.Ordinal))
            .Properties["parameters"]![name]!["value"]!.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

        // The app's host storage and deployment package are the Python account's, not the .NET app's.
        Assert.Contains("'pythonStorage'", Param("pythonApp", "storageBlobEndpoint"), StringComparison.Ordinal);
        Assert.Contains("'storage'", Param("functionApp", "storageBlobEndpoint"), StringComparison.Ordinal);
        Assert.Equal("false", Param("pythonStorage", "packConfigs"));
        Assert.Equal("true", Param("storage", "packConfigs"));
        // With a network, both accounts are reached through private endpoints.
        var accounts = Param("network", "storageAccountIds");
        Assert.Contains("'storage'", accounts, StringComparison.Ordinal);
        Assert.Contains("'pythonStorage'", accounts, StringComparison.Ordinal);
        var configs = ArmTemplate.Resources(template).Where(r => r.Type == "Microsoft.Storage/storageAccounts/blobServices/containers"
            && r.Json["name"]!.GetValue<string>().Contains("storm-configs", StringComparison.Ordinal)).ToList();
        // storage.bicep is in the template once per account: its configs container only where packConfigs says.
        Assert.Equal(2, configs.Count);
        Assert.All(configs, c => Assert.Equal("[parameters('packConfigs')]", c.Json["condition"]!.GetValue<string>()));
    }

    [Fact]
    public async Task ThePythonAppSettings_AreTheIdentityConnectionsFunctionAppPyReads()
    {
        var settings = ArmTemplate.OfApp(await Bicep.TemplateAsync(), "Microsoft.Web/sites/config", "python").Properties
            .ToDictionary(p => p.Key, p => p.Value!.GetValue<string>(), StringComparer.Ordinal);
        var relay = RelayConstants();
        var read = RelayEnvironmentReads();
        var connection = relay["CONNECTION"];

        // The trigger's connection, by identity (the Functions host reads these three), and the relay's own client.
        Assert.Equal("ServiceBusConnection", connection);
        Assert.Equal("managedidentity", settings[$"{connection}__credential"]);
        Assert.Contains($"{connection}__fullyQualifiedNamespace", settings.Keys);
        Assert.Contains($"{connection}__clientId", settings.Keys);
        Assert.Equal([$"{connection}__clientId", $"{connection}__fullyQualifiedNamespace"], read.Order(StringComparer.Ordinal));
        Assert.All(read, name => Assert.True(settings.ContainsKey(name), $"function_app.py reads {name}, which the Bicep does not set"));
        // Identity only: no key, and the runtime comes from functionAppConfig (Flex Consumption refuses these).
        Assert.Equal("managedidentity", settings["AzureWebJobsStorage__credential"]);
        Assert.DoesNotContain(settings.Keys, k => k is "AzureWebJobsStorage" or "FUNCTIONS_WORKER_RUNTIME" or "FUNCTIONS_EXTENSION_VERSION" or "WEBSITE_RUN_FROM_PACKAGE");
        Assert.DoesNotContain(settings.Keys, k => k.StartsWith("Storm__", StringComparison.Ordinal)); // the datastore's key stays with the engine
    }

    [Fact]
    public void ThePythonServicesPrepackageHook_PassesShellcheck()
    {
        var hook = AzureYaml()["services"]!["python"]!["hooks"]!["prepackage"]!["posix"]!;
        // A service's hook runs in the service's folder.
        var script = Path.GetFullPath(Path.Combine(AppFolder, hook["run"]!.GetValue<string>()));

        Assert.Equal("sh", hook["shell"]!.GetValue<string>());
        Assert.Equal(Path.Combine(RepositoryPaths.Root, "infra", "hooks", "python-packs.sh"), script);
        var result = Shellcheck.Run("--shell=sh", "--severity=style", script);
        Assert.True(result.ExitCode == 0, $"shellcheck {script}:\n{result.Output}");
        var text = File.ReadAllText(script);
        // Per pack, for the app's platform and Python, from wheels only.
        Assert.Contains("--target \"$app/packs/$name/.python_packages\"", text, StringComparison.Ordinal);
        Assert.Contains("--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all:", text, StringComparison.Ordinal);
    }

    [Fact]
    public void TheRelayCore_PassesItsTests_WithRealProcesses()
    {
        var (exit, output) = Run(AppFolder, "-m", "unittest", "discover", "-s", "tests", "-v");

        Assert.True(exit == 0, output);
        Assert.Matches(@"Ran \d+ tests", output);
        Assert.Matches(@"test_a_line_that_cannot_be_sent_ends_the_run_with_the_reason_and_kills_what_it_started \S* ?\.\.\. ok", output);
        Assert.Matches(@"test_a_long_line_goes_in_parts_under_the_limit_and_is_joined_whole_where_a_character_is_cut \S* ?\.\.\. ok", output);
        Assert.Matches(@"test_a_kill_message_kills_the_wrapper_and_what_it_started \S* ?\.\.\. ok", output);
        Assert.Matches(@"test_the_deadline_kills_it_without_any_message \S* ?\.\.\. ok", output);
    }

    [Fact]
    public void ALaunchTheDotnetSideSends_IsReadByTheRelay_WithItsDeadline()
    {
        var deadline = new DateTimeOffset(2026, 12, 3, 7, 42, 56, TimeSpan.Zero).AddTicks(1_234_567);
        var launch = new PythonLaunch("exec-7", "examples", ["/srv/app/packs/examples/actions/hello.py", "--x"],
            new Dictionary<string, string> { ["ST2_AUTH_TOKEN"] = "tok" }, null, TimeSpan.FromMinutes(5));
        var body = PythonChannel.Job(launch, "/srv/app/packs", deadline).Body.ToString();
        var file = Path.Combine(Path.GetTempPath(), $"storm-job-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, body);
        try
        {
            var (exit, output) = Run(AppFolder, "-c", """
                import json, sys, storm_relay
                job = storm_relay.Job.parse(json.load(open(sys.argv[1])))
                cmd = storm_relay.command(job, "/home/site/wwwroot", python="py")
                print(json.dumps({"id": job.id, "pack": job.pack, "deadline": job.deadline, "argv": cmd.argv, "token": cmd.env["ST2_AUTH_TOKEN"]}))
                """, file);

            Assert.True(exit == 0, output);
            var parsed = JsonNode.Parse(output)!;
            Assert.Equal(("exec-7", "examples", "tok"), (parsed["id"]!.GetValue<string>(), parsed["pack"]!.GetValue<string>(), parsed["token"]!.GetValue<string>()));
            Assert.Equal(deadline.ToUnixTimeMilliseconds() / 1000.0, parsed["deadline"]!.GetValue<double>(), 3);
            Assert.Equal(["py", "-u", "/home/site/wwwroot/python/storm_python_host.py", "/home/site/wwwroot/packs/examples/actions/hello.py", "--x"],
                parsed["argv"]!.AsArray().Select(a => a!.GetValue<string>()));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>function_app.py's module-level string constants, read with Python's ast module.</summary>
    private static Dictionary<string, string> RelayConstants()
    {
        var (exit, output) = Run(AppFolder, "-c", """
            import ast, json
            tree = ast.parse(open("function_app.py").read())
            print(json.dumps({t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                              and isinstance(n.value.value, str) for t in n.targets if isinstance(t, ast.Name)}))
            """);
        Assert.True(exit == 0, output);
        return JsonNode.Parse(output)!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
    }

    /// <summary>The environment variables function_app.py reads (os.environ[...] and os.environ.get(...)), its constants substituted.</summary>
    private static List<string> RelayEnvironmentReads()
    {
        var (exit, output) = Run(AppFolder, "-c", """
            import ast, json
            tree = ast.parse(open("function_app.py").read())
            consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) for t in n.targets if isinstance(t, ast.Name)}
            def text(node):
                if isinstance(node, ast.Constant):
                    return node.value
                if isinstance(node, ast.Name):
                    return consts[node.id]
                if isinstance(node, ast.JoinedStr):
                    return "".join(text(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values)
                raise ValueError(ast.dump(node))
            def environ(node):
                return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
            names = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Subscript) and environ(node.value):
                    names.add(text(node.slice))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and environ(node.func.value):
                    names.add(text(node.args[0]))
            print(json.dumps(sorted(names)))
            """);
        Assert.True(exit == 0, output);
        return JsonNode.Parse(output)!.AsArray().Select(n => n!.GetValue<string>()).ToList();
    }

    private static (int ExitCode, string Output) Run(string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo(Python) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"python3 {string.Join(' ', arguments)} did not finish in 2 minutes");
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    private static JsonObject AzureYaml()
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "azure.yaml"))));
        return (JsonObject)ToJson(yaml.Documents[0].RootNode)!;
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ToJson(c.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => null,
    };

    [GeneratedRegex(@"variables\('roles'\)\.(\w+)")]
    private static partial Regex RoleName();
}
