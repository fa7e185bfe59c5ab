"""slaprobe: SLA dial tests, log scrapers and the rules, routing and dashboards that go with them."""

__version__ = "0.1.0"
