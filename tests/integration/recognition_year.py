"""A generated consortium year of exam and lab results for the recognition tests (issue 13):
a catalogue of 200+ items (the 2025 national target per consortium), the facilities' local
codes and qualifications (EQA passes, failures, lapses), a few hundred persons with a
year of results in 2026 (Asia/Shanghai), and named cases placed on persons of their own,
each built to give one answer of ``$recognisable`` (every reason of
adapter/recognition/query.py ``WHY``, the window's edges, EQA lapsing inside a window,
scope edges, unmapped local codes).

Seeded (``random.Random(SEED)``): every run builds the same year. Results are stored
through the real store (``save_resources`` with the facility that sent them), each judged
for the mark first by the pipeline's marking step (``ResultMarks.mark``), as ingest does.

Item names are real Chinese test and exam names; LOINC codes are given for common lab
items where the code is well known, none elsewhere (exams carry local codes only, as the
county RIS sends them). The facilities, assessments and local codes are fictitious.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium, load_consortium
from adapter.recognition.catalogue import Catalogue
from adapter.recognition.marks import ResultMarks
from adapter.settings import DEFAULT_CONSORTIUM
from adapter.store import save_resources

ROOT = Path(__file__).resolve().parents[2]
SEED = 20260101
ZONE = ZoneInfo("Asia/Shanghai")
NS = "https://qingshan.example.cn/fhir/sid"
LOINC = "http://loinc.org"
V2_0487 = "http://terminology.hl7.org/CodeSystem/v2-0487"
METHOD = "https://qingshan.example.cn/fhir/CodeSystem/lab-method"
COUNTY, SHIQIAO, LIUHE = (
    "qingshan-county-hospital",
    "shiqiao-township-centre",
    "liuhe-township-centre",
)
# sends results (a regional platform names it) but is not a facility of the consortium
OUTSIDE = "city-private-clinic"
LOCAL_PREFIX = {COUNTY: "county-hospital", SHIQIAO: "shiqiao", LIUHE: "liuhe"}

# (abbreviation, name, LOINC or None); the group and window come from the section
BLOOD = [
    ("WBC", "白细胞计数", "6690-2"),
    ("RBC", "红细胞计数", "789-8"),
    ("HGB", "血红蛋白", "718-7"),
    ("HCT", "红细胞压积", "4544-3"),
    ("MCV", "平均红细胞体积", "787-2"),
    ("MCH", "平均红细胞血红蛋白含量", "785-6"),
    ("MCHC", "平均红细胞血红蛋白浓度", "786-4"),
    ("PLT", "血小板计数", "777-3"),
    ("RDW", "红细胞分布宽度", "788-0"),
    ("MPV", "平均血小板体积", "32623-1"),
    ("NEUT%", "中性粒细胞百分比", "770-8"),
    ("LYMPH%", "淋巴细胞百分比", "736-9"),
    ("MONO%", "单核细胞百分比", "5905-5"),
    ("EOS%", "嗜酸性粒细胞百分比", "713-8"),
    ("BASO%", "嗜碱性粒细胞百分比", "706-2"),
    ("NEUT#", "中性粒细胞绝对值", "751-8"),
    ("LYMPH#", "淋巴细胞绝对值", "731-0"),
    ("MONO#", "单核细胞绝对值", "742-7"),
    ("EOS#", "嗜酸性粒细胞绝对值", "711-2"),
    ("BASO#", "嗜碱性粒细胞绝对值", "704-7"),
    ("RET%", "网织红细胞百分比", "4679-7"),
    ("ESR", "红细胞沉降率", "4537-7"),
    ("ABO", "ABO 血型", "883-9"),
    ("RH", "Rh(D) 血型", "10331-7"),
    ("PT", "凝血酶原时间", "5902-2"),
    ("INR", "国际标准化比值", "6301-6"),
    ("APTT", "活化部分凝血活酶时间", "3173-2"),
    ("FIB", "纤维蛋白原", "3255-7"),
    ("TT", "凝血酶时间", "3243-3"),
    ("DD", "D-二聚体", "48065-7"),
]
CHEMISTRY = [
    ("ALT", "丙氨酸氨基转移酶", "1742-6"),
    ("AST", "天门冬氨酸氨基转移酶", "1920-8"),
    ("ALP", "碱性磷酸酶", "6768-6"),
    ("GGT", "γ-谷氨酰转移酶", "2324-2"),
    ("TBIL", "总胆红素", "1975-2"),
    ("DBIL", "直接胆红素", "1968-7"),
    ("TP", "总蛋白", "2885-2"),
    ("ALB", "白蛋白", "1751-7"),
    ("GLB", "球蛋白", "10834-0"),
    ("PA", "前白蛋白", "14338-8"),
    ("TBA", "总胆汁酸", None),
    ("CHE", "胆碱酯酶", None),
    ("UREA", "尿素", "3094-0"),
    ("CREA", "肌酐", "2160-0"),
    ("UA", "尿酸", "3084-1"),
    ("CYSC", "胱抑素 C", "33863-2"),
    ("B2MG", "β2-微球蛋白", None),
    ("GLU", "葡萄糖", "2345-7"),
    ("HBA1C", "糖化血红蛋白", "4548-4"),
    ("TC", "总胆固醇", "2093-3"),
    ("TG", "甘油三酯", "2571-8"),
    ("HDL", "高密度脂蛋白胆固醇", "2085-9"),
    ("LDL", "低密度脂蛋白胆固醇", "2089-1"),
    ("APOA1", "载脂蛋白 A1", "1869-7"),
    ("APOB", "载脂蛋白 B", "1884-6"),
    ("LPA", "脂蛋白(a)", "10835-7"),
    ("K", "钾", "2823-3"),
    ("NA", "钠", "2951-2"),
    ("CL", "氯", "2075-0"),
    ("CA", "钙", "17861-6"),
    ("P", "无机磷", "2777-1"),
    ("MG", "镁", "19123-9"),
    ("CO2", "二氧化碳结合力", "2028-9"),
    ("LDH", "乳酸脱氢酶", "2532-0"),
    ("CK", "肌酸激酶", "2157-6"),
    ("CKMB", "肌酸激酶同工酶 MB", "13969-1"),
    ("AMY", "淀粉酶", "1798-8"),
    ("LPS", "脂肪酶", "3040-3"),
    ("FE", "血清铁", "2498-4"),
    ("TIBC", "总铁结合力", "2500-7"),
    ("HCY", "同型半胱氨酸", "13965-9"),
    ("HSCRP", "超敏 C 反应蛋白", "30522-7"),
    ("ADA", "腺苷脱氨酶", None),
    ("AFU", "α-L-岩藻糖苷酶", None),
]
IMMUNOLOGY = [
    ("CRP", "C 反应蛋白", "1988-5"),
    ("PCT", "降钙素原", "33959-8"),
    ("CTNI", "心肌肌钙蛋白 I", "10839-9"),
    ("CTNT", "心肌肌钙蛋白 T", "6598-7"),
    ("BNP", "B 型利钠肽", "30934-4"),
    ("NTBNP", "N 末端 B 型利钠肽原", "33762-6"),
    ("TSH", "促甲状腺激素", "3016-3"),
    ("FT3", "游离三碘甲状腺原氨酸", "3051-0"),
    ("FT4", "游离甲状腺素", "3024-7"),
    ("T3", "总三碘甲状腺原氨酸", "3053-6"),
    ("T4", "总甲状腺素", "3026-2"),
    ("AFP", "甲胎蛋白", "1834-1"),
    ("CEA", "癌胚抗原", "2039-6"),
    ("CA125", "糖类抗原 125", "10334-1"),
    ("CA199", "糖类抗原 19-9", "24108-3"),
    ("CA153", "糖类抗原 15-3", "6875-9"),
    ("TPSA", "总前列腺特异性抗原", "2857-1"),
    ("FPSA", "游离前列腺特异性抗原", "10886-0"),
    ("FER", "铁蛋白", "2276-4"),
    ("VB12", "维生素 B12", "2132-9"),
    ("FOL", "叶酸", "2284-8"),
    ("INS", "胰岛素", "20448-7"),
    ("CPEP", "C 肽", "1986-9"),
    ("COR", "皮质醇", "2143-6"),
    ("E2", "雌二醇", "2243-4"),
    ("TESTO", "睾酮", "2986-8"),
    ("PRL", "催乳素", "2842-3"),
    ("FSH", "促卵泡生成素", "15067-2"),
    ("LH", "促黄体生成素", "10501-5"),
    ("HBSAG", "乙型肝炎病毒表面抗原", "5196-1"),
    ("HBSAB", "乙型肝炎病毒表面抗体", None),
    ("HBEAG", "乙型肝炎病毒 e 抗原", None),
    ("HBEAB", "乙型肝炎病毒 e 抗体", None),
    ("HBCAB", "乙型肝炎病毒核心抗体", None),
    ("HCVAB", "丙型肝炎病毒抗体", "16128-1"),
    ("TPAB", "梅毒螺旋体抗体", None),
    ("HIVAB", "人类免疫缺陷病毒抗体", None),
    ("RF", "类风湿因子", None),
    ("ASO", "抗链球菌溶血素 O", None),
    ("IGG", "免疫球蛋白 G", None),
    ("IGA", "免疫球蛋白 A", None),
    ("IGM", "免疫球蛋白 M", None),
    ("C3", "补体 C3", None),
    ("C4", "补体 C4", None),
    ("IL6", "白细胞介素-6", None),
    ("SAA", "血清淀粉样蛋白 A", None),
    ("CYFRA", "细胞角蛋白 19 片段", None),
    ("NSE", "神经元特异性烯醇化酶", None),
    ("SCC", "鳞状细胞癌抗原", None),
    ("PTH", "甲状旁腺激素", None),
    ("TGAB", "甲状腺球蛋白抗体", None),
    ("TPOAB", "甲状腺过氧化物酶抗体", None),
    ("25OHD", "25-羟维生素 D", None),
    ("HCG", "人绒毛膜促性腺激素", None),
]
URINE = [
    ("UPH", "尿酸碱度", "5803-2"),
    ("USG", "尿比重", "5811-5"),
    ("UPRO", "尿蛋白定性", "5804-0"),
    ("UGLU", "尿葡萄糖定性", "5792-7"),
    ("UKET", "尿酮体", "5797-6"),
    ("UBIL", "尿胆红素", "5770-3"),
    ("UURO", "尿胆原", "5818-0"),
    ("UNIT", "尿亚硝酸盐", "5802-4"),
    ("ULEU", "尿白细胞酯酶", "5799-2"),
    ("UBLD", "尿隐血", "5794-3"),
    ("UMALB", "尿微量白蛋白", None),
    ("UACR", "尿微量白蛋白/肌酐比值", None),
]
# (group, validity, scope, the sections's items)
LAB_SECTIONS = [
    ("临床血液", {"outpatient": 7, "inpatient": 3}, "consortium", BLOOD),
    ("临床化学", {"outpatient": 14, "inpatient": 7}, "consortium", CHEMISTRY),
    ("临床免疫", 30, "city", IMMUNOLOGY),
    ("尿液", {"outpatient": 3, "inpatient": 1}, "consortium", URINE),
]
# exams: modality x body part (the county RIS's codes)
EXAM_MODALITIES = [
    ("CT", "CT 平扫", "放射", 30),
    ("CTE", "CT 增强", "放射", 30),
    ("MR", "MR 平扫", "放射", 90),
    ("DR", "X 线摄影 (DR)", "放射", 30),
    ("US", "彩色多普勒超声", "超声", 14),
]
# (part code, name, the modalities done for it)
EXAM_PARTS = [
    ("01", "颅脑", "CT CTE MR DR"),
    ("02", "颈椎", "CT MR DR"),
    ("03", "胸部", "CT CTE DR"),
    ("04", "腰椎", "CT MR DR"),
    ("05", "上腹部", "CT CTE MR US"),
    ("06", "盆腔", "CT CTE MR US"),
    ("07", "膝关节", "CT MR DR"),
    ("08", "肩关节", "CT MR DR"),
    ("09", "鼻窦", "CT DR"),
    ("10", "甲状腺", "US"),
    ("11", "乳腺", "MR US"),
    ("12", "心脏", "CTE MR US"),
    ("13", "双下肢血管", "CTE US"),
    ("14", "颈部血管", "CTE US"),
    ("15", "髋关节", "CT MR DR"),
    ("16", "踝关节", "CT MR DR"),
    ("17", "胸椎", "CT MR DR"),
    ("18", "泌尿系", "CT CTE US"),
    ("19", "前列腺", "MR US"),
    ("20", "子宫附件", "MR US"),
    ("21", "肝胆胰脾", "US"),
    ("22", "眼眶", "CT MR"),
    ("23", "内耳", "CT MR"),
    ("24", "手腕关节", "DR MR"),
    ("25", "颞下颌关节", "CT MR"),
]
# a glucose needs serum or plasma (not a fingertip whole blood); HbA1c by HPLC
SPECIMENS = {"GLU": ["SER", "PLAS"]}
METHODS = {"HBA1C": ["HPLC"]}
# province-wide items: tumour markers and cross-sectional imaging
PROVINCE = {"AFP", "CEA", "CA125", "CA199", "CA153", "TPSA", "FPSA", "CYFRA", "NSE", "SCC"}
PROVINCE_EXAMS = ("CT", "CTE", "MR")
# codes 柳河's LIS has and the catalogue maps for no item (unmapped local codes)
LIUHE_UNMAPPED = ("LH-XG-01", "LH-NF-02", "LH-BM-03")


def _code(kind: str, n: int) -> str:
    return f"QS-{'JY' if kind == 'lab' else 'JC'}-{n:03d}"


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """What the generator needs of an item besides the catalogue: the local codes."""

    code: str
    abbr: str
    kind: str
    group: str
    loinc: str | None
    local: dict[str, str]


def catalogue_data() -> tuple[dict[str, Any], list[ItemSpec]]:
    """The catalogue as the YAML file would hold it, and the items' local codes."""
    items: list[dict[str, Any]] = []
    specs: list[ItemSpec] = []
    n = 0
    for group, days, scope, rows in LAB_SECTIONS:
        for abbr, name, loinc in rows:
            n += 1
            local = {COUNTY: abbr, SHIQIAO: abbr}
            if group in ("临床血液", "尿液") or n % 3:
                local[LIUHE] = f"LH{n:03d}"  # 柳河's LIS numbers its items
            entry: dict[str, Any] = {
                "code": _code("lab", n),
                "name": f"{name} ({abbr})",
                "kind": "检验",
                "group": group,
                "local": {f: [c, str(1000 + n)] if f == COUNTY else c for f, c in local.items()},
                "validity_days": days,
                "scope": "province" if abbr in PROVINCE else scope,
                "mark": "HR",
                "price": f"{5 + n % 40}.00",
            }
            if loinc:
                entry["loinc"] = loinc
            if abbr in SPECIMENS:
                entry["specimen"] = SPECIMENS[abbr]
            if abbr in METHODS:
                entry["method"] = METHODS[abbr]
            items.append(entry)
            specs.append(ItemSpec(entry["code"], abbr, "lab", group, loinc, local))
    m = 0
    for modality, words, group, days in EXAM_MODALITIES:
        for part, part_name, done in EXAM_PARTS:
            if modality not in done.split():
                continue
            m += 1
            local_code = f"{modality}{part}{m:02d}"
            local = {COUNTY: local_code}
            if modality in ("DR", "US"):
                local[SHIQIAO] = local_code
            entry = {
                "code": _code("exam", m),
                "name": f"{part_name} {words}",
                "kind": "检查",
                "group": group,
                "local": local,
                "validity_days": days,
                "scope": "province" if modality in PROVINCE_EXAMS else "consortium",
                "mark": "HR",
                "recognises": "result" if group == "放射" else "data",
            }
            items.append(entry)
            specs.append(ItemSpec(entry["code"], local_code, "exam", group, None, local))
    fixture = yaml.safe_load((ROOT / "fixtures" / "recognition.yaml").read_text(encoding="utf-8"))
    lab_groups = ["临床血液", "临床化学", "临床免疫", "尿液"]
    data = {
        "version": 1,
        "kind": "recognition-catalogue",
        "edition": "2026.gen",
        "effective": "2026-01-01",
        "items": items,
        "qualifications": [
            {
                "facility": COUNTY,
                "scopes": ["consortium", "city", "province"],
                "eqa": [
                    _eqa(lab_groups, "pass", "2025-04-15", "2026-04-14"),
                    _eqa(lab_groups, "pass", "2026-04-15", "2027-04-14"),
                    _eqa(["放射", "超声"], "pass", "2025-03-01", "2027-02-28"),
                ],
            },
            {
                "facility": SHIQIAO,
                "scopes": ["consortium", "city"],
                "eqa": [
                    # the blood count's pass lapses on 2026-07-09; renewed from 08-01
                    _eqa(["临床血液", "尿液"], "pass", "2025-07-10", "2026-07-09"),
                    _eqa(["临床血液", "尿液"], "pass", "2026-08-01", "2027-07-31"),
                    # chemistry failed in March: nothing of it counts until September
                    _eqa(["临床化学"], "pass", "2025-03-01", "2026-02-28"),
                    _eqa(["临床化学"], "fail", "2026-03-01", "2026-08-31"),
                    _eqa(["临床化学"], "pass", "2026-09-01", "2027-08-31"),
                    _eqa(["超声", "放射"], "pass", "2026-01-01", "2026-12-31"),
                    # no immunology assessment at all
                ],
            },
            {
                "facility": LIUHE,
                "scopes": ["consortium"],
                "eqa": [
                    _eqa(["临床血液", "尿液", "临床化学"], "pass", "2026-01-01", "2026-12-31"),
                    _eqa(["临床免疫"], "pass", "2026-01-01", "2026-12-31"),
                ],
            },
        ],
        "reasons": fixture["reasons"],
    }
    return data, specs


