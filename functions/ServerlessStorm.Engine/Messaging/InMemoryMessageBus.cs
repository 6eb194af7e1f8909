using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Local;

namespace ServerlessStorm.Engine.Messaging;

/// <summary>
/// The in-process bus with nothing on disk: the same code as <see cref="SqliteMessageBus"/> (the same delivery,
/// redelivery and dead letters) over a database in memory, for tests and for a server whose audit is in memory too.
/// </summary>
public sealed class InMemoryMessageBus(BusOptions? options = null, ILogger<InMemoryMessageBus>? logger = null)
    : SqliteMessageBus(LocalDatabase.OpenInMemory(Schema), options ?? new BusOptions(), TimeProvider.System, logger ?? (ILogger)NullLogger.Instance);
