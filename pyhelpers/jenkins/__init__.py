"""Jenkins side of the helpers: create, update and run the seed job with python-jenkins."""
