"""mlops: Python helpers behind the Jenkins shared library (command ``mlops``)."""

__version__ = "0.1.0"
