"""MedCom FHIR messaging: CareCommunication messages in and out, Acknowledgements, XCTL ⇄
Acknowledgement, FHIR XML ⇄ JSON. Pure functions; the edges are
:mod:`adapter.api.process_message`, :mod:`adapter.service.process_message`, the inbox and the
delivery worker. See ``docs/medcom-fhir.md``."""
