using System.CommandLine;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Cli.Commands;

/// <summary>storm auth USER: a token for a user of the server's htpasswd file, as st2 auth gets one.</summary>
internal static class AuthCommand
{
    public static Command Create()
    {
        var user = new Argument<string>("USER");
        var password = new Option<string?>("--password", "-p") { Description = "The password (default: asked for, not echoed)" };
        var ttl = new Option<int?>("--ttl", "-l") { Description = "Seconds the token lasts (default: the server's, one day)" };
        var onlyToken = new Option<bool>("--only-token", "-t") { Description = "Print only the token (export STORM_AUTH_TOKEN=$(storm auth USER -t))" };
        var api = CliOutput.ApiOption();
        var command = new Command("auth", "Get a token with a user name and password (then send it as STORM_AUTH_TOKEN)") { user, password, ttl, onlyToken, api };
        command.SetAction(async (r, ct) =>
        {
            var secret = r.GetValue(password) ?? ReadPassword();
            var url = Client.StormClient.ResolveUrl(r.GetValue(api));
            using var http = new HttpClient { BaseAddress = new Uri(url.ToString().TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
            using var request = new HttpRequestMessage(HttpMethod.Post, "auth/v1/tokens")
            {
                Content = new StringContent(new JsonObject { ["ttl"] = r.GetValue(ttl) }.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{r.GetValue(user)}:{secret}")));
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, ct);
            }
            catch (HttpRequestException ex)
            {
                return CliOutput.Error($"cannot reach the ServerlessStorm API at {url}: {ex.Message}", CliOutput.Unreachable);
            }

            using (response)
            {
                var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct) is { Length: > 0 } text ? text : "{}");
                if (!response.IsSuccessStatusCode)
                {
                    return CliOutput.Error(body?["faultstring"]?.GetValue<string>() ?? $"HTTP {(int)response.StatusCode}", CliOutput.Failed);
                }

                Console.WriteLine(r.GetValue(onlyToken) ? body!["token"]!.GetValue<string>() : CliOutput.Json(body));
                return CliOutput.Ok;
            }
        });
        return command;
    }

    private static string ReadPassword()
    {
        if (Console.IsInputRedirected)
        {
            return Console.ReadLine() ?? "";
        }

        Console.Error.Write("Password: ");
        var password = new StringBuilder();
        for (var key = Console.ReadKey(intercept: true); key.Key != ConsoleKey.Enter; key = Console.ReadKey(intercept: true))
        {
            if (key.Key == ConsoleKey.Backspace && password.Length > 0)
            {
                password.Length--;
            }
            else if (!char.IsControl(key.KeyChar))
            {
                password.Append(key.KeyChar);
            }
        }

        Console.Error.WriteLine();
        return password.ToString();
    }
}
