"""Readers for the parts every MedCom letter shares: envelope, letter, parties, patient."""

from __future__ import annotations

from adapter.medcom.model import (
    Address,
    Envelope,
    Letter,
    Party,
    Patient,
    Person,
    Relative,
    Telephone,
    Where,
)
from adapter.medcom.nodes import Node


def where(node: Node) -> Where:
    return Where(node.line, node.xpath)


def read_envelope(node: Node) -> Envelope:
    return Envelope(
        where=where(node),
        sent_date=node.text("Sent", "Date"),
        sent_time=node.text("Sent", "Time"),
        identifier=node.text("Identifier"),
        acknowledgement_code=node.text("AcknowledgementCode"),
    )


_LETTER = frozenset({"Identifier", "VersionCode", "StatisticalCode", "TypeCode", "StatusCode",
                     "EpisodeOfCareIdentifier"})


def read_letter(node: Node) -> Letter:
    t = node.texts(_LETTER)
    return Letter(
        where=where(node),
        identifier=t.get("Identifier"),
        version_code=t.get("VersionCode"),
        statistical_code=t.get("StatisticalCode"),
        authorisation_date=node.text("Authorisation", "Date"),
        authorisation_time=node.text("Authorisation", "Time"),
        type_code=t.get("TypeCode"),
        status_code=t.get("StatusCode"),
        episode_of_care_identifier=t.get("EpisodeOfCareIdentifier"),
    )


_PARTY = frozenset({"EANIdentifier", "Identifier", "IdentifierCode", "OrganisationName", "DepartmentName", "UnitName",
                    "StreetName", "SuburbName", "DistrictName", "PostCodeIdentifier",
                    "TelephoneSubscriberIdentifier", "MedicalSpecialityCode"})


def read_party(node: Node, role: str) -> Party:
    t = node.texts(_PARTY)
    return Party(
        where=where(node),
        role=role,
        ean=t.get("EANIdentifier"),
        identifier=t.get("Identifier"),
        identifier_code=t.get("IdentifierCode"),
        organisation_name=t.get("OrganisationName"),
        department_name=t.get("DepartmentName"),
        unit_name=t.get("UnitName"),
        street_name=t.get("StreetName"),
        suburb_name=t.get("SuburbName"),
        district_name=t.get("DistrictName"),
        post_code=t.get("PostCodeIdentifier"),
        telephone=t.get("TelephoneSubscriberIdentifier"),
        medical_speciality=t.get("MedicalSpecialityCode"),
    )


_PERSON = frozenset({"Identifier", "IdentifierCode", "PersonGivenName", "PersonSurnameName", "PersonTitle",
                     "TelephoneSubscriberIdentifier", "DepartmentName"})


def read_person(node: Node, role: str) -> Person:
    t = node.texts(_PERSON)
    return Person(
        where=where(node),
        role=role,
        identifier=t.get("Identifier"),
        identifier_code=t.get("IdentifierCode"),
        given_name=t.get("PersonGivenName"),
        surname=t.get("PersonSurnameName"),
        title=t.get("PersonTitle"),
        telephone=t.get("TelephoneSubscriberIdentifier"),
        department_name=t.get("DepartmentName"),
    )


_ADDRESS = frozenset({"StreetName", "SuburbName", "DistrictName", "PostCodeIdentifier"})


def read_address(node: Node) -> Address:
    t = node.texts(_ADDRESS)
    return Address(
        street_name=t.get("StreetName"),
        suburb_name=t.get("SuburbName"),
        district_name=t.get("DistrictName"),
        post_code=t.get("PostCodeIdentifier"),
    )


def read_telephones(node: Node) -> list[Telephone]:
    phones = []
    for t in node.children("TelephoneSubscriber"):
        number = t.text("TelephoneSubscriberIdentifier")
        if number is not None:
            phones.append(Telephone(number=number, use=t.text("TelephoneSubscriberCode")))
    return phones


_PATIENT = frozenset({"CivilRegistrationNumber", "AlternativeIdentifier", "PersonSurnameName", "PersonGivenName",
                      "Occupation", "OccupancyText", "NoTelephoneReason", "EmailAddressIdentifier",
                      "EpisodeOfCareStatusCode"})


def read_patient(node: Node) -> Patient:
    co = node.child("CoAddress")
    co_name = None
    if co is not None:
        given, sur = co.text("PersonGivenName"), co.text("PersonSurnameName")
        parts = [v for v in (given, sur) if v is not None]
        if parts:
            co_name = type(parts[0])(" ".join(p.value for p in parts), parts[0].line, co.xpath)
    t = node.texts(_PATIENT)
    return Patient(
        where=where(node),
        cpr=t.get("CivilRegistrationNumber"),
        alternative_identifier=t.get("AlternativeIdentifier"),
        surname=t.get("PersonSurnameName"),
        given_name=t.get("PersonGivenName"),
        address=read_address(node),
        occupation=t.get("Occupation") or t.get("OccupancyText"),
        telephones=read_telephones(node),
        no_telephone_reason=t.get("NoTelephoneReason"),
        email=t.get("EmailAddressIdentifier"),
        co_address_name=co_name,
        co_address=read_address(co) if co is not None else None,
        episode_of_care_status=t.get("EpisodeOfCareStatusCode"),
    )


def read_relative(node: Node) -> Relative:
    return Relative(
        where=where(node),
        relation_code=node.text("RelationCode"),
        surname=node.text("PersonSurnameName"),
        given_name=node.text("PersonGivenName"),
        address=read_address(node),
        telephones=read_telephones(node),
        email=node.text("EmailAddressIdentifier"),
    )
