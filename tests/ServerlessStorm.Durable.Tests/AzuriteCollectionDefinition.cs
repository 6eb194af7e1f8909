using ServerlessStorm.Testing;

namespace ServerlessStorm.Durable.Tests;

[CollectionDefinition(AzuriteCollection.Name)]
public sealed class AzuriteCollectionDefinition : ICollectionFixture<AzuriteFixture>;
