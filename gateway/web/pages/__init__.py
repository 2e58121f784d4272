"""The people's web pages: sign-in, "My sync" for reps (``/account/``).

A WSGI app (werkzeug routing, Jinja2 templates with autoescaping) that the HTTP site serves
in the same thread pool as CalDAV; every rule it applies is a call on a core service.
"""

from gateway.web.pages.app import PagesApp

__all__ = ["PagesApp"]
