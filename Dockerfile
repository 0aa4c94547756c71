# shahihooks worker / CLI image. Build: docker build -t shahihooks .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY shahihooks ./shahihooks
RUN pip install --no-cache-dir . trustme && useradd --create-home shahihooks
USER shahihooks
ENTRYPOINT ["shahihooks"]
CMD ["worker", "--loglevel", "INFO"]
