using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Azure.Security;

/// <summary>Microsoft Entra ID sign-in for the API (configuration section <c>Storm:Auth:EntraId</c>).</summary>
public sealed class EntraIdOptions
{
    public const string Section = "Storm:Auth:EntraId";

    /// <summary>The directory (tenant) id; Entra ID is off without it.</summary>
    public string? TenantId { get; set; }

    /// <summary>The audience tokens must be for: the API app registration's client id or its application id URI.</summary>
    public string? Audience { get; set; }

    /// <summary>The authority host (another for sovereign clouds).</summary>
    public string Instance { get; set; } = "https://login.microsoftonline.com/";

    /// <summary>The claims that name the user, the first present wins (a person's sign-in name, else the object id of a managed identity).</summary>
    public IList<string> UserClaims { get; } = ["preferred_username", "upn", "oid"];
}

/// <summary>
/// Validates Entra ID access tokens (<c>Authorization: Bearer</c>) in the engine's gateway, for the Function app and
/// <c>storm serve</c> alike: signature against the tenant's published keys, issuer, audience and lifetime; the user is
/// the first of <see cref="EntraIdOptions.UserClaims"/>, which RBAC assignments name. Validating the token here
/// rather than trusting App Service authentication's headers keeps one implementation for every host and lets it be
/// tested offline with tokens the tests sign.
/// </summary>
public sealed class EntraIdTokenValidator : IBearerTokenValidator
{
    private readonly EntraIdOptions _options;
    private readonly IConfigurationManager<OpenIdConnectConfiguration> _metadata;
    private readonly ILogger<EntraIdTokenValidator> _logger;
    private readonly JsonWebTokenHandler _handler = new();

    public EntraIdTokenValidator(IOptions<EntraIdOptions> options, ILogger<EntraIdTokenValidator> logger, IConfigurationManager<OpenIdConnectConfiguration>? metadata = null)
    {
        _options = options.Value;
        _logger = logger;
        _metadata = metadata ?? new ConfigurationManager<OpenIdConnectConfiguration>(
            $"{_options.Instance.TrimEnd('/')}/{_options.TenantId}/v2.0/.well-known/openid-configuration", new OpenIdConnectConfigurationRetriever());
    }

    public async Task<string?> ValidateAsync(string token, CancellationToken cancellationToken)
    {
        OpenIdConnectConfiguration configuration;
        try
        {
            configuration = await _metadata.GetConfigurationAsync(cancellationToken);
        }
        catch (InvalidOperationException ex)
        {
            _logger.EntraSigningKeysUnavailable(ex.Message);
            return null;
        }

        var result = await _handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            // v2.0 tokens carry the metadata's issuer; v1.0 tokens (the default of an app registration) the STS one.
            ValidIssuers = [configuration.Issuer, $"https://sts.windows.net/{_options.TenantId}/"],
            ValidAudience = _options.Audience,
            IssuerSigningKeys = configuration.SigningKeys,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.FromMinutes(2),
        });
        if (!result.IsValid)
        {
            _logger.EntraTokenRefused(result.Exception?.Message ?? "invalid");
            return null;
        }

        // An access token for this API names delegated scopes or app roles; an ID token, which has neither, is not one.
        if (!result.Claims.ContainsKey("scp") && !result.Claims.ContainsKey("roles"))
        {
            _logger.EntraTokenRefused("not an access token (no scp or roles claim)");
            return null;
        }

        return _options.UserClaims.Select(c => result.Claims.TryGetValue(c, out var value) ? value?.ToString() : null).FirstOrDefault(v => !string.IsNullOrEmpty(v));
    }
}
