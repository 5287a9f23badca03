"""The jobs API: thin views that validate input, call one service, shape the output."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import photos, services
from jobs.api.create import handle_create
from jobs.api.serializers import (
    JobCreateSerializer,
    JobPageSerializer,
    JobSerializer,
    ProblemSerializer,
    StatsSerializer,
)
from jobs.api.throttling import client_address
from jobs.health import health_report

PROBLEM = OpenApiResponse(ProblemSerializer, description="application/problem+json")


def _not_modified(request: Request, etag: str) -> bool:
    """Whether the client's If-None-Match already names ``etag`` (weak comparison, RFC 9110)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags


def _conditional(request: Request, data, etag: str, **kwargs) -> Response:
    if _not_modified(request, etag):
        return Response(status=304, headers={"ETag": etag})
    return Response(data, headers={"ETag": etag, "Cache-Control": "no-cache"}, **kwargs)


class JobViewSet(viewsets.ViewSet):
    """Create jobs and read them."""

    lookup_value_regex = "[^/]+"

    @extend_schema(
        request=JobCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Retrying with the same key and body returns the same job.",
            )
        ],
        responses={
            202: JobSerializer,
            400: PROBLEM,
            409: PROBLEM,
            413: PROBLEM,
            415: PROBLEM,
            422: PROBLEM,
        },
    )
    def create(self, request: Request) -> HttpResponse:
        # Every rule of a create is in handle_create, which the web server's
        # gateway also calls directly (jobs.api.create); the view only adapts.
        answer = handle_create(
            content_type=request.META.get("CONTENT_TYPE"),
            body=request.body,
            idempotency_key=request.headers.get("Idempotency-Key"),
            client=client_address(request.META),
        )
        response = HttpResponse(answer.body, status=answer.status)
        for name, value in answer.headers:
            response[name] = value
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                description="One or more statuses, comma-separated or repeated.",
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 500, default 50."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From a `next` link."),
        ],
        responses={200: JobPageSerializer, 304: None, 400: PROBLEM},
    )
    def list(self, request: Request) -> Response:
        raw_statuses = [
            part for value in request.query_params.getlist("status") for part in value.split(",")
        ]
        statuses = services.parse_statuses(raw_statuses) if raw_statuses else None
        limit = services.parse_limit(request.query_params.get("limit"))
        page = services.job_list(
            statuses=statuses, cursor=request.query_params.get("cursor") or None, limit=limit
        )
        next_url = None
        if page.next_cursor:
            query = {"limit": limit, "cursor": page.next_cursor}
            if statuses:
                query["status"] = ",".join(statuses)
            next_url = f"/api/jobs?{urlencode(query)}"
        data = {"results": [job.to_public() for job in page.jobs], "next": next_url}
        digest = hashlib.sha256(
            json.dumps([[job.id, job.revision] for job in page.jobs] + [next_url]).encode()
        ).hexdigest()[:32]
        return _conditional(request, data, f'"{digest}"')

    @extend_schema(responses={200: JobSerializer, 304: None, 404: PROBLEM})
    def retrieve(self, request: Request, pk: str) -> Response:
        job = services.job_get(job_id=pk)
        return _conditional(request, job.to_public(), job.etag)


@extend_schema(responses={200: StatsSerializer})
@api_view(["GET"])
def stats(request: Request) -> Response:
    counts = services.job_counts()
    return Response({"counts": counts, "total": sum(counts.values())})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def config(request: Request) -> Response:
    """What the page needs to know: the delay choices and the photo source."""
    return Response(
        {
            "min_delay": settings.JOBS_MIN_DELAY,
            "max_delay": settings.JOBS_MAX_DELAY,
            "delay_step": settings.JOBS_DELAY_STEP,
            "photo_source": photos.source_name(),
            "app_name": settings.UNSPLASH_APP_NAME,
        }
    )


@extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
@api_view(["GET"])
def health(request: Request) -> Response:
    """Storage writable, broker reachable, worker seen recently; 503 when not."""
    healthy, report = health_report()
    return Response(report, status=200 if healthy else 503, headers={"Cache-Control": "no-store"})
