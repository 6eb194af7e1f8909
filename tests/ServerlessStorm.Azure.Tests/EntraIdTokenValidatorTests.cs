using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using ServerlessStorm.Azure.Security;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>
/// Entra ID sign-in, with a tenant the test plays: its signing key and issuer stand where Entra's published metadata
/// would, and the tokens are signed as Entra signs them (RS256).
/// </summary>
public sealed class EntraIdTokenValidatorTests
{
    private const string Tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    private const string Issuer = $"https://login.microsoftonline.com/{Tenant}/v2.0";
    private const string Audience = "api://serverlessstorm";

    private readonly RsaSecurityKey _key = new(RSA.Create(2048)) { KeyId = "test-key" };

    private EntraIdTokenValidator Validator()
    {
        var configuration = new OpenIdConnectConfiguration { Issuer = Issuer };
        configuration.SigningKeys.Add(_key);
        return new EntraIdTokenValidator(Options.Create(new EntraIdOptions { TenantId = Tenant, Audience = Audience }), NullLogger<EntraIdTokenValidator>.Instance,
            new Microsoft.IdentityModel.Protocols.StaticConfigurationManager<OpenIdConnectConfiguration>(configuration));
    }

    private string Token(Dictionary<string, object> claims, string? audience = Audience, string issuer = Issuer, SecurityKey? key = null, DateTime? expires = null) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = claims,
            NotBefore = (expires ?? DateTime.UtcNow.AddHours(1)).AddHours(-2),
            Expires = expires ?? DateTime.UtcNow.AddHours(1),
            SigningCredentials = new SigningCredentials(key ?? _key, SecurityAlgorithms.RsaSha256),
        });

    [Fact]
    public async Task AValidToken_NamesItsUser_AManagedIdentityByItsObjectId()
    {
        var validator = Validator();

        Assert.Equal("alice@contoso.com", await validator.ValidateAsync(Token(new() { ["preferred_username"] = "alice@contoso.com", ["oid"] = "1", ["scp"] = "user_impersonation" }), CancellationToken.None));
        Assert.Equal("4d8c7a1e-0000-4000-8000-000000000001", await validator.ValidateAsync(Token(new() { ["oid"] = "4d8c7a1e-0000-4000-8000-000000000001", ["roles"] = new[] { "Storm.Run" } }), CancellationToken.None));
        // A v1.0 token (the default of an app registration) has the STS issuer.
        Assert.Equal("bob@contoso.com", await validator.ValidateAsync(Token(new() { ["upn"] = "bob@contoso.com", ["scp"] = "user_impersonation" }, issuer: $"https://sts.windows.net/{Tenant}/"), CancellationToken.None));
    }

    [Fact]
    public async Task TokensForAnotherAudience_FromAnotherIssuer_SignedByAnotherKey_OrExpired_NameNobody()
    {
        var validator = Validator();
        var claims = new Dictionary<string, object> { ["preferred_username"] = "mallory@contoso.com", ["scp"] = "user_impersonation" };

        Assert.Null(await validator.ValidateAsync(Token(claims, audience: "api://something-else"), CancellationToken.None));
        Assert.Null(await validator.ValidateAsync(Token(claims, issuer: "https://login.microsoftonline.com/other-tenant/v2.0"), CancellationToken.None));
        Assert.Null(await validator.ValidateAsync(Token(claims, key: new RsaSecurityKey(RSA.Create(2048)) { KeyId = "test-key" }), CancellationToken.None));
        Assert.Null(await validator.ValidateAsync(Token(claims, expires: DateTime.UtcNow.AddMinutes(-10)), CancellationToken.None));
        Assert.Null(await validator.ValidateAsync("not.a.token", CancellationToken.None));
        // An ID token (no scp, no roles) for the same app is not an access token.
        Assert.Null(await validator.ValidateAsync(Token(new() { ["preferred_username"] = "mallory@contoso.com" }), CancellationToken.None));
    }

    [Fact]
    public async Task TheGateway_TakesAnEntraToken_AsTheUserItNames()
    {
        var validator = Validator();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), configure: services =>
        {
            services.AddSingleton<IBearerTokenValidator>(validator);
            services.Configure<Engine.Security.Rbac.RbacOptions>(o => o.Enabled = false);
        });
        var gateway = host.Services.GetRequiredService<ApiGateway>();
        ApiRequest Run(string authorization) => new()
        {
            Method = "POST",
            Path = "/api/v1/executions",
            Headers = [KeyValuePair.Create("Authorization", authorization), KeyValuePair.Create("Content-Type", "application/json")],
            Body = Encoding.UTF8.GetBytes("""{"action": "core.noop"}"""),
        };

        var signedIn = await gateway.HandleAsync(Run("Bearer " + Token(new() { ["preferred_username"] = "alice@contoso.com", ["scp"] = "user_impersonation" })), CancellationToken.None);
        var forged = await gateway.HandleAsync(Run("Bearer " + Token(new() { ["preferred_username"] = "alice@contoso.com", ["scp"] = "user_impersonation" }, key: new RsaSecurityKey(RSA.Create(2048)))), CancellationToken.None);

        Assert.Equal(201, signedIn.StatusCode);
        Assert.Equal("alice@contoso.com", signedIn.Body!["context"]!["user"]!.GetValue<string>());
        Assert.Equal(401, forged.StatusCode);
    }
}
