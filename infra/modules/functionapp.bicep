// A Function app on Flex Consumption (FC1, Linux): the .NET 10 isolated app (the engine), or the Python 3.11 app that
// runs pack code (functions/ServerlessStorm.PythonHost). Every connection it makes is by its user-assigned managed
// identity; no setting holds a key.
param name string
param planName string
param location string
param tags object
@description('The value of the azd-service-name tag: the service in azure.yaml deployed to this app.')
param serviceName string
@description('The worker runtime: the engine (dotnet-isolated) or the Python host (python).')
@allowed([
  'dotnet-isolated'
  'python'
])
param runtimeName string = 'dotnet-isolated'
@description('The runtime version: 10.0 for .NET, 3.11 for Python.')
param runtimeVersion string = '10.0'
param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param serviceBusNamespace string
param applicationInsightsConnectionString string
param keyVaultUri string = ''
@description('The Key Vault secret holding the datastore key (created by the azd hook).')
param datastoreKeySecretName string = ''
@description('Microsoft Entra ID sign-in: the tenant; empty leaves Entra ID sign-in off.')
param entraTenantId string = ''
@description('Microsoft Entra ID sign-in: the API app registration tokens must be for.')
param entraAudience string = ''
@description('Days the audit keeps; 0 keeps everything.')
param retentionDays int = 0
param maximumInstanceCount int
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int
@description('Instances kept warm for the Durable Functions orchestrations and activities (workflows).')
param alwaysReadyDurableInstances int = 0
@description('Instances kept warm for the HTTP functions (webhooks and the API), for events without a cold start.')
param alwaysReadyHttpInstances int = 0
@description('The subnet the app is integrated with; empty for none.')
param subnetId string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

var alwaysReady = concat(
  alwaysReadyDurableInstances > 0 ? [{ name: 'durable', instanceCount: alwaysReadyDurableInstances }] : [],
  alwaysReadyHttpInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyHttpInstances }] : []
)

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReady
      }
    }
  }
}

// Publishing with a user name and password is off: azd deploys with the signed-in user's Microsoft Entra token.
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// What the app and the Functions host read; the cross-check test compares this list with what the code reads.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = if (runtimeName == 'dotnet-isolated') {
  parent: site
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
    AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
    AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    ServiceBus__fullyQualifiedNamespace: serviceBusNamespace
    ServiceBus__credential: 'managedidentity'
    ServiceBus__clientId: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    Storm__Datastore__EncryptionKey: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${datastoreKeySecretName})'
    // Empty: Entra ID sign-in off (API keys and tokens only).
    Storm__Auth__EntraId__TenantId: entraTenantId
    Storm__Auth__EntraId__Audience: entraAudience
    Storm__Retention: string(retentionDays)
  }
}

// The Python host's: the Functions host's storage (blob only: no queue or table trigger runs there), the Service Bus
// trigger's identity connection, which function_app.py's own client reads too, and telemetry.
resource pythonSettings 'Microsoft.Web/sites/config@2024-04-01' = if (runtimeName == 'python') {
  parent: site
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
