"""Celery settings for shahihooks workers, with the reasons they are what they are.

`shahihooks worker` and `celery -A shahihooks.app worker` already apply these; this module
is for reading, and for running with your own changes: `CELERY_CONFIG_MODULE=celeryconfig`.
The worker refuses to start with settings that could lose or duplicate deliveries.
"""

from shahihooks.celeryconf import celery_config
from shahihooks.settings import current

_conf = celery_config(current())

# SHAHIHOOKS_BROKER_URL, else SHAHIHOOKS_REDIS_URL.
broker_url = _conf["broker_url"]
# kombu's Redis transport with one fix: Celery 5.7 workers otherwise exit when Redis restarts
# (see shahihooks/broker.py).
broker_transport = _conf["broker_transport"]
# Redis redelivers an unacknowledged message after visibility_timeout. A worker holds a
# delivery for one attempt only (retries and rate-limit waits live in Redis), so this is one
# attempt plus margins: 45 s with SHAHIHOOKS_TIMEOUT=15. Orphaned messages (a killed
# worker's) are looked for every tenth of it (1 to 10 s).
broker_transport_options = _conf["broker_transport_options"]
broker_connection_retry_on_startup = True
# Acknowledge after the attempt, and give a killed worker's deliveries back to the queue.
task_acks_late = True
task_reject_on_worker_lost = True
# An outage is requeued explicitly (Reject); a dead-lettered delivery's task fails (FAILURE in
# Flower) after its dead letter is written, so its message is acknowledged.
task_acks_on_failure_or_timeout = _conf["task_acks_on_failure_or_timeout"]
# Outcomes live in shahihooks' own log and stats; Celery results would only cost memory.
task_ignore_result = True
result_backend = None
task_serializer = "json"
accept_content = ["json"]
task_default_queue = _conf["task_default_queue"]
task_routes = _conf["task_routes"]
# One message per execution slot: a reserved message starts at once, never waits in a buffer.
worker_prefetch_multiplier = _conf["worker_prefetch_multiplier"]
# No lowered prefetch count after a reconnect: with RabbitMQ, a threads worker sat idle for
# minutes after one, holding messages, until the broker's heartbeat dropped it.
worker_enable_prefetch_count_reduction = _conf["worker_enable_prefetch_count_reduction"]
worker_hijack_root_logger = False
broker_pool_limit = _conf["broker_pool_limit"]
