using System.IO.Compression;
using System.Text;

namespace ServerlessStorm.Testing;

/// <summary>
/// A folder of wheels for pip's <c>--no-index --find-links</c>, built here (a wheel is a zip with its metadata), because
/// this machine cannot reach the public package index.
/// </summary>
public sealed class LocalWheels : IDisposable
{
    public LocalWheels()
    {
        Directory.CreateDirectory(Path);
    }

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "storm-wheels-" + Guid.NewGuid().ToString("N"));

    /// <summary>Writes a pure-Python wheel of package <paramref name="name"/> whose <c>__init__.py</c> is <paramref name="source"/>.</summary>
    public string Add(string name, string version, string source)
    {
        var file = System.IO.Path.Combine(Path, $"{name}-{version}-py3-none-any.whl");
        var info = $"{name}-{version}.dist-info";
        using var zip = ZipFile.Open(file, ZipArchiveMode.Create);
        void Write(string entry, string text)
        {
            using var writer = new StreamWriter(zip.CreateEntry(entry).Open(), new UTF8Encoding(false));
            writer.Write(text);
        }

        Write($"{name}/__init__.py", source);
        Write($"{info}/METADATA", $"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        Write($"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: storm-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n");
        Write($"{info}/RECORD", $"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n");
        return file;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
