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
# Redis redelivers an unacknowledged message after visibility_timeout. Countdown retries
# (up to 30 min) and rate-limit deferrals (up to the 1 h window) wait unacknowledged in a
# worker, so this must outlast the longest wait plus one request, or they would run twice.
# Orphaned messages (a killed worker's) are looked for every tenth of it (1 to 10 s).
broker_transport_options = _conf["broker_transport_options"]
broker_connection_retry_on_startup = True
# Acknowledge after the attempt, and give a killed worker's deliveries back to the queue.
task_acks_late = True
task_reject_on_worker_lost = True
# A dead-lettered delivery's task fails (FAILURE in Flower, with the reason) and its message
# is done with. An outage (Redis down) is not a failure: the task requeues its message.
task_acks_on_failure_or_timeout = True
# Outcomes live in shahihooks' own log and stats; Celery results would only cost memory.
task_ignore_result = True
result_backend = None
task_serializer = "json"
accept_content = ["json"]
task_default_queue = _conf["task_default_queue"]
task_routes = _conf["task_routes"]
worker_prefetch_multiplier = _conf["worker_prefetch_multiplier"]
worker_hijack_root_logger = False
broker_pool_limit = _conf["broker_pool_limit"]
