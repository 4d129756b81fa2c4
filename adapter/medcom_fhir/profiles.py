"""Canonical URLs, code systems and fixed codes of MedCom's FHIR messaging standards
(CareCommunication 5.0, Acknowledgement 2.0, messaging, MedCom core and terminology)."""

from __future__ import annotations

CC = "http://medcomfhir.dk/ig/carecommunication/StructureDefinition/"
ACK = "http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/"
CORE = "http://medcomfhir.dk/ig/core/StructureDefinition/"
MESSAGING = "http://medcomfhir.dk/ig/messaging/StructureDefinition/"
TERMINOLOGY = "http://medcomfhir.dk/ig/terminology/CodeSystem/"

CC_MESSAGE = CC + "medcom-careCommunication-message"
CC_HEADER = CC + "medcom-careCommunication-messageHeader"
CC_COMMUNICATION = CC + "medcom-careCommunication-communication"
CC_PROVENANCE = CC + "medcom-careCommunication-provenance"
ACK_MESSAGE = ACK + "medcom-messaging-acknowledgement"
ACK_HEADER = ACK + "medcom-messaging-acknowledgementHeader"
ACK_OUTCOME = ACK + "medcom-acknowledgement-operationoutcome"
CORE_PATIENT = CORE + "medcom-core-patient"
CORE_PRACTITIONER = CORE + "medcom-core-practitioner"
CORE_PRACTITIONER_ROLE = CORE + "medcom-core-practitionerrole"
CORE_ENCOUNTER = CORE + "medcom-core-encounter"
MESSAGING_ORGANIZATION = MESSAGING + "medcom-messaging-organization"
MESSAGING_PROVENANCE = MESSAGING + "medcom-messaging-provenance"
DESTINATION_USE_EXTENSION = MESSAGING + "medcom-messaging-destinationUseExtension"

EVENT_SYSTEM = TERMINOLOGY + "medcom-messaging-eventCodes"
ACTIVITY_SYSTEM = TERMINOLOGY + "medcom-messaging-activityCodes"
DESTINATION_USE_SYSTEM = TERMINOLOGY + "medcom-messaging-destinationUse"
CATEGORY_SYSTEM = TERMINOLOGY + "medcom-careCommunication-categoryCodes"
ACK_ERROR_SYSTEM = TERMINOLOGY + "medcom-acknowledgement-error-codes"
HL7_OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/operation-outcome"

CARE_COMMUNICATION_EVENT = "care-communication-message"
ACKNOWLEDGEMENT_EVENT = "acknowledgement-message"
# MessageHeader.definition of every CareCommunication this adapter writes (MedCom's default in
# the XDIS91 → CareCommunication mapping v5.0.0; the profile wants ...|5.<minor>)
CC_DEFINITION = ("http://medcomfhir.dk/ig/messagedefinitions/MessageDefinition/"
                 "MedComCareCommunicationMessageDefinition|5.0")
# MessageHeader endpoints are SOR addresses
SOR_ENDPOINT = "https://sor2.sum.dsdn.dk/#id="

# the activities a CareCommunication's Provenance may carry, and the acknowledgement's
CC_ACTIVITIES = ("new-message", "reply-message", "forward-message")
ACK_ACTIVITY = "acknowledgement"
