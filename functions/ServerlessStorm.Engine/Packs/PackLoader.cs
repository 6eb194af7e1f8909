using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Engine.Yaml;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Packs;

/// <summary>
/// The packs that loaded and every problem found. Loaded strictly, the catalog is only safe to run when there are no
/// problems; loaded leaving broken packs out, it holds only the packs that loaded whole and <see cref="Packs"/> says
/// why the others did not.
/// </summary>
public sealed record PackLoadResult(PackCatalog Catalog, IReadOnlyList<PackProblem> Problems)
{
    public bool IsValid => Problems.Count == 0;

    /// <summary>What loads but is not (yet) supported here: a StackStorm runner we lack, sensors' code, aliases.</summary>
    public IReadOnlyList<PackProblem> Warnings { get; init; } = [];

    /// <summary>Every pack folder that was read: whether it loaded, and its problems and warnings.</summary>
    public IReadOnlyList<PackLoadStatus> Packs { get; init; } = [];
}

/// <summary>Packs failed to load; the message lists every problem.</summary>
public sealed class PackLoadException(IReadOnlyList<PackProblem> problems)
    : Exception($"the packs have {problems.Count} problem(s):{Environment.NewLine}{string.Join(Environment.NewLine, problems)}")
{
    public IReadOnlyList<PackProblem> Problems { get; } = problems;
}

