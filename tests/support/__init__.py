"""Test and benchmark support: real processes on loopback (the service under gunicorn, a
FHIR server as municipal endpoint, a stub endpoint). Not part of the installed package."""
