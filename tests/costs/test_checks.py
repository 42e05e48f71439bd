"""The energy checks as pure functions: a battery-electric vehicle's charging against its kWh
norm, a plug-in hybrid's charging and fuel together against both norms, and which norm a month
of which vehicle is judged against."""

from __future__ import annotations

import pytest

from costs import checks
from fleet.models import Energy

TH = checks.Thresholds()  # margins 20 %, months under 100 km not judged


@pytest.mark.parametrize(("kwh", "flagged"), [(89.9, False), (90.0, False), (90.1, True)])
def test_charging_over_the_energy_norm_is_flagged_just_past_the_margin(kwh, flagged) -> None:
    # 500 km at a norm of 15 kWh/100 km + 20 %: up to 90 kWh.
    finding = checks.energy_consumption_high(kwh, 0.0, 500, 15, None, TH)
    assert (finding is not None) is flagged
    if finding is not None:
        assert finding.kind == "energy_consumption_high"
        assert finding.measured == {
            "kwh": 90.1,
            "distance_km": 500,
            "kwh_100km": 18.02,
            "norm_kwh_100km": 15,
            "over_norm_pct": 20.1,
        }
        assert finding.thresholds == {
            "energy_consumption_margin_pct": 20,
            "consumption_min_km": 100,
            "allowed_kwh_100km": 18.0,
        }


def test_a_month_with_little_distance_or_no_norm_is_not_judged() -> None:
    assert checks.energy_consumption_high(500, 0.0, 99.9, 15, None, TH) is None
    assert checks.energy_consumption_high(500, 0.0, 500, None, None, TH) is None


@pytest.mark.parametrize(("litres", "flagged"), [(45.5, False), (45.6, True)])
def test_plug_in_hybrid_is_judged_on_fuel_and_charging_together(litres, flagged) -> None:
    # 1,000 km; 100 kWh at 20 kWh/100 km drive 500 km, 45.5 L at 6.5 L/100 km 700 km: 1,200 km
    # is the most the two may cover at their norms (+ 20 %).
    finding = checks.energy_consumption_high(100, litres, 1000, 20, 6.5, TH)
    assert (finding is not None) is flagged
    if finding is not None:
        assert finding.measured["norm_km"] == pytest.approx(1201.5, abs=0.1)
        assert finding.measured["litres"] == 45.6
        assert finding.measured["l_100km"] == 4.56
        assert finding.thresholds["allowed_norm_km"] == 1200.0


def test_plug_in_hybrid_siphoned_fuel_hides_from_the_fuel_norm_alone() -> None:
    # Half the distance electric, the rest on fuel, and 40 L more than that took: per 100 km
    # of the whole distance the litres are still under the fuel norm's margin.
    litres = 32.5 + 40
    assert checks.consumption_high(litres, 1000, 6.5, TH) is None
    finding = checks.energy_consumption_high(100, litres, 1000, 20, 6.5, TH)
    assert finding is not None
    assert finding.measured["over_norm_pct"] == pytest.approx(61.5, abs=0.1)


def _month(energy: Energy, **figures: float | None) -> checks.Finding | None:
    facts: dict = {
        "litres": 0.0,
        "kwh": 0.0,
        "distance_km": 1000,
        "norm_l_100km": None,
        "norm_kwh_100km": None,
    }
    facts.update(figures)
    return checks.month_consumption(energy=energy, th=TH, **facts)


def test_each_vehicle_is_judged_against_its_own_norms() -> None:
    # A battery-electric vehicle: its charging, whatever fuel norm it carries.
    found = _month(Energy.BEV, kwh=300, norm_kwh_100km=15, norm_l_100km=8)
    assert found is not None
    assert found.kind == "energy_consumption_high"
    assert "litres" not in found.measured
    assert _month(Energy.BEV, kwh=300, litres=200, norm_l_100km=8) is None  # no energy norm
    # A plug-in hybrid with both norms: both together, one alert kind.
    found = _month(Energy.PHEV, kwh=150, litres=70, norm_kwh_100km=20, norm_l_100km=6.5)
    assert found is not None
    assert found.kind == "energy_consumption_high"
    # ... with no energy norm yet: its fuel norm alone, as before.
    found = _month(Energy.PHEV, kwh=150, litres=90, norm_l_100km=6.5)
    assert found is not None
    assert found.kind == "fuel_consumption_high"
    # A petrol car or a (self-charging) hybrid: its fuel only.
    found = _month(Energy.HYBRID, kwh=900, litres=30, norm_kwh_100km=15, norm_l_100km=5)
    assert found is None
    found = _month(Energy.PETROL, litres=100, norm_l_100km=8)
    assert found is not None
    assert found.kind == "fuel_consumption_high"


def test_over_norm_percentage_is_judged_as_the_month_check_judges() -> None:
    def over(energy: Energy, **figures: float | None) -> float | None:
        facts: dict = {"litres": 0.0, "kwh": 0.0, "distance_km": 1000.0}
        facts |= {"norm_l_100km": None, "norm_kwh_100km": None} | figures
        return checks.over_norm_pct(energy=energy, **facts)

    assert over(Energy.BEV, kwh=180, norm_kwh_100km=15) == pytest.approx(20)
    assert over(Energy.PHEV, kwh=100, litres=45.5, norm_kwh_100km=20, norm_l_100km=6.5) == (
        pytest.approx(20)
    )
    assert over(Energy.PHEV, litres=65, norm_l_100km=6.5) == pytest.approx(0)
    assert over(Energy.PETROL, litres=88, norm_l_100km=8) == pytest.approx(10)
    assert over(Energy.BEV, kwh=180) is None
    assert over(Energy.BEV, norm_kwh_100km=15) is None
    assert over(Energy.PETROL, litres=88, norm_l_100km=8, distance_km=0) is None
