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
