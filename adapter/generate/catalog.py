"""Data tables for the synthetic message generator: names, places, hospitals, diagnoses,
ICF codes and Danish free-text snippets.

Everything here is invented for test data or is public reference knowledge (hospital
addresses, municipality post towns, SKS/ICF code titles). No real patient data.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------

# Given names by sex and by the era the person was born in (popular names of the time).
GIVEN_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("m", "old"): (
        "Bent", "Jørgen", "Poul", "Niels", "Hans", "Erik", "Knud", "Svend", "Arne", "Preben",
        "Ole", "Finn", "Kurt", "Leif", "Aage", "Børge", "Verner", "Helge", "Gunnar", "Kaj",
        "Villy", "Egon", "Holger", "Frede",
    ),
    ("f", "old"): (
        "Kirsten", "Hanne", "Inge", "Birthe", "Jytte", "Grethe", "Else", "Ruth", "Lis", "Bodil",
        "Karen", "Ingrid", "Gerda", "Edith", "Ellen", "Aase", "Tove", "Gudrun", "Inger", "Lilly",
        "Ella", "Solveig", "Agnete", "Elna",
    ),
    ("m", "mid"): (
        "Lars", "Michael", "Henrik", "Thomas", "Søren", "Jens", "Peter", "Morten", "Jan", "Carsten",
        "Claus", "Torben", "Steen", "Brian", "Kim", "Allan", "Jesper", "René", "Flemming", "Per",
        "Ahmed", "Ali",
    ),
    ("f", "mid"): (
        "Anne", "Susanne", "Mette", "Lone", "Pia", "Charlotte", "Helle", "Tina", "Bente", "Dorte",
        "Marianne", "Lene", "Gitte", "Annette", "Jette", "Louise", "Heidi", "Vibeke", "Trine",
        "Anja", "Fatima", "Leyla",
    ),
    ("m", "young"): (
        "Mads", "Rasmus", "Mathias", "Frederik", "Jonas", "Nikolaj", "Kasper", "Martin", "Andreas",
        "Christian", "Mikkel", "Emil", "Tobias", "Simon", "Jakob", "Daniel", "Mohammad", "Omar",
    ),
    ("f", "young"): (
        "Julie", "Camilla", "Sarah", "Emma", "Cecilie", "Maria", "Line", "Katrine", "Sofie", "Ida",
        "Laura", "Caroline", "Mathilde", "Amalie", "Nanna", "Signe", "Amira", "Sara",
    ),
    ("m", "child"): (
        "William", "Noah", "Oscar", "Lucas", "Alfred", "Carl", "Victor", "Malthe", "Aksel", "Elias",
        "Magnus", "Oliver", "Arthur", "Valdemar", "Johan", "Theo", "August", "Adam",
    ),
    ("f", "child"): (
        "Ida", "Clara", "Freja", "Alma", "Sofia", "Ella", "Agnes", "Karla", "Olivia", "Asta",
        "Emma", "Luna", "Josefine", "Liva", "Nora", "Aya", "Esther", "Vigga",
    ),
}

MIDDLE_NAMES: dict[str, tuple[str, ...]] = {
    "m": ("Erik", "Peter", "Johan", "Christian", "Valdemar", "Aksel", "Emil"),
    "f": ("Marie", "Margrethe", "Sofie", "Louise", "Kristine", "Elisabeth", "Emilie"),
}

SURNAMES: tuple[str, ...] = (
    "Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen",
    "Christiansen", "Poulsen", "Johansen", "Møller", "Mortensen", "Knudsen", "Jakobsen",
    "Mikkelsen", "Frederiksen", "Dahl", "Lund", "Holm", "Schmidt", "Eriksen", "Kjær",
    "Andreasen", "Bach", "Østergaard", "Vestergaard", "Nørgaard", "Laursen", "Iversen",
    "Jeppesen", "Clausen", "Bertelsen", "Kristiansen", "Friis", "Søndergaard", "Skov",
    "Bæk", "Damgaard", "Lauridsen", "Brandt", "Winther", "Overgaard", "Ahmed", "Hussein",
    "Yilmaz", "Nguyen", "Kowalski", "Ali", "Abdi", "Berg", "Krogh", "Lindberg",
)

OCCUPATIONS_ADULT: tuple[str, ...] = (
    "Tømrer", "Sygeplejerske", "Lærer", "Chauffør", "Pædagog", "Kontorassistent", "Landmand",
    "Social- og sundhedsassistent", "Murer", "Ingeniør", "Elektriker", "Butiksassistent",
    "Selvstændig", "Lagerarbejder", "Revisor", "Frisør", "Smed", "Studerende", "Ledig",
    "Førtidspensionist", "Rengøringsassistent", "Kok", "IT-konsulent", "Postbud",
)
OCCUPATIONS_RETIRED: tuple[str, ...] = ("Pensionist", "Pensionist", "Pensionist", "Efterlønner")

PERSON_TITLES_SIGNER: tuple[str, ...] = (
    "Fysioterapeut", "Ergoterapeut", "Overlæge", "Afdelingslæge", "Læge", "Terapeut",
)
TEAM_TITLES: tuple[str, ...] = (
    "Fysioterapeut", "Ergoterapeut", "Overlæge", "Afdelingslæge", "Sygeplejerske", "Logopæd",
    "Neuropsykolog", "Socialrådgiver", "Klinisk diætist",
)
DOCTOR_TITLES: tuple[str, ...] = ("Overlæge", "Afdelingslæge", "Reservelæge", "1. reservelæge")

# ---------------------------------------------------------------------------------------------
# Places
# ---------------------------------------------------------------------------------------------

STREETS: tuple[str, ...] = (
    "Skovvej", "Vestergade", "Østergade", "Nørregade", "Søndergade", "Kirkevej", "Bakkevej",
    "Engvej", "Møllevej", "Stationsvej", "Birkevej", "Egevej", "Ahornvej", "Bøgevej",
    "Rosenvænget", "Lindevej", "Hybenvej", "Solsikkevej", "Havnegade", "Strandvejen", "Parkvej",
    "Toftevej", "Ringvejen", "Fasanvej", "Vibevej", "Mågevej", "Grønnegade", "Kastanie Allé",
    "Hindbærvej", "Tranebærvej", "Skolegade", "Fredensgade", "Algade", "Vænget", "Lærkevej",
    "Syrenvej", "Kløvervej", "Åbakken", "Granvej", "Blommehaven", "Teglværksvej", "Smedegade",
)

# Post towns per municipality (kommunekode -> (postnummer, by, bydel or "")).
MUNICIPALITY_TOWNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "0101": (("2100", "København Ø", "Østerbro"), ("2200", "København N", "Nørrebro"),
             ("2300", "København S", "Amager"), ("2400", "København NV", ""),
             ("2500", "Valby", ""), ("2720", "Vanløse", "")),
    "0147": (("2000", "Frederiksberg", ""),),
    "0151": (("2750", "Ballerup", ""), ("2740", "Skovlunde", "")),
    "0153": (("2605", "Brøndby", ""), ("2660", "Brøndby Strand", "")),
    "0155": (("2791", "Dragør", ""),),
    "0157": (("2820", "Gentofte", ""), ("2900", "Hellerup", ""), ("2920", "Charlottenlund", "")),
    "0159": (("2860", "Søborg", ""), ("2880", "Bagsværd", "")),
    "0161": (("2600", "Glostrup", ""),),
    "0163": (("2730", "Herlev", ""),),
    "0165": (("2620", "Albertslund", ""),),
    "0167": (("2650", "Hvidovre", ""),),
    "0169": (("2630", "Taastrup", ""), ("2640", "Hedehusene", "")),
    "0173": (("2800", "Kongens Lyngby", ""),),
    "0175": (("2610", "Rødovre", ""),),
    "0183": (("2635", "Ishøj", ""),),
    "0185": (("2770", "Kastrup", ""),),
    "0187": (("2625", "Vallensbæk", ""),),
    "0190": (("3520", "Farum", ""), ("3500", "Værløse", "")),
    "0201": (("3450", "Allerød", "Lillerød"),),
    "0210": (("3480", "Fredensborg", ""), ("2980", "Kokkedal", "")),
    "0217": (("3000", "Helsingør", ""), ("3100", "Hornbæk", "")),
    "0219": (("3400", "Hillerød", ""),),
    "0223": (("2970", "Hørsholm", ""),),
    "0230": (("2840", "Holte", ""), ("3460", "Birkerød", "")),
    "0240": (("3650", "Ølstykke", ""), ("2765", "Smørum", "")),
    "0250": (("3600", "Frederikssund", ""),),
    "0253": (("2670", "Greve", ""),),
    "0259": (("4600", "Køge", ""),),
    "0260": (("3300", "Frederiksværk", ""), ("3390", "Hundested", "")),
    "0265": (("4000", "Roskilde", ""),),
    "0269": (("2680", "Solrød Strand", ""),),
    "0270": (("3200", "Helsinge", ""), ("3250", "Gilleleje", "")),
    "0306": (("4500", "Nykøbing Sj", ""), ("4550", "Asnæs", "")),
    "0316": (("4300", "Holbæk", ""),),
    "0320": (("4640", "Faxe", ""), ("4690", "Haslev", "")),
    "0326": (("4400", "Kalundborg", ""),),
    "0329": (("4100", "Ringsted", ""),),
    "0330": (("4200", "Slagelse", ""), ("4220", "Korsør", "")),
    "0336": (("4660", "Store Heddinge", ""),),
    "0340": (("4180", "Sorø", ""),),
    "0350": (("4320", "Lejre", ""),),
    "0360": (("4930", "Maribo", ""), ("4900", "Nakskov", "")),
    "0370": (("4700", "Næstved", ""),),
    "0376": (("4800", "Nykøbing F", ""),),
    "0390": (("4760", "Vordingborg", ""),),
    "0400": (("3700", "Rønne", ""), ("3730", "Nexø", "")),
    "0410": (("5500", "Middelfart", ""),),
    "0420": (("5610", "Assens", ""),),
    "0430": (("5600", "Faaborg", ""), ("5750", "Ringe", "")),
    "0440": (("5300", "Kerteminde", ""),),
    "0450": (("5800", "Nyborg", ""),),
    "0461": (("5000", "Odense C", ""), ("5200", "Odense V", ""), ("5260", "Odense S", "Hjallese"),
             ("5230", "Odense M", ""), ("5220", "Odense SØ", "")),
    "0479": (("5700", "Svendborg", ""),),
    "0480": (("5400", "Bogense", ""), ("5450", "Otterup", "")),
    "0482": (("5900", "Rudkøbing", ""),),
    "0492": (("5970", "Ærøskøbing", ""), ("5960", "Marstal", "")),
    "0510": (("6100", "Haderslev", ""),),
    "0530": (("7190", "Billund", ""), ("7200", "Grindsted", "")),
    "0540": (("6400", "Sønderborg", ""),),
    "0550": (("6270", "Tønder", ""),),
    "0561": (("6700", "Esbjerg", ""), ("6705", "Esbjerg Ø", "")),
    "0563": (("6720", "Fanø", "Nordby"),),
    "0573": (("6800", "Varde", ""),),
    "0575": (("6600", "Vejen", ""),),
    "0580": (("6200", "Aabenraa", ""),),
    "0607": (("7000", "Fredericia", ""),),
    "0615": (("8700", "Horsens", ""),),
    "0621": (("6000", "Kolding", ""),),
    "0630": (("7100", "Vejle", ""),),
    "0657": (("7400", "Herning", ""),),
    "0661": (("7500", "Holstebro", ""),),
    "0665": (("7620", "Lemvig", ""),),
    "0671": (("7600", "Struer", ""),),
    "0706": (("8400", "Ebeltoft", ""), ("8410", "Rønde", "")),
    "0707": (("8500", "Grenaa", ""),),
    "0710": (("8370", "Hadsten", ""), ("8450", "Hammel", "")),
    "0727": (("8300", "Odder", ""),),
    "0730": (("8900", "Randers C", ""),),
    "0740": (("8600", "Silkeborg", ""),),
    "0741": (("8305", "Samsø", "Tranebjerg"),),
    "0746": (("8660", "Skanderborg", ""),),
    "0751": (("8000", "Aarhus C", ""), ("8200", "Aarhus N", ""), ("8210", "Aarhus V", ""),
             ("8260", "Viby J", ""), ("8240", "Risskov", "")),
    "0756": (("7430", "Ikast", ""), ("7330", "Brande", "")),
    "0760": (("6950", "Ringkøbing", ""), ("6900", "Skjern", "")),
    "0766": (("8722", "Hedensted", ""),),
    "0773": (("7900", "Nykøbing M", ""),),
    "0779": (("7800", "Skive", ""),),
    "0787": (("7700", "Thisted", ""),),
    "0791": (("8800", "Viborg", ""),),
    "0810": (("9700", "Brønderslev", ""),),
    "0813": (("9900", "Frederikshavn", ""), ("9990", "Skagen", "")),
    "0820": (("9600", "Aars", ""),),
    "0825": (("9940", "Læsø", "Byrum"),),
    "0840": (("9530", "Støvring", ""), ("9520", "Skørping", "")),
    "0846": (("9500", "Hobro", ""),),
    "0849": (("9440", "Aabybro", ""),),
    "0851": (("9000", "Aalborg", ""), ("9220", "Aalborg Øst", ""), ("9400", "Nørresundby", "")),
    "0860": (("9800", "Hjørring", ""),),
}

MUNICIPAL_DEPARTMENTS: tuple[str, ...] = (
    "Visitationen", "Sundhed og Omsorg", "Genoptræning", "Myndighed Sundhed",
    "Træningsenheden", "Visitation og Hjælpemidler", "Sundhedscenter",
)

# ---------------------------------------------------------------------------------------------
# Hospitals
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Department:
    """A hospital department that writes rehabilitation plans."""

    key: str
    region: str  # regionskode, e.g. "1083"
    organisation: str
    department: str
    street: str | None
    postcode: str
    district: str
    shak: str  # 7-digit sygehusafdelingsnummer
    sor: str  # SOR code (15-16 digits)
    id_kind: str  # "sygehusafdelingsnummer" | "sorkode": what the department puts in Identifier
    groups: tuple[str, ...]  # diagnosis groups it discharges
    speciality: str  # MedCom MedicalSpecialityCode
    unit: str | None = None
    rehab: bool = False  # writes plans for rehabilitering på specialiseret niveau

    @property
    def identifier(self) -> str:
        return self.sor if self.id_kind == "sorkode" else self.shak


_ORTHO = ("hip", "alloplastik", "shoulder", "wrist", "ankle")
_ORTHO_BIG = _ORTHO + ("back", "amputation", "child_fracture", "child_ortho")
_MED = ("copd", "heart", "geri")
_NEURO = ("stroke", "tbi", "neuro_chronic")
_CHILD = ("child_fracture", "child_neuro", "child_ortho", "child_disability")


def _d(key, region, org, dept, street, postcode, district, shak, sor, id_kind, groups, spec,
       unit=None, rehab=False) -> Department:
    return Department(key, region, org, dept, street, postcode, district, shak, sor, id_kind,
                      tuple(groups), spec, unit, rehab)


DEPARTMENTS: tuple[Department, ...] = (
    # Region Hovedstaden
    _d("rh-neuro", "1084", "Rigshospitalet", "Neurologisk Klinik", "Blegdamsvej 9", "2100",
       "København Ø", "1301201", "412431000016004", "sygehusafdelingsnummer", _NEURO,
       "neurologi", "N2082", True),
    _d("rh-nkir", "1084", "Rigshospitalet", "Neurokirurgisk Klinik", "Blegdamsvej 9", "2100",
       "København Ø", "1301221", "412441000016008", "sorkode", ("tbi",), "neurokirurgi"),
    _d("rh-orto", "1084", "Rigshospitalet", "Ortopædkirurgisk Klinik", "Blegdamsvej 9", "2100",
       "København Ø", "1301230", "412451000016001", "sygehusafdelingsnummer", _ORTHO_BIG,
       "ortopaedisk_kirurgi_sygehus"),
    _d("rh-boern", "1084", "Rigshospitalet", "Børne- og Ungeklinikken", "Blegdamsvej 9", "2100",
       "København Ø", "1301340", "412461000016003", "sygehusafdelingsnummer", _CHILD,
       "paediatri"),
    _d("glo-neurorehab", "1084", "Rigshospitalet Glostrup", "Klinik for Neurorehabilitering",
       "Valdemar Hansens Vej 13", "2600", "Glostrup", "1516290", "660591000016000", "sorkode",
       ("tbi", "stroke"), "neurologi", "Afsnit for Hjerneskade", True),
    _d("hvi-orto", "1084", "Hvidovre Hospital", "Ortopædkirurgisk Afdeling", "Kettegård Allé 30",
       "2650", "Hvidovre", "1330340", "279361000016002", "sygehusafdelingsnummer", _ORTHO,
       "ortopaedisk_kirurgi_sygehus", "Afsnit 333"),
    _d("hvi-boern", "1084", "Hvidovre Hospital", "Børne- og Ungeafdelingen", "Kettegård Allé 30",
       "2650", "Hvidovre", "1330460", "279371000016006", "sygehusafdelingsnummer",
       ("child_neuro", "child_disability"), "paediatri"),
    _d("bbh-neuro", "1084", "Bispebjerg Hospital", "Neurologisk Afdeling", "Bispebjerg Bakke 23",
       "2400", "København NV", "1309190", "276001000016004", "sygehusafdelingsnummer",
       ("stroke", "neuro_chronic"), "neurologi"),
    _d("bbh-geri", "1084", "Bispebjerg Hospital", "Geriatrisk Afdeling", "Bispebjerg Bakke 23",
       "2400", "København NV", "1309160", "276011000016008", "sygehusafdelingsnummer",
       ("geri", "hip"), "geriatri"),
    _d("her-hjerte", "1084", "Herlev Hospital", "Hjertemedicinsk Afdeling",
       "Borgmester Ib Juuls Vej 1", "2730", "Herlev", "1501130", "505001000016009",
       "sygehusafdelingsnummer", ("heart",), "kardiologi"),
    _d("gen-lunge", "1084", "Gentofte Hospital", "Lungemedicinsk Afdeling",
       "Gentofte Hospitalsvej 1", "2900", "Hellerup", "1502120", "505111000016006", "sorkode",
       ("copd",), "med_lungesygdomme"),
    _d("noh-orto", "1084", "Nordsjællands Hospital", "Ortopædkirurgisk Afdeling",
       "Dyrehavevej 29", "3400", "Hillerød", "4001260", "553201000016003",
       "sygehusafdelingsnummer", _ORTHO + ("back",), "ortopaedisk_kirurgi_sygehus"),
    _d("noh-med", "1084", "Nordsjællands Hospital", "Medicinsk Afdeling", "Dyrehavevej 29",
       "3400", "Hillerød", "4001110", "553211000016007", "sygehusafdelingsnummer",
       _MED + ("stroke",), "intern_medicin_sygehus"),
    _d("bof", "1084", "Bornholms Hospital", "Medicinsk Afdeling", "Ullasvej 8", "3700", "Rønne",
       "4001830", "553501000016002", "sygehusafdelingsnummer", _MED + ("stroke",),
       "intern_medicin_sygehus"),
    _d("bof-kir", "1084", "Bornholms Hospital", "Kirurgisk Afdeling", "Ullasvej 8", "3700",
       "Rønne", "4001840", "553511000016006", "sygehusafdelingsnummer",
       ("hip", "wrist", "ankle", "shoulder"), "kirurgi_sygehus"),
    # Region Sjælland
    _d("suh-koege", "1085", "Sjællands Universitetshospital Køge", "Ortopædkirurgisk Afdeling",
       "Lykkebækvej 1", "4600", "Køge", "3800450", "701101000016005", "sygehusafdelingsnummer",
       _ORTHO_BIG, "ortopaedisk_kirurgi_sygehus"),
    _d("suh-neuro", "1085", "Sjællands Universitetshospital", "Neurologisk Afdeling, Roskilde",
       "Sygehusvej 10", "4000", "Roskilde", "3800130", "701111000016009", "sorkode",
       _NEURO, "neurologi", None, True),
    _d("hol-med", "1085", "Holbæk Sygehus", "Medicinsk Afdeling", "Smedelundsgade 60", "4300",
       "Holbæk", "3001110", "702201000016003", "sygehusafdelingsnummer", _MED,
       "intern_medicin_sygehus"),
    _d("hol-orto", "1085", "Holbæk Sygehus", "Ortopædkirurgisk Afdeling", "Smedelundsgade 60",
       "4300", "Holbæk", "3001240", "702211000016007", "sygehusafdelingsnummer", _ORTHO,
       "ortopaedisk_kirurgi_sygehus"),
    _d("hol-boern", "1085", "Holbæk Sygehus", "Børneafdelingen", "Smedelundsgade 60", "4300",
       "Holbæk", "3001460", "702221000016000", "sygehusafdelingsnummer", _CHILD, "paediatri"),
    _d("nyk-orto", "1085", "Nykøbing F. Sygehus", "Ortopædkirurgisk Afdeling", "Fjordvej 15",
       "4800", "Nykøbing F", "3501240", "703301000016008", "sygehusafdelingsnummer", _ORTHO,
       "ortopaedisk_kirurgi_sygehus"),
    _d("sla-med", "1085", "Slagelse Sygehus", "Medicinsk Afdeling", "Ingemannsvej 18", "4200",
       "Slagelse", "3401110", "704401000016006", "sorkode", _MED + ("stroke",),
       "intern_medicin_sygehus"),
    # Region Syddanmark
    _d("ouh-orto", "1083", "Odense Universitetshospital", "Ortopædkirurgisk Afdeling",
       "J.B. Winsløws Vej 4", "5000", "Odense C", "4202340", "463011000016001",
       "sygehusafdelingsnummer", _ORTHO_BIG, "ortopaedisk_kirurgi_sygehus", "Afsnit O3"),
    _d("ouh-neuro", "1083", "Odense Universitetshospital", "Neurologisk Afdeling N",
       "J.B. Winsløws Vej 4", "5000", "Odense C", "4202190", "463021000016005",
       "sygehusafdelingsnummer", _NEURO, "neurologi", "Afsnit N2", True),
    _d("ouh-boern", "1083", "Odense Universitetshospital", "H.C. Andersen Børnehospital",
       "J.B. Winsløws Vej 4", "5000", "Odense C", "4202460", "463031000016009",
       "sygehusafdelingsnummer", _CHILD, "paediatri"),
    _d("ouh-lunge", "1083", "Odense Universitetshospital", "Lungemedicinsk Afdeling J",
       "J.B. Winsløws Vej 4", "5000", "Odense C", "4202120", "463041000016002", "sorkode",
       ("copd",), "med_lungesygdomme"),
    _d("ouh-svb", "1083", "OUH Svendborg Sygehus", "Medicinsk Afdeling", "Valdemarsgade 57",
       "5700", "Svendborg", "4212110", "463101000016004", "sygehusafdelingsnummer", _MED,
       "intern_medicin_sygehus"),
    _d("sl-vejle", "1083", "Sygehus Lillebælt", "Medicinsk Afdeling, Vejle", "Beriderbakken 4",
       "7100", "Vejle", "5501110", "464201000016001", "sygehusafdelingsnummer", _MED,
       "intern_medicin_sygehus"),
    _d("sl-kolding", "1083", "Sygehus Lillebælt", "Ortopædkirurgi, Kolding", "Skovvangen 2-8",
       "6000", "Kolding", "5501240", "464211000016005", "sorkode", _ORTHO,
       "ortopaedisk_kirurgi_sygehus"),
    _d("sl-ryg", "1083", "Sygehus Lillebælt", "Rygkirurgi, Middelfart", "Østre Hougvej 55",
       "5500", "Middelfart", "5501280", "464221000016009", "sorkode", ("back",),
       "ortopaedisk_kirurgi_sygehus"),
    _d("svs-orto", "1083", "Sydvestjysk Sygehus", "Ortopædkirurgisk Afdeling", "Finsensgade 35",
       "6700", "Esbjerg", "5001240", "465301000016007", "sygehusafdelingsnummer",
       _ORTHO + ("amputation",), "ortopaedisk_kirurgi_sygehus"),
    _d("svs-med", "1083", "Sydvestjysk Sygehus", "Medicinsk Afdeling", "Finsensgade 35", "6700",
       "Esbjerg", "5001110", "465311000016000", "sygehusafdelingsnummer", _MED + ("stroke",),
       "intern_medicin_sygehus"),
    _d("shs-orto", "1083", "Sygehus Sønderjylland", "Ortopædkirurgisk Afdeling",
       "Kresten Philipsens Vej 15", "6200", "Aabenraa", "5201240", "466401000016006",
       "sygehusafdelingsnummer", _ORTHO, "ortopaedisk_kirurgi_sygehus"),
    _d("shs-neuro", "1083", "Sygehus Sønderjylland", "Neurologisk Afdeling",
       "Kresten Philipsens Vej 15", "6200", "Aabenraa", "5201190", "466411000016003",
       "sygehusafdelingsnummer", ("stroke", "neuro_chronic"), "neurologi"),
    # Region Midtjylland
    _d("auh-neuro", "1082", "Aarhus Universitetshospital", "Neurologi",
       "Palle Juul-Jensens Boulevard 99", "8200", "Aarhus N", "7005190", "422011000016003",
       "sorkode", _NEURO, "neurologi", None, True),
    _d("auh-orto", "1082", "Aarhus Universitetshospital", "Ortopædkirurgi",
       "Palle Juul-Jensens Boulevard 99", "8200", "Aarhus N", "7005240", "422021000016007",
       "sorkode", _ORTHO_BIG, "ortopaedisk_kirurgi_sygehus"),
    _d("auh-hjerte", "1082", "Aarhus Universitetshospital", "Hjertesygdomme",
       "Palle Juul-Jensens Boulevard 99", "8200", "Aarhus N", "7005130", "422031000016000",
       "sorkode", ("heart",), "kardiologi"),
    _d("auh-lunge", "1082", "Aarhus Universitetshospital", "Lungesygdomme",
       "Palle Juul-Jensens Boulevard 99", "8200", "Aarhus N", "7005120", "422041000016004",
       "sorkode", ("copd",), "med_lungesygdomme"),
    _d("auh-boern", "1082", "Aarhus Universitetshospital", "Børn og Unge",
       "Palle Juul-Jensens Boulevard 99", "8200", "Aarhus N", "7005460", "422051000016008",
       "sorkode", _CHILD, "paediatri"),
    _d("rhv-med", "1082", "Regionshospitalet Viborg", "Medicinsk Afdeling", "Heibergs Allé 4",
       "8800", "Viborg", "6620110", "423101000016005", "sygehusafdelingsnummer",
       _MED + ("stroke",), "intern_medicin_sygehus"),
    _d("rhv-orto", "1082", "Regionshospitalet Viborg", "Ortopædkirurgi", "Heibergs Allé 4",
       "8800", "Viborg", "6620240", "423111000016009", "sygehusafdelingsnummer", _ORTHO,
       "ortopaedisk_kirurgi_sygehus"),
    _d("gds-orto", "1082", "Regionshospitalet Gødstrup", "Ortopædkirurgi", "Hospitalsparken 15",
       "7400", "Herning", "6630240", "423201000016002", "sygehusafdelingsnummer",
       _ORTHO + ("amputation", "back"), "ortopaedisk_kirurgi_sygehus"),
    _d("gds-neuro", "1082", "Regionshospitalet Gødstrup", "Neurologi", "Hospitalsparken 15",
       "7400", "Herning", "6630190", "423211000016006", "sygehusafdelingsnummer",
       ("stroke", "neuro_chronic"), "neurologi"),
    _d("rhr-orto", "1082", "Regionshospitalet Randers", "Ortopædkirurgi", "Skovlyvej 15",
       "8930", "Randers NØ", "6006240", "423301000016000", "sygehusafdelingsnummer", _ORTHO,
       "ortopaedisk_kirurgi_sygehus"),
    _d("rhh-med", "1082", "Regionshospitalet Horsens", "Medicinsk Afdeling", "Sundvej 30",
       "8700", "Horsens", "7025110", "423401000016007", "sygehusafdelingsnummer", _MED,
       "intern_medicin_sygehus"),
    _d("rhs-cpk", "1082", "Regionshospitalet Silkeborg", "Center for Planlagt Kirurgi",
       "Falkevej 1-3", "8600", "Silkeborg", "6008260", "423501000016004", "sorkode",
       ("alloplastik", "back"), "ortopaedisk_kirurgi_sygehus"),
    _d("hammel", "1082", "Hammel Neurocenter", "Neurorehabilitering", "Voldbyvej 15", "8450",
       "Hammel", "6006700", "423601000016001", "sorkode", ("stroke", "tbi"), "neurologi", None,
       True),
    # Region Nordjylland
    _d("aauh-orto", "1081", "Aalborg Universitetshospital", "Ortopædkirurgi", "Hobrovej 18-22",
       "9000", "Aalborg", "8001240", "487011000016003", "sygehusafdelingsnummer", _ORTHO_BIG,
       "ortopaedisk_kirurgi_sygehus"),
    _d("aauh-neuro", "1081", "Aalborg Universitetshospital", "Neurologisk Afdeling",
       "Hobrovej 18-22", "9000", "Aalborg", "8001190", "487021000016007",
       "sygehusafdelingsnummer", _NEURO, "neurologi", None, True),
    _d("aauh-boern", "1081", "Aalborg Universitetshospital", "Børne- og Ungeafdelingen",
       "Hobrovej 18-22", "9000", "Aalborg", "8001460", "487031000016000",
       "sygehusafdelingsnummer", _CHILD, "paediatri"),
    _d("aauh-lunge", "1081", "Aalborg Universitetshospital", "Lungemedicinsk Afdeling",
       "Hobrovej 18-22", "9000", "Aalborg", "8001120", "487041000016004", "sorkode",
       ("copd", "heart"), "med_lungesygdomme"),
    _d("aauh-farsoe", "1081", "Aalborg Universitetshospital", "Ortopædkirurgi, Farsø",
       "Søndergade 8", "9640", "Farsø", "8001250", "487051000016008", "sorkode",
       ("alloplastik",), "ortopaedisk_kirurgi_sygehus"),
    _d("aauh-bro", "1081", "Aalborg Universitetshospital", "Neurorehabilitering, Brønderslev",
       None, "9700", "Brønderslev", "8001720", "487061000016001", "sorkode", ("stroke", "tbi"),
       "neurologi", None, True),
    _d("rhn-med", "1081", "Regionshospital Nordjylland", "Medicinsk Afdeling, Hjørring",
       "Bispensgade 37", "9800", "Hjørring", "8003110", "488101000016002",
       "sygehusafdelingsnummer", _MED + ("stroke",), "intern_medicin_sygehus"),
    _d("rhn-orto", "1081", "Regionshospital Nordjylland", "Ortopædkirurgi, Hjørring",
       "Bispensgade 37", "9800", "Hjørring", "8003240", "488111000016006",
       "sygehusafdelingsnummer", _ORTHO, "ortopaedisk_kirurgi_sygehus"),
    _d("thi-med", "1081", "Aalborg UH Thisted", "Medicinsk Afdeling", "Højtoftevej 2", "7700",
       "Thisted", "8001610", "487101000016009", "sygehusafdelingsnummer", _MED,
       "intern_medicin_sygehus"),
)

# ---------------------------------------------------------------------------------------------
# Diagnoses (SKS D-codes with Danish texts)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    code: str
    text: str
    group: str
    weight: float  # relative frequency among primary diagnoses
    age: tuple[int, int]  # typical age range (years)
    stay: tuple[int, int]  # length of stay range (days); 0 = discharged the same day


PRIMARY_DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("DS720", "Brud på lårbenshals", "hip", 9, (62, 99), (3, 12)),
    Diagnosis("DS721", "Pertrokantært lårbensbrud", "hip", 7, (65, 99), (4, 14)),
    Diagnosis("DS722", "Subtrokantært lårbensbrud", "hip", 1.5, (60, 97), (5, 16)),
    Diagnosis("DM171", "Primær slidgigt i knæled, anden", "alloplastik", 6, (48, 88), (0, 3)),
    Diagnosis("DM161", "Primær slidgigt i hofteled, anden", "alloplastik", 4, (50, 90), (0, 3)),
    Diagnosis("DS422", "Brud på øvre ende af overarmsknogle", "shoulder", 5, (40, 96), (0, 6)),
    Diagnosis("DM751", "Rotator cuff-syndrom", "shoulder", 1.5, (38, 78), (0, 1)),
    Diagnosis("DS525", "Brud på nedre ende af spoleben", "wrist", 4, (18, 95), (0, 2)),
    Diagnosis("DS826", "Brud på ydre ankelknude", "ankle", 3, (18, 88), (0, 5)),
    Diagnosis("DS823", "Brud på nedre ende af skinneben", "ankle", 1.5, (18, 85), (1, 7)),
    Diagnosis("DM511", "Lændediskusprolaps med radikulopati", "back", 3, (22, 75), (0, 3)),
    Diagnosis("DM480", "Spinalstenose", "back", 2, (55, 88), (1, 4)),
    Diagnosis("DS320", "Brud på lændehvirvel", "back", 1.5, (45, 96), (2, 10)),
    Diagnosis("DI639", "Cerebralt infarkt UNS", "stroke", 8, (42, 97), (2, 28)),
    Diagnosis("DI634", "Cerebralt infarkt forårsaget af emboli", "stroke", 2, (45, 95), (3, 28)),
    Diagnosis("DI619", "Intracerebral blødning UNS", "stroke", 3, (45, 95), (5, 35)),
    Diagnosis("DG459", "Transitorisk cerebral iskæmi UNS", "stroke", 3, (45, 92), (0, 3)),
    Diagnosis("DS065", "Traumatisk subduralt hæmatom", "tbi", 2, (18, 92), (4, 30)),
    Diagnosis("DS062", "Diffus hjerneskade", "tbi", 1, (18, 75), (7, 45)),
    Diagnosis("DS060", "Hjernerystelse", "tbi", 1.5, (18, 85), (0, 2)),
    Diagnosis("DJ449", "Kronisk obstruktiv lungesygdom UNS", "copd", 5, (50, 93), (2, 10)),
    Diagnosis("DJ441", "KOL med akut eksacerbation", "copd", 4, (50, 93), (3, 12)),
    Diagnosis("DI509", "Hjerteinsufficiens UNS", "heart", 4, (55, 97), (3, 12)),
    Diagnosis("DI219", "Akut myokardieinfarkt UNS", "heart", 2, (42, 92), (2, 8)),
    Diagnosis("DZ894", "Erhvervet mangel af fod og ankel", "amputation", 1, (52, 95), (7, 25)),
    Diagnosis("DZ895", "Erhvervet mangel af ben under eller ved knæ", "amputation", 1.2,
              (52, 95), (10, 30)),
    Diagnosis("DJ189", "Pneumoni UNS", "geri", 4, (70, 101), (3, 10)),
    Diagnosis("DR531", "Svækkelse", "geri", 2, (75, 101), (3, 10)),
    Diagnosis("DG20", "Parkinsons sygdom", "neuro_chronic", 1, (55, 90), (2, 12)),
    Diagnosis("DG35", "Dissemineret sklerose", "neuro_chronic", 1, (25, 70), (2, 10)),
)

CHILD_DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("DS525", "Brud på nedre ende af spoleben", "child_fracture", 3, (6, 17), (0, 2)),
    Diagnosis("DS822", "Brud på skaft af skinneben", "child_fracture", 3, (4, 17), (1, 6)),
    Diagnosis("DS721", "Pertrokantært lårbensbrud", "child_fracture", 0.5, (8, 17), (3, 8)),
    Diagnosis("DS065", "Traumatisk subduralt hæmatom", "child_neuro", 1.5, (1, 17), (4, 21)),
    Diagnosis("DS060", "Hjernerystelse", "child_neuro", 1.5, (5, 17), (0, 2)),
    Diagnosis("DG610", "Guillain-Barré syndrom", "child_neuro", 1, (3, 17), (7, 28)),
    Diagnosis("DM412", "Anden idiopatisk skoliose", "child_ortho", 1.5, (11, 17), (4, 8)),
    Diagnosis("DS832", "Meniskskade, aktuel", "child_ortho", 1, (12, 17), (0, 1)),
)

# ---------------------------------------------------------------------------------------------
# National volumes the generated mix follows (seed S3: Sundhedsstyrelsen's 2025 proposal on the
# changed responsibility for specialised rehabilitation, figures from Landspatientregisteret)
# ---------------------------------------------------------------------------------------------

# Plans written at Danish hospitals in 2023 by plan type: "I 2023 blev der udarbejdet i alt
# 214.550 genoptræningsplaner på de danske sygehuse, heraf 199.115 til genoptræning på alment
# niveau, 14.805 genoptræningsplaner til specialiseret genoptræning og 630 til rehabilitering på
# specialiseret niveau" (S3, "Nuværende ansvar").
PLAN_TYPE_VOLUMES_2023: dict[str, int] = {
    "almen": 199_115, "specialiseret": 14_805, "rehabilitering": 630,
}

# Almen plans in 2023 by action (primary) diagnosis (S3, "Estimater"): 11.156 for acquired brain
# injury, 346 for multiple sclerosis and 186 for Parkinson's disease. No source gives the rest of
# the almen mix (fractures, joint replacements, COPD, ...): the diagnoses' own weights spread it.
ALMEN_DIAGNOSIS_VOLUMES_2023: dict[str, int] = {"abi": 11_156, "ms": 346, "parkinson": 186}

# The catalogue diagnoses each counted category covers. Acquired brain injury as S3 lists its
# causes (stroke, cerebral haemorrhage, traumatic brain injury, ...); a TIA (DG459) and a
# concussion (DS060) are not among them.
DIAGNOSIS_CATEGORIES: dict[str, str] = {
    "DI639": "abi", "DI634": "abi", "DI619": "abi", "DS065": "abi", "DS062": "abi",
    "DG35": "ms", "DG20": "parkinson",
}

# Share of plans for children under 18 (almen and specialiseret). Not from a source.
CHILD_SHARE = 0.10


def diagnosis_category(code: str) -> str:
    """``abi``, ``ms``, ``parkinson`` (the categories S3 counts) or ``other``."""
    return DIAGNOSIS_CATEGORIES.get(code, "other")


def national_shares() -> dict[str, float]:
    """The S3 figures as shares: ``plan_type:<type>`` of all plans and ``almen:<category>`` of
    the almen plans (``other`` is the rest)."""
    total = sum(PLAN_TYPE_VOLUMES_2023.values())
    out = {f"plan_type:{k}": v / total for k, v in PLAN_TYPE_VOLUMES_2023.items()}
    almen = PLAN_TYPE_VOLUMES_2023["almen"]
    out |= {f"almen:{k}": v / almen for k, v in ALMEN_DIAGNOSIS_VOLUMES_2023.items()}
    out["almen:other"] = 1 - sum(ALMEN_DIAGNOSIS_VOLUMES_2023.values()) / almen
    return out


# Children with a permanent disability get no G-GOP but an XDIS91 letter with a fixed heading.
CHILD_DISABILITY_DIAGNOSES: tuple[tuple[str, str], ...] = (
    ("DG809", "Cerebral parese UNS"),
    ("DG801", "Spastisk diplegi"),
    ("DQ909", "Downs syndrom UNS"),
    ("DG710", "Muskeldystrofi"),
    ("DQ059", "Spina bifida UNS"),
    ("DF82", "Specifik udviklingsforstyrrelse af motoriske funktioner"),
    ("DQ878", "Andre specificerede medfødte misdannelsessyndromer"),
)

# How often a plan of a diagnosis group tells of complications during the admission, and of
# cognitive difficulties. Not from a source. A coded secondary diagnosis with a flag (below)
# only appears on a plan that has the flag, so these are the flags' rates.
COMPLICATION_RATE: dict[str, float] = {
    "hip": 0.3, "stroke": 0.25, "tbi": 0.3, "amputation": 0.35, "geri": 0.25,
}
COMPLICATION_RATE_DEFAULT = 0.1
COGNITIVE_RATE: dict[str, float] = {
    "stroke": 0.45, "tbi": 0.6, "geri": 0.3, "hip": 0.2, "neuro_chronic": 0.25, "child_neuro": 0.3,
}
COGNITIVE_RATE_DEFAULT = 0.05

# (code, text, minimum age, flag) - flag names a fact the diagnosis implies
SECONDARY_DIAGNOSES: tuple[tuple[str, str, int, str | None], ...] = (
    ("DE119", "Type 2-diabetes uden komplikationer", 35, None),
    ("DI109", "Essentiel hypertension", 35, None),
    ("DF039", "Demens UNS", 65, "cognitive"),
    ("DM819", "Osteoporose UNS", 50, None),
    ("DE669", "Fedme UNS", 18, None),
    ("DI489", "Atrieflimren og atrieflagren UNS", 50, None),
    ("DN390", "Urinvejsinfektion uden angivelse af lokalisation", 18, "complication"),
    ("DJ189", "Pneumoni UNS", 18, "complication"),
    ("DF329", "Depressiv enkeltepisode UNS", 18, None),
    ("DR262", "Gangbesvær", 60, None),
    ("DF102", "Alkoholafhængighed", 25, None),
    ("DG473", "Søvnapnø", 30, None),
    ("DM069", "Reumatoid artritis UNS", 30, None),
    ("DF050", "Delirium ikke overlejret på demens", 65, "complication"),
    ("DI694", "Følger efter apopleksi", 50, None),
    ("DG459", "Transitorisk cerebral iskæmi UNS", 50, None),
)
CHILD_SECONDARY_DIAGNOSES: tuple[tuple[str, str, int, str | None], ...] = (
    ("DJ459", "Astma UNS", 2, None),
    ("DF900", "Forstyrrelse af aktivitet og opmærksomhed", 5, "cognitive"),
    ("DE669", "Fedme UNS", 6, None),
)

# ---------------------------------------------------------------------------------------------
# ICF (WHO International Classification of Functioning), Danish titles
# ---------------------------------------------------------------------------------------------

ICF_CODES: dict[str, str] = {
    "b110": "Bevidsthedsfunktioner",
    "b130": "Energi og handlekraft",
    "b140": "Opmærksomhed",
    "b144": "Hukommelse",
    "b152": "Følelsesmæssige funktioner",
    "b164": "Højere kognitive funktioner",
    "b167": "Mentale sprogfunktioner",
    "b280": "Smerteopfattelse",
    "b440": "Respirationsfunktioner",
    "b455": "Funktioner relateret til fysisk udholdenhed",
    "b710": "Funktioner relateret til leddenes bevægelighed",
    "b730": "Funktioner relateret til muskelkraft",
    "b735": "Funktioner relateret til muskeltonus",
    "b760": "Kontrol af viljestyrede bevægelser",
    "b770": "Funktioner relateret til gangmønster",
    "d230": "Udføre daglige rutiner",
    "d410": "Ændre grundlæggende kropsstilling",
    "d420": "Flytte sig",
    "d450": "Gå",
    "d455": "Bevæge sig omkring",
    "d465": "Bevæge sig omkring ved hjælp af udstyr",
    "d510": "Vaske sig",
    "d540": "Klæde sig på",
    "d550": "Spise",
    "d630": "Tilberede måltider",
    "d640": "Udføre husligt arbejde",
    "d820": "Skoleuddannelse",
    "d850": "Lønnet beskæftigelse",
    "d920": "Rekreation og fritid",
}

ICF_BY_GROUP: dict[str, tuple[str, ...]] = {
    "hip": ("b280", "b710", "b730", "d410", "d420", "d450", "d465", "d510", "d540", "d640"),
    "alloplastik": ("b280", "b710", "b730", "d410", "d450", "d540", "d640"),
    "shoulder": ("b280", "b710", "b730", "d510", "d540", "d630", "d640", "d850"),
    "wrist": ("b280", "b710", "b730", "d540", "d550", "d630", "d850"),
    "ankle": ("b280", "b710", "b770", "d450", "d455", "d465", "d850"),
    "back": ("b280", "b455", "b730", "d410", "d450", "d850", "d920"),
    "stroke": ("b130", "b140", "b144", "b164", "b167", "b730", "b735", "b760", "d230", "d450",
               "d510", "d540", "d630", "d850"),
    "tbi": ("b110", "b130", "b140", "b144", "b152", "b164", "b760", "d230", "d450", "d850"),
    "copd": ("b440", "b455", "b130", "d450", "d510", "d640"),
    "heart": ("b455", "b130", "b440", "d450", "d640", "d850"),
    "amputation": ("b280", "b730", "d410", "d420", "d465", "d540"),
    "geri": ("b130", "b144", "b455", "b730", "d410", "d420", "d450", "d510"),
    "neuro_chronic": ("b130", "b455", "b735", "b760", "b770", "d450", "d640"),
    "child_fracture": ("b280", "b710", "b730", "d450", "d820", "d920"),
    "child_neuro": ("b130", "b140", "b144", "b730", "b760", "d450", "d820", "d920"),
    "child_ortho": ("b280", "b455", "b710", "d410", "d820", "d920"),
}

ICF_GRADIENTS: tuple[str, ...] = (
    "Intet problem", "Let problem", "Moderat problem", "Svært problem", "Fuldstændigt problem",
)

# ---------------------------------------------------------------------------------------------
# Free text (Danish). Placeholders: {side} højre/venstre, {aid} walking aid, {load} weight bearing
# ---------------------------------------------------------------------------------------------

SIDES = ("højre", "venstre")
AIDS = ("rollator", "albuestokke", "gangstativ", "stok", "kørestol")
LOADS = ("fuldt", "delvist", "ikke")

# A text is either a plain string (fits every diagnosis of the group) or (codes, string)
# (fits only those SKS codes); see texts_for().
HEALTH_SUMMARY: dict[str, tuple] = {
    "hip": (
        (("DS720",), ("Indlagt efter faldulykke i hjemmet med brud på {side} lårbenshals. "
                     "Opereret med hemialloplastik dagen efter indlæggelsen.")),
        (("DS720",), ("Faldet på glat fortov og pådraget sig brud på {side} lårbenshals. "
                     "Opereret med to skruer. Mobiliseret efter standardforløb.")),
        (("DS721", "DS722"), ("Brud på {side} lårben tæt ved hoften efter fald. Opereret med "
                             "marvsøm.")),
        (("DS721", "DS722"), ("Faldet i hjemmet og pådraget sig brud på {side} lårben. Opereret "
                             "med glideskrue og plade.")),
    ),
    "alloplastik": (
        ("Planlagt indsættelse af {side} total {joint}alloplastik pga. svær slidgigt. "
        "Ukompliceret operation."),
        ("Indlagt til {side} {joint}alloplastik efter mange års smerter. Operationen forløb "
        "planmæssigt, og patienten er mobiliseret på operationsdagen."),
    ),
    "shoulder": (
        (("DS422",), ("Faldet og pådraget sig brud på {side} overarm tæt ved skulderen. "
                     "Behandles konservativt med slynge i 3 uger.")),
        (("DS422",), ("Brud på {side} overarm tæt ved skulderen, opereret med vinkelstabil "
                     "plade.")),
        (("DM751",), "Opereret for skulderklemmesyndrom og senelæsion i {side} skulder."),
    ),
    "wrist": (
        "Brud på {side} håndled efter fald. Opereret med volar plade.",
        "Brud på {side} håndled behandlet med gips i 5 uger.",
    ),
    "ankle": (
        (("DS826",), ("Brud på {side} ankel efter vrid. Opereret med plade og skruer. Må "
                     "{load} belaste de første 6 uger.")),
        (("DS823",), "Brud på {side} underben tæt ved anklen, opereret. Gipsbandage i 6 uger."),
    ),
    "back": (
        (("DM511",), ("Opereret for diskusprolaps i lænden (L4-L5) med god effekt på "
                     "bensmerterne.")),
        (("DM480",), "Dekompression for spinalstenose i lænden. Ukompliceret forløb."),
        (("DS320",), ("Sammenfald af lændehvirvel efter fald, behandlet konservativt med "
                     "smertestillende.")),
    ),
    "stroke": (
        (("DI639", "DI634"), ("Indlagt med pludselig opstået {side}sidig lammelse og "
                             "talebesvær. MR viser blodprop i hjernen. Behandlet med "
                             "trombolyse.")),
        (("DI639", "DI634"), ("Blodprop i hjernen med {side}sidige føleforstyrrelser og nedsat "
                             "kraft. Behandlet med trombektomi og blodfortyndende medicin.")),
        (("DI619",), "Hjerneblødning med {side}sidig lammelse. Behandlet konservativt."),
        (("DG459",), ("Forbigående symptomer på blodprop i hjernen (TCI). Symptomerne er "
                     "forsvundet, men patienten er fortsat træt.")),
    ),
    "tbi": (
        (("DS065",), ("Trafikuheld som cyklist med hovedtraume. Blødning under den hårde "
                     "hjernehinde fjernet ved operation.")),
        (("DS065",), ("Faldet ned ad trappe med hovedtraume. Subduralt hæmatom behandlet "
                     "konservativt under observation på neurointensiv afdeling.")),
        (("DS062",), "Hovedtraume ved arbejdsulykke. Diffus hjerneskade på MR."),
        (("DS060",), ("Hjernerystelse efter fald fra cykel med kortvarigt bevidsthedstab. "
                     "Observeret i et døgn.")),
    ),
    "copd": (
        ("Indlagt med forværring af KOL og lungebetændelse. Behandlet med antibiotika og "
        "prednisolon. Iltbehovet er ophørt ved udskrivelse."),
        ("Kendt med svær KOL. Indlagt med åndenød; behandlet med inhalationer og "
        "non-invasiv ventilation i to døgn."),
    ),
    "heart": (
        (("DI509",), ("Indlagt med åndenød og væske i lungerne pga. hjertesvigt. Vanddrivende "
                     "behandling justeret.")),
        (("DI219",), ("Blodprop i hjertet behandlet med ballonudvidelse og stent. "
                     "Ukompliceret forløb.")),
    ),
    "amputation": (
        (("DZ895",), ("Amputation af {side} underben pga. kredsløbssvigt og diabetisk fodsår. "
                     "Sårheling tilfredsstillende.")),
        (("DZ894",), "Amputation af {side} forfod efter koldbrand. Stumpen heler langsomt."),
    ),
    "geri": (
        (("DJ189",), ("Indlagt med lungebetændelse og almen svækkelse. Behandlet med "
                     "antibiotika. Funktionsniveauet er faldet under indlæggelsen.")),
        (("DR531",), ("Indlagt efter fald i hjemmet og lang tid på gulvet. Ingen brud. Udredt "
                     "for svimmelhed uden fund. Almen svækkelse.")),
    ),
    "neuro_chronic": (
        "Kendt med {disease}. Indlagt med forværring og faldtendens. Medicinen er justeret.",
        "Indlagt til udredning af tiltagende gangbesvær ved kendt {disease}.",
    ),
    "child_fracture": (
        (("DS822",), "Brud på {side} underben efter fodboldkamp. Opereret med marvsøm."),
        (("DS525",), ("Brud på {side} underarm ved håndleddet efter fald fra trampolin. "
                     "Behandlet med gips i 4 uger.")),
        (("DS721",), "Brud på {side} lårben efter trafikuheld. Opereret."),
    ),
    "child_neuro": (
        (("DG610",), ("Indlagt med tiltagende kraftnedsættelse i benene; diagnosticeret med "
                     "Guillain-Barré syndrom og behandlet med immunglobulin.")),
        (("DS060", "DS065"), ("Hovedtraume efter fald fra cykel med kortvarig bevidstløshed. "
                             "Observeret i to døgn.")),
        (("DS065",), ("Blødning under den hårde hjernehinde efter trafikuheld, behandlet "
                     "konservativt.")),
    ),
    "child_ortho": (
        (("DM412",), ("Opereret for skoliose med afstivning af brysthvirvelsøjlen. "
                     "Ukompliceret forløb.")),
        (("DS832",), "Kikkertoperation i {side} knæ for meniskskade efter idrætsskade."),
    ),
}

ABILITY_SUMMARY: dict[str, tuple] = {
    "hip": (
        ("Går med {aid} inden for korte afstande. Behøver hjælp til strømper og sko. "
        "Selvhjulpen ved toiletbesøg."),
        "Forflytter sig med let hjælp af én person. Går ca. 20 meter med {aid}.",
        "Går usikkert med {aid}; har behov for hjælp til personlig hygiejne.",
    ),
    "alloplastik": (
        "Går med {aid} på trapper og i længere afstande. Selvhjulpen i ADL.",
        (("DM171",), "Bøjning i knæet 80 grader, strækning mangler 5 grader. Går med {aid}."),
    ),
    "shoulder": (
        ("Kan ikke løfte {side} arm over skulderhøjde. Behøver hjælp til påklædning af "
        "overkroppen."),
        "Nedsat bevægelighed og kraft i {side} skulder; selvhjulpen med hjælpemidler.",
    ),
    "wrist": (
        "Nedsat bevægelighed og kraft i {side} hånd. Har svært ved at åbne glas og skære mad.",
    ),
    "ankle": (
        "Går med albuestokke uden belastning af {side} ben. Selvhjulpen i hjemmet.",
        "Går med {aid} med delvis belastning. Trapper med støtte.",
    ),
    "back": (
        "Går uden hjælpemidler. Smerter ved længere tids siddende stilling.",
        "Går med stok. Begrænset udholdenhed; kan stå i ca. 10 minutter.",
    ),
    "stroke": (
        (("DI639", "DI634", "DI619"), ("Nedsat kraft i {side} arm og ben. Går med {aid} med "
                                      "opsyn. Behøver hjælp til påklædning.")),
        "Let nedsat finmotorik i {side} hånd. Går selvstændigt, men udtrættes hurtigt.",
        (("DI639", "DI634", "DI619"), ("Afasi med ordfindingsbesvær. Forflytning med hjælp af "
                                      "én person.")),
    ),
    "tbi": (
        "Går selvstændigt, men er hurtigt udtrættelig og har svært ved at holde fokus.",
        (("DS065", "DS062"), ("Behøver guidning i daglige aktiviteter pga. nedsat initiativ og "
                             "hukommelse.")),
        (("DS060",), "Hovedpine og lysfølsomhed; kan kun være aktiv i korte perioder."),
    ),
    "copd": (
        "Går ca. 50 meter før pause pga. åndenød. Selvhjulpen i personlig pleje med pauser.",
        "Bruger ilt ved anstrengelse. Går med {aid} inden døre.",
    ),
    "heart": (
        "Nedsat kondition; åndenød ved gang på trapper. Selvhjulpen i ADL.",
        "Går 100 meter i eget tempo. Sover med hævet hovedgærde.",
    ),
    "amputation": (
        "Forflytter sig fra seng til kørestol med hjælp. Ikke gangfunktion endnu.",
        (("DZ895",), "Kører selv i kørestol. Afventer protese."),
        (("DZ894",), "Går korte afstande med aflastningssko og gangstativ."),
    ),
    "geri": (
        "Går med {aid} med opsyn. Behøver hjælp til bad og påklædning.",
        "Forflytning med hjælp af én person; går korte distancer med {aid}.",
    ),
    "neuro_chronic": (
        "Går med {aid}; faldtendens ved vendinger. Udtrættes hurtigt.",
    ),
    "child_fracture": (
        (("DS822", "DS721"), ("Går med albuestokke uden belastning af {side} ben. Kan ikke "
                             "deltage i idræt.")),
        (("DS525",), "Nedsat bevægelighed i {side} håndled efter gipsbehandling."),
    ),
    "child_neuro": (
        (("DG610",), ("Går korte afstande med støtte. Nedsat kraft i benene og hurtig "
                     "udtrætning.")),
        (("DS060", "DS065"), ("Hovedpine og træthed ved skærmbrug; kan kun være i skole få "
                             "timer ad gangen.")),
    ),
    "child_ortho": (
        (("DM412",), ("Går selvstændigt. Må ikke løfte tungt eller vride i ryggen de første "
                     "3 måneder.")),
        (("DS832",), "Går med albuestokke med delvis belastning af {side} ben."),
    ),
}


def texts_for(table: dict[str, tuple], group: str, code: str) -> list[str]:
    """The texts of ``table[group]`` that fit diagnosis ``code``."""
    out = []
    for entry in table[group]:
        if isinstance(entry, str):
            out.append(entry)
        elif code in entry[0]:
            out.append(entry[1])
    return out


NEED_AND_POTENTIAL: dict[str, tuple[str, ...]] = {
    "hip": (
        ("Behov for genoptræning af gangfunktion, balance og muskelstyrke i {side} ben. Godt "
        "potentiale for at genvinde habituelt funktionsniveau."),
        "Behov for træning af forflytninger og gang med {aid}. Moderat potentiale.",
    ),
    "alloplastik": (
        "Behov for træning af bevægelighed og styrke i {side} {joint}. Godt potentiale.",
    ),
    "shoulder": (
        "Behov for træning af bevægelighed og styrke i {side} skulder. Godt potentiale.",
    ),
    "wrist": ("Behov for træning af håndfunktion og bevægelighed. Godt potentiale.",),
    "ankle": ("Behov for gangtræning og balancetræning efter aflastningsperioden.",),
    "back": ("Behov for stabilitetstræning og vejledning i arbejdsstillinger. Godt potentiale.",),
    "stroke": (
        ("Behov for tværfaglig genoptræning af gang, balance, armfunktion og ADL. Godt "
        "potentiale for yderligere bedring."),
        "Behov for træning af {side} arm og hånd samt sprogtræning ved logopæd.",
    ),
    "tbi": (
        ("Behov for tværfaglig neurorehabilitering med fokus på kognition, energiforvaltning "
        "og tilbagevenden til arbejde."),
    ),
    "copd": ("Behov for konditions- og styrketræning samt vejledning i vejrtrækningsteknik.",),
    "heart": ("Behov for hjerterehabilitering med konditionstræning. Godt potentiale.",),
    "amputation": (
        ("Behov for træning af forflytninger, stumppleje og senere protesegang. Moderat "
        "potentiale."),
    ),
    "geri": (
        ("Behov for træning af styrke, balance og gangfunktion for at kunne klare sig i eget "
        "hjem. Moderat potentiale."),
    ),
    "neuro_chronic": ("Behov for træning af balance og gangfunktion. Begrænset potentiale.",),
    "child_fracture": ("Behov for træning af styrke og bevægelighed med henblik på idræt.",),
    "child_neuro": (
        ("Behov for træning af styrke, udholdenhed og balance samt gradvis tilbagevenden til "
        "skole."),
    ),
    "child_ortho": ("Behov for træning af holdning, styrke og udholdenhed.",),
}

PATIENT_SAFETY: tuple[str, ...] = (
    "Faldrisiko – bør ikke gå uden {aid}.",
    "Behandles med blodfortyndende medicin – øget risiko for blødning ved fald.",
    "Diabetes – vær opmærksom på lavt blodsukker under træning.",
    "Ingen særlige forhold.",
    "Nedsat syn på begge øjne.",
    "Allergi over for plaster.",
    "Hjertesvigt – puls og åndenød observeres under træning.",
)
PATIENT_SAFETY_BY_GROUP: dict[str, tuple[str, ...]] = {
    "alloplastik": (("Må ikke bøje hoften mere end 90 grader de første 6 uger (risiko for "
                    "luksation)."),),
    "hip": ("Må ikke bøje hoften mere end 90 grader de første 6 uger (risiko for luksation).",),
    "copd": ("Iltbehov ved anstrengelse: iltmætning skal holdes over 88 %.",),
    "heart": ("Må ikke træne med puls over 130 de første 4 uger.",),
    "stroke": ("Synsfeltudfald til {side} side – opmærksomhed i trafikken.",),
    "ankle": ("Må {load} belaste {side} ben i 6 uger.",),
}

PRACTICAL_INFO: tuple[str, ...] = (
    "Bor alene i lejlighed på 2. sal uden elevator.",
    "Bor i hus med ægtefælle. Har hjemmehjælp til rengøring hver anden uge.",
    "Har fået {aid} udleveret fra hospitalet.",
    "Må ikke køre bil de første 6 uger – har behov for kørsel til træning.",
    "Taler kun lidt dansk – tolk anbefales (arabisk).",
    "Ønsker at træne tæt på sin arbejdsplads.",
    "Bor på plejecenter.",
    "Har hund, som skal luftes – pårørende hjælper de første uger.",
    "Udskrives til midlertidigt ophold på rehabiliteringsplads.",
    "Har ikke mobiltelefon – kontakt via datter.",
)
PRACTICAL_INFO_CHILD: tuple[str, ...] = (
    "Går i {grade}. klasse på den lokale skole.",
    "Forældrene ønsker, at træningen foregår om eftermiddagen efter skoletid.",
    "Barnet går i børnehave; pædagogerne ønsker vejledning.",
    "Forældrene er skilt; begge ønsker at deltage i træningen.",
)

INFO_FOR_PATIENT: tuple[str, ...] = (
    "Du er informeret om genoptræningsplanen og har fået en kopi med hjem.",
    "Din kommune kontakter dig inden for 4 dage om tid og sted for genoptræningen.",
    ("Du har ret til at vælge at træne hos en privat leverandør, hvis kommunen ikke kan "
    "tilbyde opstart inden for 7 dage."),
    "Pjece om øvelser efter operationen er udleveret.",
)

COMPLICATIONS: tuple[str, ...] = (
    "Forløbet blev kompliceret af lungebetændelse, behandlet med antibiotika.",
    "Delir i de første døgn efter operationen.",
    "Postoperativ blødning, der krævede blodtransfusion.",
    "Urinvejsinfektion under indlæggelsen.",
    "Tryksår på {side} hæl.",
    "Blodprop i benet under indlæggelsen, behandlet med blodfortyndende medicin.",
    "Sårinfektion, behandlet med antibiotika.",
)
COGNITIVE: tuple[str, ...] = (
    "Patienten har nedsat hukommelse og har brug for skriftlige instruktioner.",
    "Kognitive vanskeligheder med nedsat opmærksomhed og initiativ.",
    "Let demens; pårørende bør deltage ved første træningsgang.",
    "Nedsat hukommelse og indsigt i egne begrænsninger.",
    "Kognitive vanskeligheder og mental udtrætning efter kort tids aktivitet.",
)
COORDINATION: dict[str, tuple[str, ...]] = {
    "jobcenter": (
        ("Sygemeldt fra sit arbejde; behov for koordinering med jobcenter om tilbagevenden "
        "til arbejde."),
        "Behov for koordinering med jobcenter vedr. delvis raskmelding.",
    ),
    "skole": (
        "Behov for koordinering med skolen og PPR om tilrettelæggelse af skoledagen.",
        "Skolen bør inddrages i træningen; behov for koordinering med PPR.",
    ),
    "hjemmepleje": (
        "Behov for samarbejde med hjemmeplejen om forflytninger og hjælpemidler.",
    ),
    "socialforvaltning": (
        "Behov for koordinering med socialforvaltningen om bolig og hjælpemidler.",
    ),
}

DEADLINE_MONTHS: tuple[str, ...] = (
    "januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september",
    "oktober", "november", "december",
)
WEEKDAYS: tuple[str, ...] = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag",
                             "søndag")

EXPECTED_END_TEXTS: tuple[str, ...] = (
    "Forventes udskrevet {date}",
    "Udskrives når hjemmehjælpen er etableret, forventeligt {date}",
    "Udskrivelse forventes i uge {week}",
    "Forventet udskrivelse {weekday} formiddag",
)

# ICF headings in AbilityAtDischargeExtended (MedCom's 8a/8b/8c structure)
# The extended description of function (G-GOP section 8, mandatory for rehabilitering). A
# subsection's texts are (kind, text): "any" fits every plan, "cognitive" only a patient with
# cognitive difficulties, "intact" only one without, "neuro" only a neurological diagnosis,
# "other" only a non-neurological one. "- Vigtige livsområder" and "- Støtte og kontakt" are
# picked from the patient (work, school or retirement; living alone or not).
EXTENDED_SECTIONS: tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]], ...] = (
    ("8a. Kroppens funktioner og anatomi", (
        ("- Mentale funktioner", (
            ("cognitive", "Nedsat opmærksomhed og hukommelse; udtrættes efter 20 minutter."),
            ("intact", "Orienteret i tid, sted og egne data."),
            ("cognitive", "Nedsat initiativ og sygdomsindsigt."),
        )),
        ("- Sanser og smerter", (
            ("any", "Smerter VAS 4 ved belastning."),
            ("neuro", "Nedsat følesans i {side} hånd."),
            ("neuro", "Synsfeltudfald til {side} side."),
        )),
        ("- Stemme og tale", (
            ("neuro", "Let dysartri; tale forståelig for fremmede."),
            ("neuro", "Ordfindingsbesvær."),
            ("other", "Ingen problemer med stemme og tale."),
        )),
        ("- Bevægeapparatet", (
            ("neuro", "Nedsat kraft i {side} arm og ben (MRC 3-4)."),
            ("neuro", "Spasticitet i {side} albue og hånd."),
            ("any", "Nedsat balance; Bergs balancetest 38/56."),
            ("other", "Nedsat kraft og bevægelighed omkring det opererede led."),
        )),
    )),
    ("8b. Aktiviteter og Deltagelse", (
        ("- Læring og anvendelse af viden", (
            ("cognitive", "Har svært ved at lære nye rutiner."),
            ("intact", "Kan læse korte tekster."),
        )),
        ("- Bevægelse og færden", (
            ("any", "Går 50 meter med {aid} og opsyn."),
            ("any", "Forflytter sig med hjælp af én person."),
        )),
        ("- Omsorg for sig selv", (
            ("any", "Behøver hjælp til bad og påklædning af underkroppen."),
            ("neuro", "Spiser selv med tilpasset bestik."),
        )),
        ("- Vigtige livsområder", (
            ("any", "Sygemeldt fra arbejde som {occupation}."),
            ("any", "Ønsker at vende tilbage til arbejde på deltid."),
            ("any", "Går i skole; behov for tilpasset skoledag."),
        )),
    )),
    ("8c. Omgivelsesfaktorer", (
        ("- Produkter og teknologi", (
            ("any", "Har fået {aid} og badebænk."),
            ("any", "Behov for kørestol til længere distancer."),
        )),
        ("- Støtte og kontakt", (
            ("any", "Bor med ægtefælle, som er støttende."),
            ("any", "Bor alene; datter kommer dagligt de første uger."),
            ("any", "Bor hjemme hos forældrene, som deltager aktivt."),
        )),
        ("- Holdninger", (
            ("any", "Motiveret for træning."),
            ("any", "Bekymret for fremtiden; ønsker samtale med psykolog."),
        )),
    )),
)

# Diagnosis groups whose extended description may name neurological findings.
NEURO_GROUPS: frozenset[str] = frozenset({"stroke", "tbi", "neuro_chronic", "child_neuro"})

JOURNAL_EXCERPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Uddrag af operationsbeskrivelse", (
        "Operation ukompliceret. Stabil osteosyntese.",
        "Fuld belastning tilladt efter operationen.",
        "Drænet fjernet dag 1.",
    )),
    ("Uddrag af journalnotat neurologisk tilsyn", (
        "Vågen og klar. Let {side}sidig parese.",
        "Ingen nye fokale udfald.",
        "Fortsat behandling med blodfortyndende medicin.",
    )),
    ("Fysioterapeutisk status", (
        "Gangfunktion med {aid} over 30 meter.",
        "Kan rejse sig fra stol uden brug af armlæn.",
        "Instrueret i øvelsesprogram.",
    )),
    ("Ergoterapeutisk status", (
        "Selvhjulpen ved toiletbesøg med toiletforhøjer.",
        "Har brug for hjælp til påklædning af underkroppen.",
        "Hjælpemidler afprøvet: badebænk, strømpepåtager.",
    )),
    ("Uddrag af epikrise", (
        "Patienten udskrives i vanlig tilstand til eget hjem.",
        "Kontrol i ambulatoriet om 6 uger.",
    )),
)

REFERENCES: tuple[tuple[str, str], ...] = (
    ("Sundhedsstyrelsens anbefalinger for genoptræning", "https://www.sst.dk"),
    ("Patientinformation om genoptræning", "https://www.sundhed.dk"),
    ("Øvelsesprogram efter operationen", "https://www.sundhed.dk/borger/patienthaandbogen"),
    ("Forløbsbeskrivelse for rehabilitering", "https://www.sst.dk/da/udgivelser"),
)

PRIVATE_PROVIDERS: tuple[str, ...] = (
    "{town} Fysioterapi", "Fysioterapien {town}", "{town} Træningscenter",
    "Klinik for Fysioterapi", "FysioDanmark {town}",
)
REHAB_CENTRES: tuple[tuple[str, str], ...] = (
    ("Vejlefjord Rehabilitering", "lokationsnummer"),
    ("Center for Hjerneskade", "lokationsnummer"),
    ("Neurocenter Østerskoven", "lokationsnummer"),
)

# ---------------------------------------------------------------------------------------------
# XDIS91 correspondence
# ---------------------------------------------------------------------------------------------

CHILD_HEADING = (
    "Barn med varig funktionsnedsættelse, som har behov for ergo/fysioterapeutisk træning "
    "og vejledning i kommunen"
)
CHILD_HEADING_SUBJECT = "Barn med varig funktionsnedsættelse - træning og vejledning"

CHILD_LETTER_BODY: tuple[str, ...] = (
    "{name}, født {birth}, er undersøgt i vores ambulatorium d. {visit}.",
    "Diagnose: {dx_text} ({dx_code}).",
    ("{pronoun} har behov for ergo- og fysioterapeutisk træning samt vejledning af forældre "
    "og institution i hverdagen."),
    ("Der er ikke tale om en ny funktionsnedsættelse, og der udarbejdes derfor ikke en "
    "genoptræningsplan."),
    "Forældremyndighedsindehaverne er informeret og indforstået med henvendelsen.",
)
CHILD_LETTER_EXTRA: tuple[str, ...] = (
    "Undersøgelsesresultater er sendt til forældrene, PPR og egen læge.",
    "{pronoun} går i {grade}. klasse og har brug for tilpasning af skoledagen.",
    "{pronoun} har fået ny kørestol og har brug for vejledning i brugen.",
    "Der er behov for vurdering af hjælpemidler i hjemmet.",
)

ADULT_LETTER_SUBJECTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # (subject, body sentences, episode-of-care status)
    ("Supplerende oplysninger til genoptræningsplan", (
        "Supplerende oplysninger til genoptræningsplan sendt d. {discharge_date}.",
        "Patienten må nu belaste {side} ben fuldt.",
        "Kontrol i ambulatoriet om 4 uger.",
    ), "inaktiv"),
    ("Ændret udskrivelsesdato", (
        "Patienten udskrives ikke som planlagt.",
        "Ny forventet udskrivelse er {discharge_date}.",
        "Genoptræningsplanen er fortsat gældende.",
    ), "indlagt"),
    ("Forespørgsel om opstart af genoptræning", (
        "Patienten blev udskrevet d. {discharge_date} med genoptræningsplan.",
        "Patienten oplyser ved kontrol ikke at være blevet kontaktet af kommunen.",
        "Vi beder kommunen tage kontakt til patienten.",
    ), "ambulant"),
    ("Hjælpemidler ved udskrivelse", (
        "Patienten udskrives d. {discharge_date} og har behov for {aid} og badebænk.",
        "Hjælpemidlerne er ikke udleveret fra hospitalet.",
    ), "indlagt"),
    ("Opfølgning efter ambulant kontrol", (
        "Patienten er set til kontrol i ambulatoriet.",
        "Røntgen viser god heling af bruddet.",
        "Genoptræningen kan intensiveres.",
    ), "ambulant"),
    ("Ændrede restriktioner efter operation", (
        "Efter operationen d. {event_date} gælder nu følgende:",
        "Må ikke løfte mere end 5 kg med {side} arm de næste 6 uger.",
    ), "inaktiv"),
    ("Genoptræningsplan annulleres - genindlagt", (
        "Patienten er genindlagt d. {event_date}.",
        "Den fremsendte genoptræningsplan annulleres; ny plan følger ved udskrivelse.",
    ), "indlagt"),
    ("Patienten ønsker genoptræning i anden kommune", (
        ("Patienten har efter udskrivelsen d. {discharge_date} ønsket at træne i nærheden "
        "af sin datter."),
        "Vi beder kommunen videresende genoptræningsplanen.",
    ), "inaktiv"),
)

REPLY_REQUESTS: tuple[str, ...] = (
    "Vi beder om svar senest {date} om, hvilket tilbud {whom} visiteres til.",
    "Vi beder om svar senest {date}.",
    "Svar bedes sendt senest {date} som korrespondancemeddelelse til afdelingen.",
)
