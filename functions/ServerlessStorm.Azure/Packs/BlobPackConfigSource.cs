using Azure;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Azure.Packs;

/// <summary>
/// Packs' configs from a Blob container (<c>&lt;prefix&gt;-configs</c>), one <c>&lt;pack&gt;.yaml</c> blob each: in
/// Azure the packs ship inside the app package, while each deployment's values (and its <c>{{ st2kv... }}</c>
/// references) are kept beside it, changed without a new package. A missing container holds no configs.
/// </summary>
public sealed class BlobPackConfigSource(BlobContainerClient container) : IPackConfigSource
{
    public BlobPackConfigSource(IOptions<AzureStorageOptions> options)
        : this(new StorageClients(options.Value).Blobs.GetBlobContainerClient(options.Value.Names.ConfigsContainer))
    {
    }

    public async Task<IReadOnlyDictionary<string, PackConfigDocument>> ReadAllAsync(CancellationToken cancellationToken)
    {
        var found = new Dictionary<string, PackConfigDocument>(StringComparer.Ordinal);
        try
        {
            await foreach (var blob in container.GetBlobsAsync(cancellationToken: cancellationToken))
            {
                var pack = blob.Name.EndsWith(".yaml", StringComparison.Ordinal) ? blob.Name[..^5] : blob.Name.EndsWith(".yml", StringComparison.Ordinal) ? blob.Name[..^4] : null;
                // A blob in a "folder" is not a pack's config: StackStorm's configs folder is flat.
                if (pack is null || pack.Contains('/', StringComparison.Ordinal) || found.ContainsKey(pack))
                {
                    continue;
                }

                var location = $"{container.Name}/{blob.Name}";
                // The loader checks the size against its YAML limits, as it does for a file.
                var text = (await container.GetBlobClient(blob.Name).DownloadContentAsync(cancellationToken)).Value.Content.ToString();
                found[pack] = new PackConfigDocument(pack, location, text);
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // No container: no configs, as with no configs folder.
        }

        return found;
    }

    public override string ToString() => $"blob container {container.Name}";
}
