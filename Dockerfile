# The page is built with Node, then served with the Python app.
FROM node:20-bookworm-slim AS page
WORKDIR /app/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 JOBS_DATA_DIR=/data JOBS_HOST=0.0.0.0
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=page /app/frontend/dist ./frontend/dist
VOLUME /data
EXPOSE 8000
# The server's flags are those of `manage.py serve` (see the README's "Serving").
CMD ["sh", "-c", "python manage.py migrate --noinput -v0 && python manage.py collectstatic --noinput -v0 && exec python -m granian --interface rsgi --host 0.0.0.0 --port 8000 --workers 2 --backpressure 12000 --backlog 2048 --http1-header-read-timeout 10000 --no-ws jobsite.rsgi:application"]
