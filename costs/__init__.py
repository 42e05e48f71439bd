"""Costs: receipts entered by hand and fuel-card or charging statements imported, each linked
to the trip and order it served and shared out among them, and the fuel checks that flag what
does not add up."""
