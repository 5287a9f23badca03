"""Request and response shapes of the jobs API (plain serializers, no models)."""

from __future__ import annotations

from rest_framework import serializers

NOT_AN_OBJECT = 'The body must be a JSON object, like {"delay_seconds": 30}.'


# The create's body, for the schema only (a docstring here would become the schema's
# description): requested_delay reads the body, and services.validate_delay checks
# the delay (an integer, its bounds and step).
class JobCreateSerializer(serializers.Serializer):
    delay_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Seconds until the job runs (bounds and step from the server's configuration, "
        "by default 5 to 300 in steps of 5). Random when omitted.",
    )


def requested_delay(data: object) -> object:
    """The ``delay_seconds`` of a create's body (a JSON object with no other field),
    as sent: the service checks it."""
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": [NOT_AN_OBJECT]})
    unknown = sorted(set(data) - {"delay_seconds"})
    if unknown:
        raise serializers.ValidationError(
            {name: ["Unknown field; the only field is delay_seconds."] for name in unknown}
        )
    return data.get("delay_seconds")


class PhotoUrlsSerializer(serializers.Serializer):
    raw = serializers.URLField()
    full = serializers.URLField()
    regular = serializers.URLField()
    small = serializers.URLField()
    thumb = serializers.URLField()


class PhotoSerializer(serializers.Serializer):
    photo_id = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    alt_description = serializers.CharField(allow_null=True)
    urls = PhotoUrlsSerializer()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    color = serializers.CharField(allow_null=True)
    blur_hash = serializers.CharField(allow_null=True)
    photographer_name = serializers.CharField()
    photographer_username = serializers.CharField()
    photographer_url = serializers.URLField()
    photo_url = serializers.URLField()
    unsplash_url = serializers.URLField()
    source = serializers.ChoiceField(choices=["unsplash", "demo"])


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Time-ordered id (26 characters, ULID layout).")
    url = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["pending", "running", "completed", "failed", "cancelled"]
    )
    created_at = serializers.DateTimeField()
    run_at = serializers.DateTimeField(help_text="When the job becomes due.")
    updated_at = serializers.DateTimeField()
    delay_seconds = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()
    pending_reason = serializers.CharField(
        allow_null=True, help_text="Why a pending job waits again (e.g. rate limited)."
    )
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    result = PhotoSerializer(allow_null=True)
    error = JobErrorSerializer(allow_null=True)


class JobPageSerializer(serializers.Serializer):
    results = JobSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="The next page, or null.")


class StatsSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    total = serializers.IntegerField()


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
