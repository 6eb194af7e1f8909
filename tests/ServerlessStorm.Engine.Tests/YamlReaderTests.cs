using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Tests;

public class YamlReaderTests
{
    [Fact]
    public void Read_BillionLaughs_IsRefusedBeforeExpansion()
    {
        var yaml = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 10; i++)
        {
            yaml.Append($"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n");
        }

        var error = Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read(yaml.ToString()));
        Assert.Contains("values", error.Message);
    }

    [Fact]
    public void Read_DeepNesting_IsRefusedWithPosition()
    {
        var yaml = new string('[', 200) + new string(']', 200);
        var error = Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read(yaml));
        Assert.Contains("nesting deeper than 64", error.Message);
        Assert.Equal(1, error.Position.Line);
    }

    [Fact]
    public void Read_OversizedDocument_IsRefused()
    {
        var error = Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read(new string('a', 2000), new YamlLimits(MaxBytes: 1000)));
        Assert.Contains("1000 byte limit", error.Message);
    }

    [Fact]
    public void Read_SyntaxError_ReportsLineAndColumn()
    {
        var error = Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read("name: ok\nlist: [a, b\nnext: 1\n"));
        Assert.True(error.Position.Line >= 2, $"line {error.Position.Line}");
    }

    [Fact]
    public void Read_DuplicateKey_IsAnError()
    {
        var error = Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read("a: 1\na: 2\n"));
        Assert.Equal("duplicate key 'a'", error.Message);
        Assert.Equal(2, error.Position.Line);
    }

    [Theory]
    [InlineData("yes", "true")]
    [InlineData("Off", "false")]
    [InlineData("~", "null")]
    [InlineData("42", "42")]
    [InlineData("0x1F", "31")]
    [InlineData("1.5", "1.5")]
    [InlineData("1e3", "\"1e3\"")]
    [InlineData("'yes'", "\"yes\"")]
    [InlineData("!!str 42", "\"42\"")]
    public void Scalars_ResolveAsPyYamlDoes(string yaml, string json)
    {
        var node = (YamlMapping)BoundedYamlReader.Read($"v: {yaml}")!;
        Assert.Equal(json, node["v"]!.ToJson()?.ToJsonString() ?? "null");
    }

    [Fact]
    public void Aliases_WithinLimits_ExpandIntoJson()
    {
        var node = BoundedYamlReader.Read("base: &b {x: 1}\ncopy: *b\n")!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"base":{"x":1},"copy":{"x":1}}"""), node.ToJson()));
    }
}
