using ServerlessStorm.Testing;

namespace ServerlessStorm.Functions.Tests;

[CollectionDefinition(AzuriteCollection.Name)]
public sealed class AzuriteCollectionDefinition : ICollectionFixture<AzuriteFixture>;
