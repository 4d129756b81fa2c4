"""Identifier systems: what a Danish receiver expects for each kind of identifier (DK-core,
KL Gateway, MedCom), and the adapter's own for MedCom's letter and envelope ids."""

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
XECPR_SYSTEM = "urn:oid:1.2.208.176.1.6.1.1"
AUTHORISATION_SYSTEM = "https://autregweb.sst.dk"
MUNICIPALITY_SYSTEM = "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes"
REGION_SYSTEM = "http://hl7.dk/fhir/core/CodeSystem/dk-core-regional-subdivision-codes"
GLN_SYSTEM = "https://www.gs1.org/gln"
SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"
YDERNUMMER_SYSTEM = "urn:oid:1.2.208.176.1.4"
SHAK_SYSTEM = "urn:oid:1.2.208.176.2.4"
URI_SYSTEM = "urn:ietf:rfc:3986"
# MedCom's letter and envelope ids (OIOXML Letter/Identifier, Envelope/Identifier): unique per
# sender, who is the identifier's assigner (adapter/mappings/profiles/NamingSystem-*.json).
LETTER_ID_SYSTEM = "http://ggop-adapter.dk/fhir/NamingSystem/medcom-letter-id"
ENVELOPE_ID_SYSTEM = "http://ggop-adapter.dk/fhir/NamingSystem/medcom-envelope-id"
# A region by the adapter's key, for a region whose official code is not yet published (Region
# Østdanmark from the 2027 reform): the deadlines' setting region_mergers names it.
REGION_KEY_SYSTEM = "http://ggop-adapter.dk/fhir/NamingSystem/region-key"
