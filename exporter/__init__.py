"""The process: scheduler, result store, collectors, aiohttp app, reload, sharding."""
