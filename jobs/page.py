"""The web page: the built single-page app, for every page route."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie

NOT_BUILT = """<!doctype html><title>Page not built</title>
<p>The page has not been built yet. Run <code>make run</code> (or
<code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>).</p>"""


@ensure_csrf_cookie
def index(request):
    try:
        html = (settings.FRONTEND_DIST / "index.html").read_bytes()
    except FileNotFoundError:
        return HttpResponse(NOT_BUILT, status=503)
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # The page names its hashed assets; it must be revalidated to pick up a new build.
    response["Cache-Control"] = "no-cache"
    return response
