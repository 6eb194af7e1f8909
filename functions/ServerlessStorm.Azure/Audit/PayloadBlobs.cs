using Azure;
using Azure.Storage.Blobs;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// The claim check: text too long for a Table property is kept in a blob and the row keeps the blob's name.
/// Reads resolve the reference, so callers always get the whole value.
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
        await container.GetBlobClient(blobName).UploadAsync(BinaryData.FromString(text), overwrite: true, cancellationToken);
        return ReferencePrefix + blobName;
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
}