def _eqa(groups: list[str], result: str, start: str, until: str) -> dict[str, Any]:
    year = start[:4]
    return {
        "groups": groups,
        "programme": f"青山省临床检验中心 {year} 年室间质评 ({'、'.join(groups)})",
        "result": result,
        "date": start,
        "valid_until": until,
    }


def build_catalogue(consortium: Consortium) -> tuple[Catalogue, list[ItemSpec]]:
    data, specs = catalogue_data()
    catalogue = Catalogue.model_validate(data)
    problems = catalogue.problems({f.id for f in consortium.facilities})
    assert not problems, problems
    return catalogue, specs


# -- results ------------------------------------------------------------------------------
def local_system(facility: str, kind: str) -> str:
    return f"{NS}/{LOCAL_PREFIX[facility]}/{kind}-item"


def result(
    rid: str,
    patient: str,
    spec: ItemSpec,
    facility: str | None,
    when: str | None,
    *,
    status: str = "final",
    local_code: str | None = None,
    with_loinc: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A lab Observation or an exam DiagnosticReport of ``spec``, coded as ``facility``
    sends it: its own local code (a facility of the consortium), else LOINC only."""
    coding: list[dict[str, str]] = []
    if facility in LOCAL_PREFIX and (local_code or spec.local.get(facility)):
        code = local_code or spec.local[facility]
        coding.append({"system": local_system(facility, spec.kind), "code": code})
    loinc = with_loinc if with_loinc is not None else not coding
    if spec.loinc and loinc:
        coding.append({"system": LOINC, "code": spec.loinc})
    body: dict[str, Any] = {
        "resourceType": "Observation" if spec.kind == "lab" else "DiagnosticReport",
        "id": rid,
        "status": status,
        "code": {"coding": coding, "text": spec.abbr},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if when is not None:
        body["effectiveDateTime"] = when
    if spec.kind == "lab":
        body["valueQuantity"] = {"value": round(random.Random(rid).uniform(1, 100), 2)}
    else:
        body["conclusion"] = "未见明显异常"
    body.update(extra)
    return body


@dataclass(frozen=True, slots=True)
class Case:
    """A person of their own whose answer for ``item`` asked at ``at`` is known."""

    name: str
    patient: str
    item: str  # the catalogue code asked (or a local code with ``facility``)
    at: dt.datetime
    reason: str | None  # the item's reason; None: recognisable
    result: str | None = None  # the result the answer must name first (newest)
    local: bool = False  # ``item`` is the ordering facility's local code
    facility: str | None = None
    setting: str = "outpatient"


@dataclass(slots=True)
class Year:
    catalogue: Catalogue
    consortium: Consortium
    specs: dict[str, ItemSpec]  # by abbreviation (lab) or local exam code
    persons: list[str]
    cases: list[Case]
    results: int = 0
    # (patient, resource type, id, facility) of each stored result of the population
    stored: list[tuple[str, str, str, str | None]] = field(default_factory=list)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _cases(spec: dict[str, ItemSpec]) -> tuple[list[Case], list[tuple[str | None, list]]]:
    """The named cases and what to store for them: (facility that sent it, resources)."""
    wbc, glu, a1c, alt = spec["WBC"], spec["GLU"], spec["HBA1C"], spec["ALT"]
    crp, cea, tsh, upro = spec["CRP"], spec["CEA"], spec["TSH"], spec["UPRO"]
    chest_ct = next(s for s in spec.values() if s.kind == "exam" and s.abbr.startswith("CT03"))
    chest_dr = next(s for s in spec.values() if s.kind == "exam" and s.abbr.startswith("DR03"))
    cases: list[Case] = []
    store: list[tuple[str | None, list[dict[str, Any]]]] = []

    def add(
        name: str,
        facility: str | None,
        body_spec: ItemSpec,
        when: str | None,
        asked_at: str,
        reason: str | None,
        *,
        ask: str | None = None,
        extra_resources: tuple[dict[str, Any], ...] = (),
        **kw: Any,
    ) -> str:
        patient = f"case-{name}"
        rid = f"{name}-r1"
        setting = kw.pop("setting", "outpatient")
        body = result(rid, patient, body_spec, facility, when, **kw)
        store.append((None, [{"resourceType": "Patient", "id": patient, "gender": "female"}]))
        store.append((facility, [*extra_resources, body]))
        item = ask or _item_code(body_spec)
        cases.append(
            Case(
                name,
                patient,
                item,
                at(asked_at),
                reason,
                f"{body['resourceType']}/{rid}",
                setting=setting,
            )
        )
        return patient

    # one per reason of a result (adapter/recognition/query.py, judge)
    add(
        "cancelled",
        COUNTY,
        wbc,
        "2026-03-02T09:00:00+08:00",
        "2026-03-03T10:00:00+08:00",
        "cancelled",
        status="cancelled",
    )
    add(
        "entered-in-error",
        COUNTY,
        wbc,
        "2026-03-02T09:00:00+08:00",
        "2026-03-03T10:00:00+08:00",
        "cancelled",
        status="entered-in-error",
    )
    add(
        "preliminary",
        COUNTY,
        wbc,
        "2026-03-02T09:00:00+08:00",
        "2026-03-03T10:00:00+08:00",
        "not-final",
        status="preliminary",
    )
    blood = {
        "resourceType": "Specimen",
        "id": "specimen-differs-sp",
        "type": {"coding": [{"system": V2_0487, "code": "BLD"}]},
    }
    add(
        "specimen-differs",
        COUNTY,
        glu,
        "2026-04-20T07:10:00+08:00",
        "2026-04-21T10:00:00+08:00",
        "specimen-differs",
        extra_resources=(blood,),
        specimen={"reference": "Specimen/specimen-differs-sp"},
    )
    serum = {
        "resourceType": "Specimen",
        "id": "specimen-ok-sp",
        "type": {"coding": [{"system": V2_0487, "code": "SER"}]},
    }
    add(
        "specimen-ok",
        COUNTY,
        glu,
        "2026-04-20T07:10:00+08:00",
        "2026-04-21T10:00:00+08:00",
        None,
        extra_resources=(serum,),
        specimen={"reference": "Specimen/specimen-ok-sp"},
    )
    add(
        "method-differs",
        COUNTY,
        a1c,
        "2026-05-06T08:00:00+08:00",
        "2026-05-07T10:00:00+08:00",
        "method-differs",
        method={"coding": [{"system": METHOD, "code": "IA"}]},
    )
    add(
        "method-ok",
        COUNTY,
        a1c,
        "2026-05-06T08:00:00+08:00",
        "2026-05-07T10:00:00+08:00",
        None,
        method={"coding": [{"system": METHOD, "code": "HPLC"}]},
    )
    add("no-date", COUNTY, wbc, None, "2026-05-07T10:00:00+08:00", "no-date")
    add("expired", COUNTY, wbc, "2026-05-01T09:00:00+08:00", "2026-06-01T10:00:00+08:00", "expired")
    add(
        "facility-unknown",
        None,
        wbc,
        "2026-05-06T08:00:00+08:00",
        "2026-05-07T10:00:00+08:00",
        "facility-unknown",
    )
    add(
        "facility-not-qualified",
        OUTSIDE,
        wbc,
        "2026-05-06T08:00:00+08:00",
        "2026-05-07T10:00:00+08:00",
        "facility-not-qualified",
    )
    # scope edges: 石桥 takes part in consortium and city recognition, 柳河 in consortium only
    add(
        "province-from-shiqiao",
        SHIQIAO,
        cea,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        "out-of-scope",
    )
    add(
        "province-from-county",
        COUNTY,
        cea,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        None,
    )
    add(
        "city-from-liuhe",
        LIUHE,
        tsh,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        "out-of-scope",
    )
    add(
        "city-from-shiqiao",
        SHIQIAO,
        crp,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        "eqa-missing",
    )
    add(
        "city-from-county",
        COUNTY,
        crp,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        None,
    )
    add(
        "consortium-from-liuhe",
        LIUHE,
        wbc,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        None,
    )
    add(
        "exam-from-shiqiao",
        SHIQIAO,
        chest_dr,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        None,
    )
    add(
        "province-exam-from-county",
        COUNTY,
        chest_ct,
        "2026-10-12T08:00:00+08:00",
        "2026-10-13T10:00:00+08:00",
        None,
    )
    # EQA: failed in force, lapsed, never assessed; lapsing inside the window
    add(
        "eqa-failed",
        SHIQIAO,
        alt,
        "2026-05-10T08:00:00+08:00",
        "2026-05-11T10:00:00+08:00",
        "eqa-failed",
    )
    add(
        "eqa-failed-then-passed",
        SHIQIAO,
        alt,
        "2026-09-01T00:10:00+08:00",
        "2026-09-02T10:00:00+08:00",
        None,
    )
    add(
        "eqa-expired",
        SHIQIAO,
        wbc,
        "2026-07-10T00:05:00+08:00",
        "2026-07-11T10:00:00+08:00",
        "eqa-expired",
    )
    add(
        "eqa-lapses-in-window",
        SHIQIAO,
        wbc,
        "2026-07-09T23:59:00+08:00",
        "2026-07-16T23:59:00+08:00",
        None,
    )
    add(
        "eqa-missing",
        SHIQIAO,
        tsh,
        "2026-05-06T08:00:00+08:00",
        "2026-05-07T10:00:00+08:00",
        "eqa-missing",
    )
    # the window in Asia/Shanghai: 7 days outpatient, day 0 the result's day in the zone
    # 2026-06-10 00:30 +08:00 is 06-09 in UTC (stored in UTC): counts through 06-17
    for name, when, asked, reason in (
        ("edge-utc-last-minute", "2026-06-09T16:30:00Z", "2026-06-17T23:59:00+08:00", None),
        ("edge-utc-next-day", "2026-06-09T16:30:00Z", "2026-06-18T00:00:00+08:00", "expired"),
        ("edge-2359-last-minute", "2026-06-10T23:59:00+08:00", "2026-06-17T23:59:59+08:00", None),
        ("edge-2359-next-day", "2026-06-10T23:59:00+08:00", "2026-06-18T00:00:00+08:00", "expired"),
        ("edge-inpatient-last", "2026-06-10T08:00:00+08:00", "2026-06-13T23:59:00+08:00", None),
        (
            "edge-inpatient-next",
            "2026-06-10T08:00:00+08:00",
            "2026-06-14T00:00:00+08:00",
            "expired",
        ),
    ):
        setting = "inpatient" if "inpatient" in name else "outpatient"
        add(name, COUNTY, wbc, when, asked, reason, setting=setting)
    # urine: 3 days outpatient; a liuhe result by its own local code
    add("urine-liuhe", LIUHE, upro, "2026-11-02T08:00:00+08:00", "2026-11-05T23:59:00+08:00", None)
    # 柳河 result under a local code no item maps: not a result of any item
    patient = "case-unmapped-result"
    unmapped = result(
        "unmapped-result-r1",
        patient,
        wbc,
        LIUHE,
        "2026-11-02T08:00:00+08:00",
        local_code=LIUHE_UNMAPPED[0],
        with_loinc=False,
    )
    store.append((None, [{"resourceType": "Patient", "id": patient, "gender": "male"}]))
    store.append((LIUHE, [unmapped]))
    cases.append(
        Case(
            "unmapped-result",
            patient,
            _item_code(wbc),
            at("2026-11-03T10:00:00+08:00"),
            "no-prior-result",
        )
    )
    # the item-level reasons
    cases.append(
        Case(
            "not-in-catalogue",
            patient,
            "QS-XX-999",
            at("2026-11-03T10:00:00+08:00"),
            "not-in-catalogue",
        )
    )
    cases.append(
        Case(
            "local-code-unmapped",
            patient,
            LIUHE_UNMAPPED[0],
            at("2026-11-03T10:00:00+08:00"),
            "local-code-unmapped",
            local=True,
            facility=LIUHE,
        )
    )
    cases.append(
        Case(
            "local-code-mapped",
            "case-urine-liuhe",
            upro.local[LIUHE],
            at("2026-11-03T10:00:00+08:00"),
            None,
            local=True,
            facility=LIUHE,
            result="Observation/urine-liuhe-r1",
        )
    )
    return cases, store


def _item_code(spec: ItemSpec) -> str:
    return spec.code


def generate(factory: sessionmaker[Session], *, persons: int = 300, per_person: int = 6) -> Year:
    """Build the catalogue, store the named cases and a year of results for ``persons``
    generated persons (about ``per_person`` results each), and answer what was made."""
    consortium = load_consortium(DEFAULT_CONSORTIUM)
    catalogue, specs = build_catalogue(consortium)
    by_abbr = {s.abbr: s for s in specs}
    cases, case_store = _cases(by_abbr)
    marks = ResultMarks(catalogue, consortium)
    year = Year(catalogue, consortium, by_abbr, [], cases)
    rng = random.Random(SEED)
    start = dt.datetime(2026, 1, 1, tzinfo=ZONE)
    senders = [COUNTY] * 5 + [SHIQIAO] * 3 + [LIUHE] * 2 + [OUTSIDE, None]
    statuses = ["final"] * 16 + ["corrected", "amended", "preliminary", "cancelled"]
    batches: list[tuple[str | None, list[dict[str, Any]]]] = list(case_store)
    for p in range(persons):
        patient = f"year-p{p:04d}"
        year.persons.append(patient)
        batches.append((None, [{"resourceType": "Patient", "id": patient}]))
        for r in range(rng.randint(per_person - 3, per_person + 3)):
            spec = rng.choice(specs)
            facility = rng.choice(senders)
            if spec.kind == "exam" and facility in LOCAL_PREFIX and facility not in spec.local:
                facility = COUNTY  # exams come from the RIS that does them
            if spec.kind == "exam" and facility not in LOCAL_PREFIX:
                facility = COUNTY
            taken = start + dt.timedelta(minutes=rng.randrange(365 * 24 * 60))
            local_code = None
            if facility == LIUHE and spec.kind == "lab" and LIUHE not in spec.local:
                local_code = rng.choice(LIUHE_UNMAPPED)  # stored, but no item's
            body = result(
                f"{patient}-r{r}",
                patient,
                spec,
                facility,
                taken.isoformat(),
                status=rng.choice(statuses),
                local_code=local_code,
                with_loinc=rng.random() < 0.3 if local_code is None else False,
            )
            batches.append((facility, [body]))
            year.stored.append((patient, body["resourceType"], body["id"], facility))
    now = dt.datetime(2026, 12, 31, 16, tzinfo=dt.UTC)
    # one transaction per sender and batch of resources, as messages arrive
    grouped: dict[str | None, list[dict[str, Any]]] = {}
    order: list[str | None] = []
    for facility, resources in batches:
        if facility not in grouped:
            order.append(facility)
        grouped.setdefault(facility, []).extend(resources)
    for facility in order:
        resources = grouped[facility]
        for begin in range(0, len(resources), 400):
            chunk = resources[begin : begin + 400]
            with factory.begin() as session:
                if facility in LOCAL_PREFIX:
                    marks.mark(session, chunk, facility)
                save_resources(session, chunk, message_id=None, now=now, facility_id=facility)
            year.results += sum(1 for r in chunk if r["resourceType"] != "Patient")
    return year


def named_cases() -> list[Case]:
    """The named cases, without a database (for parametrising tests)."""
    _, specs = catalogue_data()
    return _cases({s.abbr: s for s in specs})[0]
