// The optional virtual network: the apps' outbound traffic goes through integrated subnets, and the storage
// accounts are reached only through private endpoints. Service Bus Standard has no private endpoints (they need
// Premium), so the namespace stays public, reachable by Microsoft Entra ID only (local auth is off).
param name string
param location string
param tags object
@description('The storage accounts reached through private endpoints (the .NET app\'s, then the Python host\'s).')
param storageAccountIds array

var storageServices = [
  'blob'
  'queue'
  'table'
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        '10.0.0.0/16'
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: '10.0.1.0/24'
          // Flex Consumption integrates through a subnet delegated to Container Apps environments.
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: '10.0.2.0/24'
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
      {
        // The Python app's own (functions/ServerlessStorm.PythonHost): one subnet per Flex Consumption app.
        name: 'python-app'
        properties: {
          addressPrefix: '10.0.3.0/24'
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for service in storageServices: {
  name: 'privatelink.${service}.${environment().suffixes.storage}'
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for (service, i) in storageServices: {
  parent: zones[i]
  name: '${name}-link'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

// One endpoint per account and service (every account has all three, though the Python host's uses only blobs).
var accountServices = flatten(map(storageAccountIds, id => map(range(0, length(storageServices)), i => {
  accountId: id
  service: storageServices[i]
  zone: i
})))

resource endpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for target in accountServices: {
  name: 'pe-${last(split(target.accountId, '/'))}-${target.service}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: vnet.properties.subnets[1].id
    }
    privateLinkServiceConnections: [
      {
        name: target.service
        properties: {
          privateLinkServiceId: target.accountId
          groupIds: [
            target.service
          ]
        }
      }
    ]
  }
}]

resource endpointZones 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (target, i) in accountServices: {
  parent: endpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: target.service
        properties: {
          privateDnsZoneId: zones[target.zone].id
        }
      }
    ]
  }
}]

output appSubnetId string = vnet.properties.subnets[0].id
output pythonAppSubnetId string = vnet.properties.subnets[2].id
