using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Tests;

public class StreamMaskerTests
{
    private const string Secret = "s3cr3t-canary";

    [Fact]
    public void ASecretSplitAtAnyPoint_IsMasked()
    {
        var text = $"before {Secret} after {Secret}";
        for (var first = 1; first < text.Length; first++)
        {
            for (var second = first; second < text.Length; second++)
            {
                var masker = new StreamMasker([Secret]);
                var passed = masker.Next(text[..first]) + masker.Next(text[first..second]) + masker.Next(text[second..]) + masker.Rest();

                Assert.Equal("before ******** after ********", passed);
            }
        }
    }

    [Fact]
    public void TextThatCannotBeginASecret_PassesAtOnce_AndOnlyAPossibleStartWaits()
    {
        var masker = new StreamMasker([Secret]);

        Assert.Equal("progress 10%\n", masker.Next("progress 10%\n"));
        Assert.Equal("token ", masker.Next("token s3c"));
        Assert.Equal("s3cx", masker.Next("x"));
        Assert.Equal("", masker.Rest());
    }

    [Fact]
    public void ASecretThatBeginsWithItsOwnEnd_IsNotCutInTwo()
    {
        // "abcab": the held end "ab" must not leave "abc" of a whole occurrence passed unmasked.
        var masker = new StreamMasker(["abcab"]);

        var passed = masker.Next("x abcab") + masker.Next("cab y") + masker.Rest();

        Assert.DoesNotContain("abc", passed);
        Assert.Equal("x ********cab y", passed);
    }

    [Fact]
    public void WithoutSecrets_NothingIsHeld() => Assert.Equal("s3c", new StreamMasker([]).Next("s3c"));
}

/// <summary>The forms a secret takes in output, against what .NET, Python's json.dumps and URL encoders print.</summary>
public class SecretFormsTests
{
    [Fact]
    public void Expand_CoversJsonEscapedAndUrlEncodedForms_AsPythonAndDotNetPrintThem()
    {
        const string secret = "p\"a/ss wörd\\1";

        var forms = ServerlessStorm.Engine.Audit.SecretMasker.Expand([secret, "abc"]);

        Assert.Contains(secret, forms);
        Assert.Contains("p\\\"a/ss w\\u00f6rd\\\\1", forms);                     // json.dumps(secret)[1:-1]
        Assert.Contains(System.Text.Json.JsonSerializer.Serialize(secret)[1..^1], forms); // System.Text.Json
        Assert.Contains("p%22a%2Fss%20w%C3%B6rd%5C1", forms);                    // urllib.parse.quote(secret, safe='')
        Assert.Contains("p%22a/ss%20w%C3%B6rd%5C1", forms);                      // urllib.parse.quote(secret)
        Assert.Contains("p%22a%2Fss+w%C3%B6rd%5C1", forms);                      // urllib.parse.quote_plus(secret)
        Assert.DoesNotContain("abc", forms);                                      // too short to search for
    }

    [Fact]
    public void MaskValues_MasksANumberThatIsASecret_AndTheLongestSecretFirst()
    {
        var result = System.Text.Json.Nodes.JsonNode.Parse("""{"pin": 271828, "n": 2718, "text": "key-abcd-efgh and key-abcd"}""");

        var masked = ServerlessStorm.Engine.Audit.SecretMasker.MaskValues(result, ["271828", "key-abcd", "key-abcd-efgh"])!;

        Assert.Equal("""{"pin":"********","n":2718,"text":"******** and ********"}""", masked.ToJsonString());
    }
}
