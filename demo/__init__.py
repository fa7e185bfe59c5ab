"""The local demo, apart from the product: a sample shop that misbehaves on purpose (``shop``),
the config that probes it (``demo.yaml``), and ``slaprobe demo``, which runs both (``run``)."""
