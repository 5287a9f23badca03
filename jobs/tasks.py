"""Placeholder replaced below."""


def run_job(job_id: str) -> None:
    pass


def dead_letter(key, payload) -> None:
    pass
