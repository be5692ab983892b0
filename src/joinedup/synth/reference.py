"""Reference lists for the synthetic population: names, ages, clinical codes.

Everything here is invented or public classification data; no person is real.
Postcode areas all start with J, which no real UK postcode area does, and NHS
numbers all begin 99, a range never issued to patients.
"""

from __future__ import annotations

# England's population by five-year age band (ONS Census 2021, per cent, rounded).
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 4, 5.4), (5, 9, 5.9), (10, 14, 6.0), (15, 19, 5.6), (20, 24, 5.9), (25, 29, 6.6),
    (30, 34, 6.9), (35, 39, 6.6), (40, 44, 6.2), (45, 49, 6.4), (50, 54, 6.9), (55, 59, 6.7),
    (60, 64, 5.8), (65, 69, 5.0), (70, 74, 5.0), (75, 79, 3.7), (80, 84, 2.5), (85, 89, 1.5),
    (90, 104, 0.9),
)  # fmt: skip

# Given names with the nicknames people are also recorded under.
MALE_NAMES: dict[str, tuple[str, ...]] = {
    "OLIVER": ("OLLIE",), "GEORGE": (), "HARRY": (), "JACK": (), "NOAH": (), "CHARLIE": (),
    "MUHAMMAD": ("MOHAMMED", "MOHAMMAD"), "LEO": (), "ARTHUR": ("ART",), "OSCAR": (),
    "JAMES": ("JIM", "JIMMY"), "WILLIAM": ("BILL", "WILL", "BILLY"), "THOMAS": ("TOM", "TOMMY"),
    "JOSHUA": ("JOSH",), "HENRY": ("HARRY", "HAL"), "ALFIE": (), "JACOB": ("JAKE",),
    "DAVID": ("DAVE",), "JOHN": ("JACK", "JOHNNY"), "MICHAEL": ("MIKE", "MICK"),
    "PAUL": (), "ANDREW": ("ANDY", "DREW"), "PETER": ("PETE",), "RICHARD": ("RICK", "DICK"),
    "MARK": (), "STEPHEN": ("STEVE",), "ROBERT": ("BOB", "ROB", "BOBBY"),
    "CHRISTOPHER": ("CHRIS",), "ANTHONY": ("TONY",), "KEVIN": (), "GARY": (), "IAN": (),
    "DANIEL": ("DAN", "DANNY"), "MATTHEW": ("MATT",), "SAMUEL": ("SAM",), "BENJAMIN": ("BEN",),
    "EDWARD": ("ED", "TED", "EDDIE"), "ALEXANDER": ("ALEX",), "JONATHAN": ("JON",),
    "NICHOLAS": ("NICK",), "JOSEPH": ("JOE",), "FREDERICK": ("FRED", "FREDDIE"),
    "ALAN": (), "BRIAN": (), "KENNETH": ("KEN",), "RONALD": ("RON",), "DONALD": ("DON",),
    "RAYMOND": ("RAY",), "GERALD": ("GERRY",), "BARRY": (), "NEIL": (), "STUART": (),
    "MOHAMMED": (), "ALI": (), "OMAR": (), "HASSAN": (), "ADAM": (), "RYAN": (), "LIAM": (),
    "DYLAN": (), "ETHAN": (), "LUCAS": (), "MASON": (), "TYLER": (), "KYLE": (), "DEAN": (),
    "SEAN": (), "CONNOR": (), "REECE": (), "ARJUN": (), "RAVI": (), "SANJAY": (), "TARIQ": (),
    "KWAME": (), "PIOTR": (), "TOMASZ": (), "LUKE": (), "NATHAN": ("NATE",), "CALLUM": (),
}  # fmt: skip

