// What an operator watches in the portal: a workbook over the engine's metrics and spans, and alerts (with an
// action group that e-mails) on failed executions, dead letters, silent timers and a backlog. Every query uses only
// the metric, span and attribute names the code emits (a test checks them against the code).
param applicationInsightsName string
param location string
param tags object
@description('Where alerts are e-mailed; empty: the alerts fire in the portal only.')
param alertEmail string
@description('Failed or timed-out executions in 15 minutes that raise an alert.')
param failedExecutionsThreshold int
@description('Minutes the oldest message on a bus queue may wait before the backlog alert fires (on Service Bus a request counts while its action runs: allow the longest action).')
param backlogMinutes int
@description('The longest a pack\'s timers may stay silent (ISO 8601, e.g. PT2H); empty for no timer alert.')
param timerSilence string

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(applicationInsights.id, 'serverlessstorm-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'ServerlessStorm'
    category: 'workbook'
    sourceId: applicationInsights.id
    serializedData: loadTextContent('../monitoring/workbook.json')
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${applicationInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'storm'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var timerTypes = '"core.st2.IntervalTimer", "core.st2.CronTimer", "core.st2.DateTimer"'

var alerts = concat([
  {
    name: 'failed-executions'
    description: 'Executions failed or timed out'
    severity: 2
    window: 'PT15M'
    query: 'customMetrics | where name == "storm.executions.finished" | where tostring(customDimensions["status"]) in ("failed", "timeout") | summarize measure = sum(valueSum)'
    operator: 'GreaterThanOrEqual'
    threshold: failedExecutionsThreshold
  }
  {
    name: 'dead-letters'
    description: 'A message was dead-lettered: storm dead-letter list shows why, storm dead-letter replay runs it again'
    severity: 1
    window: 'PT5M'
    query: 'customMetrics | where name == "storm.messages.dead_lettered" | summarize measure = sum(valueSum)'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'backlog'
    description: 'A message has waited on a bus queue longer than the backlog allows'
    severity: 2
    window: 'PT15M'
    query: 'customMetrics | where name == "storm.bus.queue.oldest_age" | summarize measure = max(valueMax)'
    operator: 'GreaterThan'
    threshold: backlogMinutes * 60
  }
], empty(timerSilence) ? [] : [
  {
    name: 'timers-silent'
    description: 'No timer fired for longer than the pack\'s timers allow'
    severity: 2
    window: timerSilence
    query: 'customMetrics | where name == "storm.triggers.accepted" | where tostring(customDimensions["trigger"]) in (${timerTypes}) | summarize measure = sum(valueSum)'
    operator: 'LessThan'
    threshold: 1
  }
])

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in alerts: {
  name: '${alert.name}-${applicationInsightsName}'
  location: location
  tags: tags
  properties: {
    displayName: 'ServerlessStorm: ${alert.description}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: alert.window
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Total'
          metricMeasureColumn: 'measure'
          operator: alert.operator
          threshold: alert.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
}]
