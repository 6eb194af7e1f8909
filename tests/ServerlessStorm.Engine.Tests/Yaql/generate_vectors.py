#!/usr/bin/python3
"""Writes yaql_vectors.json: YAQL expressions evaluated by the reference implementation (python3-yaql), set up
the way Orquesta sets it up (the default factory, yaql.create_context(), the workflow functions registered on it,
the workflow variables under __vars). The C# tests replay every vector against our evaluator.

Run: /usr/bin/python3 tests/ServerlessStorm.Engine.Tests/Yaql/generate_vectors.py
"""

import datetime
import json
import os
import re

import yaql
from yaql.language import exceptions as yaql_exc
from yaql.language import factory
from yaql.language import utils as yaql_utils

# ---- the fixed workflow state the C# test reproduces (YaqlVectorTests.cs) ----------------------------------------

VARS = {
    "count": 5,
    "name": "storm",
    "greeting": "Hello World",
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "servers": [
        {"name": "web1", "ip": "10.0.0.1", "port": 80, "tags": ["a", "b"]},
        {"name": "web2", "ip": "10.0.0.2", "port": 8080, "tags": ["b"]},
        {"name": "db1", "ip": "10.0.0.3", "port": 5432, "tags": []},
    ],
    "numbers": [3, 1, 4, 1, 5, 9, 2, 6],
    "words": ["b", "a", "c", "a"],
    "empty": [],
    "nested": [[1, 2], [3, [4, 5]]],
    "config": {"retries": 3, "timeout": 1.5, "mode": "fast", "labels": {"env": "prod", "team": "ops"}},
    "text": "line1\nline2\n\nline3\n",
    "csv": "a,b,,c",
    "padded": "  hi  ",
    "json_text": '{"a": 1, "b": [true, null]}',
}
RESULT = {"stdout": "web1\nweb2\n\nweb3\n", "stderr": "", "return_code": 0, "succeeded": True}
ITEM = {"host": "web1", "port": 22}
TASK_STATUSES = {"build": "succeeded", "deploy": "failed"}
DATASTORE = {"system.greeting": "hi", "system.token": "s3cret", "user.pref": "dark"}


# ---- the workflow functions, with the semantics of Orquesta's and StackStorm's ----------------------------------

def wf_ctx(context, key=None):
    variables = context["__vars"]
    if key:
        if key not in variables:
            raise KeyError(key)
        return variables[key]
    return {k: v for k, v in variables.items() if not k.startswith("__")}


def wf_item(context, key=None):
    if not key:
        return ITEM
    if key not in ITEM:
        raise ValueError("item has no key %s" % key)
    return ITEM[key]


def wf_result(context):
    return RESULT


def wf_succeeded(context):
    return True


def wf_failed(context):
    return False


def wf_completed(context):
    return True


def wf_task_status(context, task_id):
    return TASK_STATUSES.get(task_id, "null")


def wf_json(s):
    if isinstance(s, dict):
        return s
    if not isinstance(s, str):
        raise TypeError("not a string")
    return json.loads(s)


def wf_zip(*args, **kwargs):
    lists = [[] if a is None else a for a in args]
    if len(lists) == 1:
        return lists[0]
    pad = kwargs.get("pad")
    longest = max(len(x) for x in lists) if lists else 0
    return [[x[i] if i < len(x) else pad for x in lists] for i in range(longest)]


def wf_st2kv(context, key, **kwargs):
    if not isinstance(key, str):
        raise TypeError("key is not a string")
    decrypt = kwargs.get("decrypt", False)
    if not isinstance(decrypt, bool):
        raise TypeError("decrypt is not a bool")
    full = key if key.startswith("system.") else "user." + key
    if full in DATASTORE:
        return DATASTORE[full]
    if "default" in kwargs:
        return kwargs["default"]
    raise ValueError("no such key")


ENGINE = factory.YaqlFactory().create()
ROOT = yaql.create_context()
for fname, func in [("ctx", wf_ctx), ("item", wf_item), ("result", wf_result), ("succeeded", wf_succeeded),
                    ("failed", wf_failed), ("completed", wf_completed), ("task_status", wf_task_status),
                    ("json", wf_json), ("zip", wf_zip), ("st2kv", wf_st2kv)]:
    ROOT.register_function(func, name=fname)

