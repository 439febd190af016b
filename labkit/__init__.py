"""celery-lab's experiment harness: brokers, processes, events, findings and results."""
