using System.IO.Compression;
using System.Text;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace ServerlessStorm.Testing;

/// <summary>
/// Searches everything a storage account holds — every table entity (binary properties too), every blob and every
/// visible queue message — for a text, also inside gzip (Durable's large payloads) and base64 (queue messages).
/// A message hidden at the time (being handled, or held back) is not seen; reading a queue of more than 32 messages
/// receives them, which counts as a delivery: scan queues no consumer is reading.
/// </summary>
public static class StorageScan
{
    private const int PeekLimit = 32;

    /// <returns>Where the text was found, and how many blobs were read.</returns>
    public static async Task<(List<string> Hits, int Blobs)> FindAsync(string connectionString, string text)
    {
        var hits = new List<string>();
        var tables = new TableServiceClient(connectionString);
        await foreach (var table in tables.QueryAsync())
        {
            await foreach (var entity in tables.GetTableClient(table.Name).QueryAsync<TableEntity>())
            {
                if (entity.Any(p => Holds(p.Value switch
                    {
                        byte[] bytes => bytes,
                        BinaryData data => data.ToArray(),
                        var value => Encoding.UTF8.GetBytes(value?.ToString() ?? ""),
                    }, text)))
                {
                    hits.Add($"table {table.Name} {entity.PartitionKey}/{entity.RowKey}");
                }
            }
        }

        var blobs = new BlobServiceClient(connectionString);
        var blobCount = 0;
        await foreach (var container in blobs.GetBlobContainersAsync())
        {
            await foreach (var blob in blobs.GetBlobContainerClient(container.Name).GetBlobsAsync())
            {
                blobCount++;
                var content = await blobs.GetBlobContainerClient(container.Name).GetBlobClient(blob.Name).DownloadContentAsync();
                if (Holds(content.Value.Content.ToArray(), text))
                {
                    hits.Add($"blob {container.Name}/{blob.Name}");
                }
            }
        }

        var queues = new QueueServiceClient(connectionString);
        await foreach (var queue in queues.GetQueuesAsync())
        {
            foreach (var message in await MessagesAsync(queues.GetQueueClient(queue.Name)))
            {
                if (Holds(message, text))
                {
                    hits.Add($"queue {queue.Name}");
                }
            }
        }

        return (hits, blobCount);
    }

    /// <summary>Whether the bytes hold the text as they are, gunzipped, or base64-decoded (and then gunzipped).</summary>
    public static bool Holds(byte[] bytes, string text)
    {
        if (Encoding.UTF8.GetString(bytes).Contains(text, StringComparison.Ordinal))
        {
            return true;
        }

        if (bytes is [0x1f, 0x8b, ..])
        {
            using var unzipped = new MemoryStream();
            try
            {
                using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                gzip.CopyTo(unzipped);
            }
            catch (InvalidDataException)
            {
                return false; // began like gzip, was not: searched as it is above
            }

            return Holds(unzipped.ToArray(), text);
        }

        var trimmed = Encoding.ASCII.GetString(bytes).Trim();
        var decoded = new byte[trimmed.Length];
        return trimmed.Length >= 4 && Convert.TryFromBase64String(trimmed, decoded, out var length) && Holds(decoded[..length], text);
    }

    // Peeking shows only the first 32 messages; a longer queue is read by receiving its messages, hidden until all
    // are read, each once, and then made visible again as they were.
    private static async Task<List<byte[]>> MessagesAsync(QueueClient queue)
    {
        var peeked = (await queue.PeekMessagesAsync(PeekLimit)).Value;
        if (peeked.Length < PeekLimit)
        {
            return [.. peeked.Select(m => m.Body.ToArray())];
        }

        var seen = new Dictionary<string, (byte[] Body, string PopReceipt)>(StringComparer.Ordinal);
        try
        {
            while ((await queue.ReceiveMessagesAsync(PeekLimit, TimeSpan.FromSeconds(30))).Value is { Length: > 0 } received
                && received.Count(m => seen.TryAdd(m.MessageId, (m.Body.ToArray(), m.PopReceipt))) > 0)
            {
            }
        }
        finally
        {
            foreach (var (id, message) in seen)
            {
                try
                {
                    await queue.UpdateMessageAsync(id, message.PopReceipt, visibilityTimeout: TimeSpan.Zero);
                }
                catch (global::Azure.RequestFailedException)
                {
                    // Visible again already (a scan longer than the hiding) or taken by a consumer.
                }
            }
        }

        return [.. seen.Values.Select(m => m.Body)];
    }
}
