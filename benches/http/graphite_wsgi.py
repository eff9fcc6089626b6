"""graphite-web 1.1.10 as a WSGI app over one whisper directory, for gunicorn in the HTTP
comparison (compare-graphite-web.sh). Settings as the conformance tests use them
(tests/support/graphite_web.py): the standard finder only, no caches, UTC.

    WHISPER_DIR=/path/to/whisper gunicorn -w 2 graphite_wsgi:application
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'support'))
import graphite_web  # noqa: E402  (the test driver's configure())

graphite_web.configure(os.path.abspath(os.environ['WHISPER_DIR']),
                       tempfile.mkdtemp(prefix='carbide-bench-graphite-web-'), 'UTC')

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
