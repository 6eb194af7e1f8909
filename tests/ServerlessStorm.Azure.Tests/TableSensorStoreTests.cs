using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Sensors;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class TableSensorStoreContractTests(AzuriteFixture azurite) : SensorStoreContractTests
{
    protected override Task<ISensorStore> CreateStoreAsync() => Task.FromResult<ISensorStore>(new TableSensorStore(Options.Create(azurite.NewStorageOptions())));
}
