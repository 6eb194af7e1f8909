namespace ServerlessStorm.Engine.Diagnostics;

/// <summary>What a log line says of a failure it does not need a stack trace for.</summary>
public static class ExceptionCause
{
    /// <summary>The innermost exception's type and message (connection refused, a timeout): the layers above only wrap it.</summary>
    public static string Of(Exception exception)
    {
        while (exception.InnerException is not null)
        {
            exception = exception.InnerException;
        }

        return $"{exception.GetType().Name}: {exception.Message}";
    }
}
