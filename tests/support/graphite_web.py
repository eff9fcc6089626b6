#!/usr/bin/env python3
"""graphite-web 1.1.10 in process, driven over JSON lines: the reference the read-side tests
compare Carbide with.

    python graphite_web.py --whisper-dir DIR [--time-zone UTC] [--carbonlink HOST:PORT]

With --carbonlink, CARBONLINK_HOSTS is [HOST:PORT], so the whisper reader merges what that
cache-query port answers (carbon-cache's 7002); without it graphite-web asks no cache.

Reads one JSON request per line on stdin and writes one JSON answer per line on stdout:

  {"op": "http", "path": "/render", "method": "GET"|"POST", "params": [["target", "a.b"], ...]}
      -> {"status": 200, "content_type": "...", "body": "<text>"}
         (a pickle answer is unpickled and given as "pickle": <JSON>, floats as repr strings)
  {"op": "attime", "s": "-1h", "tz": "UTC"|null, "now": 1700000000}
      -> {"ok": <epoch seconds>} or {"error": "<exception text>"}
  {"op": "offset", "s": "-5min"}   -> {"ok": <seconds, float>} or {"error": ...}
  {"op": "unpickle", "hex": "<pickle bytes in hex>"} -> {"ok": <JSON as for pickle answers>}
  {"op": "parse", "target": "sum(a.*)"} -> {"ok": <tree>} or {"error": ...}
      tree: {"path": s} | {"call": name, "args": [tree], "kwargs": [[k, tree]], "raw": s}
            | {"int": n} | {"float": "repr"} | {"string": s} | {"bool": b} | {"none": true}
            | {"pipe": [tree, call, ...]} | {"template": ...}

The data directory is fixed for the life of the process (graphite-web reads its settings once),
so a test gives each case its own top-level prefix inside one directory. Requests run through
Django's test client, so the whole view code runs: parameter merging, evaluation, consolidation,
rendering, error pages.
"""
import argparse
import inspect
import json
import os
import pickle
import sys
import tempfile
import types


def python311_shims():
    # graphite-web 1.1.10's /functions view calls inspect.getargspec and formatargspec, which
    # Python 3.11 removed; give it equivalents built on getfullargspec.
    if not hasattr(inspect, 'getargspec'):
        def getargspec(func):
            spec = inspect.getfullargspec(func)
            return (spec.args, spec.varargs, spec.varkw, spec.defaults)
        inspect.getargspec = getargspec
    if not hasattr(inspect, 'formatargspec'):
        def formatargspec(args, varargs=None, varkw=None, defaults=None):
            defaults = defaults or ()
            first = len(args) - len(defaults)
            out = [a if i < first else '%s=%r' % (a, defaults[i - first]) for i, a in enumerate(args)]
            if varargs:
                out.append('*' + varargs)
            if varkw:
                out.append('**' + varkw)
            return '(' + ', '.join(out) + ')'
        inspect.formatargspec = formatargspec


def configure(whisper_dir, scratch, time_zone, carbonlink=None):
    settings = types.ModuleType('carbide_test_graphite_settings')
    settings.SECRET_KEY = 'carbide-tests'
    settings.TIME_ZONE = time_zone
    settings.STORAGE_DIR = scratch
    settings.WHISPER_DIR = whisper_dir + '/'
    settings.STANDARD_DIRS = [whisper_dir]
    settings.LOG_DIR = os.path.join(scratch, 'log')
    settings.INDEX_FILE = os.path.join(scratch, 'index')
    settings.ALLOWED_HOSTS = ['*']
    settings.DEFAULT_CACHE_DURATION = 0
    settings.TAGDB_CACHE_DURATION = 0
    settings.USE_WORKER_POOL = False
    settings.CARBONLINK_HOSTS = [carbonlink] if carbonlink else []
    settings.STORAGE_FINDERS = ('graphite.finders.standard.StandardFinder',)
    settings.TAGDB = 'graphite.tags.localdatabase.LocalDatabaseTagDB'
    settings.DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3',
                                      'NAME': os.path.join(scratch, 'graphite.db')}}
    os.makedirs(settings.LOG_DIR, exist_ok=True)
    sys.modules[settings.__name__] = settings
    os.environ['GRAPHITE_SETTINGS_MODULE'] = settings.__name__
    os.environ['DJANGO_SETTINGS_MODULE'] = 'graphite.settings'
    python311_shims()
    import django
    django.setup()
    from django.core.management import call_command
    call_command('migrate', verbosity=0, interactive=False)


