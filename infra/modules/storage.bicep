// A storage account of one Function app. The .NET app's: the Functions host's own storage (AzureWebJobsStorage), the
// Durable task hub, the audit tables, payload blobs, the packs' configs and the deployment package. The Python host's:
// its deployment package and its Functions host's blobs. Only Microsoft Entra ID reaches it: shared keys are off.
param name string
param location string
param tags object
@description('The blob container Flex Consumption deploys the app\'s package to.')
param deploymentContainerName string
@description('Whether the packs\' configs live here (the .NET app\'s account).')
param packConfigs bool
@description('With a virtual network, the account is reachable only through private endpoints.')
param privateOnly bool

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateOnly ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: privateOnly ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Packs' configs (StackStorm's configs/<pack>.yaml), one blob per pack, read when the app loads its packs. The name is
// the app's storage prefix (AzureStorage:Prefix, 'storm' by default) followed by '-configs'.
resource configsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (packConfigs) {
  parent: blobs
  name: 'storm-configs'
  properties: {
    publicAccess: 'None'
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
