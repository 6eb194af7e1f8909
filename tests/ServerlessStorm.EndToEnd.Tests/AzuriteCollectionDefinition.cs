using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

[CollectionDefinition(AzuriteCollection.Name)]
public sealed class AzuriteCollectionDefinition : ICollectionFixture<AzuriteFixture>;
