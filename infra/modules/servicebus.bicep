// The Service Bus namespace the app's bus runs on: local (SAS key) authentication off, and one queue per bus queue
// with the settings the app expects of it.
param name string
param location string
param tags object

// The bus queues, under the names the app publishes to (StormQueues); timers holds each timer's next occurrence
// as a scheduled message.
var queueNames = [
  'trigger-instances'
  'action-executions'
  'timers'
]

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for queueName in queueNames: {
  parent: namespace
  name: queueName
  properties: {
    // A message's id is its CloudEvent id, so a publish retried after an unclear failure is stored once.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    // The app's Bus:MaxDeliveryCount: on the last delivery the app marks the audit before the message is dead-lettered.
    maxDeliveryCount: 5
    // The app renews the lock while its handler runs; a short lock lets another instance take over the message of
    // an instance that died within about half a minute.
    lockDuration: 'PT30S'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    enablePartitioning: false
  }
}]

// The Python host's channel (PythonChannel in the .NET app, function_app.py in the Python app): each launch's messages
// are one session (its id), so they stay in order and reach only that launch's two ends.
var pythonQueues = [
  {
    name: 'python-jobs'
    // One delivery: a launch whose Python instance died is not run a second time (the .NET side sees no exit by the
    // deadline and ends the execution); an action may not be safe to repeat.
    maxDeliveryCount: 1
  }
  {
    name: 'python-input'
    maxDeliveryCount: 10
  }
  {
    name: 'python-replies'
    maxDeliveryCount: 10
  }
]

resource sessionQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for queue in pythonQueues: {
  parent: namespace
  name: queue.name
  properties: {
    requiresSession: true
    maxDeliveryCount: queue.maxDeliveryCount
    lockDuration: 'PT1M'
    // Every message expires at its launch's deadline (the sender sets it); this is only the ceiling.
    defaultMessageTimeToLive: 'P1D'
    deadLetteringOnMessageExpiration: false
    enablePartitioning: false
  }
}]

output id string = namespace.id
output name string = namespace.name
// The endpoint is https://<name>.servicebus.windows.net:443/ in the public cloud; the host name is what clients take.
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
