using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ServerlessStorm.Azure;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Testing;

/// <summary>The engine wired as <c>storm serve</c> wires it, minus HTTP, over the audit and bus a test chooses.</summary>
public sealed class StormTestHost : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly StormWorker _worker;

    private StormTestHost(ServiceProvider services, ConcurrentQueue<string> logs)
    {
        _services = services;
        _worker = services.GetRequiredService<StormWorker>();
        Logs = logs;
    }

    public IServiceProvider Services => _services;

    public StormApi Api => _services.GetRequiredService<StormApi>();

    public IAuditStore Audit => _services.GetRequiredService<IAuditStore>();

    /// <summary>Captured log lines, for tests that check what was (or was not) logged.</summary>
    public ConcurrentQueue<string> Logs { get; }

    public static async Task<StormTestHost> StartAsync(IAuditStore audit, IMessageBus bus, string? packsPath = null, Action<IServiceCollection>? configure = null)
    {
        // Composed as every host is, with everything in memory; the test's own audit and bus take the place of the
        // configured ones.
        var services = InMemoryStorm.Compose(packsPath ?? RepositoryPaths.Packs, bus: bus);
        services.Replace(ServiceDescriptor.Singleton(audit));
        var logs = new ConcurrentQueue<string>();
        services.AddLogging(b => b.AddProvider(new CapturingLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug));
        // No RBAC files unless a test brings its own (the default, beside the packs folder, could be anything in /tmp).
        services.Configure<Engine.Security.Rbac.RbacOptions>(o => o.Path = Path.Combine(RepositoryPaths.Root, "tests", "no-rbac-files"));
        services.AddSingleton<StormWorker>();
        configure?.Invoke(services);
        var host = new StormTestHost(services.BuildServiceProvider(), logs);
        await host._worker.StartAsync(CancellationToken.None);
        return host;
    }

    /// <summary>Waits until execution <paramref name="id"/> reaches a terminal status.</summary>
    public async Task<ExecutionRecord> WaitForExecutionAsync(string id, TimeSpan? timeout = null) =>
        (await Eventually.ReturnsAsync(() => Audit.GetExecutionAsync(id, CancellationToken.None), e => e is not null && ExecutionStatus.IsTerminal(e.Status), timeout, $"execution {id} to finish"))!;

    public async ValueTask DisposeAsync()
    {
        await _worker.StopAsync(CancellationToken.None);
        await _services.DisposeAsync();
    }

    private sealed class CapturingLoggerProvider(ConcurrentQueue<string> target) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(target, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> target, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                target.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}");
        }
    }
}
