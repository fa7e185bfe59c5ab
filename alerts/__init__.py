"""Pure generators of recording and alerting rules, Alertmanager config and rule tests."""
