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


def read_letter(node: Node) -> Letter:
    return Letter(
        where=where(node),
        identifier=node.text("Identifier"),
        version_code=node.text("VersionCode"),
        statistical_code=node.text("StatisticalCode"),
        authorisation_date=node.text("Authorisation", "Date"),
        authorisation_time=node.text("Authorisation", "Time"),
        type_code=node.text("TypeCode"),
        status_code=node.text("StatusCode"),
        episode_of_care_identifier=node.text("EpisodeOfCareIdentifier"),
    )


def read_party(node: Node, role: str) -> Party:
    return Party(
        where=where(node),
        role=role,
        ean=node.text("EANIdentifier"),
        identifier=node.text("Identifier"),
        identifier_code=node.text("IdentifierCode"),
        organisation_name=node.text("OrganisationName"),
        department_name=node.text("DepartmentName"),
        unit_name=node.text("UnitName"),
        street_name=node.text("StreetName"),
        suburb_name=node.text("SuburbName"),
        district_name=node.text("DistrictName"),
        post_code=node.text("PostCodeIdentifier"),
        telephone=node.text("TelephoneSubscriberIdentifier"),
        medical_speciality=node.text("MedicalSpecialityCode"),
    )


def read_person(node: Node, role: str) -> Person:
    return Person(
        where=where(node),
        role=role,
        identifier=node.text("Identifier"),
        identifier_code=node.text("IdentifierCode"),
        given_name=node.text("PersonGivenName"),
        surname=node.text("PersonSurnameName"),
        title=node.text("PersonTitle"),
        telephone=node.text("TelephoneSubscriberIdentifier"),
        department_name=node.text("DepartmentName"),
    )


def read_address(node: Node) -> Address:
    return Address(
        street_name=node.text("StreetName"),
        suburb_name=node.text("SuburbName"),
        district_name=node.text("DistrictName"),
        post_code=node.text("PostCodeIdentifier"),
    )


def read_telephones(node: Node) -> list[Telephone]:
    phones = []
    for t in node.children("TelephoneSubscriber"):
        number = t.text("TelephoneSubscriberIdentifier")
        if number is not None:
            phones.append(Telephone(number=number, use=t.text("TelephoneSubscriberCode")))
    return phones


def read_patient(node: Node) -> Patient:
    co = node.child("CoAddress")
    co_name = None
    if co is not None:
        given, sur = co.text("PersonGivenName"), co.text("PersonSurnameName")
        parts = [v for v in (given, sur) if v is not None]
        if parts:
            co_name = type(parts[0])(" ".join(p.value for p in parts), parts[0].line, co.xpath)
    return Patient(
        where=where(node),
        cpr=node.text("CivilRegistrationNumber"),
        alternative_identifier=node.text("AlternativeIdentifier"),
        surname=node.text("PersonSurnameName"),
        given_name=node.text("PersonGivenName"),
        address=read_address(node),
        occupation=node.text("Occupation") or node.text("OccupancyText"),
        telephones=read_telephones(node),
        no_telephone_reason=node.text("NoTelephoneReason"),
        email=node.text("EmailAddressIdentifier"),
        co_address_name=co_name,
        co_address=read_address(co) if co is not None else None,
        episode_of_care_status=node.text("EpisodeOfCareStatusCode"),
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