def jsonable(value):
    """Pickled render output as JSON; floats as repr so inf/nan survive the trip."""
    if isinstance(value, float):
        return {'float': repr(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def http(client, req):
    from urllib.parse import urlencode
    params = [tuple(kv) for kv in req.get('params', [])]
    path = req.get('path', '/render')
    if req.get('method', 'GET').upper() == 'POST':
        resp = client.post(path, urlencode(params), content_type='application/x-www-form-urlencoded')
    else:
        resp = client.get(path + ('?' + urlencode(params) if params else ''))
    out = {'status': resp.status_code, 'content_type': resp.get('Content-Type', '')}
    headers = req.get('headers')
    if headers:
        out['headers'] = {h: resp.get(h) for h in headers}
    if out['content_type'].startswith('application/pickle') and resp.status_code == 200:
        out['pickle'] = jsonable(pickle.loads(resp.content))
    else:
        out['body'] = resp.content.decode('utf-8', 'replace')
    return out


def tree(tokens):
    if tokens.template:
        return {'template': tree_of_call(tokens.template)}
    if tokens.expression:
        expr = tokens.expression
        piped = expr.pipedCalls.asList() if expr.pipedCalls else []
        if piped:
            base = tree_without_pipes(expr)
            return {'pipe': [base] + [tree_of_call(c.call) for c in expr.pipedCalls]}
        return tree(expr)
    if tokens.pathExpression:
        return {'path': tokens.pathExpression}
    if tokens.call:
        return tree_of_call(tokens.call)
    if tokens.number:
        if tokens.number.integer:
            return {'int': int(tokens.number.integer)}
        if tokens.number.float:
            return {'float': repr(float(tokens.number.float))}
        if tokens.number.scientific:
            return {'float': repr(float(tokens.number.scientific[0]))}
    if tokens.string:
        return {'string': tokens.string[1:-1]}
    if tokens.boolean:
        return {'bool': tokens.boolean[0] == 'true'}
    if tokens.none:
        return {'none': True}
    raise ValueError('unknown token %r' % (tokens.dump(),))


def tree_without_pipes(expr):
    if expr.pathExpression:
        return {'path': expr.pathExpression}
    if expr.call:
        return tree_of_call(expr.call)
    raise ValueError('unknown piped base %r' % (expr.dump(),))


def tree_of_call(call):
    return {
        'call': call.funcname,
        'args': [tree(a) for a in (call.args or [])],
        'kwargs': [[k.argname, tree(k.args[0])] for k in (call.kwargs or [])],
        'raw': call.raw if call.raw else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--whisper-dir', required=True)
    ap.add_argument('--time-zone', default='UTC')
    ap.add_argument('--carbonlink', default=None)
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix='carbide-graphite-web-')
    configure(os.path.abspath(args.whisper_dir), scratch, args.time_zone, args.carbonlink)

    from django.test import Client
    from graphite.render import attime
    from graphite.render.grammar import grammar
    import pytz
    client = Client(raise_request_exception=False)

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        op = req.get('op', 'http')
        try:
            if op == 'http':
                out = http(client, req)
            elif op == 'attime':
                tz = pytz.timezone(req['tz']) if req.get('tz') else None
                now = req.get('now')
                if now is not None:
                    from datetime import datetime
                    now = datetime.fromtimestamp(now, tz or pytz.timezone(args.time_zone))
                when = attime.parseATTime(req['s'], tz, now)
                out = {'ok': int(when.timestamp())}
            elif op == 'offset':
                out = {'ok': attime.parseTimeOffset(req['s']).total_seconds()}
            elif op == 'unpickle':
                out = {'ok': jsonable(pickle.loads(bytes.fromhex(req['hex'])))}
            elif op == 'parse':
                out = {'ok': tree(grammar.parseString(req['target']))}
            else:
                out = {'error': 'unknown op %r' % op}
        except Exception as e:  # the answer is the exception text, as graphite-web would raise it
            out = {'error': '%s: %s' % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
