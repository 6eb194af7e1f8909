namespace ServerlessStorm.Engine.Expressions.Yaql;

/// <summary>The keys a YAQL expression reads with a literal <c>st2kv('…')</c>, so a host can fetch them before evaluating.</summary>
internal static class YaqlDatastoreKeys
{
    public static IEnumerable<(string Scope, string Name)> Find(YaqlNode node)
    {
        var keys = new List<(string, string)>();
        Visit(node, keys);
        return keys;
    }

    private static void Visit(YaqlNode node, List<(string, string)> keys)
    {
        switch (node)
        {
            case YaqlCall call:
                if (call.Name == "st2kv" && call.Args.FirstOrDefault() is YaqlConstant { Value: string key })
                {
                    keys.Add(YaqlFunctions.DatastoreKey(key));
                }

                call.Args.ToList().ForEach(a => Visit(a, keys));
                break;
            case YaqlBinary b: Visit(b.Left, keys); Visit(b.Right, keys); break;
            case YaqlUnary u: Visit(u.Operand, keys); break;
            case YaqlIndex i: Visit(i.Target, keys); i.Args.ToList().ForEach(a => Visit(a, keys)); break;
            case YaqlList l: l.Items.ToList().ForEach(a => Visit(a, keys)); break;
            case YaqlMap m: m.Items.ToList().ForEach(a => Visit(a, keys)); break;
            case YaqlMapping p: Visit(p.Key, keys); Visit(p.Value, keys); break;
        }
    }
}
