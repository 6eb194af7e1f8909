// ServerlessStorm on Azure: `azd up` provisions this (one resource group) and deploys the Function app into it.
// Modules are local: the public module registry is not needed to build or deploy it.
targetScope = 'subscription'

@minLength(1)
@maxLength(32)
@description('The azd environment name; it names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('The Azure region for every resource.')
param location string

@description('The deploying user or service principal (azd sets it); it may write the datastore key once.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Put the app in a virtual network and reach storage only through private endpoints.')
param vnetEnabled bool = false

@description('Microsoft Entra ID sign-in for the API: the tenant (empty: API keys and tokens only).')
param entraTenantId string = ''

@description('Microsoft Entra ID sign-in for the API: the app registration (client id or application id URI) tokens are for.')
param entraAudience string = ''

@description('The most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Instances kept warm for workflows (Durable Functions).')
@minValue(0)
param alwaysReadyDurableInstances int = 1

@description('Where alerts are e-mailed (failed executions, dead letters, a backlog, silent timers); empty: portal only.')
param alertEmail string = ''

@description('The longest the pack\'s timers may all stay silent (ISO 8601 duration, e.g. PT2H); empty: no timer alert.')
param timerSilence string = ''

@description('Days the audit keeps (trigger instances, executions, their payloads and output); older days are purged daily. 0 keeps everything.')
@minValue(0)
param retentionDays int = 30

@description('Instances kept warm for webhooks and the API (0: the first request after idle waits for a cold start).')
@minValue(0)
param alwaysReadyHttpInstances int = 0

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var identityName = '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
// The Python host (functions/ServerlessStorm.PythonHost): its own app, identity and storage account. Pack code runs
// there, so its identity reaches nothing of the .NET app's storage (datastore, audit, configs, host keys).
var pythonAppName = '${abbrs.webSitesFunctions}py-${resourceToken}'
var pythonIdentityName = '${abbrs.managedIdentityUserAssignedIdentities}py-${resourceToken}'
var pythonStorageAccountName = '${abbrs.storageStorageAccounts}py${resourceToken}'
var pythonDeploymentContainerName = 'app-package-${take(pythonAppName, 32)}'
var storageAccountName = '${abbrs.storageStorageAccounts}${resourceToken}'
var serviceBusName = '${abbrs.serviceBusNamespaces}${resourceToken}'
var keyVaultName = '${abbrs.keyVaultVaults}${resourceToken}'
var applicationInsightsName = '${abbrs.insightsComponents}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}'
var datastoreKeySecretName = 'storm-datastore-key'

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  scope: group
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

module pythonIdentity 'modules/identity.bicep' = {
  scope: group
  params: {
    name: pythonIdentityName
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  scope: group
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: applicationInsightsName
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  scope: group
  params: {
    name: storageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    packConfigs: true
    privateOnly: vnetEnabled
  }
}

module pythonStorage 'modules/storage.bicep' = {
  scope: group
  params: {
    name: pythonStorageAccountName
    location: location
    tags: tags
    deploymentContainerName: pythonDeploymentContainerName
    packConfigs: false
    privateOnly: vnetEnabled
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  scope: group
  params: {
    name: serviceBusName
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  scope: group
  params: {
    name: keyVaultName
    location: location
    tags: tags
  }
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  scope: group
  params: {
    name: '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
    storageAccountIds: [
      storage.outputs.id
      pythonStorage.outputs.id
    ]
  }
}

module observability 'modules/observability.bicep' = {
  scope: group
  params: {
    applicationInsightsName: applicationInsightsName
    location: location
    tags: tags
    alertEmail: alertEmail
    failedExecutionsThreshold: 5
    backlogMinutes: 10
    timerSilence: timerSilence
  }
  dependsOn: [
    monitoring
  ]
}

module roles 'modules/roles.bicep' = {
  scope: group
  params: {
    appIdentityName: identityName
    pythonIdentityName: pythonIdentityName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    storageAccountName: storageAccountName
    pythonStorageAccountName: pythonStorageAccountName
    serviceBusNamespaceName: serviceBusName
    keyVaultName: keyVaultName
    applicationInsightsName: applicationInsightsName
  }
  // Names known before deployment keep the assignments' ids stable; the resources must exist first.
  dependsOn: [
    identity
    pythonIdentity
    storage
    pythonStorage
    serviceBus
    keyVault
    monitoring
  ]
}

module functionApp 'modules/functionapp.bicep' = {
  scope: group
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'functions'
    runtimeName: 'dotnet-isolated'
    runtimeVersion: '10.0'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    datastoreKeySecretName: datastoreKeySecretName
    entraTenantId: entraTenantId
    entraAudience: entraAudience
    retentionDays: retentionDays
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReadyDurableInstances: alwaysReadyDurableInstances
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    subnetId: vnetEnabled ? network!.outputs.appSubnetId : ''
  }
  // The app starts reading its storage, bus and key as soon as it exists: its roles come first.
  dependsOn: [
    roles
  ]
}

// Python actions and sensors run here: Python 3.11 on Flex Consumption, taking launches from the python-jobs queue
// (docs/deployment.md, "Python actions and sensors in Azure"). The .NET app stays in charge of every execution.
module pythonApp 'modules/functionapp.bicep' = {
  scope: group
  params: {
    name: pythonAppName
    planName: '${abbrs.webServerFarms}py-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'python'
    runtimeName: 'python'
    runtimeVersion: '3.11'
    identityId: pythonIdentity.outputs.id
    identityClientId: pythonIdentity.outputs.clientId
    storageBlobEndpoint: pythonStorage.outputs.blobEndpoint
    storageQueueEndpoint: pythonStorage.outputs.queueEndpoint
    storageTableEndpoint: pythonStorage.outputs.tableEndpoint
    deploymentContainerName: pythonDeploymentContainerName
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    subnetId: vnetEnabled ? network!.outputs.pythonAppSubnetId : ''
  }
  dependsOn: [
    roles
  ]
}

// What azd keeps in the environment (.azure/<env>/.env) and gives the hooks; nothing secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_PYTHON_FUNCTION_APP_NAME string = pythonApp.outputs.name
output STORM_API_URL string = 'https://${functionApp.outputs.defaultHostName}'
output STORM_KEY_VAULT_NAME string = keyVault.outputs.name
output STORM_DATASTORE_KEY_SECRET_NAME string = datastoreKeySecretName
output STORM_SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
// azd runs `dotnet publish` with its environment, and MSBuild takes environment variables as properties: this selects
// the Function app's Service Bus trigger build for this deployment (see ServerlessStorm.Functions.props).
output ServiceBusTriggers bool = true
