using System.IO.Compression;
using System.Text;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>The scan behind the secret canary tests finds a text wherever storage can hold it.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class StorageScanTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task FindsTheText_InAGzipBlob_ABinaryProperty_AndTheFortiethOfFiftyBase64Messages_AndLeavesTheQueueAsItWas()
    {
        var prefix = azurite.NewStorageOptions().Prefix;
        var text = "SCAN-" + Guid.NewGuid().ToString("N")[..12];

        var container = new BlobServiceClient(azurite.ConnectionString).GetBlobContainerClient(prefix + "-blobs");
        await container.CreateIfNotExistsAsync();
        using (var zipped = new MemoryStream())
        {
            using (var gzip = new GZipStream(zipped, CompressionLevel.Fastest, leaveOpen: true))
            {
                gzip.Write(Encoding.UTF8.GetBytes($$"""{"input": "{{text}}"}"""));
            }

            zipped.Position = 0;
            await container.UploadBlobAsync("payload.json.gz", zipped);
        }

        var table = new TableServiceClient(azurite.ConnectionString).GetTableClient(prefix + "Scan");
        await table.CreateIfNotExistsAsync();
        await table.AddEntityAsync(new TableEntity("p", "r") { ["Data"] = Encoding.UTF8.GetBytes(text) });

        var queue = new QueueClient(azurite.ConnectionString, prefix + "-queue", new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 });
        await queue.CreateIfNotExistsAsync();
        for (var i = 0; i < 50; i++)
        {
            await queue.SendMessageAsync(i == 39 ? $"message {i}: {text}" : $"message {i}");
        }

        var (hits, _) = await StorageScan.FindAsync(azurite.ConnectionString, text);

        Assert.Equal(
            [$"table {prefix}Scan p/r", $"blob {prefix}-blobs/payload.json.gz", $"queue {prefix}-queue"],
            hits.Where(h => h.Contains(prefix, StringComparison.Ordinal)));
        Assert.Empty((await StorageScan.FindAsync(azurite.ConnectionString, text + "-absent")).Hits);
        var left = new List<string>();
        while ((await queue.ReceiveMessagesAsync(32)).Value is { Length: > 0 } received)
        {
            left.AddRange(received.Select(m => m.Body.ToString()));
        }

        Assert.Equal(50, left.Distinct().Count());
    }
}
