"""The RQ worker with the application context: ``servicedesk worker``.

Equivalent: ``rq worker -w servicedesk.worker.AppWorker -S rq.serializers.JSONSerializer
--with-scheduler servicedesk`` with SERVICEDESK_* set in the environment.
"""

from __future__ import annotations

import os

from rq import Worker
from rq.serializers import JSONSerializer

from servicedesk.extensions import db


class AppWorker(Worker):
    """Runs each job inside an app context; JSON-only, so Redis content never becomes code."""

    def __init__(self, *args, app=None, **kwargs):
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        if app is None:
            from servicedesk.app import create_app

            app = create_app()
        self.app = app
        self._app_pid = os.getpid()

    def perform_job(self, job, queue, execution):
        with self.app.app_context():
            if os.getpid() != self._app_pid:
                # A forked work horse must not share the parent's database connections.
                db.engine.dispose(close=False)
            try:
                return super().perform_job(job, queue, execution)
            finally:
                db.session.remove()
