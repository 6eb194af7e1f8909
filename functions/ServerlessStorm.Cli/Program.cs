using System.CommandLine;
using ServerlessStorm.Cli.Commands;

var root = new RootCommand("ServerlessStorm: event-driven automation in the spirit of StackStorm.")
{
    ServeCommand.Create(),
    PackCommands.Create(),
    RuleCommands.Create(),
    RunCommand.Create(),
    ExecutionCommands.Create(),
    WebhookCommands.Create(),
    KeyCommands.Create(),
    InquiryCommands.Create(),
    WorkflowCommands.Create(),
    ApiKeyCommands.Create(),
    AuthCommand.Create(),
};

return await root.Parse(args).InvokeAsync();
