using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace ServerlessStorm.Testing;

/// <summary>Searches everything a storage account holds — every table entity, blob and visible queue message — for a text.</summary>
public static class StorageScan
{
    /// <returns>Where the text was found, and how many blobs were read.</returns>
    public static async Task<(List<string> Hits, int Blobs)> FindAsync(string connectionString, string text)
    {
        var hits = new List<string>();
        var tables = new TableServiceClient(connectionString);
        await foreach (var table in tables.QueryAsync())
        {
            await foreach (var entity in tables.GetTableClient(table.Name).QueryAsync<TableEntity>())
            {
                if (string.Join("|", entity.Select(p => p.Value?.ToString())).Contains(text, StringComparison.Ordinal))
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
                if (content.Value.Content.ToString().Contains(text, StringComparison.Ordinal))
                {
                    hits.Add($"blob {container.Name}/{blob.Name}");
                }
            }
        }

        var queues = new QueueServiceClient(connectionString);
        await foreach (var queue in queues.GetQueuesAsync())
        {
            foreach (var message in (await queues.GetQueueClient(queue.Name).PeekMessagesAsync(32)).Value)
            {
                if (message.Body.ToString().Contains(text, StringComparison.Ordinal))
                {
                    hits.Add($"queue {queue.Name}");
                }
            }
        }

        return (hits, blobCount);
    }
}
