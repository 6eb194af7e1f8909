using System.Net;
using System.Net.Sockets;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Local;
using Xunit;

namespace ServerlessStorm.Testing;

/// <summary>
/// One Azurite per test assembly, on free ports with its data in a temporary folder, started from the repository's
/// npm install, so test assemblies running side by side never share or stop each other's emulator. Each test takes
/// its own name prefix (<see cref="NewStorageOptions"/>) for isolation.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "storm-tests-azurite-" + Guid.NewGuid().ToString("N")[..8]);
    private AzuriteLauncher? _launcher;
    private int _prefixCounter;

    public AzuriteEndpoints Endpoints => _launcher?.Endpoints ?? throw new InvalidOperationException("Azurite is not started");

    public string ConnectionString => Endpoints.ConnectionString;

    public async Task InitializeAsync() => _launcher = await StartOnFreePortsAsync(_dataDirectory);

    /// <summary>
    /// Starts an Azurite of its own on free ports. A port found free can be taken by another process before Azurite
    /// binds it (test assemblies start their emulators side by side), so a start that fails is tried on new ports.
    /// </summary>
    public static async Task<AzuriteLauncher> StartOnFreePortsAsync(string dataDirectory, IEnumerable<string>? arguments = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(FreePort(), FreePort(), FreePort()), dataDirectory,
                    TimeSpan.FromSeconds(60), arguments: arguments);
            }
            catch (AzuriteUnavailableException) when (attempt < 3)
            {
            }
        }
    }

    /// <summary>Storage settings with a prefix no other test uses.</summary>
    public AzureStorageOptions NewStorageOptions() => new()
    {
        ConnectionString = ConnectionString,
        Prefix = $"t{Environment.ProcessId % 10000}x{Interlocked.Increment(ref _prefixCounter)}{Random.Shared.Next(1000, 9999)}",
    };

    public async Task DisposeAsync()
    {
        if (_launcher is not null)
        {
            await _launcher.DisposeAsync();
        }

        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>
    /// Freezes this fixture's Azurite (SIGSTOP, as a hung storage service): connections are accepted by the kernel but
    /// nothing answers, until the result is disposed (SIGCONT).
    /// </summary>
    public async Task<IAsyncDisposable> SuspendAsync()
    {
        await SignalAsync("STOP");
        return new Resume(this);
    }

    private async Task SignalAsync(string signal)
    {
        // The data folder is on Azurite's command line and on no other process's.
        using var kill = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("pkill", [$"-{signal}", "-f", _dataDirectory]) { UseShellExecute = false })!;
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"no Azurite process of this fixture ({_dataDirectory}) took SIG{signal}");
        }
    }

    private sealed class Resume(AzuriteFixture fixture) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => new(fixture.SignalAsync("CONT"));
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The name of the test collection that shares one <see cref="AzuriteFixture"/>; each test assembly declares it.</summary>
public static class AzuriteCollection
{
    public const string Name = "Azurite";
}
