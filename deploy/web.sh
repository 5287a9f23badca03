#!/bin/sh
# The web container's command.
#
#   deploy/web.sh          set up, then serve (one web server: docker-compose.yml)
#   deploy/web.sh setup    Django's tables, the static files and an optional first
#                          admin login, then exit (once before several web servers)
#   deploy/web.sh serve    only serve (each of several web servers)
#
# Setting up from several web servers at once would race: two `migrate` on
# one SQLite file, two `collectstatic` into one directory.
set -eu

setup() {
    python manage.py migrate --noinput -v0
    python manage.py collectstatic --noinput -v0
    if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ] && [ -n "${DJANGO_SUPERUSER_PASSWORD:-}" ]; then
        python manage.py createsuperuser --noinput \
            --email "${DJANGO_SUPERUSER_EMAIL:-admin@localhost}" >/dev/null 2>&1 \
            && echo "Created admin user $DJANGO_SUPERUSER_USERNAME" || true
    fi
}

serve() {
    # The flags of `manage.py serve` (README, "Serving"), plus a limit on a
    # graceful stop: an open event stream would hold it for up to five
    # minutes, so after 10 s the streams are cut and browsers reconnect
    # with Last-Event-ID.
    exec python -m granian --interface rsgi --host "${JOBS_HOST:-0.0.0.0}" \
        --port "${PORT:-8000}" --workers 2 --backpressure 12000 --backlog 2048 \
        --http 1 --http1-header-read-timeout 10000 --workers-kill-timeout 10 --no-ws \
        --log-level warning jobsite.rsgi:application
}

case "${1:-all}" in
    all) setup; serve ;;
    setup) setup ;;
    serve) serve ;;
    *) echo "usage: deploy/web.sh [setup|serve]" >&2; exit 2 ;;
esac
