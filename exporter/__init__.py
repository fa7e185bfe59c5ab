"""The process: scheduler, result store, exposition, aiohttp app, reload, sharding, log pipeline."""
