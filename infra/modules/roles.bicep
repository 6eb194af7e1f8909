// Least privilege: the app's identity gets exactly the data roles its connections use, each on the one resource it
// needs; the deploying user gets only what the azd hook needs (writing the datastore key once).
@description('The app\'s user-assigned identity.')
param appIdentityName string
@description('The Python host\'s user-assigned identity (the Python Function app).')
param pythonIdentityName string
@description('The deploying user or service principal; empty assigns nothing to it.')
param deployerPrincipalId string
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string
param storageAccountName string
@description('The Python host\'s own storage account (its deployment package and its Functions host\'s blobs).')
param pythonStorageAccountName string
param serviceBusNamespaceName string
param keyVaultName string
param applicationInsightsName string

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: appIdentityName
}

resource pythonIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: pythonIdentityName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource pythonStorageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: pythonStorageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

// The Python host's channel: it takes launches and input, and sends replies, on these queues only. (The .NET app's
// namespace-wide Sender and Receiver cover its side: it sends launches and input, and receives replies.)
resource pythonJobs 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: serviceBus
  name: 'python-jobs'
}

resource pythonInput 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: serviceBus
  name: 'python-input'
}

resource pythonReplies 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: serviceBus
  name: 'python-replies'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Blob Data Owner, not Contributor: the Functions host and the Durable task hub manage blob leases and containers.
resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]: {
  name: guid(storage.id, appIdentity.id, role)
  scope: storage
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource appServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  roles.serviceBusDataSender
  roles.serviceBusDataReceiver
]: {
  name: guid(serviceBus.id, appIdentity.id, role)
  scope: serviceBus
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appIdentity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appIdentity.id, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// The Python app: its own storage account (its deployment package and the Functions host's blobs), its three queues,
// its telemetry. Nothing of the .NET app's account or Key Vault: the datastore, the audit, the packs' configs and the
// .NET host's keys stay out of reach of the pack code it runs.
resource pythonStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pythonStorageAccount.id, pythonIdentity.id, roles.storageBlobDataOwner)
  scope: pythonStorageAccount
  properties: {
    principalId: pythonIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource pythonJobsReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pythonJobs.id, pythonIdentity.id, roles.serviceBusDataReceiver)
  scope: pythonJobs
  properties: {
    principalId: pythonIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
  }
}

resource pythonInputReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pythonInput.id, pythonIdentity.id, roles.serviceBusDataReceiver)
  scope: pythonInput
  properties: {
    principalId: pythonIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
  }
}

resource pythonRepliesSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pythonReplies.id, pythonIdentity.id, roles.serviceBusDataSender)
  scope: pythonReplies
  properties: {
    principalId: pythonIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
  }
}

resource pythonTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, pythonIdentity.id, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: pythonIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource deployerSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}
