using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;
using YamlDotNet.RepresentationModel;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>
/// infra/main.bicep as the Bicep CLI compiles and lints it, and what the compiled template would create: identity
/// connections only, keys and local auth off, the queues the app expects, least-privilege roles, and the app as
/// azure.yaml deploys it.
/// </summary>
public sealed partial class InfrastructureTests
{
    // The built-in roles the app's identity and the deploying user may be given (the same ids in every tenant).
    private static readonly Dictionary<string, string> IntendedRoles = new(StringComparer.Ordinal)
    {
        ["storageBlobDataOwner"] = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        ["storageQueueDataContributor"] = "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        ["storageTableDataContributor"] = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        ["serviceBusDataSender"] = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
        ["serviceBusDataReceiver"] = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
        ["keyVaultSecretsUser"] = "4633458b-17de-408a-b874-0445c86b69e6",
        ["keyVaultSecretsOfficer"] = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        ["monitoringMetricsPublisher"] = "3913510d-42f4-4e42-8a64-420c390055eb",
    };

    [Fact]
    public async Task MainBicep_BuildsWithoutAnErrorOrWarning()
    {
        var build = await Bicep.RunAsync("build", Bicep.MainFile, "--outfile", Path.Combine(Path.GetTempPath(), $"storm-main-{Guid.NewGuid():N}.json"));

        Assert.True(build.ExitCode == 0 && build.Stderr.Trim().Length == 0, $"bicep build: exit {build.ExitCode}\n{build.Stderr}");
    }

