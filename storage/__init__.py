"""What every storage backend keeps, whatever keeps it: the contracts and what they share.

The moving parts of the system (the queue and its django-q2 broker, the
change-event log, the photo pool with its rate-limit gate, the worker
heartbeats) live in files (:mod:`filestore`) or in Redis (:mod:`redisstore`).
This package is what both implement and the job layer uses; it imports
neither backend nor ``jobs``, and both backends and ``jobs`` import it.

===================  ========================================================
``protocols``        the contracts: ``MessageQueue`` and ``SchedulingBroker``
                     (both ``KeyedQueue``), ``EventLog``, ``PhotoPoolStore``
                     (with ``RateLimitGateStore``), ``HeartbeatStore``
``messages``         what a queue says of its messages: ``MessageInfo``,
                     ``State``, ``QueueCounts``, ``KEY_PATTERN``,
                     ``check_lease_settings``, ``DEFAULT_MAX_DELIVERIES``
``events``           ``EventsLost``
``errors``           ``StoreUnavailable``: a shared store out of reach
``heartbeats``       what a heartbeat and a worker id are
``owners``           who holds a lease: a worker cluster, and whether it lives
``scheduled_tasks``  the small message of a scheduled run, the package made of it
``broker``           ``QueueBroker``: django-q2's broker over any ``MessageQueue``
``dead_letters``     the handler told of messages given up on, registered from above
``times``            whole milliseconds, as the stores keep times
===================  ========================================================
"""
