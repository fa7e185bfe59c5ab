"""Pure grafanalib generators: one module per board plus shared panels."""
