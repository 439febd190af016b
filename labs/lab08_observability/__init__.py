"""Lab 08: watching Celery: states, the result backend, inspect and Flower."""
