"""The aiohttp REST + websocket API."""