    [Fact]
    public async Task MainBicep_PassesTheLinter_WithEveryRuleAnError()
    {
        var lint = await Bicep.RunAsync("lint", Bicep.MainFile);

        Assert.True(lint.ExitCode == 0 && (lint.Stdout + lint.Stderr).Trim().Length == 0, $"bicep lint: exit {lint.ExitCode}\n{lint.Stdout}{lint.Stderr}");
        var rules = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "infra", "bicepconfig.json")))!["analyzers"]!["core"]!["rules"]!.AsObject();
        Assert.NotEmpty(rules);
        Assert.All(rules, rule => Assert.Equal("error", rule.Value!["level"]!.GetValue<string>()));
    }

    [Fact]
    public async Task TheLinter_FailsTheBuild_OnAModuleWithAnUnusedVariable()
    {
        // The check above can fail: a copy of infra/ with one unused variable in a module does not lint.
        var copy = Directory.CreateTempSubdirectory("storm-infra-").FullName;
        try
        {
            CopyDirectory(Path.Combine(RepositoryPaths.Root, "infra"), copy);
            File.AppendAllText(Path.Combine(copy, "modules", "keyvault.bicep"), "\nvar notUsed = 'x'\n");

            var lint = await Bicep.RunAsync("lint", Path.Combine(copy, "main.bicep"));

            Assert.NotEqual(0, lint.ExitCode);
            Assert.Contains("no-unused-vars", lint.Stdout + lint.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    [Fact]
    public async Task NothingInTheTemplate_IsAKeyOrReadsOne()
    {
        var template = await Bicep.TemplateAsync();

        Assert.All(ArmTemplate.Strings(template), text =>
        {
            Assert.DoesNotContain("listKeys(", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("listConnectionStrings(", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("AccountKey=", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("SharedAccessKey", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("InstrumentationKey=", text, StringComparison.OrdinalIgnoreCase);
        });
        // No output is secure-typed or reads a value through a list*() call (the linter's outputs-should-not-contain-secrets too).
        Assert.All(template["outputs"]!.AsObject(), output =>
        {
            Assert.DoesNotMatch(ListCall(), output.Value!["value"]!.ToJsonString());
            Assert.DoesNotContain("secure", output.Value!["type"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
        });
    }

    [Fact]
    public async Task Storage_TakesOnlyMicrosoftEntraId_AndNothingIsPublic()
    {
        // The .NET app's account and the Python host's own.
        var accounts = ArmTemplate.Resources(await Bicep.TemplateAsync()).Where(r => r.Type == "Microsoft.Storage/storageAccounts").ToList();

        Assert.Equal(2, accounts.Count);
        Assert.All(accounts.Select(a => a.Properties), account =>
        {
            Assert.False(account["allowSharedKeyAccess"]!.GetValue<bool>());
            Assert.False(account["allowBlobPublicAccess"]!.GetValue<bool>());
            Assert.True(account["defaultToOAuthAuthentication"]!.GetValue<bool>());
            Assert.Equal("TLS1_2", account["minimumTlsVersion"]!.GetValue<string>());
            Assert.True(account["supportsHttpsTrafficOnly"]!.GetValue<bool>());
        });
    }

    [Fact]
    public async Task ServiceBus_IsStandard_WithLocalAuthOff_AndTheQueuesTheAppExpects()
    {
        var template = await Bicep.TemplateAsync();
        var ns = ArmTemplate.Single(template, "Microsoft.ServiceBus/namespaces");
        var queues = ArmTemplate.Resources(template).Single(r => r.Type == "Microsoft.ServiceBus/namespaces/queues" && r.Properties["requiresSession"] is null);

        Assert.Equal("Standard", ns.Json["sku"]!["name"]!.GetValue<string>());
        Assert.True(ns.Properties["disableLocalAuth"]!.GetValue<bool>());
        Assert.Equal(new[] { StormQueues.TriggerInstances, StormQueues.Executions, StormQueues.Timers }.Order(StringComparer.Ordinal),
            queues.ModuleVariables["queueNames"]!.AsArray().Select(q => q!.GetValue<string>()).Order(StringComparer.Ordinal));
        var settings = queues.Properties;
        // Duplicate detection: a message's id is its CloudEvent id, so a retried publish is stored once.
        Assert.True(settings["requiresDuplicateDetection"]!.GetValue<bool>());
        Assert.True(XmlConvert.ToTimeSpan(settings["duplicateDetectionHistoryTimeWindow"]!.GetValue<string>()) >= TimeSpan.FromMinutes(10));
        // Service Bus dead-letters on the delivery the app treats as the last one (it marks the audit then).
        Assert.Equal(new BusOptions().MaxDeliveryCount, settings["maxDeliveryCount"]!.GetValue<int>());
        Assert.True(settings["deadLetteringOnMessageExpiration"]!.GetValue<bool>());
        // A dead instance's message goes to another within the Storage Queue lease the app uses elsewhere, give or take.
        var lockDuration = XmlConvert.ToTimeSpan(settings["lockDuration"]!.GetValue<string>());
        Assert.InRange(lockDuration, TimeSpan.FromSeconds(20), TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task Monitoring_IngestsWithMicrosoftEntraIdOnly()
    {
        var template = await Bicep.TemplateAsync();

        Assert.True(ArmTemplate.Single(template, "Microsoft.Insights/components").Properties["DisableLocalAuth"]!.GetValue<bool>());
        Assert.True(ArmTemplate.Single(template, "Microsoft.OperationalInsights/workspaces").Properties["features"]!["disableLocalAuth"]!.GetValue<bool>());
    }

    [Fact]
    public async Task KeyVault_AuthorizesByRbac_AndHoldsNoSecretTheTemplateMakes()
    {
        var template = await Bicep.TemplateAsync();

        Assert.True(ArmTemplate.Single(template, "Microsoft.KeyVault/vaults").Properties["enableRbacAuthorization"]!.GetValue<bool>());
        Assert.DoesNotContain(ArmTemplate.Resources(template), r => r.Type == "Microsoft.KeyVault/vaults/secrets");
    }

    [Fact]
    public async Task EveryRoleAssignment_IsOneOfTheIntendedBuiltInRoles()
    {
        var template = await Bicep.TemplateAsync();
        var assignments = ArmTemplate.Resources(template).Where(r => r.Type == "Microsoft.Authorization/roleAssignments").ToList();

        Assert.Equal(10, assignments.Count);
        var roles = assignments[0].ModuleVariables["roles"]!.AsObject();
        Assert.Equal(IntendedRoles.OrderBy(r => r.Key), roles.Select(r => KeyValuePair.Create(r.Key, r.Value!.GetValue<string>())).OrderBy(r => r.Key));
        var granted = new List<string>();
        foreach (var assignment in assignments)
        {
            var roleId = assignment.Properties["roleDefinitionId"]!.GetValue<string>();
            // Only named roles from that table, never a role id written in place.
            Assert.DoesNotMatch(GuidPattern(), roleId);
            var named = RoleReference().Matches(roleId).Select(m => m.Groups[1].Value).ToList();
            Assert.NotEmpty(named);
            granted.AddRange(named);
        }

        Assert.Equal(IntendedRoles.Keys.Order(StringComparer.Ordinal), granted.Distinct().Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task TheFunctionApp_IsFlexConsumptionDotnetIsolated10_DeployedAsAzureYamlSays()
    {
        var template = await Bicep.TemplateAsync();
        var plan = ArmTemplate.OfApp(template, "Microsoft.Web/serverfarms", "functions");
        var site = ArmTemplate.OfApp(template, "Microsoft.Web/sites", "functions");
        var service = AzureYamlService("functions");

        Assert.Equal(("FC1", "FlexConsumption"), (plan.Json["sku"]!["name"]!.GetValue<string>(), plan.Json["sku"]!["tier"]!.GetValue<string>()));
        Assert.True(plan.Properties["reserved"]!.GetValue<bool>()); // Linux
        Assert.Equal("functionapp,linux", site.Json["kind"]!.GetValue<string>());
        var config = site.Properties["functionAppConfig"]!;
        Assert.Equal(("[parameters('runtimeName')]", "[parameters('runtimeVersion')]"), (config["runtime"]!["name"]!.GetValue<string>(), config["runtime"]!["version"]!.GetValue<string>()));
        Assert.Equal(("dotnet-isolated", "10.0"), (site.Parameter("runtimeName")!.GetValue<string>(), site.Parameter("runtimeVersion")!.GetValue<string>()));
        Assert.Equal("UserAssignedIdentity", config["deployment"]!["storage"]!["authentication"]!["type"]!.GetValue<string>());
        // Workflows (Durable Functions) keep a warm instance by default.
        Assert.Equal("[variables('alwaysReady')]", config["scaleAndConcurrency"]!["alwaysReady"]!.GetValue<string>());
        Assert.Contains("createObject('name', 'durable', 'instanceCount', parameters('alwaysReadyDurableInstances'))", site.ModuleVariables["alwaysReady"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(template["parameters"]!["alwaysReadyDurableInstances"]!["defaultValue"]!.GetValue<int>() >= 1);
        Assert.True(site.Properties["httpsOnly"]!.GetValue<bool>());
        Assert.Equal("1.2", site.Properties["siteConfig"]!["minTlsVersion"]!.GetValue<string>());
        Assert.Equal("UserAssigned", site.Json["identity"]!["type"]!.GetValue<string>());
        Assert.NotNull(site.Properties["keyVaultReferenceIdentity"]);

        // azd finds the app by its azd-service-name tag and deploys the service of that name from azure.yaml.
        Assert.Contains("'azd-service-name'", site.Json["tags"]!.ToJsonString().Replace("\\u0027", "'", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(service.Name, site.Parameter("serviceName")!.GetValue<string>());
        Assert.Equal(("dotnet", "function"), (service.Language, service.Host));
        Assert.True(File.Exists(Path.Combine(RepositoryPaths.Root, service.Project, "ServerlessStorm.Functions.csproj")), $"azure.yaml deploys {service.Project}");
        Assert.Equal("net10.0", ProjectTargetFramework());

        // Publishing with a password is off for both endpoints, of both apps.
        var policies = ArmTemplate.Resources(template).Where(r => r.Type == "Microsoft.Web/sites/basicPublishingCredentialsPolicies").ToList();
        Assert.Equal(4, policies.Count);
        Assert.All(policies, p => Assert.False(p.Properties["allow"]!.GetValue<bool>()));
    }

    [Fact]
    public async Task TheDeploymentSelectsTheServiceBusTriggerBuild()
    {
        var output = (await Bicep.TemplateAsync())["outputs"]!["ServiceBusTriggers"]!;

        Assert.Equal(("bool", true), (output["type"]!.GetValue<string>(), output["value"]!.GetValue<bool>()));
        var props = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "functions", "ServerlessStorm.Functions", "ServerlessStorm.Functions.props"));
        Assert.Contains("'$(ServiceBusTriggers)' == 'true'", props, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheWorkbookAndTheAlerts_QueryOnlyMetricsSpansAndAttributesTheCodeEmits()
    {
        var template = await Bicep.TemplateAsync();
        var workbookFile = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "infra", "monitoring", "workbook.json"));
        var alertsFile = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "infra", "modules", "observability.bicep"));
        var queries = JsonNode.Parse(workbookFile)!["items"]!.AsArray().Select(i => i!["content"]!["query"]?.GetValue<string>()).OfType<string>()
            .Concat(AlertQuery().Matches(alertsFile).Select(m => m.Groups[1].Value.Replace("\\'", "'", StringComparison.Ordinal)))
            .ToList();
        var emitted = typeof(ServerlessStorm.Engine.Diagnostics.StormMetrics).GetFields().Concat(typeof(ServerlessStorm.Engine.Diagnostics.StormTracing).GetFields())
            .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!)
            .Append("http.response.status_code") // the standard attribute the webhook span sets
            .ToHashSet(StringComparer.Ordinal);

        Assert.Equal(16, queries.Count); // the workbook's 12 and the 4 alerts'
        var names = queries.SelectMany(q => QueriedName().Matches(q).Select(m => m.Groups[1].Value)).ToList();
        var dimensions = queries.SelectMany(q => QueriedDimension().Matches(q).Select(m => m.Groups[1].Value)).ToList();
        Assert.NotEmpty(names);
        Assert.NotEmpty(dimensions);
        Assert.All(names.Concat(dimensions), name => Assert.True(emitted.Contains(name), $"a query uses '{name}', which the code does not emit"));

        // Deployed as they are written.
        var workbook = ArmTemplate.Single(template, "Microsoft.Insights/workbooks");
        var loaded = workbook.Properties["serializedData"]!.GetValue<string>(); // [variables('$fxv#0')]: the file, loaded at build
        Assert.Equal(workbookFile, workbook.ModuleVariables[loaded["[variables('".Length..^"')]".Length]]!.GetValue<string>());
        Assert.Equal("Microsoft.Insights/scheduledQueryRules", ArmTemplate.Resources(template).Single(r => r.Type.StartsWith("Microsoft.Insights/scheduledQueryRules", StringComparison.Ordinal)).Type);
    }

    [Fact]
    public async Task MainParameters_SetOnlyParametersMainBicepHas_AndEveryOneWithoutADefault()
    {
        var declared = (await Bicep.TemplateAsync())["parameters"]!.AsObject();
        var given = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "infra", "main.parameters.json")))!["parameters"]!.AsObject();

        Assert.All(given, p => Assert.True(declared.ContainsKey(p.Key), $"main.parameters.json sets '{p.Key}', which main.bicep does not declare"));
        Assert.All(declared.Where(p => p.Value!["defaultValue"] is null), p => Assert.True(given.ContainsKey(p.Key), $"main.bicep's '{p.Key}' has no default and no value"));
    }

    [Fact]
    public void TheAzdHook_PassesShellcheck()
    {
        var hook = AzureYaml()["hooks"]!["postprovision"]!["posix"]!;
        var script = Path.Combine(RepositoryPaths.Root, hook["run"]!.GetValue<string>());

        Assert.Equal("sh", hook["shell"]!.GetValue<string>());
        Assert.True(File.Exists(script), script);
        var result = Shellcheck.Run("--shell=sh", "--severity=style", script);
        Assert.True(result.ExitCode == 0, $"shellcheck {script}:\n{result.Output}");
    }

    [Fact]
    public void Shellcheck_FindsWhatItShould()
    {
        // The check above can fail: an unquoted variable is reported.
        var script = Path.Combine(Path.GetTempPath(), $"storm-hook-{Guid.NewGuid():N}.sh");
        File.WriteAllText(script, "#!/bin/sh\nrm -f $1\n");
        try
        {
            Assert.NotEqual(0, Shellcheck.Run("--shell=sh", script).ExitCode);
        }
        finally
        {
            File.Delete(script);
        }
    }

    private static JsonObject AzureYaml()
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "azure.yaml"))));
        return (JsonObject)ToJson(yaml.Documents[0].RootNode)!;
    }

    private static (string Name, string Project, string Language, string Host) AzureYamlService(string name)
    {
        var service = Assert.Single(AzureYaml()["services"]!.AsObject(), s => s.Key == name);
        return (service.Key, service.Value!["project"]!.GetValue<string>(), service.Value!["language"]!.GetValue<string>(), service.Value!["host"]!.GetValue<string>());
    }

    private static string ProjectTargetFramework() =>
        Regex.Match(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "Directory.Build.props")), "<TargetFramework>([^<]+)</TargetFramework>").Groups[1].Value;

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ToJson(c.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => null,
    };

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [GeneratedRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", RegexOptions.IgnoreCase)]
    private static partial Regex GuidPattern();

    [GeneratedRegex(@"query: '((?:[^'\\]|\\')*)'")]
    private static partial Regex AlertQuery();

    [GeneratedRegex(@"name == \\?""([^""\\]+)\\?""")]
    private static partial Regex QueriedName();

    [GeneratedRegex(@"customDimensions\[\\?""([^""\\]+)\\?""\]")]
    private static partial Regex QueriedDimension();

    [GeneratedRegex(@"\blist[A-Z]?\w*\(")]
    private static partial Regex ListCall();

    [GeneratedRegex(@"variables\('roles'\)\.(\w+)")]
    private static partial Regex RoleReference();
}
