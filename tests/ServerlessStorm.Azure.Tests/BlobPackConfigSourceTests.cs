using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Packs;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>Packs' configs from a Blob container, as the Function app reads them.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobPackConfigSourceTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task ConfigsContainer_GivesEachPacksYaml_AndTheLoaderChecksItAgainstTheSchema_NamingTheBlob()
    {
        var options = azurite.NewStorageOptions();
        var container = new BlobServiceClient(options.ConnectionString).GetBlobContainerClient(options.Names.ConfigsContainer);
        await container.CreateIfNotExistsAsync();
        await container.UploadBlobAsync("good.yaml", BinaryData.FromString("region: eu-west\n"));
        await container.UploadBlobAsync("bad.yaml", BinaryData.FromString("region: eu-west\nretries: many\n"));
        await container.UploadBlobAsync("notes/readme.yaml", BinaryData.FromString("x: 1\n"));
        using var packs = new TempPacks().WithPack("good").WithPack("bad");
        const string schema = "region: {type: string}\nretries: {type: integer, default: 3}\n";
        packs.Write("good/config.schema.yaml", schema);
        packs.Write("bad/config.schema.yaml", schema);

        var source = new BlobPackConfigSource(Options.Create(options));
        var documents = await source.ReadAllAsync(CancellationToken.None);
        var catalog = StormEngineServices.LoadCatalog(new StormOptions { PacksPath = packs.Root }, RunnerRegistry.Default, NullLogger.Instance, source);

        Assert.Equal(["bad", "good"], documents.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("""{"region":"eu-west","retries":3}""", catalog.Packs["good"].Config.ToJsonString());
        Assert.False(catalog.Packs.ContainsKey("bad"));
        var problem = Assert.Single(catalog.LoadReport.Single(p => p.Name == "bad").Problems);
        Assert.Equal($"{options.Names.ConfigsContainer}/bad.yaml:2:10: retries: expected integer, got a string ('many')", problem.ToString());
    }

    [Fact]
    public async Task MissingContainer_HoldsNoConfigs()
    {
        var options = azurite.NewStorageOptions();

        var documents = await new BlobPackConfigSource(Options.Create(options)).ReadAllAsync(CancellationToken.None);

        Assert.Empty(documents);
    }
}
