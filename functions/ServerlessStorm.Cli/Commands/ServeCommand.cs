using System.CommandLine;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Cli.Commands;

internal static class ServeCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Port to listen on (StackStorm's API port)", DefaultValueFactory = _ => ServeSettings.DefaultPort };
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var packs = new Option<string>("--packs") { Description = "Folder of packs to load", DefaultValueFactory = _ => "packs" };
        var configs = new Option<string?>("--configs") { Description = "Folder of packs' configs, <pack>.yaml each (default: configs beside the packs folder)" };
        var transport = new Option<string>("--transport") { Description = "Bus between the stages: in-process, storage-queue, or service-bus (the namespace from ServiceBus__fullyQualifiedNamespace or ServiceBus__ConnectionString)", DefaultValueFactory = _ => ServeSettings.Transports.InProcess };
        transport.AcceptOnlyFromAmong(ServeSettings.Transports.All);
        var storage = new Option<string?>("--storage")
        {
            Description = "Storage connection string (default $STORM_STORAGE or Azurite on its standard ports, started when not running)",
        };
        var dataDir = new Option<string>("--azurite-data") { Description = "Where a locally started Azurite keeps its data", DefaultValueFactory = _ => ".azurite" };
        var writeThrough = new Option<bool>("--audit-write-through")
        {
            Description = "Write the audit to Table Storage before each stage hands on, instead of to a local journal and to Table Storage a few milliseconds later (the default on the in-process transport)",
        };
        // Written behind is the default now; the option stays for scripts that name it (with storage queues it is refused).
        var writeBehind = new Option<bool>("--audit-write-behind") { Hidden = true };
        var journal = new Option<string>("--audit-journal") { Description = "Where the write-behind audit keeps its journal", DefaultValueFactory = _ => Path.Combine(".storm", "audit-journal") };

        var noAuth = new Option<bool>("--no-auth")
        {
            Description = "Serve without authentication, every request acting as the administrator (only on a loopback address)",
        };
        var strict = new Option<bool>("--strict")
        {
            Description = "Refuse to start when any pack has a problem (by default such a pack is left out, reported, and the others run)",
        };
        var credentialsFile = new Option<string?>("--credentials-file")
        {
            Description = $"Where to file the administrator key for the CLI (default ${Client.CredentialsFile.PathVariable} or ~/.storm/credentials.json)",
        };

        var command = new Command("serve", "Run the local stack: webhooks, rules, action runners and the audit, on 127.0.0.1:9101")
        {
            port, host, packs, configs, transport, storage, dataDir, writeThrough, writeBehind, journal, noAuth, strict, credentialsFile,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (result.GetValue(writeThrough) && result.GetValue(writeBehind))
            {
                return CliOutput.Error("give --audit-write-through or --audit-write-behind, not both", CliOutput.InvalidInput);
            }

            var settings = new ServeSettings
            {
                Port = result.GetValue(port),
                Host = result.GetValue(host)!,
                PacksPath = result.GetValue(packs)!,
                ConfigsPath = result.GetValue(configs),
                Transport = result.GetValue(transport)!,
                StorageConnectionString = result.GetValue(storage) ?? Environment.GetEnvironmentVariable("STORM_STORAGE") ?? ServerlessStorm.Azure.AzureStorageOptions.EmulatorConnectionString,
                AzuriteDataDirectory = result.GetValue(dataDir)!,
                AuditWriteBehind = result.GetValue(writeThrough) ? false : result.GetValue(writeBehind) ? true : null,
                AuditJournalDirectory = result.GetValue(journal)!,
                NoAuth = result.GetValue(noAuth),
                StrictPacks = result.GetValue(strict),
                CredentialsFile = result.GetValue(credentialsFile),
            };
            return await RunAsync(settings, cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(ServeSettings settings, CancellationToken cancellationToken)
    {
        StormServer server;
        try
        {
            server = await StormServer.StartAsync(settings, cancellationToken: cancellationToken);
        }
        catch (PackLoadException ex)
        {
            Console.Error.WriteLine($"error: refusing to start: the packs in '{settings.PacksPath}' have {ex.Problems.Count} problem(s):");
            foreach (var problem in ex.Problems)
            {
                Console.Error.WriteLine($"  {problem}");
            }

            return CliOutput.InvalidInput;
        }
        catch (ServerlessStorm.Engine.Security.Rbac.RbacLoadException ex)
        {
            Console.Error.WriteLine($"error: refusing to start: the RBAC files have {ex.Problems.Count} problem(s):");
            foreach (var problem in ex.Problems)
            {
                Console.Error.WriteLine($"  {problem}");
            }

            return CliOutput.InvalidInput;
        }
        catch (DirectoryNotFoundException ex)
        {
            return CliOutput.Error($"refusing to start: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            return CliOutput.Error($"refusing to start: {ex.Message}", CliOutput.InvalidInput);
        }
        catch (ServerlessStorm.Engine.Audit.AuditJournalException ex)
        {
            return CliOutput.Error($"refusing to start: {ex.Message}" + (ex is ServerlessStorm.Engine.Audit.AuditJournalInUseException ? "" : " (choose another folder with --audit-journal DIR, or --audit-write-through)"));
        }
        catch (InvalidDataException ex)
        {
            // A journal left unreadable: it is kept as it is, for an operator to look at.
            return CliOutput.Error($"refusing to start: {ex.Message}");
        }
        catch (AzuriteUnavailableException ex)
        {
            return CliOutput.Error($"storage is not available: {ex.Message}", CliOutput.Unreachable);
        }
        catch (IOException ex) when (ex.InnerException is System.Net.Sockets.SocketException || ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            return CliOutput.Error($"cannot listen on {settings.Host}:{settings.Port}: {ex.Message}", CliOutput.Unreachable);
        }

        await using (server)
        {
            var audit = server.Services.GetService(typeof(ServerlessStorm.Engine.Audit.IAuditStore)) is ServerlessStorm.Engine.Audit.WriteBehindAuditStore behind
                ? behind.JournalDirectory is { } journalDirectory ? $"written behind, journal {journalDirectory}" : "written behind, no journal"
                : "written through";
            var auth = server.CredentialsFilePath is { } file
                ? $"auth: API keys and tokens; the administrator's key is {(server.AdminKeyCreated ? "new, " : "")}in {file}"
                : "auth: OFF (--no-auth), every request acts as the administrator";
            var report = ((ServerlessStorm.Engine.Packs.PackCatalog)server.Services.GetService(typeof(ServerlessStorm.Engine.Packs.PackCatalog))!).LoadReport;
            foreach (var pack in report.Where(p => !p.Loaded))
            {
                Console.Error.WriteLine($"warning: pack '{pack.Name}' is left out: {pack.Problems.Count} problem(s):");
                foreach (var problem in pack.Problems)
                {
                    Console.Error.WriteLine($"  {problem}");
                }
            }

            foreach (var warning in report.SelectMany(p => p.Warnings))
            {
                Console.Error.WriteLine($"note: {warning}");
            }

            Console.WriteLine($"ServerlessStorm is listening on {server.Url} (packs: {settings.PacksPath}, {report.Count(p => p.Loaded)} of {report.Count} loaded, transport: {settings.Transport}, audit: {audit}, {auth}). Press Ctrl+C to stop.");
            try
            {
                await server.WaitForShutdownAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }

        return CliOutput.Ok;
    }
}
