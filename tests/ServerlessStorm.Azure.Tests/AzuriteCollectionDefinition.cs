using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[CollectionDefinition(AzuriteCollection.Name)]
public sealed class AzuriteCollectionDefinition : ICollectionFixture<AzuriteFixture>;