NO_FUNCTION = (yaql_exc.NoFunctionRegisteredException, yaql_exc.NoMatchingFunctionException,
               yaql_exc.NoMatchingMethodException, yaql_exc.NoMethodRegisteredException,
               yaql_exc.AmbiguousFunctionException, yaql_exc.AmbiguousMethodException)
SYNTAX = (yaql_exc.YaqlGrammarException, yaql_exc.YaqlLexicalException)


def to_json(value):
    if isinstance(value, datetime.datetime):
        return {"$type": "datetime"}
    if isinstance(value, datetime.timedelta):
        return {"$type": "timespan"}
    if isinstance(value, re.Pattern):
        return {"$type": "regex"}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"$type": "set", "items": sorted((to_json(v) for v in value), key=json.dumps)}
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, bool) else str(k).lower(): to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"$type": type(value).__name__}


def evaluate(expression):
    ctx = ROOT.create_child_context()
    ctx["__vars"] = yaql_utils.convert_input_data(VARS)
    try:
        result = ENGINE(expression).evaluate(context=ctx)
        if hasattr(result, "__next__"):
            result = list(result)
        return {"expression": expression, "result": to_json(result)}
    except SYNTAX:
        return {"expression": expression, "error": "syntax"}
    except NO_FUNCTION:
        return {"expression": expression, "error": "no_function"}
    except Exception:  # noqa: BLE001 - any other failure is a runtime error to YAQL's users
        return {"expression": expression, "error": "runtime"}


# ---- the expressions ---------------------------------------------------------------------------------------------

OPERANDS = ["3", "2.5", "'ab'", "true", "null", "[1, 2]", "{a => 1}"]
BINARY = ["=", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "mod", "in", "and", "or"]

EXPRESSIONS = []
for op in BINARY:
    for left in OPERANDS:
        for right in OPERANDS:
            EXPRESSIONS.append("%s %s %s" % (left, op, right))

