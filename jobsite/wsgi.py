import gc
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from jobsite import startup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
# The web server imports this module in each of its processes: each makes
# sure of a private data directory and the secret key before serving.
startup.prepare(settings.JOBS_DATA_DIR)

application = get_wsgi_application()
# Everything loaded so far lives as long as the process: keep the garbage
# collector from scanning it again on every collection.
gc.freeze()
