#!/usr/bin/env bash
# Make sure a RabbitMQ answers on 127.0.0.1:5672: the broker tests run against a real one.
# If none answers, start the machine's own (Debian's rabbitmq-server), and wait for it.
set -euo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
answers && exit 0
if ! command -v rabbitmq-server >/dev/null; then
    echo "No RabbitMQ answers on 127.0.0.1:5672 and rabbitmq-server is not installed:" \
         "install it (apt-get install rabbitmq-server) or start one" >&2
    exit 1
fi
echo "RabbitMQ is not answering: starting rabbitmq-server" >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 120); do
    answers && exit 0
    sleep 0.5
done
echo "rabbitmq-server did not start answering on 127.0.0.1:5672 within 60 s" >&2
exit 1
