"""Who runs chunks: in-process (embedded) or Celery workers. Both share the scheduler."""
