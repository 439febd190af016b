"""The one Celery app every lab, worker, beat and Flower uses."""