FEMALE_NAMES: dict[str, tuple[str, ...]] = {
    "OLIVIA": ("LIV",), "AMELIA": ("MILLIE",), "ISLA": (), "AVA": (), "MIA": (), "IVY": (),
    "LILY": (), "ISABELLA": ("BELLA", "IZZY"), "ROSIE": (), "SOPHIA": ("SOPHIE",),
    "MARGARET": ("MAGGIE", "PEGGY", "MAGS"), "ELIZABETH": ("LIZ", "BETH", "LIZZIE", "BETTY"),
    "SUSAN": ("SUE", "SUSIE"), "PATRICIA": ("PAT", "TRISH"), "DEBORAH": ("DEBBIE", "DEB"),
    "CATHERINE": ("KATE", "CATHY"), "KATHERINE": ("KATE", "KATIE", "KATHY"),
    "JENNIFER": ("JENNY", "JEN"), "VICTORIA": ("VICKY", "TORI"), "REBECCA": ("BECKY", "BEX"),
    "ALEXANDRA": ("ALEX", "SANDRA"), "CHARLOTTE": ("LOTTIE", "CHARLIE"), "ABIGAIL": ("ABBY",),
    "SAMANTHA": ("SAM",), "JESSICA": ("JESS",), "EMILY": ("EM",), "EMMA": (), "SARAH": (),
    "LAURA": (), "RACHEL": (), "HANNAH": (), "LUCY": (), "CHLOE": (), "MEGAN": (), "AMY": (),
    "MARY": ("MOLLY",), "JEAN": (), "JOAN": (), "DOROTHY": ("DOT", "DOTTIE"), "BARBARA": ("BARB",),
    "MAUREEN": ("MO",), "SHEILA": (), "BRENDA": (), "PAULINE": (), "CAROL": (), "JANET": (),
    "LINDA": (), "KAREN": (), "JULIE": (), "TRACEY": (), "NICOLA": ("NICKY",), "HELEN": (),
    "CLAIRE": (), "JOANNE": ("JO",), "LISA": (), "MICHELLE": (), "GILLIAN": ("GILL",),
    "FATIMA": (), "AISHA": (), "AMINA": (), "ZARA": (), "PRIYA": (), "ANITA": (), "SUNITA": (),
    "NADIA": (), "GRACE": (), "FREYA": (), "POPPY": (), "EVIE": (), "ELLA": (), "DAISY": (),
    "AGNIESZKA": (), "ANNA": (), "CHIDERA": (), "ABENA": (), "NIAMH": (), "SIOBHAN": (),
}  # fmt: skip

# The hundred or so commonest surnames in England and Wales with their frequency
# per 10,000 people (rounded from published name-frequency studies). Together they
# cover about a fifth of people; the rest get names from SURNAME_PARTS below.
COMMON_SURNAMES: dict[str, float] = {
    "SMITH": 110, "JONES": 80, "WILLIAMS": 58, "TAYLOR": 50, "BROWN": 48, "DAVIES": 45,
    "EVANS": 36, "WILSON": 32, "THOMAS": 31, "JOHNSON": 30, "ROBERTS": 29, "ROBINSON": 26,
    "THOMPSON": 26, "WRIGHT": 25, "WALKER": 25, "WHITE": 24, "EDWARDS": 23, "HUGHES": 23,
    "GREEN": 22, "HALL": 22, "LEWIS": 21, "HARRIS": 21, "CLARKE": 20, "PATEL": 20,
    "JACKSON": 19, "WOOD": 19, "TURNER": 18, "MARTIN": 18, "COOPER": 17, "HILL": 17,
    "WARD": 16, "MORRIS": 16, "MOORE": 16, "CLARK": 15, "LEE": 15, "KING": 15, "BAKER": 15,
    "HARRISON": 14, "MORGAN": 14, "ALLEN": 14, "JAMES": 13, "SCOTT": 13, "PHILLIPS": 13,
    "WATSON": 13, "DAVIS": 12, "PARKER": 12, "PRICE": 12, "BENNETT": 12, "YOUNG": 12,
    "GRIFFITHS": 11, "MITCHELL": 11, "KELLY": 11, "COOK": 11, "CARTER": 11, "RICHARDSON": 11,
    "BAILEY": 10, "COLLINS": 10, "BELL": 10, "SHAW": 10, "MURPHY": 10, "MILLER": 10,
    "COX": 9, "RICHARDS": 9, "KHAN": 12, "MARSHALL": 9, "ANDERSON": 9, "SIMPSON": 9,
    "ELLIS": 9, "ADAMS": 9, "SINGH": 10, "BEGUM": 9, "CHAPMAN": 8, "KAUR": 8, "ALI": 9,
    "AHMED": 9, "MASON": 8, "WEBB": 8, "ROGERS": 8, "GRAY": 8, "HUSSAIN": 9, "MILLS": 7,
    "HUNT": 7, "PALMER": 7, "HOLMES": 7, "CAMPBELL": 7, "OWEN": 7, "KNIGHT": 7, "LLOYD": 7,
    "ROSE": 6, "STEVENS": 6, "FOX": 6, "NGUYEN": 4, "NOWAK": 4, "KOWALSKI": 3, "OKAFOR": 3,
    "MENSAH": 3, "O'BRIEN": 5, "O'CONNOR": 4, "MCDONALD": 5, "MACDONALD": 4,
}  # fmt: skip

