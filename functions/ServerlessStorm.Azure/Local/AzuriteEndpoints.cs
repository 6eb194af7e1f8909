namespace ServerlessStorm.Azure.Local;

/// <summary>The three ports of an Azurite instance and the connection string that reaches them.</summary>
public sealed record AzuriteEndpoints(int BlobPort = 10000, int QueuePort = 10001, int TablePort = 10002, string Host = "127.0.0.1")
{
    // Azurite's well-known development account; it is public and grants nothing outside the emulator.
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    public static AzuriteEndpoints Default { get; } = new();

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};" +
        $"BlobEndpoint=http://{Host}:{BlobPort}/devstoreaccount1;QueueEndpoint=http://{Host}:{QueuePort}/devstoreaccount1;" +
        $"TableEndpoint=http://{Host}:{TablePort}/devstoreaccount1;";

    public IEnumerable<int> Ports => [BlobPort, QueuePort, TablePort];
}
