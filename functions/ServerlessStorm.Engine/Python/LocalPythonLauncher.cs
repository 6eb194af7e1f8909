using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using ServerlessStorm.Engine.Actions.Runners;

namespace ServerlessStorm.Engine.Python;

/// <summary>
/// Starts the Python host program as a local process (storm serve, and any host with Python beside it), in a session
/// of its own so that killing it kills everything it started.
/// </summary>
public sealed class LocalPythonLauncher : IPythonLauncher
{
    public Task<IPythonProcess> StartAsync(PythonLaunch launch, CancellationToken cancellationToken)
    {
        if (!File.Exists(PythonHostProcess.ProgramPath))
        {
            throw new PythonEnvironmentException($"the Python host program is missing from the installation ({PythonHostProcess.ProgramPath})");
        }

        var interpreter = launch.Interpreter ?? throw new PythonEnvironmentException("no Python interpreter was chosen for this launch");
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        var start = new ProcessStartInfo(interpreter)
        {
            WorkingDirectory = launch.WorkingDirectory ?? Path.GetTempPath(),
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = utf8,
            StandardOutputEncoding = utf8,
            StandardErrorEncoding = utf8,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-u");
        start.ArgumentList.Add(PythonHostProcess.ProgramPath);
        foreach (var argument in launch.Arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Clear();
        foreach (var (name, value) in launch.Environment)
        {
            start.Environment[name] = value;
        }

        try
        {
            return Task.FromResult<IPythonProcess>(new LocalPythonProcess(SessionProcess.Start(start)));
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new PythonEnvironmentException($"the Python interpreter '{interpreter}' cannot be started: {ex.Message}");
        }
    }

    private sealed class LocalPythonProcess : IPythonProcess
    {
        private const int DiagnosticsLimit = 64 * 1024;
        private readonly SessionProcess _session;
        private readonly SemaphoreSlim _writing = new(1, 1);
        private readonly StringBuilder _diagnostics = new();
        private readonly Task _readingStderr;
        private bool _killed;

        public LocalPythonProcess(SessionProcess session)
        {
            _session = session;
            // What the interpreter writes before the program takes over its stderr: a missing module, a crash.
            _readingStderr = Task.Run(async () =>
            {
                var buffer = new char[4096];
                int read;
                while ((read = await session.Process.StandardError.ReadAsync(buffer)) > 0)
                {
                    lock (_diagnostics)
                    {
                        _diagnostics.Append(buffer, 0, Math.Min(read, Math.Max(0, DiagnosticsLimit - _diagnostics.Length)));
                    }
                }
            });
        }

        public int? ExitCode => _killed || !_session.Process.HasExited ? null : _session.Process.ExitCode;

        public string Diagnostics
        {
            get
            {
                lock (_diagnostics)
                {
                    return _diagnostics.ToString();
                }
            }
        }

        public async Task SendAsync(string line, CancellationToken cancellationToken)
        {
            await _writing.WaitAsync(cancellationToken);
            try
            {
                await _session.Process.StandardInput.WriteAsync(line + "\n");
                await _session.Process.StandardInput.FlushAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // the program has exited
            }
            finally
            {
                _writing.Release();
            }
        }

        public async IAsyncEnumerable<string> ReadLinesAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            while (await _session.Process.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
            {
                yield return line;
            }

            await _session.Process.WaitForExitAsync(cancellationToken);
            // Its stderr closes with it, unless something it left behind holds it.
            await _readingStderr.WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        public async Task KillAsync()
        {
            _killed = true;
            _session.KillTree();
            await _session.Process.WaitForExitAsync(CancellationToken.None);
        }

        public async ValueTask DisposeAsync()
        {
            if (!_session.Process.HasExited)
            {
                await KillAsync();
            }

            _session.Dispose();
            _writing.Dispose();
        }
    }
}