# Invented surnames are built from two parts, e.g. ASH + FORD.
SURNAME_PREFIXES: tuple[str, ...] = (
    "ASH", "BLACK", "BRAD", "BROOK", "CARL", "CRAW", "DUN", "FAIR", "FEN", "GAR", "HART",
    "HOL", "KIN", "LANG", "MAR", "MOR", "NOR", "PEM", "RAY", "RED", "RID", "STAN", "THORN",
    "WAL", "WEY", "WHIT", "WOOD", "YAR", "ALD", "BEL", "BRAM", "BUR", "CHAD", "COL", "DAR",
    "ELL", "FAR", "GOD", "HAD", "HAM", "HEN", "HUD", "KEN", "LAM", "LIN", "MEL", "MID",
    "NEW", "OAK", "PAD", "PRES", "QUIN", "ROCH", "SAL", "SHEL", "SOM", "TAL", "TEM", "WIN",
    "WORS",
)  # fmt: skip
SURNAME_SUFFIXES: tuple[str, ...] = (
    "FORD", "LEY", "TON", "WORTH", "BY", "FIELD", "WOOD", "WELL", "MORE", "COMBE", "HAM",
    "LAND", "SBY", "STONE", "WICK", "RIDGE", "BROOK", "HURST", "DALE", "INGTON", "SHAW",
    "CROFT", "GATE", "HOLME", "MERE", "THORPE", "WAY", "BOURNE", "COTT", "LOW",
)  # fmt: skip

# Inward-code unit letters: real postcodes never use C, I, K, M, O or V there.
POSTCODE_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

# SNOMED CT concepts used in GP events.
SNOMED_CONSULTATIONS: tuple[str, ...] = (
    "185345009",  # encounter for symptom
    "390906007",  # follow-up encounter
    "185317003",  # telephone encounter
    "11429006",  # consultation
)
# Long-term conditions: (SNOMED code, base prevalence, prevalence at 75+).
SNOMED_LONG_TERM_CONDITIONS: tuple[tuple[str, float, float], ...] = (
    ("38341003", 0.08, 0.55),  # hypertension
    ("44054006", 0.04, 0.20),  # type 2 diabetes
    ("195967001", 0.07, 0.06),  # asthma
    ("13645005", 0.01, 0.09),  # COPD
    ("84114007", 0.003, 0.08),  # heart failure
    ("52448006", 0.001, 0.10),  # dementia
    ("709044004", 0.01, 0.18),  # chronic kidney disease
)

# ICD-10 (HES style, no dot) primary diagnoses for emergency admissions, with
# relative weights; several are ambulatory-care-sensitive conditions.
ICD10_EMERGENCY: tuple[tuple[str, float], ...] = (
    ("J441", 6), ("J181", 8), ("N390", 7), ("I500", 5), ("R074", 8), ("R104", 7),
    ("L031", 4), ("E119", 2), ("J459", 3), ("I209", 3), ("G409", 2), ("R55X", 4),
    ("S720", 3), ("K358", 2), ("I639", 3), ("I219", 3), ("F03X", 2), ("A099", 3),
    ("R296", 3), ("T141", 4),
)  # fmt: skip
ICD10_ELECTIVE: tuple[tuple[str, float], ...] = (
    ("M171", 5), ("M161", 4), ("H251", 6), ("K802", 3), ("C509", 2), ("C189", 2),
    ("N401", 2), ("K409", 3), ("Z511", 6), ("D126", 3), ("M232", 2), ("I251", 2),
)  # fmt: skip
# OPCS-4 procedures matching the elective diagnoses above (by position).
OPCS4_ELECTIVE: tuple[str, ...] = (
    "W401", "W371", "C751", "J183", "B285", "H069", "M651", "T202", "X352", "H221",
    "W822", "K401",
)  # fmt: skip
