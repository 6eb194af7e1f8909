using System.Text;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Api;

namespace ServerlessStorm.Engine.Security;

/// <summary>Checks a bearer token from an identity provider (Entra ID in Azure) and names its user.</summary>
public interface IBearerTokenValidator
{
    /// <summary>The user the token names, or null when it is not valid here (signature, issuer, audience, lifetime).</summary>
    Task<string?> ValidateAsync(string token, CancellationToken cancellationToken);
}

/// <summary>
/// The outcome of authenticating one request: the caller, or why there is none. A signed webhook delivery also brings
/// the id that its signature vouches for, and a refused one is recorded.
/// </summary>
public sealed record AuthOutcome(Caller? Caller, string? Failure)
{
    public string? DeliveryId { get; init; }

    /// <summary>A refused delivery to a hook that declares its signature: recorded as a rejected trigger instance.</summary>
    public bool RecordRefusal { get; init; }

    public static AuthOutcome Refused(string why) => new(null, why);
}

/// <summary>
/// Authenticates a request the way StackStorm's API does: <c>X-Auth-Token</c> (a token from <c>POST /auth/v1/tokens</c>)
/// or <c>St2-Api-Key</c>, in a header — or, for webhooks only, in the query (<c>?x-auth-token=</c>,
/// <c>?st2-api-key=</c>), since many senders can set no header — or an identity provider's
/// <c>Authorization: Bearer</c> token where one is configured. Password routes take HTTP Basic instead.
/// </summary>
public sealed class ApiAuthenticator(CredentialService credentials, IUserBackend users, IOptions<AuthOptions> options, IEnumerable<IBearerTokenValidator> bearers,
    Packs.PackCatalog catalog, WebhookSignatures signatures)
{
    public const string TokenHeader = "X-Auth-Token";
    public const string ApiKeyHeader = "St2-Api-Key";
    public const string TokenQuery = "x-auth-token";
    public const string ApiKeyQuery = "st2-api-key";

    public const string MissingCredentials = "Unauthorized - One of Token or API key required.";

    private readonly IBearerTokenValidator[] _bearers = [.. bearers];

    /// <param name="hook">For a webhook: its name, whose declaration may ask for a signature instead of (or beside) a key.</param>
    public async Task<AuthOutcome> AuthenticateAsync(ApiRequest request, RouteAuth mode, CancellationToken cancellationToken, string? hook = null)
    {
        // A hook that declares a signature is checked even with authentication off: the declaration is the hook's.
        if (mode == RouteAuth.Webhook && hook is not null && catalog.Webhooks.TryGetValue(hook.Trim('/'), out var declared) && declared.Verify is not null)
        {
            var check = await signatures.VerifyAsync(declared, request, cancellationToken);
            if (!check.Verified)
            {
                return AuthOutcome.Refused($"Unauthorized - the delivery's signature was refused: {check.Refusal}") with { RecordRefusal = true };
            }

            if (!declared.RequireApiKey || !options.Value.Enabled)
            {
                return new AuthOutcome(new Caller(declared.Sender, Caller.BySignature), null) { DeliveryId = check.DeliveryId };
            }

            var keyed = await CredentialsAsync(request, query: true, cancellationToken);
            return keyed.Caller is null ? keyed : keyed with { DeliveryId = check.DeliveryId };
        }

        if (!options.Value.Enabled)
        {
            return new AuthOutcome(new Caller(options.Value.AdminUser, Caller.ByAuthDisabled), null);
        }

        return mode == RouteAuth.Password
            ? await PasswordAsync(request, cancellationToken)
            : await CredentialsAsync(request, query: mode == RouteAuth.Webhook, cancellationToken);
    }

    private async Task<AuthOutcome> CredentialsAsync(ApiRequest request, bool query, CancellationToken cancellationToken)
    {
        if ((request.Header(TokenHeader) ?? (query ? request.Query.GetValueOrDefault(TokenQuery) : null)) is { } token)
        {
            return await credentials.FindAsync(CredentialKind.Token, token, cancellationToken) switch
            {
                null => AuthOutcome.Refused("Unauthorized - the token is unknown or was revoked."),
                var t when !credentials.IsUsable(t) => AuthOutcome.Refused("Unauthorized - Token has expired."),
                var t => new AuthOutcome(new Caller(t.User, Caller.ByToken), null),
            };
        }

        if ((request.Header(ApiKeyHeader) ?? (query ? request.Query.GetValueOrDefault(ApiKeyQuery) : null)) is { } key)
        {
            return await credentials.FindAsync(CredentialKind.ApiKey, key, cancellationToken) switch
            {
                null => AuthOutcome.Refused("Unauthorized - the API key is unknown (deleted, or from another server)."),
                var k when !credentials.IsUsable(k) => AuthOutcome.Refused("Unauthorized - API key is disabled."),
                var k => new AuthOutcome(new Caller(k.User, Caller.ByApiKey), null),
            };
        }

        if (_bearers.Length > 0 && request.Header("Authorization") is { } authorization && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var bearer in _bearers)
            {
                if (await bearer.ValidateAsync(authorization["Bearer ".Length..].Trim(), cancellationToken) is { } user)
                {
                    return new AuthOutcome(new Caller(user, Caller.ByEntraId), null);
                }
            }

            return AuthOutcome.Refused("Unauthorized - the bearer token is not valid here.");
        }

        return AuthOutcome.Refused(MissingCredentials);
    }

    private async Task<AuthOutcome> PasswordAsync(ApiRequest request, CancellationToken cancellationToken)
    {
        const string refused = "Invalid or missing credentials";
        if (request.Header("Authorization") is not { } authorization || !authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthOutcome.Refused(refused);
        }

        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization["Basic ".Length..].Trim()));
        }
        catch (FormatException)
        {
            return AuthOutcome.Refused(refused);
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return AuthOutcome.Refused(refused);
        }

        var user = decoded[..colon];
        return await users.AuthenticateAsync(user, decoded[(colon + 1)..], cancellationToken)
            ? new AuthOutcome(new Caller(user, Caller.ByPassword), null)
            : AuthOutcome.Refused(refused);
    }
}
