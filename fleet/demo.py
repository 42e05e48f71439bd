"""A believable municipal official-vehicle pool for the demo, created idempotently.

Running the seed again adds only what is missing, so `make run` can call it every time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from fleet.models import (
    BodyClass,
    Device,
    DeviceProtocol,
    Driver,
    Energy,
    OrgUnit,
    Role,
    UserAccount,
    Vehicle,
    VehicleCategory,
    VehicleStatus,
)
from fleet.schemas import DeviceCreate, DriverCreate, UnitCreate, UserCreate, VehicleCreate

DEMO_PASSWORD = "fleet-demo"  # noqa: S105 - printed for the demo on purpose

# code, name, parent code, depot name, depot (lon, lat): Xihu district, Hangzhou, each depot beside
# a road of the demo network (app/demo_data/hangzhou-xihu-roads.osm.pbf)
UNITS: tuple[tuple[str, str, str | None, str, tuple[float, float]], ...] = (
    ("GOV", "市政府办公厅", None, "机关大院停车场（文二路）", (120.12571, 30.28506)),
    ("JGSWJ", "市机关事务管理局", "GOV", "机关大院停车场（文二路）", (120.12571, 30.28506)),
    ("CD", "市公务用车服务中心车队", "JGSWJ", "公务用车服务中心（古墩路）", (120.09480, 30.28390)),
    ("GAJ", "市公安局", "GOV", "公安局车库（教工路）", (120.13049, 30.29046)),
    ("YJJ", "市应急管理局", "GOV", "应急保障车库（余杭塘路）", (120.10493, 30.29599)),
)

DEMO_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin", "系统管理员", Role.ADMIN, "GOV"),
    ("requester", "王科员", Role.REQUESTER, "JGSWJ"),
    ("approver", "李处长", Role.APPROVER, "JGSWJ"),
    ("leader", "周秘书长", Role.APPROVER, "GOV"),
    ("dispatcher", "张调度", Role.DISPATCHER, "JGSWJ"),
    ("driver", "陈师傅", Role.DRIVER, "CD"),
    ("supervisor", "赵监督", Role.SUPERVISOR, "GOV"),
)


@dataclass(frozen=True)
class Spec:
    """A batch of like vehicles: how many, what kind, which unit keeps them."""

    count: int
    unit: str
    category: VehicleCategory
    body_class: BodyClass
    seats: int
    energy: Energy
    make_model: str
    tank_l: float | None = None
    battery_kwh: float | None = None
    norm: float | None = None
    # kWh drawn from the grid per 100 km (charging losses included), for the plug-in vehicles.
    energy_norm: float | None = None
    status: VehicleStatus = VehicleStatus.ACTIVE
    police: bool = False
    extra: dict[str, object] = field(default_factory=dict)


FLEET: tuple[Spec, ...] = (
    Spec(
        8,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.SEDAN,
        4,
        Energy.BEV,
        "比亚迪 汉 EV",
        battery_kwh=85.4,
        energy_norm=15.5,
    ),
    Spec(
        4,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.SEDAN,
        4,
        Energy.PETROL,
        "大众 帕萨特 1.4T",
        66,
        None,
        7.5,
    ),
    Spec(
        3,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.SEDAN,
        4,
        Energy.HYBRID,
        "丰田 凯美瑞 双擎",
        50,
        None,
        5.1,
    ),
    Spec(
        3,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.MPV,
        6,
        Energy.PHEV,
        "比亚迪 腾势 D9 DM-i",
        53,
        40.0,
        6.5,
        energy_norm=22.0,
    ),
    Spec(
        2,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.MINIBUS,
        13,
        Energy.DIESEL,
        "江铃 特顺",
        80,
        None,
        11.0,
    ),
    Spec(
        2,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.BUS,
        32,
        Energy.BEV,
        "宇通 E8",
        battery_kwh=175.0,
        energy_norm=55.0,
    ),
    Spec(
        2,
        "CD",
        VehicleCategory.CONFIDENTIAL_COMMS,
        BodyClass.SEDAN,
        4,
        Energy.BEV,
        "吉利 几何 A",
        battery_kwh=70.0,
        energy_norm=14.0,
    ),
    Spec(
        1,
        "CD",
        VehicleCategory.CONFIDENTIAL_COMMS,
        BodyClass.SUV,
        4,
        Energy.PETROL,
        "大众 途观L",
        60,
        None,
        8.6,
    ),
    Spec(
        1,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.SEDAN,
        4,
        Energy.PETROL,
        "别克 君越",
        70,
        None,
        8.0,
        status=VehicleStatus.SEALED,
    ),
    Spec(
        1,
        "CD",
        VehicleCategory.GENERAL,
        BodyClass.MPV,
        6,
        Energy.PETROL,
        "别克 GL8",
        65,
        None,
        9.8,
        status=VehicleStatus.MAINTENANCE,
    ),
    Spec(
        4,
        "GAJ",
        VehicleCategory.ENFORCEMENT,
        BodyClass.SUV,
        4,
        Energy.PETROL,
        "丰田 汉兰达",
        72,
        None,
        9.5,
        police=True,
    ),
    Spec(
        3,
        "GAJ",
        VehicleCategory.ENFORCEMENT,
        BodyClass.SEDAN,
        4,
        Energy.BEV,
        "比亚迪 秦 PLUS EV",
        battery_kwh=57.6,
        energy_norm=13.5,
        police=True,
    ),
    Spec(
        1,
        "GAJ",
        VehicleCategory.SPECIAL,
        BodyClass.TRUCK,
        2,
        Energy.DIESEL,
        "依维柯 勘查车",
        90,
        None,
        12.5,
        police=True,
    ),
    Spec(
        2,
        "YJJ",
        VehicleCategory.EMERGENCY,
        BodyClass.SUV,
        4,
        Energy.DIESEL,
        "长城 坦克 300",
        80,
        None,
        10.8,
    ),
    Spec(
        1,
        "YJJ",
        VehicleCategory.EMERGENCY,
        BodyClass.TRUCK,
        2,
        Energy.DIESEL,
        "五十铃 应急保障车",
        100,
        None,
        14.0,
    ),
    Spec(
        1,
        "YJJ",
        VehicleCategory.SPECIAL,
        BodyClass.MINIBUS,
        9,
        Energy.PETROL,
        "福特 全顺 通信指挥车",
        80,
        None,
        12.0,
    ),
    Spec(
        1,
        "YJJ",
        VehicleCategory.EMERGENCY,
        BodyClass.MPV,
        6,
        Energy.PHEV,
        "理想 L9",
        65,
        44.5,
        7.0,
        energy_norm=24.0,
    ),
)

# name, licence class, unit, days from the seed to the licence's expiry. Each unit's drivers
# between them hold the classes its vehicles ask for (fleet.licences): A1/B1 for the motor pool's
# buses and 13-seat minibuses, B2 for the trucks. One licence runs out within the month, so the
# desk and his file show the flag.
DRIVERS: tuple[tuple[str, str, str, int], ...] = (
    ("陈建国", "A1", "CD", 2_400),
    ("刘伟", "A1", "CD", 1_900),
    ("周强", "B1", "CD", 1_100),
    ("吴敏", "C1", "CD", 2_900),
    ("徐磊", "C1", "CD", 1_500),
    ("孙涛", "C1", "CD", 3_300),
    ("马俊", "C1", "CD", 700),
    ("朱鹏", "C1", "CD", 2_100),
    ("胡斌", "C1", "CD", 3_000),
    ("郭亮", "C1", "CD", 20),
    ("何勇", "B2", "GAJ", 1_300),
    ("高峰", "C1", "GAJ", 2_600),
    ("林海", "C1", "GAJ", 900),
    ("罗军", "B2", "YJJ", 1_700),
    ("梁超", "C1", "YJJ", 2_200),
)


def _plate(spec: Spec, serial: int) -> str:
    if spec.energy is Energy.BEV:
        return f"浙A·D{10001 + serial:05d}"
    if spec.energy is Energy.PHEV:
        return f"浙A·F{20001 + serial:05d}"
    if spec.police:
        return f"浙A·{3001 + serial:04d}警"
    return f"浙A·G{5001 + serial:04d}"


@dataclass(frozen=True)
class SeedReport:
    created: Counter[str]
    vehicles: int
    new_energy_share: float


def seed(*, session: Session, today: date) -> SeedReport:
    """The demo's units, people, vehicles, drivers and devices; `today` (local) dates the
    drivers' licences, so the demo looks the same whichever day it is seeded."""
    created: Counter[str] = Counter()
    units = {u.code: u for u in session.scalars(select(OrgUnit))}
    for code, name, parent, _, _ in UNITS:
        if code in units:
            continue
        if parent is None:
            units[code] = registry.create_root_unit(session=session, code=code, name=name)
        else:
            units[code] = registry.create_unit(
                session=session,
                actor=Actor.system(units["GOV"]),
                data=UnitCreate(code=code, name=name, parent_id=units[parent].id),
            )
        created["units"] += 1
    system = Actor.system(units["GOV"])

    users = {u.username: u for u in session.scalars(select(UserAccount))}
    for username, full_name, role, unit in DEMO_USERS:
        if username not in users:
            users[username] = registry.create_user(
                session=session,
                actor=None,
                data=UserCreate(
                    username=username,
                    password=DEMO_PASSWORD,
                    roles=[role],
                    unit_id=units[unit].id,
                    full_name=full_name,
                ),
            )
            created["users"] += 1

    depots = {code: (name, lonlat) for code, _, _, name, lonlat in UNITS}
    plates = set(session.scalars(select(Vehicle.plate)))
    serial_by_kind: Counter[str] = Counter()
    for spec in FLEET:
        for _ in range(spec.count):
            kind = (
                spec.energy.value
                if spec.energy.new_energy
                else ("police" if spec.police else "fuel")
            )
            plate = _plate(spec, serial_by_kind[kind])
            serial_by_kind[kind] += 1
            if plate in plates:
                continue
            depot_name, (lon, lat) = depots[spec.unit]
            registry.create_vehicle(
                session=session,
                actor=system,
                data=VehicleCreate(
                    plate=plate,
                    category=spec.category,
                    body_class=spec.body_class,
                    seats=spec.seats,
                    energy=spec.energy,
                    unit_id=units[spec.unit].id,
                    tank_l=spec.tank_l,
                    battery_kwh=spec.battery_kwh,
                    fuel_norm_l_100km=spec.norm,
                    energy_norm_kwh_100km=spec.energy_norm,
                    make_model=spec.make_model,
                    depot_name=depot_name,
                    depot={"type": "Point", "coordinates": [lon, lat]},
                    status=spec.status,
                ),
            )
            plates.add(plate)
            created["vehicles"] += 1

    names = set(session.scalars(select(Driver.name)))
    for name, licence, unit, days in DRIVERS:
        if name in names:
            continue
        registry.create_driver(
            session=session,
            actor=system,
            data=DriverCreate(
                name=name,
                licence_class=licence,
                licence_expires_on=today + timedelta(days=days),
                unit_id=units[unit].id,
                phone=f"1390571{len(names):04d}",
                user_id=users["driver"].id if name == "陈建国" else None,
            ),
        )
        names.add(name)
        created["drivers"] += 1

    fitted = set(session.scalars(select(Device.vehicle_id).where(Device.vehicle_id.is_not(None))))
    vehicles = session.scalars(select(Vehicle).order_by(Vehicle.id)).all()
    for index, vehicle in enumerate(vehicles):
        if vehicle.id in fitted:
            continue
        # Most official cars carry a fitted BeiDou/JT/T 808 terminal; a few report from a phone.
        protocol = DeviceProtocol.OSMAND if index % 4 == 3 else DeviceProtocol.JT808
        identifier = (
            f"0138{vehicle.id:08d}" if protocol is DeviceProtocol.JT808 else f"86{vehicle.id:013d}"
        )
        registry.create_device(
            session=session,
            actor=system,
            data=DeviceCreate(protocol=protocol, identifier=identifier, vehicle_id=vehicle.id),
        )
        created["devices"] += 1

    nev = sum(1 for v in vehicles if Energy(v.energy).new_energy)
    return SeedReport(
        created=created,
        vehicles=len(vehicles),
        new_energy_share=nev / len(vehicles) if vehicles else 0.0,
    )
