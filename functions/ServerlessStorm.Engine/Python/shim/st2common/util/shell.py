"""st2common.util.shell's quoting function, which pack actions use to build command lines."""


def quote_unix(value):
    import shlex

    return shlex.quote(str(value))
