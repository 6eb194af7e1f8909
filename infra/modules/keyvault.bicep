// Key Vault with RBAC authorization for the datastore's key. The secret itself is not created here (a deployment
// would have to carry it in a parameter or output): the azd hook hooks/datastore-key.sh creates it once.
param name string
param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    // Short retention and no purge protection, so `azd down --purge` frees the name for the next `azd up` of the
    // same environment; turn purge protection on for a production vault.
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
