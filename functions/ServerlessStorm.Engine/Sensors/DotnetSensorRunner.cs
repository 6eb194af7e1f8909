using System.Text.Json.Nodes;
using ServerlessStorm.ActionSdk;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Datastore;

namespace ServerlessStorm.Engine.Sensors;

/// <summary>
/// Runs C# sensors from a pack's assembly (entry_point <c>path/To.dll:Namespace.ClassName</c>): a fresh instance of
/// an <see cref="IStormPollingSensor"/> per poll, in the host's process (its load context the pack's, as C# actions);
/// an <see cref="IStormSensor"/> is long-running.
/// </summary>
public sealed class DotnetSensorRunner : ISensorRunner
{
    public bool Runs(SensorDefinition sensor) => sensor.EntryPoint is { } entryPoint && PackAssemblies.ParseEntryPoint(entryPoint) is not null;

    public async Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
    {
        var context = new Context(run, host);
        object instance;
        try
        {
            instance = Activator.CreateInstance(PackAssemblies.ResolveSensor(run.Pack.Directory, run.Sensor.EntryPoint!))!;
        }
        catch (Exception ex) when (ex is PackAssemblyException or System.Reflection.TargetInvocationException)
        {
            return new SensorPollOutcome(run.State, ex.InnerException?.Message ?? ex.Message);
        }

        if (instance is not IStormPollingSensor sensor)
        {
            return new SensorPollOutcome(run.State) { LongRunning = true };
        }

        try
        {
            await sensor.SetupAsync(context, cancellationToken);
            foreach (var trigger in context.Triggers)
            {
                await sensor.AddTriggerAsync(trigger, cancellationToken);
            }

            try
            {
                await sensor.PollAsync(context, cancellationToken);
            }
            finally
            {
                await sensor.CleanupAsync(context, CancellationToken.None);
            }

            return new SensorPollOutcome(context.State);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new SensorPollOutcome(context.State, ex.Message);
        }
    }

    public async Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
    {
        var context = new Context(run, host);
        try
        {
            var sensor = (IStormSensor)Activator.CreateInstance(PackAssemblies.ResolveSensor(run.Pack.Directory, run.Sensor.EntryPoint!))!;
            await sensor.SetupAsync(context, cancellationToken);
            foreach (var trigger in context.Triggers)
            {
                await sensor.AddTriggerAsync(trigger, cancellationToken);
            }

            try
            {
                await sensor.RunAsync(context, cancellationToken);
            }
            finally
            {
                await sensor.CleanupAsync(context, CancellationToken.None);
            }

            return null;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception ex)
        {
            return ex.InnerException?.Message ?? ex.Message;
        }
    }

    private sealed class Context(SensorRun run, ISensorHost host) : StormSensorContext
    {
        public override string SensorRef => run.Sensor.Ref;

        public override JsonObject PackConfig { get; } = (JsonObject)run.Pack.Config.DeepClone();

        public override IReadOnlyList<StormSensorTrigger> Triggers { get; } =
            [.. run.Triggers.Select(t => new StormSensorTrigger(t.Ref, t.Type, (JsonObject)t.Parameters.DeepClone()))];

        public override JsonObject State { get; } = (JsonObject)run.State.DeepClone();

        public override async Task DispatchAsync(string trigger, JsonNode? payload = null, string? traceTag = null, CancellationToken cancellationToken = default)
        {
            try
            {
                await host.DispatchAsync(trigger, payload, traceTag, cancellationToken);
            }
            catch (SensorDispatchException ex)
            {
                throw new InvalidOperationException(ex.Message, ex);
            }
        }

        public override async Task<string?> GetValueAsync(string name, bool local = true, string scope = "system", bool decrypt = false, CancellationToken cancellationToken = default) =>
            (await host.DatastoreAsync(new DatastoreCall("get", name, Local: local, Scope: scope, Decrypt: decrypt), cancellationToken))?.GetValue<string>();

        public override Task SetValueAsync(string name, string value, int? ttl = null, bool local = true, string scope = "system", bool encrypt = false, CancellationToken cancellationToken = default) =>
            host.DatastoreAsync(new DatastoreCall("set", name, value, local, scope, Encrypt: encrypt, Ttl: ttl), cancellationToken);

        public override async Task<IReadOnlyDictionary<string, string>> ListValuesAsync(bool local = true, string? prefix = null, string scope = "system", CancellationToken cancellationToken = default)
        {
            var pairs = await host.DatastoreAsync(new DatastoreCall("list", Local: local, Scope: scope, Prefix: prefix), cancellationToken) as JsonArray ?? [];
            return pairs.OfType<JsonObject>().ToDictionary(p => p["name"]!.GetValue<string>(), p => p["value"]?.GetValue<string>() ?? "", StringComparer.Ordinal);
        }

        public override async Task<bool> DeleteValueAsync(string name, bool local = true, string scope = "system", CancellationToken cancellationToken = default) =>
            (await host.DatastoreAsync(new DatastoreCall("delete", name, Local: local, Scope: scope), cancellationToken))?.GetValue<bool>() ?? false;

        public override void Log(string level, string message) => host.Log(level, message);
    }
}
