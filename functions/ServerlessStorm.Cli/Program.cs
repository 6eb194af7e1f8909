using System.CommandLine;
using ServerlessStorm.Cli.Commands;

var root = new RootCommand("ServerlessStorm: event-driven automation in the spirit of StackStorm.")
{
    ServeCommand.Create(),
    PackCommands.Create(),
    SensorCommands.Create(),
    RuleCommands.Create(),
    RunCommand.Create(),
    ExecutionCommands.Create(),
    WebhookCommands.Create(),
    KeyCommands.Create(),
    InquiryCommands.Create(),
    WorkflowCommands.Create(),
    ApiKeyCommands.Create(),
    DeadLetterCommands.Create(),
    PurgeCommand.Create(),
    AuthCommand.Create(),
};

// storm serve stops itself on Ctrl+C and SIGTERM (the web host's lifetime): it stores the journal, stops its
// Azurite and exits. Left to the command line's own handler as well, the two stops raced and the process hung.
var invocation = new InvocationConfiguration { ProcessTerminationTimeout = args.FirstOrDefault() == "serve" ? null : TimeSpan.FromSeconds(2) };
return await root.Parse(args).InvokeAsync(invocation);
