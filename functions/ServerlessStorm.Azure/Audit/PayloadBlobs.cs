using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// The claim check: text too long for a Table property is kept in a blob and the row keeps the blob's name.
/// Reads resolve the reference, so callers always get the whole value. A blob's name carries a hash of its content:
/// two writers of one row (one of which loses the row's ETag check) never write the same blob with different text,
/// so the row that is stored always points at its own content.
/// </summary>
public sealed class PayloadBlobs(BlobContainerClient container, int inlineLimit)
{
    private const string ReferencePrefix = "blob:";
    private readonly Lazy<Task> _created = new(() => container.CreateIfNotExistsAsync());

    /// <summary>The text itself when short enough, else a reference to the blob it was written to.</summary>
    public async Task<string?> StoreAsync(string? text, string blobName, CancellationToken cancellationToken)
    {
        if (text is null || text.Length <= inlineLimit && !text.StartsWith(ReferencePrefix, StringComparison.Ordinal))
        {
            return text;
        }

        await _created.Value;
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)).AsSpan(0, 8));
        var extension = Path.GetExtension(blobName);
        var name = $"{blobName[..^extension.Length]}.{hash}{extension}";
        await container.GetBlobClient(name).UploadAsync(BinaryData.FromString(text), overwrite: true, cancellationToken); // same name, same text
        return ReferencePrefix + name;
    }

    public async Task<string?> LoadAsync(string? stored, CancellationToken cancellationToken)
    {
        if (stored is null || !stored.StartsWith(ReferencePrefix, StringComparison.Ordinal))
        {
            return stored;
        }

        try
        {
            var content = await container.GetBlobClient(stored[ReferencePrefix.Length..]).DownloadContentAsync(cancellationToken);
            return content.Value.Content.ToString();
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            throw new InvalidOperationException($"the audit refers to blob '{stored[ReferencePrefix.Length..]}', which is missing", ex);
        }
    }

    /// <summary>Deletes the blobs whose names start with <paramref name="prefix"/>, but those <paramref name="keep"/> chooses; how many.</summary>
    public async Task<int> PurgeAsync(string prefix, Func<string, bool> keep, CancellationToken cancellationToken)
    {
        await _created.Value;
        var deleted = 0;
        await Parallel.ForEachAsync(container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken),
            new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken }, async (blob, ct) =>
            {
                if (!keep(blob.Name) && await container.GetBlobClient(blob.Name).DeleteIfExistsAsync(cancellationToken: ct))
                {
                    Interlocked.Increment(ref deleted);
                }
            });
        return deleted;
    }
}
