# shahihooks worker / CLI image. Build: docker build -t shahihooks:0.1.0 .
# Only the package and its runtime dependencies: no test tools (trustme and the others are
# the `test` extra), so `shahihooks listen --self-signed` is for a development machine.
FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY shahihooks ./shahihooks
RUN pip install --no-cache-dir . && useradd --create-home shahihooks
USER shahihooks
ENTRYPOINT ["shahihooks"]
CMD ["worker", "--loglevel", "INFO"]