EXPRESSIONS += [
    # literals and lexing
    "1", "0", "123456789", "1.5", "0.25", "'single'", '"double"', "`verbatim`", "true", "false", "null",
    "'it\\'s'", '"a\\"b"', "'tab\\there'", "'new\\nline'", "'\\u00e9'", "`back\\`tick`", "`raw\\n`", "'\\x41'",
    "[]", "[1, 'a', null, true]", "[[1], [2, [3]]]", "{}", "{a => 1, b => 'x'}", "{'k' => [1, 2]}",
    "{1 => 'one'}", "{a => {b => {c => 1}}}", "(1 + 2) * 3", "1 + 2 * 3", "10 - 2 - 3", "2 * 3 mod 4",
    "-3", "--3", "-2.5", "+3", "-(1 + 2)", "- 'a'", "-true", "not true", "not 0", "not null", "not []",
    "not 'x'", "not not 1", "true and false or true", "null or 'd'", "0 and 1", "'' or 'x'",
    "1 < 2 and 2 < 3", "not 1 = 2", "1 = 1 = true", "7 / 2", "-7 / 2", "7 / -2", "7.0 / 2", "1 / 0",
    "1.0 / 0", "7 mod 0", "-7 mod 3", "7 mod -3", "5.5 mod 2", "2 * 3.0", "0.1 + 0.2", "10 / 4 * 4",
    "'ab' * 3", "3 * 'ab'", "'ab' * 0", "[1] * 3", "'a' + 'b' + 'c'", "'x' in ['x', 'y']", "'z' in ['x']",
    "'ell' in 'hello'", "1 in 'abc'", "[1] in [[1], [2]]", "'a' =~ 'a.'", "'abc' =~ 'b'", "'abc' !~ '^b'",
    "'abc' =~ regex('^a')", "1 =~ 'a'", "'a' < 'b'", "'B' < 'a'", "null < 1", "1 < null", "null < null",
    "null <= null", "null > 'a'", "'a' >= null", "true < false", "[1] < [2]", "1 = 1.0", "true = 1",
    "'1' = 1", "[1, 2] = [1, 2]", "{a => 1} = {a => 1}", "{a => 1} != {a => 2}", "null = false",
    # syntax errors
    "", "1 +", "(1", "[1, 2", "{a => 1", "{a}", "a =>", "1 2", "foo (1)", "2 ** 3", "1 == 1", "a.", ".a",
    "'unclosed", "$.", "f(a => 1, 2)", "__x", "1 ? 2 : 3", "@", "1 !", "x = = y",
    # variables and the root
    "$", "$.x", "$x", "$1", "ctx", "name", "True", "None", "ctx().name", "ctx(name)", "ctx('name')",
    "ctx(\"name\")", "ctx().count + 1", "ctx().missing", "ctx(missing)", "ctx().servers[0].name",
    "ctx().servers[-1].port", "ctx().servers[5]", "ctx().config.labels.env", "ctx().config['mode']",
    "ctx().config[mode]", "ctx().config['nope']", "ctx().config.get('nope', 'dflt')", "ctx().config.get(mode)",
    "ctx().config.nope", "ctx().config?.mode", "ctx().nothing?.x", "ctx().nothing.x", "ctx().name.x",
    "ctx().numbers[1.5]", "ctx().name[0]", "ctx().config[mode, 'd']", "ctx().config[zzz, 'd']",
    "ctx().keys().len()", "ctx(1)", "ctx(null)", "ctx().nested[1][1][0]",
    # workflow functions
    "succeeded()", "failed()", "completed()", "not failed()", "succeeded() and ctx().count > 3",
    "succeeded() and ctx().count > 10", "result()", "result().stdout", "result().return_code = 0",
    "result().stdout.split('\\n')", "result().stdout.split('\\n').where($ != '').len()",
    "result().stdout.trim().split('\\n').select($.toUpper())", "result().missing", "item()", "item(host)",
    "item('port') + 1", "item(nope)", "task_status(build)", "task_status('deploy')", "task_status(other)",
    "task_status(build) = 'succeeded'", "json(ctx().json_text)", "json(ctx().json_text).b",
    "json('[1, 2]')", "json('{bad')", "json(1)", "json({a => 1})", "zip([1, 2], [3, 4])",
    "zip([1, 2, 3], ['a'])", "zip([1, 2], [3], pad => 0)", "zip([1, 2])", "zip(null, [1])",
    "st2kv('system.greeting')", "st2kv('system.token', decrypt => true)", "st2kv('pref')",
    "st2kv('system.nope')", "st2kv('system.nope', default => 'd')", "st2kv('system.nope', default => null)",
    "st2kv(1)", "st2kv('system.token', decrypt => 'yes')", "st2kv('system.greeting').toUpper()",
    "succeeded(1)", "result(1)",
    # conversions and type tests
    "int('12')", "int(' 7 ')", "int('1.5')", "int('x')", "int(1.9)", "int(-1.9)", "int(null)", "int(true)",
    "int([1])", "float('1.5')", "float('1e3')", "float(2)", "float(null)", "float('x')", "float(true)",
    "str(1)", "str(1.5)", "str(1.0)", "str(true)", "str(null)", "str('s')", "str([1, 2])", "str([1])",
    "str({a => 1})", "str([])", "bool(0)", "bool('')", "bool('x')", "bool([])", "bool([0])", "bool(null)",
    "bool({})", "isString('a')", "isString(1)", "isList([1])", "isList('a')", "isDict({})", "isDict([])",
    "isInteger(1)", "isInteger(1.0)", "isInteger(true)", "isNumber(1.5)", "isNumber('1')", "isBoolean(false)",
    "isBoolean(0)", "isIterable([1])", "isIterable('ab')", "isIterable({})", "isDatetime(now())",
    "isDatetime(1)", "isRegex(regex('a'))", "now()", "now().year > 2000", "abs(-3)", "abs(-2.5)", "abs('a')",
    "round(2.5)", "round(3.5)", "round(2.675, 2)", "round(7)", "pow(2, 10)", "pow(2, -1)", "pow(2, 3, 5)",
    "sign(-4)", "sign(0)", "sign(2.5)", "max(1, 2)", "max('a', 'b')", "min(3, 1)", "max(1, 'a')",
    "max(null, 1)", "min(null, 1)", "hex(255)",
    # strings
    "'abc'.len()", "len('abc')", "'Hello'.toUpper()", "'Hello'.toLower()", "ctx().padded.trim()",
    "ctx().padded.trimLeft()", "ctx().padded.trimRight()", "'xxhixx'.trim('x')", "'abc'.startsWith('ab')",
    "'abc'.startsWith('b')", "'abc'.startsWith('x', 'a')", "'abc'.endsWith('bc')", "'abc'.endsWith(1)",
    "'hello'.substring(1)", "'hello'.substring(1, 3)", "'hello'.substring(-3)", "'hello'.substring(1, -1)",
    "'hello'.substring(10)", "'a,b,c'.split(',')", "ctx().csv.split(',')", "'a b  c'.split()",
    "'a,b,c'.split(',', 1)", "'abc'.split('')", "'a-b-c'.replace('-', '+')", "'a-b-c'.replace('-', '', 1)",
    "'aaa'.replace('a', 'b', 2)", "'abc'.replace({a => 'x', c => 'z'})", "'abc'.replace(1, 2)",
    "'hello'.indexOf('l')", "'hello'.indexOf('z')", "'hello'.indexOf('l', 3)", "'hello'.lastIndexOf('l')",
    "','.join(['a', 'b'])", "['a', 'b'].join(',')", "[1, 2].join(',')", "['a', null].join('-')",
    "''.join([])", "'{0}-{1}'.format('a', 'b')", "format('{0} is {1}', 'x', 1)", "'{}{}'.format(1, 2)",
    "'{name}!'.format(name => 'storm')", "'{0:.2f}'.format(3.14159)", "'{0:5d}'.format(42)",
    "'{0}'.format(true)", "'{0}'.format(null)", "'{0}'.format([1, 2])", "'{0} {1}'.format('only')",
    "concat('a', 'b', 'c')", "'a'.concat('b')", "concat([1], [2, 3])", "'abc'.toCharArray()",
    "characters('ab')", "'a1b2'.matches('[0-9]')", "regex('[0-9]+').matches('abc12')",
    "regex('[0-9]+').search('ab12cd34')", "regex('[0-9]+').searchAll('ab12cd34')",
    "'a1b22'.replace(regex('[0-9]+'), '#')", "'a1b22c'.split(regex('[0-9]+'))", "regex('(')",
    "'abc'.toUpper().toLower()", "'x'.len() + 'yy'.len()", "'ab'.indexOf(1)", "1.toUpper()",
    "'a'.nosuch()", "nosuch(1)", "toUpper('a')", "'a'.str()", "null.len()", "len(null)", "len(1)",
    "'Hello World'.split(' ').select($.toLower()).join('_')", "escapeRegex('a.b')",
    # collections
    "[1, 2, 3].len()", "len([1, 2])", "{a => 1, b => 2}.len()", "[3, 1, 2].count()", "'abc'.count()",
    "ctx().numbers.first()", "ctx().empty.first()", "ctx().empty.first('none')", "ctx().numbers.last()",
    "ctx().empty.last(0)", "[7].single()", "[1, 2].single()", "ctx().config.keys()", "ctx().config.values()",
    "ctx().config.labels.items().toList()", "{}.keys()", "[1].keys()", "ctx().numbers.distinct()",
    "distinct(ctx().words)", "ctx().servers.distinct($.tags.len())", "ctx().numbers.orderBy($)",
    "ctx().words.orderBy($)", "ctx().numbers.orderByDescending($)",
    "ctx().servers.orderBy($.port).select($.name)", "ctx().servers.orderByDescending($.name).select($.name)",
    "[1, 'a'].orderBy($)", "ctx().numbers.toList()", "list(1, 2, 3)", "list()", "list([1, 2])",
    "ctx().numbers.any()", "ctx().empty.any()", "ctx().numbers.any($ > 8)", "ctx().numbers.all($ > 0)",
    "ctx().numbers.all($ > 1)", "any([0, 1])", "all([1, 1])", "[].all()", "[0].all()",
    "ctx().numbers.contains(9)", "ctx().numbers.contains(10)", "ctx().words.contains('c')",
    "ctx().numbers.skip(5)", "ctx().numbers.take(2)", "ctx().numbers.skip(2).take(3)", "[1, 2].skip(-1)",
    "[1, 2].take('a')", "ctx().numbers.sum()", "[].sum()", "[1.5, 2].sum()", "['a', 'b'].sum()",
    "ctx().numbers.max()", "ctx().numbers.min()", "[].max()", "ctx().words.max()", "ctx().numbers.indexOf(1)",
    "ctx().numbers.indexOf(7)", "ctx().words.lastIndexOf('a')", "dict(a => 1, b => 2)", "dict([['a', 1], ['b', 2]])",
    "dict()", "dict(1)", "ctx().servers.toDict($.name, $.port)", "ctx().servers.toDict($.name)",
    "set(1, 2, 1)", "[1, 2, 2].toSet()", "ctx().config.get('retries')", "ctx().config.containsKey('mode')",
    "ctx().config.containsKey('x')", "ctx().config.containsValue(3)", "{a => 1}.mergeWith({b => 2})",
    "{a => {x => 1}}.mergeWith({a => {y => 2}})", "{a => 1, b => 2}.delete(a)", "[1, 2, 3].delete(0)",
    "[1, 2, 3].delete(1, 2)", "[1, 3].insert(1, 2)", "[1].append(2, 3)", "isEmpty([])", "[1].isEmpty()",
    "ctx().nested.flatten()", "[[1], 2, [[3]]].flatten()", "[1, 2, 3].reverse()", "[1, 2].union([2, 3])",
    "[1, 2, 3].intersect([2, 3, 4])", "[1, 2, 3].difference([2])", "[1, 2].zip([3, 4])",
    "[1, 2, 3].zip(['a', 'b'])", "[1, 2].enumerate()", "[].defaultIfEmpty(0)", "[1].defaultIfEmpty(0)",
    "[1, 2] + [3]", "{a => 1} + {a => 2, b => 3}", "[1, [2]] = [1, [2]]",
    # queries and lambdas
    "ctx().servers.select($.name)", "ctx().servers.select($.name).join(',')", "ctx().servers.select($.port * 2)",
    "ctx().servers.where($.port > 100).select($.name)", "ctx().servers.where($.name.startsWith('web')).len()",
    "ctx().numbers.where($ mod 2 = 0)", "ctx().numbers.select($ + 1).where($ > 5).count()",
    "ctx().servers.selectMany($.tags)", "ctx().servers.selectMany($.tags).distinct()",
    "ctx().numbers.groupBy($ mod 2)", "ctx().servers.groupBy($.tags.len(), $.name)",
    "ctx().words.groupBy($, $, $.len())", "ctx().numbers.aggregate($1 + $2)", "ctx().numbers.aggregate($1 + $2, 100)",
    "ctx().numbers.reduce($1 * $2)", "[].aggregate($1 + $2)", "ctx().numbers.skipWhile($ < 5)",
    "ctx().numbers.takeWhile($ < 5)", "ctx().numbers.indexWhere($ > 4)", "ctx().numbers.select($ * $).sum()",
    "ctx().servers.select([$.name, $.port])", "ctx().servers.select({n => $.name})",
    "ctx().servers.select($.name).where($ in ['web1', 'db1'])", "[1, 2, 3].select($ * 2).select($ + 1)",
    "[[1, 2], [3]].select($.len())", "[1, 2].select(5)", "[1, 2].where(true)", "[1, 2].select($x)",
    "1.select($)", "[1, 2].select()", "[1, 2].select($.foo)", "{a => 1}.select($)",
    "[1, 2, 3].where($ > 1).first()", "[1, 2, 3].where($ > 5).first(null)", "ctx().servers.first().name",
    "ctx().servers.where($.port = 80).single().ip", "ctx().servers.select($.tags).flatten()",
    "range(5)", "range(2, 5)", "range(0, 10, 3)", "range(5, 0, -2)", "range(0)", "range('a')", "range(1, 2, 0)",
    "range(3).select($ * $)", "range(1, 4).sum()", "ctx().servers.len() > 2 and succeeded()",
    "[1, 2] -> $.len()", "let(x => 1) -> $x + 1", "let(1, 2) -> $1 + $2", "let(a => [1, 2]) -> $a.select($ * 10)",
    "let(x => 5) -> let(y => $x * 2) -> $x + $y", "let(x => ctx().count) -> [1, 2].select($ + $x)",
    "switch(1 > 2 => 'a', 2 > 1 => 'b')", "switch(false => 1)", "switch(ctx().count > 3 => 'many', true => 'few')",
    "switch(1)", "coalesce(null, 2, 3)", "coalesce(null, null)", "coalesce(ctx().nothing, 'd')",
    "[12].assert($[0] < 20)", "12.assert($ > 20)", "ctx().count.assert($ > 1)",
    "ctx().servers.where($.port > 100).select($.name).orderBy($).join(', ')",
    "ctx().config.items().select($[0]).orderBy($)", "ctx().config.labels.keys().orderBy($).join('/')",
    "ctx().text.split('\\n').where($).len()", "ctx().greeting.split(' ').reverse().join(' ')",
    "ctx().servers.select($.ip.split('.').last()).select(int($)).sum()",
    "ctx().servers.where($.tags.contains('b')).select($.name)", "ctx().servers.any($.port = 5432)",
    "ctx().servers.all($.ip.startsWith('10.'))", "ctx().numbers.where($ > ctx().count)",
    "ctx().servers.select($.name + ':' + str($.port))", "ctx().servers[0].tags.join('')",
    "len(ctx().servers.where($.name =~ '^web'))", "ctx().name + '-' + str(ctx().count)",
    "ctx(servers).select($.name)[1]", "ctx().servers.name", "ctx().servers.select(name)",
    # more of the library
    "ctx().numbers.filter($ > 4)", "ctx().numbers.limit(2)", "set(1, 2).symmetricDifference(set(2, 3))",
    "set(1, 2).union(set(3))", "set(1, 2).intersect(set(2))", "set(1, 2).difference(set(2))", "set(1).add(2, 3)",
    "isSet(set(1))", "isSet([1])", "set(1, 2) = set(2, 1)", "set(1) = [1]", "set(1) in [set(1)]", "isTimespan(1)", "'a b c'.rightSplit(' ', 1)", "'a b c'.rightSplit()",
    "'a,b,c'.rightSplit(',', 5)", "' a  b '.norm()", "norm(null)", "selectCase(false, true, true)", "selectCase(false)",
    "2.switchCase('a', 'b', 'c')", "5.switchCase('a', 'b')", "0.switchCase()", "[1, 2].zipLongest([3])",
    "[1, 2].zipLongest([3], default => 0)", "[1, 2].zipLongest([3])[0]", "[1, 2].zip([3, 4])[0]", "zip([1, 2], [3, 4])[0]", "[1, 2, 3, 4, 5].splitAt(2)",
    "[1, 2].splitAt(5)", "[1, 2, 3, 4, 5].slice(2)", "[1, 2].slice(0)", "[3, 1, 2].orderBy($ mod 2).thenBy($)",
    "[3, 1, 2].orderBy($ mod 2).thenByDescending($)", "[1, 2].thenBy($)",
    "ctx().servers.orderBy($.tags.len()).thenBy($.name).select($.name)", "[1, 2].unpack(a, b) -> $a + $b",
    "[1, 2].unpack() -> $1 * $2", "[1, 2].unpack(a) -> $a", "with(1, 2) -> $1 + $2", "[1, 2, 3].lastIndexWhere($ < 3)",
    "bitwiseAnd(6, 3)", "bitwiseOr(6, 3)", "bitwiseXor(6, 3)", "bitwiseNot(6)", "bitwiseAnd(1.5, 1)",
    "shiftBitsLeft(1, 3)", "shiftBitsRight(8, 2)", "[1, 2].insertMany(1, [8, 9])", "[1, 2, 3].accumulate($1 + $2)",
    "[].accumulate($1 + $2)", "[1, 2].accumulate($1 + $2, 10)", "selectAllCases(true, false, true)",
    "examine(true, 0, 'x')", "[1, 2].memorize()", "[1, 2, 1].replace(1, 7)", "[1, 2, 3].replace(0, 9, 2)",
    "1.repeat(3)", "'ab'.repeat(2)", "[1, 2, 3].splitWhere($ = 2)", "{a => 1}.set(b => 2)", "{a => 1}.set('c', 3)",
    "ctx().config.set(mode => 'slow').mode", "[12].assert($.len() = 1, 'bad')", "[].assert($, 'empty')",
    # nesting, unicode, sizes, regexes
    "ctx().servers.where($.tags.any($ = 'a')).select($.name)", "ctx().servers.select($.tags.select($ + $)).flatten()",
    "[[1, 2], [3]].select($.select($ * 10))", "ctx().servers.where($.port > 100).where($.name != 'db1').len()",
    "taskStatus(build)", "'é'.len()", "'straße'.toUpper()", "'ÉCOLE'.toLower()", "'日本'.len()", "str({a => [1]})", "str({a => {b => null}})", "str(-0.5)", "str(1e300 * 10)",
    "'{0:>5}|'.format('a')", "'{0:<5}|'.format('a')", "'{0:05.1f}'.format(3.14159)", "'ab12'.matches('^[a-z]+\\d+$')",
    "'A1'.matches('(?i)a1')", "regex('(\\w+)@(\\w+)').search('me@host')", "'x.y'.split('.')", "'a  b'.split(' ')",
    "'abc'.replace('', '-')", "' x '.trim() = 'x'", "'a' * -1", "'abc'.substring(1, 0)", "'hello world'.indexOf('o', -3)",
    "ctx().text.split('\n').len()", "ctx().greeting.toLower().replace(' ', '_')", "ctx().csv.split(',').where($).join('|')",
    "ctx().count.str()", "str(ctx().count) + 'x'", "ctx().ratio * 4 = 2", "ctx().flag = true", "ctx().nothing = null",
    "ctx().nothing or 'fallback'", "ctx().servers.select($.port).max()", "ctx().servers.select($.port).min()",
    "max(ctx().servers.select($.port))", "len(ctx().config)", "[1, 2].max(5)", "[].max(5)", "[].min()",
    "max(1, 2, 3)", "ctx().servers.select($.port).min(0)", "'{0:^7}|'.format('ab')", "'{0:*>4}'.format(7)",
    "ctx().numbers.select($)", "ctx().count * ctx().ratio", "ctx().flag and not ctx().nothing", "ctx().count >= 5 and ctx().count <= 5",
]

# Where we knowingly differ (documented); recorded with the reference's answer, not replayed as tests.
DIFFERENCES = [
    "ctx().config.labels.items()",  # YAQL fails converting the view to output; we give the pairs
    "str([1].select($))",  # YAQL prints the iterator object; we print the items
    "ctx().config.values().len()",  # YAQL's len() refuses a dict's values view; we count them
    "9223372036854775807 + 1",  # Python's integers have no bound; ours are 64-bit and overflow is an error
    "pow(2, 100)",
    "99999999999999999999",
]


def main():
    seen = set()
    vectors = []
    for expression in EXPRESSIONS:
        if expression in seen:
            continue
        seen.add(expression)
        vectors.append(evaluate(expression))

    differences = [evaluate(expression) for expression in DIFFERENCES]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "yaql_vectors.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"data": {"vars": VARS, "result": RESULT, "item": ITEM, "task_statuses": TASK_STATUSES,
                            "datastore": DATASTORE}, "vectors": vectors,
                   "differences": differences}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    errors = sum(1 for v in vectors if "error" in v)
    print("%d vectors (%d errors) written to %s" % (len(vectors), errors, out))


if __name__ == "__main__":
    main()
