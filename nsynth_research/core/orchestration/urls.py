"""Database and server URLs that may carry a password: what may be logged, and what may not.

A URL's password can sit in two places: `user:password@host`, or the query string
(`?password=...`, libpq's and the drivers' other secret keys). Both are masked by `redact`,
which keeps everything else exactly as written (a socket folder in `?host=/run/...` is not a
secret and stays readable). A URL that carries a password never goes into a file that is
logged or shared (experiment YAML, study.json, tags, trial attributes, command lines); it
lives only in an environment variable of the machines that use it.
"""

from __future__ import annotations

import re

#: Environment variable holding the shared study storage URL (it may carry a password).
STORAGE_ENV = "NSYNTH_STORAGE"
#: Environment variable that points every command at a shared tracking server. Not MLflow's
#: own MLFLOW_TRACKING_URI: `mlflow.set_tracking_uri` rewrites that one in-process, so every
#: store opened later (and every child process) would follow the first one opened.
TRACKING_ENV = "NSYNTH_TRACKING_URI"
MASK = "***"
#: Query keys whose value is a secret (libpq, psycopg, MySQL drivers, and common spellings).
_SECRET_KEY = r"(?:[a-z_]*password|passwd|pwd|secret|[a-z_]*token)"
_QUERY_SECRET = re.compile(rf"(?P<key>[?&]{_SECRET_KEY}=)[^&#]*", re.IGNORECASE)
#: `scheme://user:password@`, split the way SQLAlchemy splits it (the password ends at `@`).
_USERINFO_SECRET = re.compile(r"^(?P<head>[\w+.-]+://[^:/@?]*):[^@]*@")


def redact(url: str) -> str:
    """The URL with every password replaced by ***, otherwise unchanged: safe to log."""
    url = _USERINFO_SECRET.sub(rf"\g<head>:{MASK}@", url)
    return _QUERY_SECRET.sub(rf"\g<key>{MASK}", url)


def has_password(url: str) -> bool:
    return redact(url) != url


def unredact(logged: str, *candidates: str | None) -> str | None:
    """The URL a redacted one was logged from, among URLs this process knows (e.g. its
    environment): None when none matches, as on a machine that was never given it."""
    if not has_password(logged) and MASK not in logged:
        return logged
    return next((c for c in candidates if c and redact(c) == logged), None)
