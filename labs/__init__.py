"""The numbered labs: ``labNN_name/`` with tasks.py, driver.py and a workshop README."""