/// <summary>
/// Reads packs in StackStorm's layout (<c>pack.yaml</c>, <c>actions/</c>, <c>rules/</c>, <c>triggers/</c>) and
/// reports every problem at once, each with its file, line and field, instead of stopping at the first.
/// </summary>
public sealed class PackLoader(
    IReadOnlyCollection<string> runnerTypes,
    YamlLimits? limits = null,
    IReadOnlyDictionary<string, IReadOnlyList<ParameterDefinition>>? runnerParameters = null)
{
    /// <summary>StackStorm's pack ref: lowercase letters, digits and underscores.</summary>
    public static bool IsPackRef(string name) => name.Length > 0 && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');

    /// <summary>A loader that knows the runners of <paramref name="runners"/> and the parameters each defines.</summary>
    public PackLoader(Actions.RunnerRegistry runners, YamlLimits? limits = null)
        : this(runners.RunnerTypes, limits, runners.RunnerTypes.ToDictionary(t => t, t => runners.TryGet(t, out var r) ? r.RunnerParameters : [], StringComparer.Ordinal))
    {
    }

    private static readonly HashSet<string> ParameterTypes = ["string", "integer", "number", "boolean", "array", "object", "null"];
    private static readonly HashSet<string> PackFields = ["ref", "name", "description", "version", "author", "email", "keywords", "python_versions", "stackstorm_version", "dependencies", "system", "contributors"];
    private static readonly HashSet<string> ActionFields = ["name", "pack", "ref", "uid", "id", "runner_type", "entry_point", "description", "enabled", "parameters", "tags", "output_schema", "notify", "metadata_file"];

    // The JSON Schema keywords a parameter may carry besides its type and enum; its value is checked against them.
    private static readonly string[] SchemaFields = ["items", "properties", "additionalProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems"];

    private static readonly HashSet<string> ParameterFields = ["type", "required", "default", "secret", "immutable", "description", "enum", "position", .. SchemaFields];

    private static readonly HashSet<string> RuleFields = ["name", "pack", "ref", "uid", "id", "description", "enabled", "trigger", "criteria", "action", "tags", "type", "context", "metadata_file"];
    private static readonly HashSet<string> WebhookFields = ["url", "pack", "description", "verify", "require_api_key", "user"];
    private static readonly HashSet<string> TriggerTypeFields = ["name", "pack", "ref", "uid", "id", "description", "parameters_schema", "payload_schema", "tags", "metadata_file"];
    private static readonly HashSet<string> SensorFields = ["name", "class_name", "pack", "ref", "uid", "id", "entry_point", "description", "enabled", "poll_interval", "trigger_types", "metadata_file"];

    // StackStorm's runners that this build does not have: their actions load (so rules and workflows naming them
    // load too) with a warning, and a run fails saying the runner is not available. Any other name is a typo.
    private static readonly HashSet<string> StackStormRunnersNotHere = ["remote-shell-cmd", "remote-shell-script", "action-chain",
        "winrm-cmd", "winrm-ps-cmd", "winrm-ps-script", "announcement", "cloudslang", "mistral-v2"];

    private readonly IReadOnlyCollection<string> _runnerTypes = runnerTypes;
    private readonly IReadOnlyDictionary<string, IReadOnlyList<ParameterDefinition>> _runnerParameters =
        runnerParameters ?? new Dictionary<string, IReadOnlyList<ParameterDefinition>>();
    private readonly YamlLimits _limits = limits ?? YamlLimits.Default;

    /// <summary>The sensor runners of the host: a sensor none of them runs loads with a warning.</summary>
    public IReadOnlyList<Sensors.ISensorRunner> SensorRunners { get; init; } = [];

    /// <summary>
    /// The packs' configs from outside the packs (StackStorm's <c>configs/&lt;pack&gt;.yaml</c>); null when the caller
    /// has none to give, and then a pack's own config.yaml is read without the deprecation warning.
    /// </summary>
    public IReadOnlyDictionary<string, PackConfigDocument>? Configs { get; init; }

    /// <summary>
    /// The pack folders under <paramref name="path"/>: the folder itself when it is a pack (plus a sibling
    /// <c>core</c> pack, whose actions and triggers other packs use), else each sub-folder that holds a pack.yaml.
    /// </summary>
    public static IReadOnlyList<string> FindPackDirectories(string path)
    {
        if (!Directory.Exists(path))
        {
            throw new DirectoryNotFoundException($"pack folder '{path}' does not exist");
        }

        if (File.Exists(Path.Combine(path, "pack.yaml")))
        {
            var core = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar))!, "core");
            var isCore = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar) == core;
            return !isCore && File.Exists(Path.Combine(core, "pack.yaml")) ? [core, path] : [path];
        }

        // A hidden folder is not a pack (an install stages its copy in one).
        return [.. Directory.EnumerateDirectories(path).Where(d => !Path.GetFileName(d).StartsWith('.') && File.Exists(Path.Combine(d, "pack.yaml")))
            .Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// The ref a pack folder's pack.yaml gives its pack (its <c>ref</c>, else its <c>name</c>), or null when it gives
    /// none that is a pack ref; loading the pack says what is wrong.
    /// </summary>
    public static string? ReadRef(string directory)
    {
        try
        {
            var doc = BoundedYamlReader.Read(File.ReadAllText(Path.Combine(directory, "pack.yaml"))) as YamlMapping;
            var name = (doc?["ref"] ?? doc?["name"]) is YamlScalar { Value: var value } ? value : null;
            return name is not null && IsPackRef(name) ? name : null;
        }
        catch (Exception ex) when (ex is IOException or YamlReadException)
        {
            return null;
        }
    }

    public PackLoadResult LoadFrom(string path) => Load(FindPackDirectories(path));

    /// <summary>
    /// Loads the packs under <paramref name="path"/>, leaving out each pack with a problem (and then any pack that
    /// needed something only a left-out pack had) so the others load and run, as StackStorm registers packs one by one.
    /// <paramref name="alsoLeaveOut"/> names packs (by full folder path) to leave out with problems found outside
    /// the loader, such as a virtualenv that could not be built.
    /// </summary>
    public PackLoadResult LoadLeavingOutBroken(string path, IReadOnlyDictionary<string, IReadOnlyList<PackProblem>>? alsoLeaveOut = null)
    {
        var directories = FindPackDirectories(path).Select(Path.GetFullPath).ToList();
        var leftOut = (alsoLeaveOut ?? new Dictionary<string, IReadOnlyList<PackProblem>>())
            .Where(p => directories.Contains(p.Key, StringComparer.Ordinal))
            .ToDictionary(p => p.Key, p => p.Value.ToList(), StringComparer.Ordinal);
        while (true)
        {
            var kept = directories.Where(d => !leftOut.ContainsKey(d)).ToList();
            var result = Load(kept);
            // A name defined in two packs leaves both out: which one was meant cannot be told (a webhook's url, say).
            var owned = result.Problems
                .SelectMany(p => new[] { PackOf(p.File, kept), p.AlsoConcerns is { } other ? PackOf(other, kept) : null }.OfType<string>().Distinct().Select(d => (Pack: d, Problem: p)))
                .ToList();
            if (owned.Count == 0)
            {
                // What is left (a problem no pack folder owns) cannot be mended by leaving a pack out; the caller refuses.
                return result with { Problems = [.. leftOut.Values.SelectMany(p => p).Distinct(), .. result.Problems], Packs = Statuses(directories, leftOut, result.Warnings) };
            }

            foreach (var group in owned.GroupBy(o => o.Pack))
            {
                leftOut[group.Key] = [.. group.Select(o => o.Problem)];
            }
        }
    }

    /// <summary>Loads every pack under <paramref name="path"/>, and reports each as loaded (a strict host refuses to start on any problem).</summary>
    public PackLoadResult LoadAll(string path)
    {
        var directories = FindPackDirectories(path).Select(Path.GetFullPath).ToList();
        var result = Load(directories);
        return result with { Packs = Statuses(directories, [], result.Warnings) };
    }

    private static List<PackLoadStatus> Statuses(IEnumerable<string> directories, Dictionary<string, List<PackProblem>> leftOut, IReadOnlyList<PackProblem> warnings) =>
        [.. directories.Select(d => leftOut.TryGetValue(d, out var problems)
            ? new PackLoadStatus(PackName(d), d, false, problems, [])
            : new PackLoadStatus(PackName(d), d, true, [], [.. warnings.Where(w => PackOf(w.File, [d]) is not null)]))];

    // The pack folder a problem's file lies in (files are named as Display shows them).
    private static string? PackOf(string file, IEnumerable<string> directories)
    {
        var full = Path.GetFullPath(file);
        return directories.FirstOrDefault(d => full.StartsWith(d.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal));
    }

    // The pack's name from its pack.yaml when it can be read (its ref, else its name), else its folder's name.
    private static string PackName(string directory)
    {
        string? Value(string line, string key) =>
            line.StartsWith(key, StringComparison.Ordinal) && line[key.Length..].Trim().Trim('"', '\'') is { Length: > 0 } value ? value : null;
        try
        {
            var lines = File.ReadAllLines(Path.Combine(directory, "pack.yaml"));
            var name = lines.Select(l => Value(l, "ref:")).FirstOrDefault(v => v is not null) ?? lines.Select(l => Value(l, "name:")).FirstOrDefault(v => v is not null);
            if (name is not null)
            {
                return name;
            }
        }
        catch (IOException)
        {
        }

        return Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
    }

    public PackLoadResult Load(IEnumerable<string> packDirectories)
    {
        var session = new LoadSession(this);
        foreach (var directory in packDirectories)
        {
            session.LoadPack(directory);
        }

        return session.Finish();
    }

    /// <summary>
    /// Reads one rule file on its own, as <c>storm rule test</c> does: the file and its criteria are checked, but not
    /// whether its action and trigger type exist (there is no pack around it).
    /// </summary>
    public (RuleDefinition? Rule, IReadOnlyList<PackProblem> Problems) LoadRule(string path)
    {
        var session = new LoadSession(this);
        var rule = session.LoadStandaloneRule(path);
        return (rule, session.Problems);
    }

    private sealed class LoadSession(PackLoader loader)
    {
        public IReadOnlyList<PackProblem> Problems => _problems;

        public void Warn(PackProblem warning) => _warnings.Add(warning);

        public RuleDefinition? LoadStandaloneRule(string path)
        {
            if (!File.Exists(path))
            {
                Add(new PackProblem(Display(path), SourcePosition.Unknown, null, "the file does not exist"));
                return null;
            }

            if (ReadMapping(path) is not { } doc)
            {
                return null;
            }

            var declared = doc["pack"] is YamlScalar { Value.Length: > 0 } p ? p.Value : "default";
            LoadRule(new PackDefinition(declared, "0.0.0", "", Path.GetDirectoryName(Path.GetFullPath(path))!), path, doc);
            return _rules.Count == 1 ? _rules[0].Rule : null;
        }

        private readonly List<PackProblem> _problems = [];
        private readonly List<PackProblem> _warnings = [];
        private readonly List<PackDefinition> _packs = [];
        private readonly List<ActionDefinition> _actions = [];
        private readonly List<TriggerTypeDefinition> _triggerTypes = [];
        private readonly List<WebhookDefinition> _webhooks = [];
        private readonly List<Sensors.SensorDefinition> _sensors = [];
        private readonly List<PendingRule> _rules = [];
        private readonly List<(ActionPolicy Policy, SourcePosition Position)> _policies = [];
        private readonly List<(FileScope File, SourcePosition Position, string Workflow)> _workflows = [];

        public void LoadPack(string directory)
        {
            var packFile = Path.Combine(directory, "pack.yaml");
            var doc = ReadMapping(packFile);
            if (doc is null)
            {
                return;
            }

            var file = new FileScope(this, packFile, doc);
            file.CheckFields(PackFields, "pack");
            var givenRef = file.OptionalString("ref");
            var name = givenRef ?? file.RequiredString("name");
            if (name is null)
            {
                return;
            }

            // StackStorm's rule for a pack's ref; it also names the pack's folders (its virtualenv, an install's target).
            if (!IsPackRef(name))
            {
                Add(givenRef is not null
                    ? new PackProblem(Display(packFile), doc["ref"]!.Position, "ref", $"'{name}' is not a pack ref: use only lowercase letters, digits and underscores")
                    : new PackProblem(Display(packFile), doc["name"]!.Position, "name",
                        $"pack name '{name}' has characters other than lowercase letters, digits and underscores, and there is no \"ref\": add a ref made of those"));
                return;
            }

            var pack = new PackDefinition(name, file.OptionalString("version") ?? "0.0.0", file.OptionalString("description") ?? "", Path.GetFullPath(directory));
            pack = LoadConfig(pack, packFile);
            if (_packs.Any(p => p.Name == pack.Name))
            {
                file.Problem(doc.Position, "name", $"pack '{pack.Name}' is loaded twice");
                return;
            }

            _packs.Add(pack);
            foreach (var path in YamlFiles(directory, "triggers"))
            {
                LoadTriggerType(pack, path);
            }

            foreach (var path in YamlFiles(directory, "actions"))
            {
                LoadAction(pack, path);
            }

            foreach (var path in YamlFiles(directory, "rules"))
            {
                LoadRule(pack, path);
            }

            foreach (var path in YamlFiles(directory, "policies"))
            {
                LoadPolicy(pack, path);
            }

            foreach (var path in YamlFiles(directory, "webhooks"))
            {
                LoadWebhook(pack, path);
            }

            foreach (var path in YamlFiles(directory, "sensors"))
            {
                LoadSensor(pack, path);
            }

            foreach (var path in YamlFiles(directory, "aliases"))
            {
                Warn(new PackProblem(Display(path), new SourcePosition(1, 1), null, "action aliases (ChatOps) are not supported here: the alias is skipped"));
            }
        }

        // A sensor: the trigger types its metadata declares (rules use them) and its definition, which the sensor
        // scheduler runs through the runner whose code it is (a warning when no runner of this host runs it).
        private void LoadSensor(PackDefinition pack, string path)
        {
            if (ReadMapping(path) is not { } doc)
            {
                return;
            }

            var file = new FileScope(this, path, doc);
            file.CheckFields(SensorFields, "sensor");
            file.CheckPack(pack);
            var name = file.OptionalString("class_name") ?? file.OptionalString("name") ?? Path.GetFileNameWithoutExtension(path);
            var types = new List<string>();
            switch (doc["trigger_types"])
            {
                case null:
                    break;
                case YamlSequence list:
                    for (var i = 0; i < list.Items.Count; i++)
                    {
                        if (list.Items[i] is not YamlMapping type)
                        {
                            file.Problem(list.Items[i].Position, $"trigger_types[{i}]", $"expected a mapping, got a {list.Items[i].KindName}");
                            continue;
                        }

                        var typeScope = new FileScope(this, path, type, $"trigger_types[{i}].");
                        if (AddTriggerType(pack, typeScope))
                        {
                            types.Add($"{pack.Name}.{typeScope.OptionalString("name")}");
                        }
                    }

                    break;
                case var other:
                    file.Problem(other.Position, "trigger_types", $"expected a list of trigger types, got a {other.KindName}");
                    break;
            }

            var interval = Sensors.SensorDefinition.DefaultPollInterval;
            if (doc["poll_interval"] is { } pollNode)
            {
                if (pollNode is YamlScalar { Value: var text } && double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                    && seconds >= 1 && seconds <= TimeSpan.FromDays(1).TotalSeconds)
                {
                    interval = TimeSpan.FromSeconds(seconds);
                }
                else
                {
                    file.Problem(pollNode.Position, "poll_interval", $"poll_interval is the seconds between polls: a number from 1 to 86400, got {(pollNode is YamlScalar s ? $"'{s.Value}'" : $"a {pollNode.KindName}")}");
                }
            }

            var entryPoint = file.OptionalString("entry_point");
            if (entryPoint is null)
            {
                file.Problem(doc.Position, "entry_point", $"sensor '{name}' needs entry_point: its Python file in sensors/, or 'path/To.dll:Namespace.ClassName' (relative to sensors/)");
            }
            else if (Sensors.SensorFiles.Problem(pack.Directory, entryPoint) is { } problem)
            {
                file.Problem(doc["entry_point"]!.Position, "entry_point", problem);
            }

            var sensor = new Sensors.SensorDefinition(pack.Name, name, entryPoint, file.OptionalBool("enabled") ?? true, interval, types, path)
            {
                PollIntervalDeclared = doc["poll_interval"] is not null,
            };
            _sensors.Add(sensor);
            if (entryPoint is not null && !loader.SensorRunners.Any(r => r.Runs(sensor)))
            {
                Warn(new PackProblem(Display(path), doc["entry_point"]!.Position, "entry_point",
                    $"sensor '{name}' does not run here: no sensor runner of this host runs '{entryPoint}'; its {types.Count} trigger type(s) are registered, so rules on them load and fire on triggers sent to the API"));
            }
        }

        public PackLoadResult Finish()
        {
            var actions = Unique(_actions, a => a.Ref, a => a.SourceFile, "action");
            var triggerTypes = Unique(_triggerTypes, t => t.Ref, t => t.SourceFile, "trigger type");
            var rules = new List<RuleDefinition>();
            foreach (var pending in _rules)
            {
                if (CheckRule(pending, actions, triggerTypes))
                {
                    rules.Add(pending.Rule);
                }
            }

            Unique(rules, r => r.Ref, r => r.SourceFile, "rule");

            // Workflow files are checked once every action is known, since their tasks name actions.
            foreach (var (file, position, workflow) in _workflows)
            {
                var (_, workflowProblems) = Workflows.WorkflowLoader.Load(workflow, Display(workflow), actions.ContainsKey);
                if (workflowProblems.Count > 0)
                {
                    file.Problem(position, "entry_point", $"the workflow has {workflowProblems.Count} problem(s), listed under its file");
                    _problems.AddRange(workflowProblems);
                }
            }

            foreach (var (policy, position) in _policies.Where(p => !actions.ContainsKey(p.Policy.ResourceRef)))
            {
                Add(new PackProblem(Display(policy.SourceFile), position, "resource_ref", $"action '{policy.ResourceRef}' does not exist"));
            }

            var webhooks = Unique(_webhooks, w => w.Url, w => w.SourceFile, "webhook");
            var catalog = new PackCatalog(_packs, actions.Values, triggerTypes.Values, rules, _policies.Select(p => p.Policy).Where(p => actions.ContainsKey(p.ResourceRef)), webhooks.Values,
                Unique(_sensors, s => s.Ref, s => s.SourceFile, "sensor").Values);
            return new PackLoadResult(catalog, [.. _problems.OrderBy(p => p.File, StringComparer.Ordinal).ThenBy(p => p.Position.Line)])
            {
                Warnings = [.. _warnings.OrderBy(p => p.File, StringComparer.Ordinal).ThenBy(p => p.Position.Line)],
            };
        }

        public void Add(PackProblem problem) => _problems.Add(problem);

        private Dictionary<string, T> Unique<T>(IEnumerable<T> items, Func<T, string> key, Func<T, string> file, string kind)
        {
            var result = new Dictionary<string, T>(StringComparer.Ordinal);
            foreach (var item in items)
            {
                if (!result.TryAdd(key(item), item))
                {
                    Add(new PackProblem(Display(file(item)), new SourcePosition(1, 1), "name",
                        $"{kind} '{key(item)}' is already defined in {Display(file(result[key(item)]))}") { AlsoConcerns = Display(file(result[key(item)])) });
                }
            }

            return result;
        }

        private bool CheckRule(PendingRule pending, Dictionary<string, ActionDefinition> actions, Dictionary<string, TriggerTypeDefinition> triggerTypes)
        {
            var rule = pending.Rule;
            var file = Display(rule.SourceFile);
            var ok = true;
            if (!triggerTypes.ContainsKey(rule.TriggerType))
            {
                Add(new PackProblem(file, pending.TriggerTypePosition, "trigger.type",
                    $"trigger type '{rule.TriggerType}' does not exist (known: {string.Join(", ", triggerTypes.Keys.Order(StringComparer.Ordinal))})"));
                ok = false;
            }

            if (rule.TriggerType == CoreTriggers.Webhook && string.IsNullOrEmpty(PackCatalog.WebhookUrl(rule)))
            {
                Add(new PackProblem(file, pending.TriggerPosition, "trigger.parameters.url", "a webhook rule needs trigger.parameters.url (the hook name)"));
                ok = false;
            }
            else if (rule.TriggerType == CoreTriggers.Webhook && PackCatalog.WebhookUrl(rule) == Triggers.WebhookSensor.GenericHook)
            {
                Add(new PackProblem(file, pending.TriggerPosition, "trigger.parameters.url", $"'{Triggers.WebhookSensor.GenericHook}' is StackStorm's generic webhook (its body names the trigger type); choose another hook name"));
                ok = false;
            }

            if (CoreTriggers.Timers.Contains(rule.TriggerType))
            {
                try
                {
                    TimerSchedule.Parse(rule.TriggerType, rule.TriggerParameters);
                }
                catch (ArgumentException ex)
                {
                    Add(new PackProblem(file, pending.TriggerPosition, "trigger.parameters", ex.Message));
                    ok = false;
                }
            }

            if (!actions.TryGetValue(rule.ActionRef, out var action))
            {
                Add(new PackProblem(file, pending.ActionRefPosition, "action.ref", $"action '{rule.ActionRef}' does not exist"));
                return false;
            }

            foreach (var (name, position) in pending.ParameterPositions)
            {
                if (!action.Parameters.TryGetValue(name, out var parameter))
                {
                    Add(new PackProblem(file, position, $"action.parameters.{name}",
                        $"'{name}' is not a parameter of {action.Ref} (it has: {string.Join(", ", action.Parameters.Keys)})"));
                    ok = false;
                }
                else if (parameter.Immutable)
                {
                    Add(new PackProblem(file, position, $"action.parameters.{name}", $"'{name}' is immutable in {action.Ref} and cannot be set by a rule"));
                    ok = false;
                }
            }

            return ok;
        }

        // StackStorm reads a pack's values from configs/<pack>.yaml; a config.yaml inside the pack is taken only when
        // there is none (StackStorm ignores it since 2.4), with a warning, so packs written that way keep working.
        private PackDefinition LoadConfig(PackDefinition pack, string packFile)
        {
            var (schema, schemaFile) = LoadConfigSchema(pack);
            var inPack = Path.Combine(pack.Directory, "config.yaml");
            string? location = null;
            YamlMapping? doc = null;
            if (loader.Configs?.GetValueOrDefault(pack.Name) is { } external)
            {
                location = external.Location;
                doc = ReadMappingText(external.Location, external.Text, packFile);
                if (File.Exists(inPack))
                {
                    Warn(new PackProblem(Display(inPack), new SourcePosition(1, 1), null, $"ignored: the pack's values come from {external.Location}"));
                }
            }
            else if (File.Exists(inPack))
            {
                location = Display(inPack);
                doc = ReadMapping(inPack);
                if (loader.Configs is not null)
                {
                    Warn(new PackProblem(location, new SourcePosition(1, 1), null,
                        $"a config.yaml inside the pack is deprecated (StackStorm ignores it): move it to configs/{pack.Name}.yaml"));
                }
            }

            if (doc is null)
            {
                // As StackStorm: without a config nothing is validated, and the pack registers with its defaults only.
                if (location is null && schema is not null && schemaFile is not null && schema.RequiredWithoutDefault().ToList() is { Count: > 0 } missing)
                {
                    Warn(new PackProblem(Display(schemaFile), new SourcePosition(1, 1), null,
                        $"required config key(s) {string.Join(", ", missing)} have no value: write them in configs/{pack.Name}.yaml"));
                }

                return pack with { Config = schema?.WithDefaults([]) ?? [], ConfigSchema = schema };
            }

            foreach (var problem in schema?.Validate(doc) ?? [])
            {
                Add(new PackProblem(location!, problem.Position, problem.Key, problem.Message) { AlsoConcerns = packFile });
            }

            var networks = new List<System.Net.IPNetwork>();
            if (doc["allowed_networks"] is { } list)
            {
                foreach (var item in list is YamlSequence seq ? seq.Items : [list])
                {
                    if (item is YamlScalar scalar && System.Net.IPNetwork.TryParse(scalar.Value, out var network))
                    {
                        networks.Add(network);
                    }
                    else
                    {
                        Add(new PackProblem(location!, item.Position, "allowed_networks", $"'{(item as YamlScalar)?.Value}' is not a network in CIDR form (e.g. 10.0.0.0/8)") { AlsoConcerns = packFile });
                    }
                }
            }

            var config = doc.ToJson() as JsonObject ?? [];
            return pack with { Config = schema?.WithDefaults(config) ?? config, ConfigSchema = schema, ConfigLocation = location, AllowedNetworks = networks };
        }

        private (PackConfigSchema? Schema, string? File) LoadConfigSchema(PackDefinition pack)
        {
            var path = Path.Combine(pack.Directory, "config.schema.yaml");
            if (!File.Exists(path) || ReadMapping(path) is not { } document)
            {
                return (null, null);
            }

            var (schema, problems) = PackConfigSchema.Read(document);
            foreach (var problem in problems)
            {
                Add(new PackProblem(Display(path), problem.Position, problem.Key, problem.Message));
            }

            return (schema, path);
        }

        private void LoadPolicy(PackDefinition pack, string path)
        {
            if (ReadMapping(path) is not { } doc)
            {
                return;
            }

            var file = new FileScope(this, path, doc);
            file.CheckFields(["name", "pack", "ref", "description", "enabled", "resource_ref", "policy_type", "parameters"], "policy");
            file.CheckPack(pack);
            var name = file.RequiredString("name");
            var resource = file.RequiredString("resource_ref");
            var type = file.RequiredString("policy_type");
            var parameters = file.OptionalMapping("parameters");
            var scope = parameters is null ? null : new FileScope(this, path, parameters, "parameters.");
            ActionPolicy? policy = type switch
            {
                null => null,
                "action.retry" => RetryPolicyFrom(pack, name, resource, path, file, doc, parameters, scope),
                "action.concurrency" or "action.concurrency.attr" => ConcurrencyPolicyFrom(pack, name, resource, path, type, file, doc, parameters, scope),
                _ => Unknown(),
            };

            ActionPolicy? Unknown()
            {
                file.Problem(doc["policy_type"]!.Position, "policy_type", $"unknown policy type '{type}' (supported: action.retry, action.concurrency, action.concurrency.attr)");
                return null;
            }

            if (policy is not null && (file.OptionalBool("enabled") ?? true))
            {
                _policies.Add((policy, doc["resource_ref"]!.Position));
            }
        }

        private static RetryPolicy? RetryPolicyFrom(PackDefinition pack, string? name, string? resource, string path, FileScope file, YamlMapping doc, YamlMapping? parameters, FileScope? scope)
        {
            scope?.CheckFields(["retry_on", "max_retry_count", "delay"], "retry policy");
            var retryOn = scope?.OptionalString("retry_on") ?? "failure";
            if (retryOn is not ("failure" or "timeout"))
            {
                scope!.Problem(parameters!["retry_on"]!.Position, "retry_on", $"'{retryOn}' is not failure or timeout");
                return null;
            }

            var max = JsonNumbers.TryGetInt64(parameters?["max_retry_count"]?.ToJson(), out var m) ? m : 2;
            var delay = JsonNumbers.TryGetDouble(parameters?["delay"]?.ToJson(), out var d) ? d : 0;
            if (max is < 0 or > 100 || delay is < 0 or > 86_400)
            {
                file.Problem(parameters?.Position ?? doc.Position, "parameters", "max_retry_count must be 0-100 and delay 0-86400 seconds");
                return null;
            }

            return name is null || resource is null ? null : new RetryPolicy(pack.Name, name, resource, retryOn, (int)max, TimeSpan.FromSeconds(delay), path);
        }

        private static ConcurrencyPolicy? ConcurrencyPolicyFrom(PackDefinition pack, string? name, string? resource, string path, string type, FileScope file, YamlMapping doc, YamlMapping? parameters, FileScope? scope)
        {
            var byAttributes = type == "action.concurrency.attr";
            scope?.CheckFields(byAttributes ? ["threshold", "action", "attributes"] : ["threshold", "action"], "concurrency policy");
            if (parameters?["threshold"] is not { } thresholdNode)
            {
                file.Problem(parameters?.Position ?? doc.Position, "parameters.threshold", "is required (the number of executions that may run at once)");
                return null;
            }

            if (!JsonNumbers.TryGetInt64(thresholdNode.ToJson(), out var threshold) || threshold is < 1 or > 1000)
            {
                scope!.Problem(thresholdNode.Position, "threshold", "must be a whole number from 1 to 1000");
                return null;
            }

            var action = scope?.OptionalString("action") ?? ConcurrencyPolicy.Delay;
            if (action is not (ConcurrencyPolicy.Delay or ConcurrencyPolicy.Cancel))
            {
                scope!.Problem(parameters["action"]!.Position, "action", $"'{action}' is not delay or cancel");
                return null;
            }

            List<string> attributes = [];
            if (byAttributes)
            {
                if (parameters["attributes"] is not YamlSequence { Items.Count: > 0 } list || list.Items.Any(i => i is not YamlScalar { Value.Length: > 0 }))
                {
                    scope!.Problem(parameters["attributes"]?.Position ?? parameters.Position, "attributes", "must list the action parameters that make executions count separately");
                    return null;
                }

                attributes = [.. list.Items.Cast<YamlScalar>().Select(i => i.Value)];
            }

            return name is null || resource is null ? null : new ConcurrencyPolicy(pack.Name, name, resource, (int)threshold, action, attributes, path);
        }

        private void LoadWebhook(PackDefinition pack, string path)
        {
            if (ReadMapping(path) is not { } doc)
            {
                return;
            }

            var file = new FileScope(this, path, doc);
            file.CheckFields(WebhookFields, "webhook");
            file.CheckPack(pack);
            var url = file.RequiredString("url")?.Trim('/');
            if (url == Triggers.WebhookSensor.GenericHook)
            {
                file.Problem(doc["url"]!.Position, "url", $"'{url}' is StackStorm's generic webhook and takes no declaration; choose another hook name");
            }

            WebhookVerification? verification = null;
            if (file.OptionalMapping("verify") is { } verify)
            {
                var scope = new FileScope(this, path, verify, "verify.");
                scope.CheckFields(["scheme", "secret", "tolerance"], "webhook verification");
                var scheme = scope.RequiredString("scheme");
                if (scheme is not null && !Security.WebhookSignatures.Schemes.Contains(scheme))
                {
                    scope.Problem(verify["scheme"]!.Position, "scheme", $"unknown scheme '{scheme}' (known: {string.Join(", ", Security.WebhookSignatures.Schemes)})");
                    scheme = null;
                }

                // The secret is a datastore key (a list while rotating): the pack names it, never holds it.
                var secrets = verify["secret"] switch
                {
                    YamlScalar { Value.Length: > 0 } one => [one.Value],
                    YamlSequence many when many.Items.All(i => i is YamlScalar { Value.Length: > 0 }) && many.Items.Count > 0 => many.Items.Cast<YamlScalar>().Select(i => i.Value).ToList(),
                    _ => (List<string>?)null,
                };
                if (secrets is null)
                {
                    scope.Problem(verify["secret"]?.Position ?? verify.Position, "secret", "is required: the name of the datastore key (system scope, secret) holding the signing secret, or a list of them while rotating");
                }
                else if (secrets.Any(s => s.StartsWith("{{", StringComparison.Ordinal) || s.Contains(' ', StringComparison.Ordinal)))
                {
                    // The value may be the secret itself: never quoted, since problems reach logs and the API.
                    scope.Problem(verify["secret"]!.Position, "secret", "is not a datastore key name: name the key (e.g. github_webhook_secret), not a template or the secret itself");
                    secrets = null;
                }

                var tolerance = TimeSpan.FromMinutes(5);
                if (verify["tolerance"] is { } toleranceNode)
                {
                    if (JsonNumbers.TryGetInt64(toleranceNode.ToJson(), out var seconds) && seconds is >= 1 and <= 86_400)
                    {
                        tolerance = TimeSpan.FromSeconds(seconds);
                    }
                    else
                    {
                        scope.Problem(toleranceNode.Position, "tolerance", "must be whole seconds from 1 to 86400");
                    }
                }

                verification = scheme is not null && secrets is not null ? new WebhookVerification(scheme, secrets, tolerance) : null;
            }

            var requireKey = file.OptionalBool("require_api_key") ?? false;
            if (doc["verify"] is null && doc["require_api_key"] is not null && !requireKey)
            {
                file.Problem(doc["require_api_key"]!.Position, "require_api_key", "a webhook without verify always needs an API key or token");
            }

            if (url is not null)
            {
                _webhooks.Add(new WebhookDefinition(pack.Name, url, file.OptionalString("description") ?? "", verification, requireKey || doc["verify"] is null, file.OptionalString("user"), path));
            }
        }

        private void LoadTriggerType(PackDefinition pack, string path)
        {
            if (ReadMapping(path) is not { } doc)
            {
                return;
            }

            AddTriggerType(pack, new FileScope(this, path, doc));
        }

        // A trigger type, from its own file under triggers/ or from a sensor's trigger_types; false when it has no name.
        private bool AddTriggerType(PackDefinition pack, FileScope file)
        {
            file.CheckFields(TriggerTypeFields, "trigger type");
            var name = file.RequiredString("name");
            file.CheckPack(pack);
            if (name is null)
            {
                return false;
            }

            _triggerTypes.Add(new TriggerTypeDefinition(pack.Name, name, file.OptionalString("description") ?? "",
                file.OptionalMapping("parameters_schema")?.ToJson() as JsonObject,
                file.OptionalMapping("payload_schema")?.ToJson() as JsonObject, file.Path));
            return true;
        }

        private void LoadAction(PackDefinition pack, string path)
        {
            if (ReadMapping(path) is not { } doc)
            {
                return;
            }

            var file = new FileScope(this, path, doc);
            file.CheckFields(ActionFields, "action");
            file.CheckPack(pack);
            var name = file.RequiredString("name");
            var runnerType = file.RequiredString("runner_type");
            // A workflow action is known to every loader: its file is the engine's to check; a host without the
            // workflow engine says so when one runs.
            var knownRunners = loader._runnerTypes.Append(Workflows.WorkflowDefinition.RunnerType).Distinct().Order(StringComparer.Ordinal).ToList();
            if (runnerType is not null && !knownRunners.Contains(runnerType) && StackStormRunnersNotHere.Contains(runnerType))
            {
                Warn(new PackProblem(Display(path), doc["runner_type"]!.Position, "runner_type",
                    $"StackStorm's '{runnerType}' runner is not supported here yet: the action loads, and running it fails saying so"));
            }
            else if (runnerType is not null && !knownRunners.Contains(runnerType))
            {
                file.Problem(doc["runner_type"]!.Position, "runner_type", $"unknown runner '{runnerType}' (known: {string.Join(", ", knownRunners)})");
            }

            // StackStorm: an action has its runner's parameters, and may override their attributes unless immutable.
            var parameters = (runnerType is null ? [] : loader._runnerParameters.GetValueOrDefault(runnerType) ?? [])
                .ToDictionary(p => p.Name, StringComparer.Ordinal);
            foreach (var (key, value) in file.OptionalMapping("parameters")?.Entries ?? [])
            {
                var inherited = parameters.GetValueOrDefault(key.Value);
                if (inherited is { Immutable: true })
                {
                    file.Problem(key.Position, $"parameters.{key.Value}", $"'{key.Value}' is an immutable parameter of the {runnerType} runner and cannot be redefined");
                    continue;
                }

                if (LoadParameter(file, key.Value, value, inherited) is { } parameter)
                {
                    parameters[parameter.Name] = parameter;
                }
            }

            if (runnerType == "local-shell-script")
            {
                CheckScript(file, doc, pack);
            }
            else if (runnerType == Actions.Runners.DotnetActionRunner.Type)
            {
                CheckDotnetEntryPoint(file, doc, pack);
            }
            else if (runnerType == Python.PythonScriptRunner.Type
                && Python.PythonScriptRunner.EntryPointProblem(pack.Directory, file.OptionalString("entry_point"), out _) is { } pythonProblem)
            {
                file.Problem((doc["entry_point"] ?? doc).Position, "entry_point", pythonProblem);
            }
            else if (runnerType == Workflows.WorkflowDefinition.RunnerType && WorkflowFile(file, doc, pack) is { } workflow)
            {
                _workflows.Add((file, doc["entry_point"]!.Position, workflow));
            }

            var notify = LoadNotify(file);
            var outputSchema = LoadOutputSchema(file, doc);
            if (name is not null && runnerType is not null)
            {
                _actions.Add(new ActionDefinition(pack.Name, name, runnerType, file.OptionalString("entry_point"),
                    file.OptionalString("description") ?? "", file.OptionalBool("enabled") ?? true, parameters, path) { Notify = notify, OutputSchema = outputSchema });
            }
        }

        // A full JSON schema has a "type" word or "properties"; anything else is StackStorm's short form, a mapping
        // of property schemas, which means an object with those properties (and any others).
        private static JsonObject? LoadOutputSchema(FileScope file, YamlMapping doc)
        {
            if (file.OptionalMapping("output_schema") is not { } node)
            {
                return null;
            }

            var given = (JsonObject)node.ToJson()!;
            var full = given["properties"] is JsonObject || given["type"] is JsonValue or JsonArray;
            var schema = full ? given : new JsonObject { ["type"] = "object", ["properties"] = given, ["additionalProperties"] = true };
            foreach (var problem in Json.JsonSchema.CheckSchema(schema))
            {
                file.Problem(doc["output_schema"]!.Position, "output_schema", problem);
            }

            return schema;
        }

        // Loading the assembly now turns a wrong path, class or shipped engine copy into a load error, not a failed run.
        private static void CheckDotnetEntryPoint(FileScope file, YamlMapping doc, PackDefinition pack)
        {
            if (file.OptionalString("entry_point") is not { } entryPoint)
            {
                file.Problem(doc.Position, "entry_point", "a dotnet action needs entry_point: 'path/To.dll:Namespace.ClassName' (relative to actions/)");
                return;
            }

            try
            {
                Actions.PackAssemblies.ResolveAction(pack.Directory, entryPoint);
            }
            catch (Actions.PackAssemblyException ex)
            {
                file.Problem(doc["entry_point"]!.Position, "entry_point", ex.Message);
            }
        }

        private static string? WorkflowFile(FileScope file, YamlMapping doc, PackDefinition pack)
        {
            if (file.OptionalString("entry_point") is not { } entryPoint)
            {
                file.Problem(doc.Position, "entry_point", "an orquesta action needs entry_point: its workflow file, relative to actions/");
                return null;
            }

            if (!PackFiles.TryResolve(pack.Directory, entryPoint, out var workflow))
            {
                file.Problem(doc["entry_point"]!.Position, "entry_point", $"'{entryPoint}' is outside the pack's actions folder");
                return null;
            }

            if (!File.Exists(workflow))
            {
                file.Problem(doc["entry_point"]!.Position, "entry_point", $"workflow '{entryPoint}' does not exist in {Display(PackFiles.ActionsFolder(pack.Directory))}");
                return null;
            }

            return workflow;
        }

        private static void CheckScript(FileScope file, YamlMapping doc, PackDefinition pack)
        {
            var entryPoint = file.OptionalString("entry_point");
            if (entryPoint is null)
            {
                file.Problem(doc.Position, "entry_point", "a local-shell-script action needs entry_point (its script, relative to actions/)");
                return;
            }

            if (!PackFiles.TryResolve(pack.Directory, entryPoint, out var script))
            {
                file.Problem(doc["entry_point"]!.Position, "entry_point", $"'{entryPoint}' is outside the pack's actions folder");
            }
            else if (!File.Exists(script))
            {
                file.Problem(doc["entry_point"]!.Position, "entry_point", $"script '{entryPoint}' does not exist in {Display(PackFiles.ActionsFolder(pack.Directory))}");
            }
        }

        private List<NotifySetting> LoadNotify(FileScope file)
        {
            var settings = new List<NotifySetting>();
            foreach (var (key, value) in file.OptionalMapping("notify")?.Entries ?? [])
            {
                var field = $"notify.{key.Value}";
                if (key.Value is not ("on-success" or "on-failure" or "on-complete"))
                {
                    file.Problem(key.Position, field, "expected on-success, on-failure or on-complete");
                    continue;
                }

                if (value is not YamlMapping map)
                {
                    file.Problem(value.Position, field, "expected a mapping with message, data and routes");
                    continue;
                }

                var scope = new FileScope(this, file.Path, map, field + ".");
                scope.CheckFields(["message", "data", "routes", "channels"], "notify setting");
                var routes = (map["routes"] ?? map["channels"]) switch
                {
                    YamlSequence list => list.Items.OfType<YamlScalar>().Select(r => r.Value).ToList(),
                    YamlScalar single => [single.Value],
                    _ => ["default"],
                };
                void TemplateError(string path, TemplateSyntaxException ex) => scope.Problem(map.Position, path, $"template error at character {ex.Offset + 1}: {ex.Message}");
                settings.Add(new NotifySetting(key.Value, TemplatedValue.Compile(map["message"]?.ToJson(), TemplateError),
                    TemplatedValue.Compile(map["data"]?.ToJson() ?? new JsonObject(), TemplateError), routes));
            }

            return settings;
        }

        private ParameterDefinition? LoadParameter(FileScope file, string name, YamlNode node, ParameterDefinition? inherited)
        {
            var field = $"parameters.{name}";
            if (node is not YamlMapping map)
            {
                file.Problem(node.Position, field, $"expected a mapping (type, default, …), got a {node.KindName}");
                return null;
            }

            var scope = new FileScope(this, file.Path, map, field + ".");
            scope.CheckFields(ParameterFields, "parameter");
            // JSON Schema allows a list of types; they are kept as "a|b" and tried in order.
            var types = map["type"] is YamlSequence list
                ? [.. list.Items.OfType<YamlScalar>().Select(t => t.Value)]
                : new[] { scope.OptionalString("type") ?? inherited?.Type ?? "string" };
            foreach (var unknown in types.SelectMany(t => t.Split('|')).Where(t => !ParameterTypes.Contains(t)))
            {
                scope.Problem(map["type"]!.Position, "type", $"unknown type '{unknown}' (known: {string.Join(", ", ParameterTypes)})");
            }

            var type = string.Join('|', types);
            // A type the runner allows among others may be narrowed to one of them (StackStorm's core.http declares
            // body as a string where our runner also takes objects); any other change would break the runner.
            if (inherited is { ActionDeclares: false } && map["type"] is not null && type != inherited.Type && !types.All(t => inherited.Type.Split('|').Contains(t)))
            {
                scope.Problem(map["type"]!.Position, "type", $"the runner declares '{name}' as {inherited.Type}; an action cannot change its type");
            }

            var position = JsonNumbers.TryGetInt64(map["position"]?.ToJson(), out var pos) ? (int?)pos : inherited?.Position;
            var schema = new JsonObject();
            foreach (var keyword in SchemaFields.Where(k => map[k] is not null))
            {
                schema[keyword] = map[keyword]!.ToJson();
            }

            foreach (var problem in JsonSchema.CheckSchema(schema))
            {
                file.Problem(map.Position, field, problem);
            }

            return new ParameterDefinition(name, type, scope.OptionalBool("required") ?? inherited?.Required ?? false,
                map["default"] is { } d ? d.ToJson() : inherited?.Default?.DeepClone(),
                scope.OptionalBool("secret") ?? inherited?.Secret ?? false, scope.OptionalBool("immutable") ?? false,
                scope.OptionalString("description") ?? inherited?.Description,
                map["enum"]?.ToJson() as JsonArray ?? inherited?.Enum?.DeepClone() as JsonArray, position)
            {
                Schema = schema.Count > 0 ? schema : inherited?.Schema?.DeepClone() as JsonObject,
            };
        }

        private void LoadRule(PackDefinition pack, string path, YamlMapping? parsed = null)
        {
            if ((parsed ?? ReadMapping(path)) is not { } doc)
            {
                return;
            }

            var file = new FileScope(this, path, doc);
            file.CheckFields(RuleFields, "rule");
            file.CheckPack(pack);
            var name = file.RequiredString("name");
            var trigger = file.RequiredMapping("trigger");
            var action = file.RequiredMapping("action");
            string? triggerType = null;
            JsonObject triggerParameters = [];
            if (trigger is not null)
            {
                var triggerScope = new FileScope(this, path, trigger, "trigger.");
                triggerScope.CheckFields(["type", "parameters", "ref"], "trigger");
                triggerType = triggerScope.RequiredString("type");
                triggerParameters = triggerScope.OptionalMapping("parameters")?.ToJson() as JsonObject ?? [];
            }

            string? actionRef = null;
            var actionParameters = new Dictionary<string, TemplatedValue>(StringComparer.Ordinal);
            var parameterPositions = new Dictionary<string, SourcePosition>(StringComparer.Ordinal);
            if (action is not null)
            {
                var actionScope = new FileScope(this, path, action, "action.");
                actionScope.CheckFields(["ref", "parameters"], "action");
                actionRef = actionScope.RequiredString("ref");
                foreach (var (key, value) in actionScope.OptionalMapping("parameters")?.Entries ?? [])
                {
                    parameterPositions[key.Value] = key.Position;
                    actionParameters[key.Value] = TemplatedValue.Compile(value.ToJson(), (jsonPath, error) =>
                        actionScope.Problem(value.Position, $"parameters.{key.Value}", $"template error at character {error.Offset + 1}: {error.Message}"));
                }
            }

            var criteria = LoadCriteria(file);
            var isBackstop = doc["type"] switch
            {
                YamlScalar s => s.Value == "backstop",
                YamlMapping m => (m["ref"] as YamlScalar)?.Value == "backstop",
                _ => false,
            };

            if (name is null || triggerType is null || actionRef is null)
            {
                return;
            }

            var rule = new RuleDefinition(pack.Name, name, file.OptionalString("description") ?? "", file.OptionalBool("enabled") ?? true,
                isBackstop, triggerType, triggerParameters, criteria, actionRef, actionParameters, path);
            _rules.Add(new PendingRule(rule, trigger!["type"]!.Position, trigger.Position, action!["ref"]!.Position, parameterPositions));
        }

        private List<Criterion> LoadCriteria(FileScope file)
        {
            var criteria = new List<Criterion>();
            foreach (var (key, value) in file.OptionalMapping("criteria")?.Entries ?? [])
            {
                if (LoadCriterion(file, key, value, "criteria.", RuleMatcher.TriggerRoot) is { } criterion)
                {
                    criteria.Add(criterion);
                }
            }

            return criteria;
        }

        private Criterion? LoadCriterion(FileScope file, YamlScalar key, YamlNode value, string prefix, string root)
        {
            var field = prefix + key.Value;
            PayloadPath keyPath;
            try
            {
                // "trigger.x#2": the #tag lets one field carry several criteria; it is not part of the path.
                keyPath = PayloadPath.Parse(StripTag(key.Value));
            }
            catch (TemplateSyntaxException ex)
            {
                file.Problem(key.Position, field, $"invalid key at character {ex.Offset + 1}: {ex.Message}");
                return null;
            }

            if (keyPath.Root != root)
            {
                file.Problem(key.Position, field, $"a criteria key starts with '{root}.' here (the {(root == RuleMatcher.TriggerRoot ? "trigger payload" : "search item")})");
                return null;
            }

            if (value is not YamlMapping map)
            {
                file.Problem(value.Position, field, $"expected a mapping with 'type' and 'pattern', got a {value.KindName}");
                return null;
            }

            var scope = new FileScope(this, file.Path, map, field + ".");
            scope.CheckFields(["type", "pattern", "condition"], "criterion");
            var opName = scope.RequiredString("type");
            if (opName is null)
            {
                return null;
            }

            if (!CriteriaOperator.TryGet(opName, out var op))
            {
                scope.Problem(map["type"]!.Position, "type",
                    $"unknown operator '{opName}' (valid operators: {string.Join(", ", CriteriaOperator.Names.Order(StringComparer.Ordinal))})");
                return null;
            }

            if (op.IsSearch)
            {
                return LoadSearch(scope, file, key, map, keyPath, op, field);
            }

            var pattern = Py.FromJson(map["pattern"]?.ToJson());
            if (pattern is string text && Template.LooksLikeTemplate(text))
            {
                try
                {
                    return new Criterion(key.Value, keyPath, op, pattern, key.Position) { PatternTemplate = CriteriaPatternTemplate.Parse(text) };
                }
                catch (TemplateSyntaxException ex)
                {
                    scope.Problem(map["pattern"]!.Position, "pattern", $"template error at character {ex.Offset + 1}: {ex.Message}");
                    return null;
                }
            }

            try
            {
                return new Criterion(key.Value, keyPath, op, pattern, key.Position) { CompiledPattern = pattern is null ? null : op.Compile?.Invoke(pattern) };
            }
            catch (Exception ex) when (ex is ArgumentException or PyTypeError)
            {
                scope.Problem(map["pattern"]?.Position ?? map.Position, "pattern", $"invalid pattern for {op.Name}: {ex.Message}");
                return null;
            }
        }

        private Criterion? LoadSearch(FileScope scope, FileScope file, YamlScalar key, YamlMapping map, PayloadPath keyPath, CriteriaOperator op, string field)
        {
            var condition = scope.RequiredString("condition");
            if (condition is not null && condition is not ("any" or "all" or "any2any" or "all2any"))
            {
                scope.Problem(map["condition"]!.Position, "condition", $"unknown condition '{condition}' (valid: any, all, any2any, all2any)");
                return null;
            }

            if (map["pattern"] is not YamlMapping children)
            {
                scope.Problem(map["pattern"]?.Position ?? map.Position, "pattern", "search needs a pattern: a mapping of criteria on item.… keys");
                return null;
            }

            var loaded = new List<Criterion>();
            var ok = condition is not null;
            foreach (var (childKey, childValue) in children.Entries)
            {
                if (LoadCriterion(file, childKey, childValue, field + ".pattern.", RuleMatcher.ItemRoot) is { } child)
                {
                    loaded.Add(child);
                }
                else
                {
                    ok = false;
                }
            }

            return ok ? new Criterion(key.Value, keyPath, op, null, key.Position) { Condition = condition, Children = loaded } : null;
        }

        private static string StripTag(string key)
        {
            var depth = 0;
            for (var i = 0; i < key.Length; i++)
            {
                switch (key[i])
                {
                    case '[':
                        depth++;
                        break;
                    case ']':
                        depth--;
                        break;
                    case '#' when depth == 0:
                        return key[..i];
                }
            }

            return key;
        }

        private YamlMapping? ReadMapping(string path)
        {
            string text;
            try
            {
                var info = new FileInfo(path);
                if (info.Exists && info.Length > loader._limits.MaxBytes)
                {
                    Add(new PackProblem(Display(path), new SourcePosition(1, 1), null, $"the file is larger than the {loader._limits.MaxBytes} byte limit"));
                    return null;
                }

                text = File.ReadAllText(path);
            }
            catch (IOException ex)
            {
                Add(new PackProblem(Display(path), SourcePosition.Unknown, null, $"cannot read the file: {ex.Message}"));
                return null;
            }

            return ReadMappingText(Display(path), text, null);
        }

        // A document read from elsewhere (a configs folder or container) names its pack's file, which owns the problem.
        private YamlMapping? ReadMappingText(string location, string text, string? packFile)
        {
            if (text.Length > loader._limits.MaxBytes)
            {
                Add(new PackProblem(location, new SourcePosition(1, 1), null, $"the file is larger than the {loader._limits.MaxBytes} byte limit") { AlsoConcerns = packFile });
                return null;
            }

            try
            {
                var root = BoundedYamlReader.Read(text, loader._limits);
                if (root is YamlMapping mapping)
                {
                    return mapping;
                }

                // An empty configs/<pack>.yaml is a config with no values.
                if (root is null && packFile is not null)
                {
                    return new YamlMapping(new SourcePosition(1, 1));
                }

                Add(new PackProblem(location, root?.Position ?? new SourcePosition(1, 1), null,
                    $"expected a mapping at the top of the file, got {(root is null ? "an empty document" : "a " + root.KindName)}") { AlsoConcerns = packFile });
            }
            catch (YamlReadException ex)
            {
                Add(new PackProblem(location, ex.Position, null, $"YAML error: {ex.Message}") { AlsoConcerns = packFile });
            }

            return null;
        }

        private static IEnumerable<string> YamlFiles(string packDirectory, string folder)
        {
            var directory = Path.Combine(packDirectory, folder);
            return Directory.Exists(directory)
                ? Directory.EnumerateFiles(directory).Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
                : [];
        }
    }

    private sealed record PendingRule(
        RuleDefinition Rule,
        SourcePosition TriggerTypePosition,
        SourcePosition TriggerPosition,
        SourcePosition ActionRefPosition,
        IReadOnlyDictionary<string, SourcePosition> ParameterPositions);

    /// <summary>Field readers over one mapping that record a problem, with position and field path, for each bad field.</summary>
    private sealed class FileScope(LoadSession session, string path, YamlMapping map, string fieldPrefix = "")
    {
        public string Path { get; } = path;

        public void Problem(SourcePosition position, string field, string message) =>
            session.Add(new PackProblem(Display(Path), position, fieldPrefix + field, message));

        public void CheckFields(IReadOnlyCollection<string> known, string kind)
        {
            foreach (var (key, _) in map.Entries)
            {
                if (!known.Contains(key.Value))
                {
                    Problem(key.Position, key.Value, $"unknown field for a {kind} (known: {string.Join(", ", known)})");
                }
            }
        }

        public void CheckPack(PackDefinition pack)
        {
            if (OptionalString("pack") is { } declared && declared != pack.Name)
            {
                Problem(map["pack"]!.Position, "pack", $"says pack '{declared}' but the file is in pack '{pack.Name}'");
            }
        }

        public string? RequiredString(string field)
        {
            switch (map[field])
            {
                case null:
                    Problem(map.Position, field, "is required");
                    return null;
                case YamlScalar { Value.Length: 0 } empty:
                    Problem(empty.Position, field, "is required, and is empty");
                    return null;
                default:
                    return OptionalString(field);
            }
        }

        /// <summary>Text, or null when absent or empty: StackStorm's loader takes <c>description:</c> and <c>entry_point: ''</c> as not given.</summary>
        public string? OptionalString(string field)
        {
            switch (map[field])
            {
                case null:
                    return null;
                case YamlScalar scalar:
                    return scalar.Value.Length > 0 ? scalar.Value : null;
                case var node:
                    Problem(node.Position, field, $"expected text, got a {node.KindName}");
                    return null;
            }
        }

        public bool? OptionalBool(string field)
        {
            var node = map[field];
            if (node is null)
            {
                return null;
            }

            if (node.ToJson() is JsonValue v && v.TryGetValue<bool>(out var b))
            {
                return b;
            }

            Problem(node.Position, field, "expected true or false");
            return null;
        }

        public YamlMapping? RequiredMapping(string field)
        {
            if (map[field] is null)
            {
                Problem(map.Position, field, "is required");
                return null;
            }

            return OptionalMapping(field);
        }

        public YamlMapping? OptionalMapping(string field)
        {
            switch (map[field])
            {
                case null:
                    return null;
                case YamlMapping mapping:
                    return mapping;
                case YamlScalar { IsPlain: true, Value: "" or "~" or "null" }:
                    return null;
                case var node:
                    Problem(node.Position, field, $"expected a mapping, got a {node.KindName}");
                    return null;
            }
        }
    }

    /// <summary>A path as the user should see it: relative to the working folder when below it.</summary>
    public static string Display(string path)
    {
        var relative = System.IO.Path.GetRelativePath(Environment.CurrentDirectory, path);
        return relative.StartsWith("..", StringComparison.Ordinal) ? path : relative;
    }
}
